"""Operations endpoints and the access log: ``GET /metrics``, ``GET /health`` (no token).

The app does not compute metrics or health itself: the server hands ``create_app`` an
:class:`Operations` (``b2bua.metrics``/``b2bua.health`` in ``b2bua serve``) and the two routes
call it. Every HTTP request, whatever its answer, passes :class:`AccessLog`: one INFO line on
the ``api.access`` logger (method, route template, status, duration, client address) and one
``request_done`` for the metrics, labelled by the route template (``/uapi/phoneCalls/{userId}/
simple``), never the raw path, so label values stay few.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any, Protocol

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Match, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["ACCESS_LOGGER", "AccessLog", "Operations", "operation_routes"]

ACCESS_LOGGER = "api.access"
UNMATCHED = "(unmatched)"  # the route label of a path no route serves (404)

access_log = logging.getLogger(ACCESS_LOGGER)


class Operations(Protocol):
    """What ``/metrics``, ``/health`` and the access log need from the server."""

    def metrics(self) -> tuple[bytes, str]:
        """The Prometheus text exposition and its content type."""
        ...

    def health(self) -> tuple[int, dict[str, Any]]:
        """The HTTP status (200/503) and the JSON body."""
        ...

    def request_done(self, method: str, route: str, status: int, seconds: float) -> None: ...


def _operations(request: Request) -> Operations:
    operations: Operations = request.app.state.operations
    return operations


async def metrics_endpoint(request: Request) -> Response:
    body, content_type = _operations(request).metrics()
    return Response(body, media_type=content_type)


async def health_endpoint(request: Request) -> Response:
    status, body = _operations(request).health()
    return JSONResponse(body, status_code=status, headers={"Cache-Control": "no-store"})


def operation_routes() -> list[Route]:
    return [
        Route("/metrics", metrics_endpoint, methods=["GET"]),
        Route("/health", health_endpoint, methods=["GET"]),
    ]


def route_template(routes: Sequence[BaseRoute], scope: Scope) -> str:
    """The path template of the route that serves ``scope`` (``UNMATCHED`` if none does)."""
    for route in routes:
        match, _ = route.matches(scope)
        if match is not Match.NONE:
            return getattr(route, "path", UNMATCHED)
    return UNMATCHED


class AccessLog:
    """ASGI middleware, outermost: times each HTTP request to its last byte (an SSE stream's
    time is how long it stayed open), logs it and reports it to ``request_done``."""

    def __init__(
        self, app: ASGIApp, routes: Sequence[BaseRoute], operations: Operations | None
    ) -> None:
        self.app = app
        self.routes = routes
        self.operations = operations

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 0

        async def watched_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, watched_send)
        finally:
            seconds = time.perf_counter() - started
            method = str(scope.get("method", ""))
            path = str(scope.get("path", ""))
            # the trailing-slash form is served as the bare path (api.app.StripTrailingSlash)
            lookup = dict(scope, path=path.rstrip("/") or "/") if path.endswith("/") else scope
            route = route_template(self.routes, lookup)
            client = scope.get("client")
            address = f"{client[0]}:{client[1]}" if client else "-"
            access_log.info(
                '%s "%s %s" %d %.1f ms',
                address,
                method,
                route,
                status,
                seconds * 1000,
                extra={
                    "client": address,
                    "method": method,
                    "route": route,
                    "status": status,
                    "duration_ms": round(seconds * 1000, 3),
                },
            )
            if self.operations is not None:
                self.operations.request_done(method, route, status, seconds)
