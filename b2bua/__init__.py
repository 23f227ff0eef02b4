"""The composition root: builds SIP signalling, the RTP relay, the engine and the HTTP API and
wires them into one trio run.

It sits above the three layers (``api -> engine -> sip``) and is the one package that imports
them all; none of them imports it. Module map: ``server`` (``serve``: the whole server inside a
trio run, what ``b2bua serve`` and embedders run), ``listen`` (the SIP and API listeners,
opened first), ``http`` (hypercorn serving the UAPI app), ``cli`` (the ``b2bua`` command:
``serve``, ``demo``, ``check-config``), ``demo`` (``b2bua demo``: a sandbox call through a
server of its own).
"""
