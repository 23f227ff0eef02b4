"""UAPI error bodies and the guards that make every failure one.

Every error the facade sends is ``{"error": {"code": "...", "message": "..."}}`` with the HTTP
status UAPI documents (400 parameter errors, 401 ``access_denied``, 403 for an App acting outside
its scope, 404/405 for unknown routes and methods, 501 ``request_not_implemented``, 503 while
draining, 500 ``internal_server_error``). Handlers raise ``ApiError``; ``EXCEPTION_HANDLERS``
and ``ErrorGuard`` turn it, Starlette's ``HTTPException`` and any other exception into that shape,
so a client never sees a framework's default body or a bare 500 page. ``HeadLimit`` answers 431
``headers_too_large`` for a request head over ``MAX_HEAD_BYTES``; the answers the HTTP server
writes without the app get the same shape from ``api.serving``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.resources import Error, ErrorDetail, dump

logger = logging.getLogger(__name__)

# The request line and headers together, at most (hypercorn is set to the same: api.serving).
MAX_HEAD_BYTES = 16 * 1024

HTTP_CODES = {
    400: "request_invalid",
    401: "access_denied",
    403: "access_denied",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "payload_too_large",
    415: "unsupported_media_type",
    431: "headers_too_large",
    500: "internal_server_error",
    501: "request_not_implemented",
    503: "service_unavailable",
}


class ApiError(Exception):
    """A UAPI error: raise it anywhere in a handler to answer ``status`` with ``code``."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(status, code, message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})

    def __str__(self) -> str:
        return f"{self.status} {self.code}: {self.message}"


def error_body(code: str, message: str) -> dict[str, Any]:
    return dump(Error(error=ErrorDetail(code=code, message=message)))


def error_response(
    status: int, code: str, message: str, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(error_body(code, message), status_code=status, headers=dict(headers or {}))


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return error_response(exc.status, exc.code, exc.message, exc.headers)


async def _http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    status = exc.status_code
    code = HTTP_CODES.get(status, "request_invalid" if status < 500 else "internal_server_error")
    if status == 404:
        message = f"No resource at {request.url.path}"
    elif status == 405:
        message = f"Method {request.method} is not allowed on {request.url.path}"
    else:
        message = str(exc.detail)
    return error_response(status, code, message, exc.headers)


EXCEPTION_HANDLERS = {ApiError: _api_error, HTTPException: _http_exception}


class ErrorGuard:
    """ASGI middleware: any exception a handler lets escape becomes a 500 UAPI error body.

    (Starlette's own server-error middleware would answer with plain text and re-raise.) If the
    response has already started, the connection is simply ended: nothing valid can follow.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await _refuse_websocket(scope, send)
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, guarded_send)
        except ClientDisconnect:
            # The client went away mid-request: nobody is left to answer, and it is no fault.
            logger.info("client left during %s %s", scope.get("method"), scope.get("path"))
            return
        except Exception:
            logger.exception("unhandled error in %s %s", scope.get("method"), scope.get("path"))
            if started:
                return
            response = error_response(
                500, "internal_server_error", "The server failed to handle the request"
            )
            await response(scope, receive, send)
            return
        if not started:
            logger.error("no answer to %s %s", scope.get("method"), scope.get("path"))
            response = error_response(
                500, "internal_server_error", "The server failed to handle the request"
            )
            await response(scope, receive, send)


async def _refuse_websocket(scope: Scope, send: Send) -> None:
    """No route serves WebSockets: refuse the handshake with a UAPI error (ASGI's WebSocket
    Denial Response), or a plain close when the server cannot send one."""
    if "websocket.http.response" not in scope.get("extensions", {}):
        await send({"type": "websocket.close", "code": 1008})
        return
    body = json.dumps(
        error_body("request_invalid", "This server does not accept WebSocket connections"),
        separators=(",", ":"),
    ).encode()
    await send(
        {
            "type": "websocket.http.response.start",
            "status": 400,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "websocket.http.response.body", "body": body, "more_body": False})


def head_size(scope: Scope) -> int:
    """The size of the request line and headers as the client sent them (near enough: the
    optional spaces around header values are not counted)."""
    target = len(scope.get("raw_path") or b"") + len(scope.get("query_string") or b"")
    if scope.get("query_string"):
        target += 1
    line = len(scope.get("method", "")) + target + len(scope.get("http_version", "")) + 9
    return line + sum(len(name) + len(value) + 4 for name, value in scope["headers"]) + 2


class HeadLimit:
    """ASGI middleware: 431 ``headers_too_large`` for a request head over ``MAX_HEAD_BYTES``.

    hypercorn refuses such a head only when it arrives in pieces (h11 measures what it has
    buffered); this makes the limit the same however the bytes arrive."""

    def __init__(self, app: ASGIApp, limit: int = MAX_HEAD_BYTES) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and head_size(scope) > self.limit:
            logger.info(
                "refused %s %s: head over %d bytes", scope["method"], scope["path"], self.limit
            )
            response = error_response(
                431,
                "headers_too_large",
                f"The request line and headers exceed {self.limit} bytes",
                {"Connection": "close"},
            )
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)
