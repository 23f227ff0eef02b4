"""The ASGI application: OAuth token endpoint plus the UAPI PhoneCalls and CDR services.

``create_app(engine, public_url=...)`` wires the routes to one engine; it holds no global state,
so tests build as many apps as they like. It runs on trio (Starlette is anyio-based) and is
served by hypercorn's trio worker inside the engine's trio run.
"""

from __future__ import annotations

import logging
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from api.cdr import list_cdr
from api.context import ApiContext
from api.docs import docs_page
from api.errors import EXCEPTION_HANDLERS, ErrorGuard
from api.events import call_events
from api.oauth import Clock, TokenService, token_endpoint, utc_now
from api.openapi import openapi_document, openapi_endpoint
from api.phonecalls import create_simple, delete_calls, get_calls, put_call

logger = logging.getLogger(__name__)

CALL_PATH = "/uapi/phoneCalls/{userId}/{extension}"


class StripTrailingSlash:
    """ASGI middleware: ``/uapi/x/`` is served as ``/uapi/x`` (no redirect, no 404)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] == "http" and len(path) > 1 and path.endswith("/"):
            scope = dict(scope)
            scope["path"] = path.rstrip("/") or "/"
            raw = scope.get("raw_path")
            if isinstance(raw, bytes):
                scope["raw_path"] = raw.rstrip(b"/") or b"/"
        await self.app(scope, receive, send)


def routes() -> list[Route]:
    return [
        Route("/oauth/token.php", token_endpoint, methods=["POST"]),
        Route("/uapi/phoneCalls/{userId}/simple", create_simple, methods=["POST"]),
        Route(CALL_PATH, get_calls, methods=["GET"]),
        Route(CALL_PATH, delete_calls, methods=["DELETE"]),
        Route(CALL_PATH + "/{phoneCallId}", get_calls, methods=["GET"]),
        Route(CALL_PATH + "/{phoneCallId}", put_call, methods=["PUT"]),
        Route(CALL_PATH + "/{phoneCallId}", delete_calls, methods=["DELETE"]),
        Route(CALL_PATH + "/{phoneCallId}/events", call_events, methods=["GET"]),
        Route("/uapi/cdr/{ownerId}", list_cdr, methods=["GET"]),
        Route("/uapi/openapi.json", openapi_endpoint, methods=["GET"]),
        Route("/uapi/docs", docs_page, methods=["GET"]),
    ]


def create_app(
    engine: Any,
    *,
    public_url: str,
    clock: Clock = utc_now,
    callbacks: Any | None = None,
) -> Starlette:
    """The UAPI facade for ``engine``.

    ``public_url`` is the base of ``link.self`` URLs; ``clock`` is the wall clock used for token
    expiry; ``callbacks`` is a running ``api.events.CallbackDispatcher`` (without one, a request
    with ``statusCallback`` is answered 501).
    """
    app = Starlette(
        routes=routes(),
        middleware=[Middleware(ErrorGuard), Middleware(StripTrailingSlash)],
        exception_handlers=dict(EXCEPTION_HANDLERS),
    )
    app.router.redirect_slashes = False
    app.state.ctx = ApiContext(
        engine=engine,
        tokens=TokenService(engine.directory, engine.store, clock),
        public_url=public_url.rstrip("/"),
        clock=clock,
        callbacks=callbacks,
    )
    app.state.openapi = openapi_document(public_url.rstrip("/"))
    return app
