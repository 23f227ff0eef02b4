"""The HTTP facade: VoipNow UnifiedAPI (UAPI) PhoneCalls and CDR plus OAuth tokens, on Starlette.

Build it with ``api.app.create_app(engine, public_url=...)`` and serve it with hypercorn's trio
worker; ``api.events.CallbackDispatcher`` delivers ``statusCallback`` POSTs. Module map:
``oauth`` (tokens, bearer checks), ``scope`` (who may act for whom), ``create`` (the Simple
PhoneCall rules), ``phonecalls``/``cdr``/``events`` (handlers), ``render`` (engine records to
UAPI JSON), ``paging`` (standard request parameters), ``errors``/``body`` (error shape, JSON
bodies), ``openapi``/``docs`` (the published description). This package imports ``engine`` and
never ``sip``.
"""
