"""The ASGI application: OAuth token endpoint plus the UAPI PhoneCalls and CDR services.

``create_app(engine, public_url=...)`` wires the routes to one engine; it holds no global state,
so tests build as many apps as they like. It runs on trio (Starlette is anyio-based) and is
served by hypercorn's trio worker inside the engine's trio run.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from api.cdr import list_cdr
from api.context import ApiContext, CallbackSink
from api.docs import docs_page
from api.egress import CallbackPolicy
from api.errors import EXCEPTION_HANDLERS, ErrorGuard, HeadLimit
from api.events import call_events
from api.mapping import ENGINE_ERROR_HANDLERS
from api.oauth import TOKEN_KEY_PURPOSE, Clock, TokenService, token_endpoint, utc_now
from api.openapi import openapi_document, openapi_endpoint
from api.operations import AccessLog, Operations, operation_routes
from api.operators import (
    call_trace,
    console_asset,
    console_calls,
    console_page,
    console_summary,
    registrations,
)
from api.phonecalls import create_simple, delete_calls, get_calls, put_call
from engine.keys import derive_key
from engine.limiter import FailureLimiter
from engine.ports import EngineApi
from engine.trace import CallTraces

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


Endpoint = Callable[[Request], Awaitable[Response]]


def by_method(handlers: Mapping[str, Endpoint]) -> Endpoint:
    """One endpoint for a path served by several methods (HEAD is GET without a body).

    One route per path makes a 405 list every method of the path in ``Allow``, not just the
    methods of whichever route Starlette tried first."""
    table = dict(handlers)

    async def endpoint(request: Request) -> Response:
        method = "GET" if request.method == "HEAD" else request.method
        return await table[method](request)

    return endpoint


class PathRoute(Route):
    """A Route that leaves to other routes the paths whose parameters take a reserved value:
    ``/uapi/phoneCalls/{userId}/simple`` is the create resource, never extension "simple", so a
    GET there is 405 (Allow: POST) rather than a list of an unknown extension."""

    def __init__(
        self,
        path: str,
        endpoint: Endpoint,
        *,
        methods: list[str],
        reserved: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(path, endpoint, methods=methods)
        self.reserved = dict(reserved or {})

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        match, child = super().matches(scope)
        if match is not Match.NONE:
            params = child.get("path_params", {})
            if any(params.get(name) == value for name, value in self.reserved.items()):
                return Match.NONE, {}
        return match, child


def routes() -> list[Route]:
    not_simple = {"extension": "simple"}
    return [
        Route("/oauth/token.php", token_endpoint, methods=["POST"]),
        Route("/uapi/phoneCalls/{userId}/simple", create_simple, methods=["POST"]),
        PathRoute(
            CALL_PATH,
            by_method({"GET": get_calls, "DELETE": delete_calls}),
            methods=["GET", "DELETE"],
            reserved=not_simple,
        ),
        PathRoute(
            CALL_PATH + "/{phoneCallId}",
            by_method({"GET": get_calls, "PUT": put_call, "DELETE": delete_calls}),
            methods=["GET", "PUT", "DELETE"],
        ),
        Route(CALL_PATH + "/{phoneCallId}/events", call_events, methods=["GET"]),
        Route(CALL_PATH + "/{phoneCallId}/trace", call_trace, methods=["GET"]),
        Route("/uapi/registrations", registrations, methods=["GET"]),
        Route("/uapi/console/calls", console_calls, methods=["GET"]),
        Route("/uapi/console/summary", console_summary, methods=["GET"]),
        Route("/console", console_page, methods=["GET"]),
        Route("/console/{asset}", console_asset, methods=["GET"]),
        Route("/uapi/cdr/{ownerId}", list_cdr, methods=["GET"]),
        Route("/uapi/openapi.json", openapi_endpoint, methods=["GET"]),
        Route("/uapi/docs", docs_page, methods=["GET"]),
    ]


def create_app(
    engine: EngineApi,
    *,
    public_url: str,
    clock: Clock = utc_now,
    callbacks: CallbackSink | None = None,
    token_key: bytes | None = None,
    token_limiter: FailureLimiter | None = None,
    operations: Operations | None = None,
    traces: CallTraces | None = None,
    sip_address: tuple[str, int] | None = None,
) -> Starlette:
    """The UAPI facade for ``engine``.

    ``public_url`` is the base of ``link.self`` URLs; ``clock`` is the wall clock used for token
    expiry; ``callbacks`` is a running ``api.events.CallbackDispatcher`` (without one, a request
    with ``statusCallback`` is answered 501); ``token_key`` signs and checks the OAuth tokens
    (default: derived from ``[cluster] secret``, or from the secret kept in the engine's store,
    so every app on the same secret or store accepts the tokens of the others);
    ``token_limiter`` counts the token endpoint's failed attempts (default: one of its own);
    ``operations`` serves ``/metrics`` and ``/health`` and counts requests (``api.operations``;
    without it those two paths are 404). Every request is access-logged either way. ``traces``
    are the per-call SIP traces ``/trace`` serves, ``sip_address`` the server's SIP address
    written in their pcap form.
    """
    if token_key is None:
        token_key = derive_key(engine.signing_secret(), TOKEN_KEY_PURPOSE)
    served = routes() + (operation_routes() if operations is not None else [])
    app = Starlette(
        routes=served,
        middleware=[
            Middleware(AccessLog, routes=served, operations=operations),
            Middleware(ErrorGuard),
            Middleware(HeadLimit),
            Middleware(StripTrailingSlash),
        ],
        exception_handlers={**EXCEPTION_HANDLERS, **ENGINE_ERROR_HANDLERS},
    )
    app.router.redirect_slashes = False
    app.state.ctx = ApiContext(
        engine=engine,
        tokens=TokenService(engine.directory, token_key, clock),
        public_url=public_url.rstrip("/"),
        clock=clock,
        callbacks=callbacks,
        callback_policy=CallbackPolicy.of_config(engine.config.api),
        token_limiter=token_limiter or FailureLimiter("api token"),
        traces=traces,
        sip_address=sip_address,
    )
    app.state.openapi = openapi_document(public_url.rstrip("/"))
    app.state.operations = operations
    return app
