"""Any node answers for any call: requests that need the node owning a call are carried
out by that node.

Reads (GET of a call, lists, CDR) come from the shared store on any node. Hanging up
(``DELETE .../{id}``), actions (``PUT .../{id}``) and the live event stream (``GET
.../{id}/events``) need the call's tasks, which run on the node that created it. ``OwnerRouting``
wraps the app: for those requests it asks ``owner_of(call_id)`` for the API address of the
call's owner (another live node, read from its heartbeat row; None: this node, a finished
call, or an owner not alive) and, when there is one, replays the request there as it came
(same method, path, query, body and ``Authorization``: tokens are valid on every node) and
relays the answer, streaming for ``/events``. The owner authenticates and authorises it as
if it had come to it directly, so the answer is the same as if the client had asked the
owner. The hop carries ``X-B2BUA-Hop: NODE:MAC`` (HMAC of the sending node's name with a key
derived from ``[cluster] secret``): a request that carries a valid one is never forwarded
again. An owner that does not answer gets the client a 503 ``service_unavailable`` (when it
is dead, failover ends its calls within ``[cluster] failover`` s).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections.abc import Callable
from typing import Any

import httpx
import trio
from starlette.types import ASGIApp, Message, Receive, Scope, Send

logger = logging.getLogger(__name__)

HOP_HEADER = "x-b2bua-hop"
HOP_KEY_PURPOSE = "node-hop"
# request headers not replayed on the hop (httpx writes its own framing and Host)
_SKIP_REQUEST = frozenset(
    {b"host", b"content-length", b"transfer-encoding", b"connection", HOP_HEADER.encode()}
)
# response headers not relayed (the ASGI server frames the relayed body itself)
_SKIP_RESPONSE = frozenset({b"content-length", b"transfer-encoding", b"connection"})


def forwarded_call(method: str, path: str) -> tuple[str, bool] | None:
    """``(call id, is /events)`` when ``method path`` acts on a live call, else None."""
    parts = path.rstrip("/").split("/")
    # ['', 'uapi', 'phoneCalls', USER, EXTENSION, CALL(, 'events')]
    if len(parts) < 6 or parts[1] != "uapi" or parts[2] != "phoneCalls":
        return None
    if len(parts) == 6 and method in ("DELETE", "PUT"):
        return parts[5], False
    if len(parts) == 7 and parts[6] == "events" and method == "GET":
        return parts[5], True
    return None


class OwnerRouting:
    """ASGI wrapper that sends owner-only requests to the node owning the call."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        owner_of: Callable[[str], str | None],
        node: str,
        hop_key: bytes,
        timeout: float = 10.0,
    ) -> None:
        self.app = app
        self.owner_of = owner_of
        self.node = node
        self._key = hop_key
        self._timeout = timeout
        self._client: httpx.AsyncClient | None = None

    def hop_value(self, node: str) -> str:
        mac = hmac.new(self._key, node.encode("utf-8"), hashlib.sha256).hexdigest()
        return f"{node}:{mac}"

    def _valid_hop(self, value: str) -> bool:
        node, _, _mac = value.partition(":")
        return bool(node) and hmac.compare_digest(value, self.hop_value(node))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        target = forwarded_call(scope["method"], scope.get("path", ""))
        if target is None or self._hopped(scope):
            await self.app(scope, receive, send)
            return
        call_id, stream = target
        try:
            owner = self.owner_of(call_id) if call_id.isalnum() and len(call_id) <= 64 else None
        except Exception:
            logger.exception("cannot tell which node owns call %s", call_id[:64])
            owner = None
        if owner is None:
            await self.app(scope, receive, send)
            return
        await self._forward(owner, scope, receive, send, stream=stream)

    def _hopped(self, scope: Scope) -> bool:
        for key, value in scope.get("headers", ()):
            if key == HOP_HEADER.encode():
                return self._valid_hop(value.decode("latin-1"))
        return False

    async def _forward(
        self, owner: str, scope: Scope, receive: Receive, send: Send, *, stream: bool
    ) -> None:
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        url = owner.rstrip("/") + scope.get("raw_path", scope["path"].encode()).decode("latin-1")
        if scope.get("query_string"):
            url += "?" + scope["query_string"].decode("latin-1")
        headers = [
            (k.decode("latin-1"), v.decode("latin-1"))
            for k, v in scope.get("headers", ())
            if k not in _SKIP_REQUEST
        ]
        headers.append((HOP_HEADER, self.hop_value(self.node)))
        if self._client is None:
            self._client = httpx.AsyncClient(trust_env=False, follow_redirects=False)
        timeout = httpx.Timeout(self._timeout, read=None if stream else self._timeout)
        started = False
        failure: BaseException | None = None

        async def relay(cancel: trio.CancelScope) -> None:
            nonlocal started, failure
            assert self._client is not None
            request = self._client.build_request(
                scope["method"], url, headers=headers, content=bytes(body), timeout=timeout
            )
            try:
                response = await self._client.send(request, stream=True)
                try:
                    relayed = [
                        (k.lower(), v)
                        for k, v in response.headers.raw
                        if k.lower() not in _SKIP_RESPONSE
                    ]
                    start = {"type": "http.response.start", "status": response.status_code}
                    await send({**start, "headers": relayed})
                    started = True
                    async for chunk in response.aiter_raw():
                        await send({"type": "http.response.body", "body": chunk, "more_body": True})
                finally:
                    await response.aclose()
            except (httpx.HTTPError, OSError) as exc:
                failure = exc
            if not started:
                await _unavailable(send, "the node running this call does not answer; retry")
            else:  # the owner's answer is over (or its node died mid-stream)
                await send({"type": "http.response.body", "body": b"", "more_body": False})
            cancel.cancel()

        async def watch_disconnect(cancel: trio.CancelScope) -> None:
            while True:
                message: Message = await receive()
                if message["type"] == "http.disconnect":
                    cancel.cancel()
                    return

        logger.debug("call request %s %s carried out by %s", scope["method"], scope["path"], owner)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(relay, nursery.cancel_scope)
            nursery.start_soon(watch_disconnect, nursery.cancel_scope)
        if failure is not None:
            logger.warning("node at %s did not carry out %s: %s", owner, scope["path"], failure)


async def _unavailable(send: Send, message: str) -> None:
    payload: dict[str, Any] = {"error": {"code": "service_unavailable", "message": message}}
    body = json.dumps(payload).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 503,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"retry-after", b"1"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body, "more_body": False})
