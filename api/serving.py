"""How hypercorn serves the app: its own error answers carry the UAPI error body too.

Hypercorn answers some requests without ever calling the app, each with an empty body:

- a request line and headers larger than ``h11_max_incomplete_size`` while they arrive: 431
  (h11's "Receive buffer too long");
- bytes that are not HTTP/1.x: 400; a ``Transfer-Encoding`` other than ``chunked``: 501;
- a WebSocket handshake it cannot read: 400; a request for a server name it does not serve:
  404; an app that returns without answering: 500.

It offers no hook for those bodies (each protocol class writes them in one private method,
``_send_error_response``, with ``content-length: 0``), so ``use_uapi_error_bodies`` replaces
that method of hypercorn's HTTP/1.1 protocol, HTTP stream and WebSocket stream with one that
writes ``{"error": {"code", "message"}}`` as ``application/json``. It changes hypercorn's
classes for the whole process, which is why only the composition root (``b2bua.server``)
calls it, once, before serving; calling it again changes nothing. If a hypercorn release
renames those methods it raises at start-up rather than serving empty errors again.

The head limit itself is ``MAX_HEAD_BYTES`` for both hypercorn (``configure``) and the app
(``api.errors.HeadLimit``): h11 only measures a head still arriving, so without the app's own
check a large head sent in one piece would pass and the same head sent in two would not.
"""

from __future__ import annotations

import json
import logging
from time import time
from typing import Any

from hypercorn.config import Config as HypercornConfig

from api.errors import HTTP_CODES, MAX_HEAD_BYTES, error_body

logger = logging.getLogger(__name__)

_MESSAGES = {
    400: "The request is not valid HTTP/1.1",
    404: "No resource here",
    431: f"The request line and headers exceed {MAX_HEAD_BYTES} bytes",
    500: "The server failed to handle the request",
    501: "The request uses a Transfer-Encoding this server does not implement (only chunked)",
}
_MARK = "_uapi_error_bodies"


def server_error_body(status: int) -> bytes:
    """The UAPI error body of an answer the HTTP server writes itself."""
    code = HTTP_CODES.get(status, "request_invalid" if status < 500 else "internal_server_error")
    message = _MESSAGES.get(status, f"The request cannot be served (HTTP {status})")
    return json.dumps(error_body(code, message), separators=(",", ":")).encode()


def _error_headers(status: int) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    body = server_error_body(status)
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
    ]
    return body, headers


def configure(config: HypercornConfig) -> None:
    """Set hypercorn's ``config`` to the head limit the app enforces."""
    config.h11_max_incomplete_size = MAX_HEAD_BYTES


def use_uapi_error_bodies() -> None:
    """Make hypercorn write UAPI error bodies on the answers it sends itself (module doc)."""
    import h11
    from hypercorn.protocol import events as hevents
    from hypercorn.protocol.h11 import H11Protocol
    from hypercorn.protocol.http_stream import ASGIHTTPState, HTTPStream
    from hypercorn.protocol.ws_stream import WSStream

    classes = (H11Protocol, HTTPStream, WSStream)
    if all(getattr(cls, _MARK, False) for cls in classes):
        return
    missing = [cls.__name__ for cls in classes if not hasattr(cls, "_send_error_response")]
    if missing:
        raise RuntimeError(
            "this hypercorn release has no _send_error_response on "
            f"{', '.join(missing)}: api.serving cannot give its error answers a UAPI body"
        )

    async def connection_error(self: Any, status_code: int) -> None:
        body, headers = _error_headers(status_code)
        headers += self.config.response_headers("h11")
        await self._send_h11_event(h11.Response(status_code=status_code, headers=headers))
        await self._send_h11_event(h11.Data(data=body))
        await self._send_h11_event(h11.EndOfMessage())

    async def stream_error(self: Any, status_code: int) -> None:
        body, headers = _error_headers(status_code)
        await self.send(
            hevents.Response(stream_id=self.stream_id, headers=headers, status_code=status_code)
        )
        await self.send(hevents.Body(stream_id=self.stream_id, data=body))
        await self.send(hevents.EndBody(stream_id=self.stream_id))
        if isinstance(self, HTTPStream):
            self.state = ASGIHTTPState.CLOSED
        scope = getattr(self, "scope", None)
        if scope is not None:
            await self.config.log.access(
                scope, {"status": status_code, "headers": []}, time() - self.start_time
            )

    H11Protocol._send_error_response = connection_error  # type: ignore[method-assign]
    HTTPStream._send_error_response = stream_error  # type: ignore[method-assign]
    WSStream._send_error_response = stream_error  # type: ignore[method-assign]
    for cls in classes:
        setattr(cls, _MARK, True)
    logger.debug("hypercorn's own error answers now carry UAPI error bodies")
