"""What the call controller (``engine.calls.SimpleCall``) works with, and the small types it passes.

The protocols of its collaborators (the relay as a call sees it, the leg factory, the observer,
an inbound caller), the control requests the engine sends a call, the exceptions that end a
call with a disposition, and the mapping between SIP statuses and UAPI dispositions.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from engine.legs import Leg, LegEvent
from engine.model import Disposition, Party, PhoneCall

RINGBACK_HZ = 425.0  # ETSI ringback frequency (played continuously; see docs)
HOLD_MUSIC_HZ = 350.0  # the built-in music on hold: a steady low tone (no file configured)


# --- what the controller needs from its collaborators -------------------------------------


class MediaUnavailable(Exception):
    """The media backend could not do what a call needed (rtpengine not answering): the call
    ends with this message as its cause, which names the backend."""


class MediaSide(Protocol):
    """One anchored side of the media backend (where one party's media goes).

    The async methods may need a round trip to the backend (rtpengine's ng protocol) and raise
    ``MediaUnavailable`` when it fails; ``reanswer``/``reoffer`` answer a party's own
    re-INVITE at once, from what the side already has (a SIP session asks synchronously)."""

    async def offer(self, template: bytes | None, direction: str = "sendrecv") -> bytes:
        """An SDP offer to this party; mirror the codecs of ``template`` when given."""
        ...

    async def answer(self, offer: bytes) -> bytes:
        """Our SDP answer to a party's offer (inbound calls)."""
        ...

    async def apply_remote(self, sdp: bytes | None) -> None:
        """The party's SDP (answer or early media): where to send until latching."""
        ...

    def reanswer(self, offer: bytes) -> bytes: ...

    def reoffer(self) -> bytes: ...

    @property
    def accepted(self) -> bytes | None:
        """The SDP this party accepted (its answer), used to build the other side's offer."""
        ...


class CallMedia(Protocol):
    """The media backend as one call sees it (the built-in relay, or rtpengine)."""

    def new_side(self, label: str, video: bool) -> MediaSide: ...

    async def bridge(self, a: MediaSide, b: MediaSide) -> None: ...

    async def play_tone(self, side: MediaSide, frequency: float) -> None: ...

    async def stop_tone(self, side: MediaSide) -> None: ...

    async def play_music(self, side: MediaSide) -> None:
        """Music on hold to the party of ``side`` (the configured file, else a tone), looped
        until ``stop_tone``."""
        ...

    async def start_sandbox(self, side: MediaSide, frequency: float) -> None:
        """The party of ``side`` is a sandbox number, played by the backend: it sends a tone
        to whoever it is bridged with."""
        ...

    async def stop_sandbox(self, side: MediaSide) -> None: ...

    def send_dtmf(self, side: MediaSide, digit: str, duration_ms: int) -> bool:
        """Play ``digit`` to ``side``'s party as RFC 4733 telephone-events; False (nothing
        sent) when that party did not agree to telephone-event."""
        ...

    def on_dtmf(self, deliver: Callable[[MediaSide, str], None]) -> None:
        """Call ``deliver(side, digit)`` (in the call's trio thread) for each digit a party
        sends as RFC 4733 telephone-events (the relay forwards those packets itself)."""
        ...

    async def set_hold(self, side: MediaSide, held: bool) -> None: ...

    def start_mix(self, sides: Sequence[MediaSide], hears: Sequence[tuple[int, int]]) -> None:
        """Mix the audio of ``sides`` (G.711 only: else ValueError or MediaError, nothing
        changed); ``hears`` holds (listener, speaker) index pairs into ``sides``."""
        ...

    def stop_mix(self, side: MediaSide) -> None:
        """End the mix ``side`` is in: bridged sides carry each other's media again."""
        ...

    async def start_recording(self, a: MediaSide, b: MediaSide) -> str:
        """Record a (left channel) and b (right); the file's path."""
        ...

    async def stop_recording(self) -> None:
        """Finish the recording (the file is complete when this returns)."""

    def stats(self, sides: Sequence[MediaSide]) -> list[dict[str, dict[str, int]]]:
        """The counters of each side, in order, read at once (empty where that needs a
        round trip the caller cannot wait for)."""
        ...

    async def finish(self, sides: Sequence[MediaSide]) -> list[dict[str, dict[str, int]]]:
        """The call is over: finish any recording, read the counters of ``sides`` (as
        ``stats``) and release everything, without holding up other calls meanwhile."""
        ...

    def close(self) -> None:
        """Release everything now (the engine stops): finishes a recording too."""

    async def watch(self) -> str:
        """Return (with the cause) when this call's media is lost; never for the relay,
        whose death stops the whole server."""
        ...


class LegFactory(Protocol):
    """Turns one party into the legs that ring it (one per device, gateway or sandbox)."""

    def __call__(self, call: PhoneCall, party: Party, caller_id: str | None) -> list[Leg]: ...


class CallObserver(Protocol):
    """Where the controller reports: the engine stores the record and publishes events."""

    def changed(self, call: PhoneCall, event: str, data: dict[str, object]) -> None: ...

    def shortage(self, call: PhoneCall, what: str) -> None:
        """The server ran short of something a call needed (media ports): for the log."""


# --- control requests (engine -> controller) ----------------------------------------------


@dataclass(frozen=True, slots=True)
class Hangup:
    cause: str


@dataclass(frozen=True, slots=True)
class Hold:
    party_index: int
    held: bool


@dataclass(frozen=True, slots=True)
class Transfer:
    party_index: int  # the party that stays (transferNumber)
    target: Party  # the new party to call (sendCallTo)
    wait_for_pickup: float


@dataclass(frozen=True, slots=True)
class Recording:
    start: bool


@dataclass(frozen=True, slots=True)
class Supervise:
    """Monitor, Whisper or BargeIn: ring ``target`` and mix it into the bridged call."""

    mode: str  # "Monitor" | "Whisper" | "BargeIn"
    target: Party  # the supervisor (sendCallTo)
    whispered_to: int | None  # Whisper: the party index that hears the supervisor
    private: bool  # Whisper with privateW: the supervisor hears nobody
    caller_id: str | None  # shown to the supervisor
    wait_for_pickup: float


@dataclass(frozen=True, slots=True)
class Park:
    parker_index: int  # the party that parks (released with BYE)
    parked_index: int  # the party parked (hears music on hold)
    max_in_parking: float  # seconds until the parker is rung back
    position: int  # the parking slot (reserved by the engine)
    ring_back: Party  # the parker's extension, as a new party to ring at maxInParking


@dataclass(frozen=True, slots=True)
class UnPark:
    target: Party  # sendCallTo: takes the parked party
    caller_id: str | None
    wait_for_pickup: float


@dataclass(frozen=True, slots=True)
class PickUp:
    target: Party  # sendCallTo: answers instead of the ringing destination
    caller_id: str | None
    wait_for_pickup: float


@dataclass(frozen=True, slots=True)
class DtmfHeard:
    """Not a request: the relay saw a party's RFC 4733 digit end (``CallMedia.on_dtmf``); it
    joins the call's inbox with the requests so that one task handles everything."""

    side: MediaSide
    digit: str


Control = Hangup | Hold | Transfer | Recording | Supervise | Park | UnPark | PickUp | DtmfHeard


@dataclass(frozen=True, slots=True)
class LegMessage:
    """One leg's event, as its pump task forwards it to the call."""

    leg: Leg
    event: LegEvent


class CallEnded(Exception):
    """Raised inside the controller to unwind to the end with a disposition."""

    def __init__(self, disposition: Disposition, cause: str) -> None:
        super().__init__(cause)
        self.disposition = disposition
        self.cause = cause


class ForkFailed(CallEnded):
    """Nobody of a fork answered (waitForPickup passed, or every leg failed). Only this ends a
    transfer attempt quietly; any other ``CallEnded`` (hang-up, BYE) ends the whole call."""


def disposition_for_status(status: int) -> Disposition:
    """Map a leg's final SIP status to a UAPI disposition."""
    if status in (486, 600, 603):
        return Disposition.BUSY
    if status in (408, 480, 487):
        return Disposition.NO_ANSWER
    if status in (401, 403, 407):
        return Disposition.NOT_ALLOWED
    return Disposition.FAILED


def status_for_disposition(disposition: Disposition) -> int:
    """The SIP status an inbound caller gets when its call cannot be connected."""
    return {
        Disposition.BUSY: 486,
        Disposition.NO_ANSWER: 480,
        Disposition.NOT_ALLOWED: 403,
    }.get(disposition, 503)


class InboundSource(Protocol):
    """The caller's INVITE (server side), as the controller drives it."""

    final_status: int
    offer: bytes | None

    @property
    def party_index(self) -> int: ...

    @property
    def label(self) -> str: ...

    async def start(self, offer: bytes | None) -> None: ...

    async def next_event(self) -> LegEvent: ...

    async def cancel(self) -> None: ...

    async def bye(self) -> None: ...

    async def reinvite(self, sdp: bytes) -> bytes | None: ...

    async def progress(self, status: int, sdp: bytes | None) -> None: ...

    async def accept(self, sdp: bytes | None) -> bytes | None:
        """200 OK with ``sdp``. When the INVITE had no offer (late offer, RFC 3261 §13.2.1)
        ``sdp`` is our offer and this returns the answer the caller's ACK carried (None if
        none came)."""
        ...


def bind_media(leg: object, side: MediaSide) -> None:
    """Let a leg answer the party's own re-offers (re-INVITE/UPDATE: hold from the phone, a new
    address) from its relay side, so the relay follows and the answer mirrors the offer."""
    bind = getattr(leg, "bind_media", None)
    if bind is not None:
        bind(side)


@dataclass(slots=True)
class Connected:
    """A party that answered: its leg and its relay side."""

    leg: Leg
    party: Party
    side: MediaSide


@dataclass(slots=True)
class CallContext:
    """Everything a call needs from the engine, injected (tests pass fakes)."""

    legs: LegFactory
    media: Callable[[PhoneCall], CallMedia]
    observer: CallObserver
    wall_clock: Callable[[], datetime]
    rate_for: Callable[[Party], float] = field(default=lambda party: 0.0)
