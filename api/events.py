"""Call progress pushed to clients: Server-Sent Events and ``statusCallback`` POSTs.

Both follow the engine's event stream for one call (``engine.subscribe(call_id)``, whose events
carry a per-call ``seq``) and end after the call's one final event. If the stream closes, or the
call is found ended while the stream is quiet, without a final event, a final ``ended`` event is
made from the call record, so every follower sees exactly one final event.

- ``GET /uapi/phoneCalls/{userId}/{extension}/{phoneCallId}/events`` answers
  ``text/event-stream``: ``id: SEQ``, ``event: NAME``, ``data: JSON`` per state change (the
  message is :class:`api.sse.CallEventMessage`), a ``: keep-alive`` comment every 15 s of
  silence. ``Last-Event-ID`` (or query ``lastEventId``) skips the events the client already
  has, as far as the engine replays its history.
- ``statusCallback``: ``CallbackDispatcher`` POSTs the same JSON to the URL, in order, one call
  at a time per call. A delivery is retried on connection errors, timeouts, 408, 429 and 5xx with
  exponential backoff (1 s doubling, at most 30 s apart, 6 attempts), then given up and logged;
  other 4xx answers are not retried. Every POST carries ``X-Event-Id: CALLID:SEQ`` so a receiver
  can drop duplicates. Every connection passes the egress policy (``api.egress``): the host is
  checked and resolved, and the connection goes to one of the vetted addresses; a refused
  destination (say, a name that now resolves to a metadata address) is logged at WARNING and
  not retried. A ``client`` passed to the dispatcher is used as is: give it
  ``transport=EgressTransport(policy)`` to keep the policy. The dispatcher owns its nursery:
  run it with ``nursery.start(d.run)`` or ``async with open_callback_dispatcher(engine) as
  d``; on shutdown, after ``engine.drain``, ``await d.drain(seconds)`` lets the final events
  go out before the dispatcher is cancelled.
  After a crash, ``b2bua serve`` watches each call ``Engine.recover`` ended with ``after_seq``
  one below that call's final event, so its receiver gets that one event and nothing twice.
"""

from __future__ import annotations

import logging
import math
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from enum import Enum
from typing import Any

import httpx
import trio
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from api import resources
from api.context import context
from api.egress import CallbackPolicy, EgressRefused, EgressTransport
from api.oauth import authenticate
from api.render import iso
from api.resources import dump_event
from api.scope import path_extension
from api.sse import CallEventMessage
from engine.engine import CallEvent
from engine.logctx import CALL_ID
from engine.model import PhoneCall
from engine.ports import EngineApi

logger = logging.getLogger(__name__)

KEEPALIVE_SECONDS = 15.0
Emit = Callable[[dict[str, Any]], Awaitable[None]]


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    return str(value)


def event_payload(event: CallEvent) -> dict[str, Any]:
    """The JSON form of an engine CallEvent (SSE ``data`` and statusCallback body)."""
    return dump_event(
        resources.CallEvent(
            phoneCallId=str(event.call_id),
            seq=int(event.seq),
            event=str(_jsonable(event.event)),
            state=_jsonable(event.state),
            at=iso(event.at),
            final=bool(event.final),
            data=_jsonable(dict(event.data or {})),
        )
    )


def final_payload(call: PhoneCall, seq: int) -> dict[str, Any]:
    """A final ``ended`` event made from an ended call's record."""
    data = {
        "disposition": None if call.disposition is None else int(call.disposition),
        "hangupCause": call.hangup_cause,
        "synthesized": True,
    }
    return dump_event(
        resources.CallEvent(
            phoneCallId=str(call.id),
            seq=seq,
            event="ended",
            state=_jsonable(call.state),
            at=iso(call.ended),
            final=True,
            data={k: v for k, v in data.items() if v is not None},
        )
    )


async def follow_call(
    engine: EngineApi,
    call_id: str,
    emit: Emit,
    *,
    after_seq: int | None = None,
    idle: float = KEEPALIVE_SECONDS,
    on_idle: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """Emit every event of a call after ``after_seq``, ending with exactly one final event."""
    last_seq = after_seq or 0
    final_seen = False
    async with engine.subscribe(call_id) as channel:
        while True:
            event: CallEvent | None = None
            closed = False
            with trio.move_on_after(idle):
                try:
                    event = await channel.receive()
                except (trio.EndOfChannel, trio.ClosedResourceError):
                    closed = True
            if closed:
                break
            if event is None:
                call = await engine.aget_call(call_id)
                if call is None or call.ended is not None:
                    break
                if on_idle is not None:
                    await on_idle()
                continue
            if after_seq is not None and event.seq <= after_seq:
                if not event.final:
                    continue
                if event.seq == after_seq:
                    return  # the client already has the final event
                # A final event numbered below what the client has seen: one made after a
                # crash for a call whose later events were not yet on disk (only calls with a
                # statusCallback are committed at every event). It is still the call's end:
                # send it, numbered past the client's.
                payload = event_payload(event)
                payload["seq"] = after_seq + 1
                await emit(payload)
                return
            last_seq = max(last_seq, int(event.seq))
            await emit(event_payload(event))
            if event.final:
                final_seen = True
                break
    if not final_seen:
        call = await engine.aget_call(call_id)
        if call is not None and call.ended is not None:
            await emit(final_payload(call, max(last_seq + 1, call.events)))


class EventStreamResponse(Response):
    """``text/event-stream`` of one call; ends after the final event or on disconnect."""

    media_type = "text/event-stream"

    def __init__(self, engine: EngineApi, call_id: str, after_seq: int | None) -> None:
        super().__init__(
            status_code=200,
            media_type=self.media_type,
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
        # a stream has no length: drop the Content-Length: 0 that Response adds for no body
        self.raw_headers = [(k, v) for k, v in self.raw_headers if k != b"content-length"]
        self.engine = engine
        self.call_id = call_id
        self.after_seq = after_seq

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})

        async def emit(payload: dict[str, Any]) -> None:
            await send(
                {
                    "type": "http.response.body",
                    "body": CallEventMessage.frame(payload),
                    "more_body": True,
                }
            )

        async def keep_alive() -> None:
            await send(
                {"type": "http.response.body", "body": b": keep-alive\n\n", "more_body": True}
            )

        async def watch_disconnect(cancel_scope: trio.CancelScope) -> None:
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    cancel_scope.cancel()
                    return

        disconnected = False
        async with trio.open_nursery() as nursery:
            nursery.start_soon(watch_disconnect, nursery.cancel_scope)
            await follow_call(
                self.engine, self.call_id, emit, after_seq=self.after_seq, on_idle=keep_alive
            )
            disconnected = nursery.cancel_scope.cancel_called
            nursery.cancel_scope.cancel()
        if not disconnected:
            await send({"type": "http.response.body", "body": b"", "more_body": False})


def _last_event_id(request: Request) -> int | None:
    text = request.headers.get("last-event-id") or request.query_params.get("lastEventId")
    if text is None:
        return None
    text = text.strip()
    if not (text.isascii() and text.isdigit()) or len(text) > 12:
        return None  # an id we never sent: start from the beginning
    return int(text)


async def call_events(request: Request) -> Response:
    """GET /uapi/phoneCalls/{userId}/{extension}/{phoneCallId}/events"""
    from api.phonecalls import owned_call

    ctx = context(request)
    principal = await authenticate(request)
    user, extension = path_extension(
        principal, ctx.directory, request.path_params["userId"], request.path_params["extension"]
    )
    call = await owned_call(ctx, user, extension, request.path_params["phoneCallId"])
    if request.method == "HEAD":  # no stream for HEAD: headers only
        return Response(status_code=200, media_type=EventStreamResponse.media_type)
    return EventStreamResponse(ctx.engine, call.id, _last_event_id(request))


class CallbackDispatcher:
    """Delivers each watched call's events to its ``statusCallback`` URL (see module doc)."""

    def __init__(
        self,
        engine: EngineApi,
        *,
        client: httpx.AsyncClient | None = None,
        max_attempts: int = 6,
        backoff: float = 1.0,
        max_backoff: float = 30.0,
        timeout: float = 10.0,
        policy: CallbackPolicy | None = None,
    ) -> None:
        self.engine = engine
        # where POSTs may go: by default the engine's [api] callback_allow
        self.policy = policy or CallbackPolicy.of_config(engine.config.api)
        self._client = client
        self.max_attempts = max_attempts
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.timeout = timeout
        self._nursery: trio.Nursery | None = None
        self._active_client: httpx.AsyncClient | None = None
        self.delivered = 0
        self.failed = 0
        self.refused = 0  # POSTs the egress policy stopped (counted in ``failed`` too)
        self.active = 0  # calls whose deliveries are still running
        self._idle = trio.Event()
        self._idle.set()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Serve until cancelled; ``task_status.started()`` once ``watch`` may be called."""
        client = self._client or httpx.AsyncClient(
            transport=EgressTransport(self.policy),
            timeout=self.timeout,
            headers={"User-Agent": "trio-b2bua status callback"},
        )
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                self._active_client = client
                task_status.started()
                await trio.sleep_forever()
        finally:
            self._nursery = None
            self._active_client = None
            if self._client is None:
                with trio.CancelScope(shield=True):
                    await client.aclose()

    def watch(self, call_id: str, url: str, *, after_seq: int | None = None) -> None:
        """Start delivering the events of ``call_id`` to ``url`` (those after ``after_seq``:
        after a restart, only the final event a recovered call was given)."""
        if self._nursery is None or self._active_client is None:
            raise RuntimeError("CallbackDispatcher is not running")
        if self.active == 0:
            self._idle = trio.Event()
        self.active += 1
        self._nursery.start_soon(self._deliver_call, self._active_client, call_id, url, after_seq)

    async def drain(self, timeout: float) -> bool:
        """Wait up to ``timeout`` for every watched call's deliveries to finish (call it after
        the engine has drained, so the final events go out); True when none is left."""
        with trio.move_on_after(timeout):
            await self._idle.wait()
        return self.active == 0

    async def _deliver_call(
        self, client: httpx.AsyncClient, call_id: str, url: str, after_seq: int | None
    ) -> None:
        async def emit(payload: dict[str, Any]) -> None:
            await self.post(client, url, payload)

        CALL_ID.set(call_id)  # this task's lines (retries, refusals) name the call
        try:
            await follow_call(self.engine, call_id, emit, after_seq=after_seq, idle=60.0)
        except Exception:
            logger.exception("call %s: status callbacks to %s stopped", call_id, url)
        finally:
            self.active -= 1
            if self.active == 0:
                self._idle.set()

    async def post(self, client: httpx.AsyncClient, url: str, payload: dict[str, Any]) -> bool:
        """POST one event, retrying as the module doc says; True when a 2xx came back."""
        event_id = f"{payload['phoneCallId']}:{payload['seq']}"
        problem = "no attempt made"
        for attempt in range(1, self.max_attempts + 1):
            headers = {"X-Event-Id": event_id, "X-Attempt": str(attempt)}
            try:
                response = await client.post(
                    url, json=payload, headers=headers, timeout=self.timeout
                )
            except EgressRefused as exc:
                logger.warning("callback %s to %s refused: %s", event_id, url, exc)
                self.refused += 1
                self.failed += 1
                return False
            except (httpx.HTTPError, OSError) as exc:
                problem = f"{type(exc).__name__}: {exc}"
            else:
                if 200 <= response.status_code < 300:
                    self.delivered += 1
                    return True
                problem = f"HTTP {response.status_code}"
                if response.status_code < 500 and response.status_code not in (408, 429):
                    break
            if attempt < self.max_attempts:
                delay = min(self.backoff * 2 ** (attempt - 1), self.max_backoff)
                logger.info("callback %s to %s: %s; retry in %.1fs", event_id, url, problem, delay)
                await trio.sleep(delay)
        logger.warning("callback %s to %s given up: %s", event_id, url, problem)
        self.failed += 1
        return False


@asynccontextmanager
async def open_callback_dispatcher(
    engine: EngineApi, **options: Any
) -> AsyncIterator[CallbackDispatcher]:
    """A running CallbackDispatcher for the body of the ``async with``."""
    dispatcher = CallbackDispatcher(engine, **options)
    async with trio.open_nursery() as nursery:
        await nursery.start(dispatcher.run)
        try:
            yield dispatcher
        finally:
            nursery.cancel_scope.cancel()
