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
from collections.abc import Awaitable, Callable
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


def is_list_delete(method: str, path: str) -> bool:
    """``DELETE /uapi/phoneCalls/{userId}/{extension}``: hang up every call of an extension."""
    parts = path.rstrip("/").split("/")
    return method == "DELETE" and len(parts) == 5 and parts[1:3] == ["uapi", "phoneCalls"]


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
        owner_of: Callable[[str], Awaitable[str | None]],
        peers: Callable[[], Awaitable[list[str]]],
        node: str,
        hop_key: bytes,
        timeout: float = 10.0,
    ) -> None:
        self.app = app
        self.owner_of = owner_of
        self.peers = peers
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
        if self._hopped(scope):
            await self.app(scope, receive, send)
            return
        if is_list_delete(scope["method"], scope.get("path", "")):
            await self._delete_everywhere(scope, receive, send)
            return
        target = forwarded_call(scope["method"], scope.get("path", ""))
        if target is None:
            await self.app(scope, receive, send)
            return
        call_id, stream = target
        try:
            valid = call_id.isalnum() and len(call_id) <= 64
            owner = await self.owner_of(call_id) if valid else None
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

    def _hop_request(self, base: str, scope: Scope) -> tuple[str, list[tuple[str, str]]]:
        """The URL on node ``base`` and the headers of the request of ``scope``, hop marked."""
        url = base.rstrip("/") + scope.get("raw_path", scope["path"].encode()).decode("latin-1")
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
        return url, headers

    async def _delete_everywhere(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Hang up an extension's calls on every live node: each hangs up its own; the
        answer lists them all (204 when none), or is this node's own when it refuses."""
        body = await _read_body(receive)
        if body is None:
            return
        try:
            peers = await self.peers()
        except Exception:
            logger.exception("cannot list the other nodes")
            peers = []
        answers: list[httpx.Response] = []

        async def ask(base: str) -> None:
            url, headers = self._hop_request(base, scope)
            assert self._client is not None
            try:
                answers.append(
                    await self._client.request(
                        "DELETE", url, headers=headers, timeout=self._timeout
                    )
                )
            except (httpx.HTTPError, OSError) as exc:
                logger.warning("node at %s did not hang up its calls: %s", base, exc)

        async with trio.open_nursery() as nursery:
            for base in peers:
                nursery.start_soon(ask, base)
        local = await _run_local(self.app, scope, body)
        status, _headers, content = local
        if status not in (200, 204):
            await _replay(send, local)
            return
        entries: list[Any] = []
        for status_code, payload in [(status, content)] + [
            (a.status_code, a.content) for a in answers
        ]:
            if status_code == 200:
                try:
                    entries.extend(json.loads(payload)["entry"])
                except (ValueError, KeyError, TypeError):
                    logger.warning("unreadable hang-up answer from a node: %r", payload[:200])
        if not entries:
            await _replay(send, (204, [], b""))
            return
        merged = json.dumps({"entry": entries}).encode()
        await _replay(send, (200, [(b"content-type", b"application/json")], merged))

    async def _forward(
        self, owner: str, scope: Scope, receive: Receive, send: Send, *, stream: bool
    ) -> None:
        body = await _read_body(receive)
        if body is None:
            return
        url, headers = self._hop_request(owner, scope)
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


async def _read_body(receive: Receive) -> bytes | None:
    """The whole request body; None when the client went away."""
    body = bytearray()
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        body += message.get("body", b"")
        if not message.get("more_body", False):
            return bytes(body)


async def _run_local(
    app: ASGIApp, scope: Scope, body: bytes
) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """Run ``app`` on a request whose body was read already; its answer, whole."""
    sent = False
    status = 500
    headers: list[tuple[bytes, bytes]] = []
    content = bytearray()

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await trio.sleep_forever()
        raise AssertionError("unreachable")

    async def send(message: Message) -> None:
        nonlocal status, headers
        if message["type"] == "http.response.start":
            status = int(message["status"])
            headers = list(message.get("headers", []))
        elif message["type"] == "http.response.body":
            content.extend(message.get("body", b""))

    await app(scope, receive, send)
    return status, headers, bytes(content)


async def _replay(send: Send, answer: tuple[int, list[tuple[bytes, bytes]], bytes]) -> None:
    status, headers, content = answer
    kept = [(k, v) for k, v in headers if k.lower() != b"content-length"]
    kept.append((b"content-length", str(len(content)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": kept})
    await send({"type": "http.response.body", "body": content, "more_body": False})


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
