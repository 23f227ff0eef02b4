"""Scripted fakes for unit tests of the call controller (engine/calls.py) on trio's MockClock.

* ``FakeLeg``: a callee that follows a script of ``(seconds after start, LegEvent)`` steps and
  records what the controller did to it (start time and offer, cancel/bye/re-INVITE times).
  It behaves like ``engine.sipleg.SipLeg``: ``cancel()`` before the answer ends the INVITE with
  487; ``cancel()`` after the answer is ACK + BYE; nothing follows our ``bye()``.
* ``FakeLegProvider``: an ``engine.engine.LegProvider`` giving one ``FakeLeg`` per scripted
  device of a party number (several scripts: several registered devices).
* ``FakeMedia``: a ``CallMedia`` that records bridge/tone/hold/recording calls with their times.
* ``FakeInbound``: an ``InboundSource`` (the caller's INVITE) recording progress/accept/bye.
* ``open_harness``: an engine wired to those fakes, a wall clock that follows trio's clock and
  an event log per call.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import trio

from engine.call_types import MediaSide
from engine.config_model import default_config
from engine.directory import Directory, Extension, demo_directory
from engine.engine import CallEvent, Engine, LegProvider, OriginateRequest, open_engine
from engine.legs import (
    FailedLeg,
    Leg,
    LegAnswered,
    LegEvent,
    LegFailed,
    LegHungUp,
    LegRinging,
)
from engine.model import Party, PhoneCall
from engine.store import Store, open_store

Script = Sequence[tuple[float, LegEvent]]

BASE = datetime(2026, 1, 1, tzinfo=UTC)

EXT_A = "0003*210"  # extension (fake SIP devices)
EXT_B = "0003*211"
EXT_C = "0003*212"
PUBLIC = "+4940123456"  # public number; the demo route charges 0.02 per started minute
PUBLIC_2 = "+4940999999"
SANDBOX = "0003*00"  # answers after 1 s (engine.sandbox)
SANDBOX_NEVER = "0003*08"


def at(seconds: float) -> datetime:
    """The wall-clock time ``seconds`` after the MockClock's start."""
    return BASE + timedelta(seconds=seconds)


class Clock:
    """Wall clock that follows trio's (mock) clock, so record times match waits."""

    def __call__(self) -> datetime:
        return at(trio.current_time())


class FakeLeg:
    """A scripted callee; every interaction is recorded with its trio time."""

    def __init__(self, label: str, script: Script = ()) -> None:
        self._label = label
        self._script: list[tuple[float, LegEvent]] = sorted(script, key=lambda step: step[0])
        self._pushed: deque[LegEvent] = deque()
        self._wake = trio.Event()
        self._pending_487 = False
        self.started_at: float | None = None
        self.offer: bytes | None = None
        self.cancels: list[float] = []
        self.byes: list[float] = []
        self.reinvites: list[tuple[float, bytes]] = []
        self.emitted: list[tuple[float, LegEvent]] = []
        self.answered = False
        self.finished = False
        self.acked_and_byed = False  # cancel() after the answer (RFC 3261 §15: ACK + BYE)
        self.reinvite_error: Exception | None = None  # raised by reinvite() (e.g. a 488)

    @property
    def label(self) -> str:
        return self._label

    def push(self, event: LegEvent) -> None:
        """Deliver ``event`` now (in addition to the script)."""
        self._pushed.append(event)
        self._wake.set()

    async def start(self, offer: bytes | None) -> None:
        self.started_at = trio.current_time()
        self.offer = offer

    async def next_event(self) -> LegEvent:
        while True:
            if self._pushed:
                return self._emit(self._pushed.popleft())
            if self._pending_487:
                self._pending_487 = False
                return self._emit(LegFailed(487, "Request Terminated"))
            wake = self._wake
            if self._script and not self.finished:
                assert self.started_at is not None
                due = self.started_at + self._script[0][0]
                if trio.current_time() >= due:
                    return self._emit(self._script.pop(0)[1])
                with trio.move_on_at(due):
                    await wake.wait()
            else:
                await wake.wait()
            if wake.is_set():
                self._wake = trio.Event()

    def _emit(self, event: LegEvent) -> LegEvent:
        self.emitted.append((trio.current_time(), event))
        if isinstance(event, LegAnswered):
            self.answered = True
        if isinstance(event, LegFailed | LegHungUp):
            self.finished = True
        return event

    async def cancel(self) -> None:
        self.cancels.append(trio.current_time())
        if self.finished:
            return
        if self.answered:
            self.acked_and_byed = True
        else:
            self._pending_487 = True
        self.finished = True
        self._script.clear()
        self._wake.set()

    async def bye(self) -> None:
        self.byes.append(trio.current_time())
        self.finished = True
        self._script.clear()
        self._wake.set()

    async def reinvite(self, sdp: bytes) -> bytes | None:
        self.reinvites.append((trio.current_time(), sdp))
        if self.reinvite_error is not None:
            raise self.reinvite_error
        return sdp


class BrokenLeg(FakeLeg):
    """A leg with a bug: ``start()`` raises; with ``broken_cleanup`` ``cancel``/``bye`` raise
    instead; with ``broken_after`` (seconds after start) ``next_event`` raises from then on."""

    def __init__(
        self,
        label: str,
        script: Script = (),
        *,
        broken_cleanup: bool = False,
        broken_after: float | None = None,
    ) -> None:
        super().__init__(label, script)
        self.broken_cleanup = broken_cleanup
        self.broken_after = broken_after
        self.broken_start = not broken_cleanup and broken_after is None

    async def start(self, offer: bytes | None) -> None:
        await super().start(offer)
        if self.broken_start:
            raise RuntimeError("leg bug in start")

    async def next_event(self) -> LegEvent:
        if self.broken_after is None:
            return await super().next_event()
        assert self.started_at is not None
        with trio.move_on_at(self.started_at + self.broken_after):
            return await super().next_event()
        raise RuntimeError("leg bug in next_event")

    async def cancel(self) -> None:
        await super().cancel()
        if self.broken_cleanup:
            raise RuntimeError("leg bug in cancel")

    async def bye(self) -> None:
        await super().bye()
        if self.broken_cleanup:
            raise RuntimeError("leg bug in bye")


class FakeLegProvider(LegProvider):
    """Fake legs for non-sandbox parties: ``scripts[number]`` has one script per device.

    A number without scripts fails at once with 404 (like an unknown route)."""

    def __init__(self, scripts: dict[str, list[Script]] | None = None) -> None:
        self.scripts: dict[str, list[Script]] = dict(scripts or {})
        self.legs: dict[str, list[FakeLeg]] = {}
        self.caller_ids: dict[str, str | None] = {}
        self.factories: dict[str, Callable[[str, Script], FakeLeg]] = {}  # number -> leg class

    def legs_for(self, call: PhoneCall, party: Party, caller_id: str | None) -> list[Leg]:
        self.caller_ids[party.number] = caller_id
        scripts = self.scripts.get(party.number)
        if scripts is None:
            return [FailedLeg(party.number, 404, "Not Found")]
        make = self.factories.get(party.number, FakeLeg)
        legs = [make(f"{party.number}#{i}", script) for i, script in enumerate(scripts)]
        self.legs.setdefault(party.number, []).extend(legs)
        return list(legs)

    def leg(self, number: str, device: int = 0) -> FakeLeg:
        return self.legs[number][device]


_SDP = (
    "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    "m=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na={direction}\r\n"
)


def party_sdp(port: int) -> bytes:
    """An SDP a phone could send (its answer or early media)."""
    return _SDP.format(port=port, direction="sendrecv").encode()


class FakeSide:
    """A relay side without sockets; its SDP names the side through its port."""

    _ports = {"a": 10000, "b": 20000, "c": 30000}

    def __init__(self, label: str, media: FakeMedia | None = None) -> None:
        self.label = label
        self.media = media
        self.remote: list[bytes | None] = []
        self._accepted: bytes | None = None

    def _sdp(self, direction: str = "sendrecv") -> bytes:
        port = self._ports.get(self.label, 40000)
        return _SDP.format(port=port, direction=direction).encode()

    async def offer(self, template: bytes | None, direction: str = "sendrecv") -> bytes:
        if self.media is not None and self.media.offer_error is not None:
            raise self.media.offer_error
        return self._sdp(direction)

    async def answer(self, offer: bytes) -> bytes:
        return self.reanswer(offer)

    async def apply_remote(self, sdp: bytes | None) -> None:
        self.remote.append(sdp)
        if sdp:
            self._accepted = sdp

    def reanswer(self, offer: bytes) -> bytes:
        if not offer.startswith(b"v=0"):
            raise ValueError("not SDP")  # as the real side raises on an offer it cannot answer
        self._accepted = offer
        return self._sdp()

    def reoffer(self) -> bytes:
        return self._sdp()

    @property
    def accepted(self) -> bytes | None:
        return self._accepted


@dataclass(frozen=True, slots=True)
class MediaCall:
    at: float
    name: str
    args: tuple[object, ...]


class FakeMedia:
    """Records what the controller asks of the relay; sides are named by label."""

    def __init__(self) -> None:
        self.calls: list[MediaCall] = []
        self.sides: list[FakeSide] = []
        self.closed = False
        self.recording = False
        self.recording_error: Exception | None = None  # raised by start_recording()
        self.hold_error: Exception | None = None  # raised by set_hold() (a relay bug)
        self.side_error: Exception | None = None  # raised by new_side() (no ports left)
        self.stop_error: Exception | None = None  # raised by stop_recording() (relay gone)
        self.mix_error: Exception | None = None  # raised by start_mix() (a codec it cannot mix)
        self.dtmf_sides: set[str] = {"a", "b"}  # labels of sides that took telephone-event
        self.dtmf_listener: Callable[[MediaSide, str], None] | None = None
        self.offer_error: Exception | None = None  # raised by every side's offer() (rtpengine down)
        self.lost_cause = ""
        self._lost = trio.Event()

    def _record(self, name: str, *args: object) -> None:
        self.calls.append(MediaCall(trio.current_time(), name, args))

    def named(self, name: str) -> list[MediaCall]:
        return [c for c in self.calls if c.name == name]

    def new_side(self, label: str, video: bool) -> MediaSide:
        if self.side_error is not None:
            raise self.side_error
        side = FakeSide(label, self)
        self.sides.append(side)
        self._record("new_side", label)
        return side

    async def bridge(self, a: MediaSide, b: MediaSide) -> None:
        self._record("bridge", _label(a), _label(b))

    async def play_tone(self, side: MediaSide, frequency: float) -> None:
        self._record("play_tone", _label(side), frequency)

    async def play_music(self, side: MediaSide) -> None:
        self._record("play_music", _label(side))

    async def stop_tone(self, side: MediaSide) -> None:
        self._record("stop_tone", _label(side))

    async def start_sandbox(self, side: MediaSide, frequency: float) -> None:
        self._record("start_sandbox", _label(side), frequency)

    async def stop_sandbox(self, side: MediaSide) -> None:
        self._record("stop_sandbox", _label(side))

    async def set_hold(self, side: MediaSide, held: bool) -> None:
        self._record("set_hold", _label(side), held)
        if self.hold_error is not None:
            raise self.hold_error

    def send_dtmf(self, side: MediaSide, digit: str, duration_ms: int) -> bool:
        """Played only to a side whose party agreed to telephone-event (``dtmf_sides``)."""
        played = _label(side) in self.dtmf_sides
        self._record("send_dtmf", _label(side), digit, duration_ms, played)
        return played

    def on_dtmf(self, deliver: Callable[[MediaSide, str], None]) -> None:
        self.dtmf_listener = deliver

    def start_mix(self, sides: Sequence[MediaSide], hears: Sequence[tuple[int, int]]) -> None:
        if self.mix_error is not None:
            raise self.mix_error
        self._record("start_mix", tuple(_label(s) for s in sides), sorted(hears))

    def stop_mix(self, side: MediaSide) -> None:
        self._record("stop_mix", _label(side))

    async def start_recording(self, a: MediaSide, b: MediaSide) -> str:
        self._record("start_recording", _label(a), _label(b))
        if self.recording_error is not None:
            raise self.recording_error
        self.recording = True
        return "recordings/test.wav"

    async def stop_recording(self) -> None:
        self._stop_recording()

    def _stop_recording(self) -> None:
        self.recording = False
        self._record("stop_recording")
        if self.stop_error is not None:
            raise self.stop_error

    async def finish(self, sides: Sequence[MediaSide]) -> list[dict[str, dict[str, int]]]:
        try:
            if self.recording:
                self._stop_recording()
            return self.stats(sides) if sides else []
        finally:
            self.close()

    def stats(self, sides: Sequence[MediaSide]) -> list[dict[str, dict[str, int]]]:
        self._record("stats", *(_label(side) for side in sides))
        return [{"audio": {"packets_in": 50, "packets_out": 50}} for _side in sides]

    def close(self) -> None:
        self._record("close")
        self.closed = True

    async def watch(self) -> str:
        """Returns (ending the call with the cause) once ``lose`` is called."""
        await self._lost.wait()
        return self.lost_cause

    def lose(self, cause: str) -> None:
        self.lost_cause = cause
        self._lost.set()


def _label(side: MediaSide) -> str:
    return side.label if isinstance(side, FakeSide) else repr(side)


class FakeMediaFactory:
    """``media=`` for ``open_engine``: one ``FakeMedia`` per call, kept by call id."""

    def __init__(self) -> None:
        self.by_call: dict[str, FakeMedia] = {}
        self.side_error: Exception | None = None  # every new call's relay is out of ports
        self.offer_error: Exception | None = None  # every new call's backend does not answer

    def __call__(self, call: PhoneCall) -> FakeMedia:
        media = FakeMedia()
        media.side_error = self.side_error
        media.offer_error = self.offer_error
        self.by_call[call.id] = media
        return media


class FakeInbound:
    """The caller's INVITE as the controller drives it (progress, accept, reject via bye)."""

    def __init__(self, party_index: int, label: str, offer: bytes | None) -> None:
        self._party_index = party_index
        self._label = label
        self.offer = offer
        self.final_status = 480
        self.progressed: list[tuple[float, int, bytes | None]] = []
        self.accepted: list[tuple[float, bytes | None]] = []
        self.byes: list[tuple[float, int | None]] = []  # (when, reject status or None after 200)
        self.cancels: list[float] = []
        self.reinvites: list[tuple[float, bytes]] = []
        self.ack_answer: bytes | None = None  # late offer: the answer the caller's ACK carries
        self._events: deque[LegEvent] = deque()
        self._wake = trio.Event()

    @property
    def party_index(self) -> int:
        return self._party_index

    @property
    def label(self) -> str:
        return self._label

    def push(self, event: LegEvent) -> None:
        self._events.append(event)
        self._wake.set()

    async def start(self, offer: bytes | None) -> None:
        return None

    async def next_event(self) -> LegEvent:
        while not self._events:
            await self._wake.wait()
            self._wake = trio.Event()
        return self._events.popleft()

    async def cancel(self) -> None:
        self.cancels.append(trio.current_time())

    async def bye(self) -> None:
        self.byes.append((trio.current_time(), None if self.accepted else self.final_status))

    async def reinvite(self, sdp: bytes) -> bytes | None:
        self.reinvites.append((trio.current_time(), sdp))
        return sdp

    async def progress(self, status: int, sdp: bytes | None) -> None:
        self.progressed.append((trio.current_time(), status, sdp))

    async def accept(self, sdp: bytes | None) -> bytes | None:
        self.accepted.append((trio.current_time(), sdp))
        return self.ack_answer if self.offer is None else None


@dataclass
class Harness:
    """An engine on fakes, with every published event kept as ``(trio time, CallEvent)``."""

    engine: Engine
    store: Store
    legs: FakeLegProvider
    media_factory: FakeMediaFactory
    events: list[tuple[float, CallEvent]] = field(default_factory=list)
    _ended: dict[str, trio.Event] = field(default_factory=dict)

    def _on_event(self, call: PhoneCall, event: CallEvent) -> None:
        self.events.append((trio.current_time(), event))
        if event.final:
            self._ended.setdefault(call.id, trio.Event()).set()

    def media(self, call_id: str) -> FakeMedia:
        return self.media_factory.by_call[call_id]

    def names(self, call_id: str) -> list[str]:
        return [e.event for _, e in self.events if e.call_id == call_id]

    def when(self, call_id: str, name: str) -> float:
        """The trio time of the first ``name`` event of the call."""
        return next(t for t, e in self.events if e.call_id == call_id and e.event == name)

    async def originate(self, sources: list[str], destinations: list[str], **kw: object) -> str:
        call, created = await self.engine.originate(request(sources, destinations, **kw))
        assert created
        return call.id

    async def wait_ended(self, call_id: str) -> PhoneCall:
        await self._ended.setdefault(call_id, trio.Event()).wait()
        call = self.engine.get_call(call_id)
        assert call is not None
        return call

    def call(self, call_id: str) -> PhoneCall:
        call = self.engine.get_call(call_id)
        assert call is not None
        return call


def charged_extension() -> Extension:
    ext = demo_directory().extension(EXT_A)
    assert ext is not None
    return ext


def request(sources: list[str], destinations: list[str], **kw: object) -> OriginateRequest:
    return OriginateRequest(
        user_id=12,
        organization_id=3,
        extension=charged_extension(),
        sources=sources,
        destinations=destinations,
        **kw,  # type: ignore[arg-type]
    )


@asynccontextmanager
async def open_harness(
    scripts: dict[str, list[Script]] | None = None, directory: Directory | None = None
) -> AsyncIterator[Harness]:
    store = open_store("sqlite:///:memory:")
    legs = FakeLegProvider(scripts)
    media = FakeMediaFactory()
    async with open_engine(
        default_config(),
        directory or demo_directory(),
        store,
        media=media,
        legs=legs,
        wall_clock=Clock(),
        rng=random.Random(1),
    ) as engine:
        harness = Harness(engine, store, legs, media)
        engine.listeners.append(harness._on_event)
        yield harness


def answers(
    after: float, *, hangup: float | None = None, sdp: bytes | None = None, ring: float = 0.0
) -> Script:
    """A device that rings at ``ring`` s, answers at ``after`` s and, with ``hangup``, sends
    BYE at that many seconds after its start."""
    script: list[tuple[float, LegEvent]] = [
        (ring, LegRinging(180)),
        (after, LegAnswered(sdp or party_sdp(5004))),
    ]
    if hangup is not None:
        script.append((hangup, LegHungUp("BYE")))
    return script


def rings() -> Script:
    """A device that rings and never answers."""
    return [(0.0, LegRinging(180))]


def fails(after: float, status: int, reason: str = "Failed") -> Script:
    return [(0.0, LegRinging(180)), (after, LegFailed(status, reason))]
