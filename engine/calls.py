"""The Simple PhoneCall controller: RFC 3725 third-party call control with anchored media.

Theory of operation (one task per call, one nursery per call with one pump task per leg):

1. The record was stored by the engine before the API answered 202. ``SimpleCall.run`` INVITEs
   every source target at once (``_fork``): each registered device of an extension, the gateway
   of a public number, or a sandbox number. Every INVITE carries the same offer, pointing at
   relay side A. The first answer wins; every other fork gets CANCEL (the leg defers it until a
   provisional response arrived, RFC 3261 §9.1) and a late 2xx from a loser gets ACK + BYE.
   waitForPickup is a deadline on this phase; when it passes, every fork is cancelled and the
   call ends as NO ANSWER.
2. The destination(s) are INVITEd the same way, with an offer (relay side B) carrying what the
   source accepted. The source hears a ringback tone from the relay meanwhile, or the
   destination's early media once a 183 with SDP arrives. waitForPickup applies again.
3. On answer the relay bridges A and B. callDuration is a deadline counted from the source's
   answer (sandbox calls at most 3 minutes); reaching it ends both legs with BYE.
4. Any BYE ends the call: the other leg gets BYE, the record gets its disposition, hangup cause,
   media counters and charge, and exactly one final ``ended`` event is published. Each public
   party pays per started minute of the bridged time it was in the call.
5. A transfer rings the new party like a fork (side C). Only that fork's own failure
   (``ForkFailed``) lets the original call go on; a hang-up or a BYE of the party that stays
   ends the call meanwhile, while the party being transferred away may leave early.

All legs report through one memory channel (``_inbox``), together with control requests from
the engine (hang up, hold, transfer): one consumer, no callbacks, no shared mutable state
between tasks. Cleanup that must send (CANCEL, BYE) runs shielded with its own short deadline.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

import trio

from engine.legs import Leg, LegAnswered, LegEvent, LegFailed, LegHungUp, LegRinging
from engine.model import CallState, Disposition, Party, PartyStatus, PhoneCall
from engine.sandbox import SANDBOX_MAX_DURATION, SANDBOX_TONE_HZ
from sip import sdp
from sip.errors import RemoteProtocolError

logger = logging.getLogger(__name__)

RINGBACK_HZ = 425.0  # ETSI ringback frequency (played continuously; see docs)
CLEANUP_SECONDS = 5.0  # deadline for shielded CANCEL/BYE on the way out
HOLD_ANSWER_SECONDS = 8.0  # how long a hold/resume re-INVITE may take before we give up


# --- what the controller needs from its collaborators -------------------------------------


class MediaSide(Protocol):
    """One anchored side of the relay (the ports one party talks to)."""

    def offer(self, template: bytes | None, direction: str = "sendrecv") -> bytes:
        """An SDP offer with our address; mirror the codecs of ``template`` when given."""
        ...

    def answer(self, offer: bytes) -> bytes:
        """Our SDP answer to a party's offer (inbound calls)."""
        ...

    def apply_remote(self, sdp: bytes | None) -> None:
        """The party's SDP (answer or early media): where to send until latching."""
        ...

    @property
    def accepted(self) -> bytes | None:
        """The SDP this party accepted (its answer), used to build the other side's offer."""
        ...


class CallMedia(Protocol):
    """The relay as one call sees it."""

    def new_side(self, label: str, video: bool) -> MediaSide: ...

    def bridge(self, a: MediaSide, b: MediaSide) -> None: ...

    def play_tone(self, side: MediaSide, frequency: float) -> None: ...

    def stop_tone(self, side: MediaSide) -> None: ...

    def start_sandbox(self, side: MediaSide, frequency: float) -> None:
        """The party of ``side`` is a sandbox number, played by the relay: it sends a tone
        to whoever it is bridged with, and its counters show what it sent and received."""
        ...

    def stop_sandbox(self, side: MediaSide) -> None: ...

    def set_hold(self, side: MediaSide, held: bool) -> None: ...

    async def start_recording(self, a: MediaSide, b: MediaSide) -> str:
        """Record a (left channel) and b (right); the file's path."""
        ...

    async def stop_recording(self) -> None:
        """Finish the recording (the file is complete when this returns)."""

    def stats(self, sides: Sequence[MediaSide]) -> list[dict[str, dict[str, int]]]:
        """The counters of each side, in order (one relay round trip for all of them)."""
        ...

    async def finish(self, sides: Sequence[MediaSide]) -> list[dict[str, dict[str, int]]]:
        """The call is over: finish any recording, read the counters of ``sides`` (as
        ``stats``) and release everything, without holding up other calls meanwhile."""
        ...

    def close(self) -> None:
        """Release everything now (the engine stops): finishes a recording too."""


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


Control = Hangup | Hold | Transfer | Recording


@dataclass(frozen=True, slots=True)
class _LegMessage:
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


def _record_counters(
    due: list[tuple[Party, MediaSide]], counters: list[dict[str, dict[str, int]]]
) -> None:
    """Each leaving party's media counters into its record, in order."""
    for (party, _side), kinds in zip(due, counters, strict=True):
        party.media = kinds


def _bind_media(leg: object, side: MediaSide) -> None:
    """Let a leg answer the party's own re-offers (re-INVITE/UPDATE: hold from the phone, a new
    address) from its relay side, so the relay follows and the answer mirrors the offer."""
    bind = getattr(leg, "bind_media", None)
    if bind is not None:
        bind(side)


def _combine(dispositions: Sequence[Disposition]) -> Disposition:
    """The call's disposition when every fork failed: the most telling one wins."""
    for wanted in (
        Disposition.BUSY,
        Disposition.NO_ANSWER,
        Disposition.NOT_ALLOWED,
        Disposition.FAILED,
    ):
        if wanted in dispositions:
            return wanted
    return Disposition.FAILED


@dataclass(slots=True)
class _Active:
    """A leg the controller is waiting on, and the party it rings."""

    party: Party
    side: MediaSide


@dataclass(slots=True)
class _Connected:
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


class SimpleCall:
    """Runs one PhoneCall from first INVITE to final record. Owned by the engine's nursery."""

    def __init__(
        self, call: PhoneCall, ctx: CallContext, *, inbound: InboundSource | None = None
    ) -> None:
        self.call = call
        self.ctx = ctx
        self._send, self._inbox = trio.open_memory_channel[_LegMessage | Control](256)
        self._media: CallMedia | None = None
        self._connected: dict[int, _Connected] = {}  # party index -> connected leg
        self._cancelled_legs: dict[int, Leg] = {}  # losers by id (kept alive: ids not reused)
        self._nursery: trio.Nursery | None = None
        self._inbound = inbound
        self._inbound_answer: bytes | None = None
        self._inbound_done = False  # the caller hung up or cancelled: nothing more to send it
        self._recording = False
        self._transfer_staying: int | None = None  # party index, while a transfer rings
        # parties that left (a transferred one included), whose media counters go into the
        # record in one relay round trip when the call ends
        self._stats_due: list[tuple[Party, MediaSide]] = []
        self.finished = trio.Event()

    # --- engine-facing ------------------------------------------------------------------

    def control(self, request: Control) -> None:
        """Queue a control request (hang up, hold, transfer, recording) for the call task."""
        try:
            self._send.send_nowait(request)
        except (trio.WouldBlock, trio.ClosedResourceError, trio.BrokenResourceError):
            logger.warning("call %s: control %r dropped (call ending)", self.call.id, request)

    async def run(self) -> None:
        call = self.call
        disposition = Disposition.UNKNOWN
        cause = "normal clearing"
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                try:
                    await self._run()
                    disposition, cause = Disposition.ANSWERED, "normal clearing"
                except CallEnded as ended:
                    disposition, cause = ended.disposition, ended.cause
                finally:
                    with trio.CancelScope(shield=True):
                        await self._hang_up_everything(cause)
                        await self._release_media()
                nursery.cancel_scope.cancel()
        except BaseException as exc:
            if call.state is not CallState.ENDED:
                # An answered call stays answered (and charged) whatever stopped it.
                self._finish(
                    Disposition.ANSWERED if call.bridged is not None else Disposition.FAILED,
                    "engine stopped" if isinstance(exc, trio.Cancelled) else "internal error",
                )
            raise
        finally:
            if call.state is not CallState.ENDED:
                if call.bridged is not None and disposition is not Disposition.ANSWERED:
                    disposition = Disposition.ANSWERED
                self._finish(disposition, cause)
            self.finished.set()

    # --- phases -----------------------------------------------------------------------------

    async def _run(self) -> None:
        call = self.call
        self._media = self.ctx.media(call)
        sources = [p for p in call.parties if p.role == "source"]
        destinations = [p for p in call.parties if p.role == "destination"]
        sandbox_involved = any(p.kind == "sandbox" for p in call.parties)

        # Phase 1: the source(s).
        if self._inbound is not None:
            source = await self._answer_inbound(self._inbound)
        else:
            call.state = CallState.CALLING_SOURCE
            self._changed("calling_source")
            side_a = self._new_side("a")
            source = await self._fork(
                sources, side_a, side_a.offer(None), call.caller_id, call.wait_for_pickup
            )
        source_answered_at = trio.current_time()
        if call.answered is None:
            call.answered = self._now()
        self._changed("source_answered", {"party": source.party.number})

        duration = call.call_duration
        if sandbox_involved:
            duration = min(duration, SANDBOX_MAX_DURATION)
        with trio.move_on_at(source_answered_at + duration) as duration_scope:
            # Phase 2: the destination(s), while the source hears ringback.
            call.state = CallState.CALLING_DESTINATION
            source.party.status = PartyStatus.OTHER_SIDE_RINGING
            self._changed("calling_destination")
            if source.party.kind != "sandbox":
                self._media.play_tone(source.side, RINGBACK_HZ)
            side_b = self._new_side("b")
            try:
                dest = await self._fork(
                    destinations,
                    side_b,
                    side_b.offer(source.side.accepted),
                    call.caller_id_destination,
                    call.wait_for_pickup,
                    early_media_to=source,
                )
            except CallEnded as failed:
                if self._inbound is not None:
                    self._inbound.final_status = status_for_disposition(failed.disposition)
                raise
            if self._inbound is not None:
                # The caller gets its 200 OK only now: the destination answered.
                await self._accept_inbound(self._inbound, source, dest)
            # Phase 3: bridged.
            self._media.stop_tone(source.side)
            self._media.bridge(source.side, dest.side)
            self._tone_for_sandbox(source, dest)
            source.party.status = PartyStatus.ON_CALL
            call.state = CallState.BRIDGED
            call.bridged = self._now()
            self._changed("bridged")
            await self._talk()
        if duration_scope.cancelled_caught:
            raise CallEnded(
                Disposition.ANSWERED if call.bridged else Disposition.NO_ANSWER,
                "call duration reached",
            )

    async def _answer_inbound(self, inbound: InboundSource) -> _Connected:
        """A SIP caller (the softswitch case): answer its offer from side A with a 183 and
        ringback (early media) until the destination answers; 200 OK comes then."""
        assert self._media is not None
        party = self.call.parties[inbound.party_index]
        try:
            side_a = self._new_side("a")
        except CallEnded:  # no relay ports left: the caller hears why
            inbound.final_status = 503
            raise
        try:
            self._inbound_answer = side_a.answer(inbound.offer) if inbound.offer else None
        except Exception as exc:  # an offer we cannot answer
            inbound.final_status = 488
            raise CallEnded(Disposition.FAILED, f"unusable SDP offer: {exc}") from None
        _bind_media(inbound, side_a)
        connected = _Connected(inbound, party, side_a)
        self._connected[inbound.party_index] = connected
        assert self._nursery is not None
        self._nursery.start_soon(self._pump, inbound, None)
        # 183 with our answer: the caller hears ringback (early media). A late offer gets 180:
        # our offer may only go in a reliable response, the 200 OK.
        await inbound.progress(183 if self._inbound_answer else 180, self._inbound_answer)
        party.status = PartyStatus.OFF_HOOK
        return connected

    async def _accept_inbound(
        self, inbound: InboundSource, source: _Connected, dest: _Connected
    ) -> None:
        if inbound.offer is not None:
            await inbound.accept(self._inbound_answer)
            return
        # Late offer: the 200 carries our offer (with the codecs the destination chose), the
        # caller's ACK the answer (RFC 3261 §13.2.1, RFC 3264).
        answer = await inbound.accept(source.side.offer(dest.side.accepted))
        if not answer:
            raise CallEnded(Disposition.FAILED, "the caller's ACK carried no SDP answer")
        try:
            parsed = sdp.SessionDescription.parse(answer)
        except RemoteProtocolError as exc:
            raise CallEnded(
                Disposition.FAILED, f"the caller's SDP answer is unusable: {exc.reason}"
            ) from None
        if not any(m.port for m in parsed.media):
            raise CallEnded(Disposition.FAILED, "the caller's SDP answer rejected every stream")
        source.side.apply_remote(answer)

    def _tone_for_sandbox(self, *connected: _Connected) -> None:
        """An answered sandbox number sends a tone to the other party, so media can be checked:
        the relay plays it as a phone of its own, so its counters show what it sent and got."""
        assert self._media is not None
        for c in connected:
            if c.party.kind == "sandbox":
                self._media.start_sandbox(c.side, SANDBOX_TONE_HZ)

    async def _fork(
        self,
        parties: Sequence[Party],
        side: MediaSide,
        offer: bytes,
        caller_id: str | None,
        wait_for_pickup: float,
        *,
        early_media_to: _Connected | None = None,
    ) -> _Connected:
        """Ring every party's legs at once; return the first to answer, cancel the rest."""
        assert self._nursery is not None and self._media is not None
        active: dict[int, tuple[Leg, _Active]] = {}
        for party in parties:
            party.status = PartyStatus.TRYING
            party.caller_id = caller_id
            for leg in self.ctx.legs(self.call, party, caller_id):
                _bind_media(leg, side)
                active[id(leg)] = (leg, _Active(party, side))
                self._nursery.start_soon(self._pump, leg, offer)
        self._changed("trying", {"parties": [p.number for p in parties]})
        failures: list[Disposition] = []
        winner: _Connected | None = None
        early_leg: int | None = None  # id() of the leg whose early media the source hears
        try:
            with trio.move_on_after(wait_for_pickup) as pickup_scope:
                while active and winner is None:
                    message = await self._inbox.receive()
                    if not isinstance(message, _LegMessage):
                        await self._control_while_ringing(message, active)
                        continue
                    leg, event = message.leg, message.event
                    entry = active.get(id(leg))
                    if entry is None:
                        await self._stray(leg, event)
                        continue
                    info = entry[1]
                    if isinstance(event, LegRinging):
                        if info.party.status < PartyStatus.RINGING:
                            info.party.status = PartyStatus.RINGING
                            info.party.ringing = self._now()
                            self._changed("ringing", {"party": info.party.number})
                        if event.sdp and early_media_to is not None:
                            self._early_media(early_media_to, side, event.sdp)
                            early_leg = id(leg)
                    elif isinstance(event, LegAnswered):
                        del active[id(leg)]
                        side.apply_remote(event.sdp)
                        info.party.status = PartyStatus.ON_CALL
                        info.party.answered = self._now()
                        info.party.sip_status = 200
                        winner = _Connected(leg, info.party, side)
                    elif isinstance(event, LegFailed):
                        del active[id(leg)]
                        self._leg_failed(info.party, event, active)
                        failures.append(disposition_for_status(event.status))
                        if early_leg == id(leg) and active and early_media_to is not None:
                            # Its early media is gone, others still ring: ringback again.
                            early_leg = None
                            if early_media_to.party.kind != "sandbox":
                                self._media.play_tone(early_media_to.side, RINGBACK_HZ)
                    elif isinstance(event, LegHungUp):  # cannot happen before an answer
                        del active[id(leg)]
        except BaseException:
            # CallEnded, or callDuration's deadline (a Cancelled): stop every fork still ringing.
            for leg, _ in active.values():
                self._cancel_leg(leg)
            raise
        for leg, info in active.values():
            self._cancel_leg(leg)
            if winner is not None and info.party is not winner.party:
                info.party.hangup_cause = "answered elsewhere"
                info.party.status = PartyStatus.UNKNOWN
                info.party.ended = self._now()
        if winner is not None:
            self._connected[self._index_of(winner.party)] = winner
            return winner
        if pickup_scope.cancelled_caught:
            for party in parties:
                if party.ended is None:
                    party.status = PartyStatus.UNKNOWN
                    party.ended = self._now()
                    party.hangup_cause = "no answer within waitForPickup"
            raise ForkFailed(Disposition.NO_ANSWER, "no answer within waitForPickup")
        raise ForkFailed(_combine(failures), "every " + parties[0].role + " failed")

    def _index_of(self, party: Party) -> int:
        """The index of this very party (``Party`` compares by value; two may be equal)."""
        return next(i for i, p in enumerate(self.call.parties) if p is party)

    def _leg_failed(
        self, party: Party, event: LegFailed, active: dict[int, tuple[Leg, _Active]]
    ) -> None:
        still_ringing = any(info.party is party for _, info in active.values())
        if party.sip_status is None or party.sip_status == 480:
            party.sip_status = event.status
        if not still_ringing:
            party.status = PartyStatus.UNKNOWN
            party.ended = self._now()
            party.hangup_cause = f"{event.status} {event.reason}"
            self._changed("failed", {"party": party.number, "status": event.status})

    def _early_media(self, source: _Connected, side: MediaSide, sdp: bytes) -> None:
        """A 183 with SDP from the destination: the source hears it instead of our ringback."""
        assert self._media is not None
        side.apply_remote(sdp)
        self._media.stop_tone(source.side)
        self._media.bridge(source.side, side)

    async def _stray(self, leg: Leg, event: LegEvent) -> None:
        """An event from a leg we no longer wait on (a cancelled loser, or a connected party)."""
        if isinstance(event, LegAnswered) and id(leg) in self._cancelled_legs:
            # A 2xx raced our CANCEL: cancel() on an answered leg ACKs and BYEs it (§15).
            return
        if isinstance(event, LegHungUp | LegFailed):
            # A BYE; or a connected leg that broke (its pump reports LegFailed 500): gone too.
            for index, connected in self._connected.items():
                if connected.leg is leg:
                    party = self.call.parties[index]
                    cause = f"{party.role} hung up"
                    if isinstance(event, LegFailed):
                        cause = f"{party.role} leg failed: {event.status} {event.reason}"
                    party.hangup_cause = cause
                    party.ended = self._now()
                    self._keep_stats(connected)
                    del self._connected[index]
                    if leg is self._inbound:
                        self._inbound_done = True
                    if self._transfer_staying not in (None, index):
                        # The party being transferred away left early: the transfer goes on.
                        self._changed("hangup", {"party": party.number})
                        return
                    raise CallEnded(
                        Disposition.ANSWERED if self.call.bridged else Disposition.NO_ANSWER,
                        cause,
                    )

    async def _control_while_ringing(
        self, request: Control, active: dict[int, tuple[Leg, _Active]]
    ) -> None:
        if isinstance(request, Hangup):
            for leg, _ in active.values():
                self._cancel_leg(leg)
            active.clear()
            raise CallEnded(
                Disposition.ANSWERED if self.call.bridged else Disposition.NO_ANSWER,
                request.cause,
            )
        if isinstance(request, Transfer):  # only during a transfer: one at a time
            self._changed("transfer_failed", {"cause": "a transfer is already in progress"})
            return
        await self._apply_control(request)

    async def _talk(self) -> None:
        """Bridged: wait for a BYE from either side, a hang-up request or a transfer."""
        while True:
            message = await self._inbox.receive()
            if isinstance(message, _LegMessage):
                await self._stray(message.leg, message.event)
            elif isinstance(message, Hangup):
                raise CallEnded(Disposition.ANSWERED, message.cause)
            else:
                await self._apply_control(message)

    async def _apply_control(self, request: Control) -> None:
        assert self._media is not None
        if isinstance(request, Hold):
            connected = self._connected.get(request.party_index)
            if connected is None:
                return
            party = connected.party
            try:
                # Bounded: a phone that never answers must not hold up hang-ups behind it.
                with trio.fail_after(HOLD_ANSWER_SECONDS):
                    answer = await connected.leg.reinvite(self._hold_sdp(connected, request.held))
                if answer:
                    connected.side.apply_remote(answer)
            except Exception as exc:  # 488/491/408 or no answer in time: the call goes on
                logger.warning(
                    "call %s: re-INVITE of %s failed: %s", self.call.id, party.number, exc
                )
                self._changed("hold_failed", {"party": party.number, "error": str(exc)})
                return
            self._media.set_hold(connected.side, request.held)
            party.on_hold = self._now() if request.held else None
            self._changed("hold" if request.held else "unhold", {"party": party.number})
        elif isinstance(request, Recording):
            if request.start and not self._recording and len(self._connected) == 2:
                a, b = (self._connected[i] for i in sorted(self._connected))
                try:
                    path = await self._media.start_recording(a.side, b.side)
                except Exception as exc:  # no disk space, bad directory: the call goes on
                    logger.warning("call %s: recording not started: %s", self.call.id, exc)
                    self._changed("recording_failed", {"error": str(exc)})
                    return
                self._recording = True
                for c in (a, b):
                    c.party.recording = self._now()
                self._changed("recording_started", {"path": path})
            elif not request.start and self._recording:
                self._recording = False
                await self._media.stop_recording()
                for c in self._connected.values():
                    c.party.recording = None
                self._changed("recording_stopped", {})
        elif isinstance(request, Transfer):
            await self._transfer(request)

    def _hold_sdp(self, connected: _Connected, held: bool) -> bytes:
        direction = "sendonly" if held else "sendrecv"
        return connected.side.offer(connected.side.accepted, direction)

    async def _transfer(self, request: Transfer) -> None:
        """Send the party that stays to a new number; the transferring party is released."""
        assert self._media is not None
        staying = self._connected.get(request.party_index)
        if staying is None:
            return
        try:
            side_c = self._media.new_side("c", self.call.video)
        except Exception as exc:  # no relay ports left: the call goes on as it was
            self.ctx.observer.shortage(self.call, f"transfer without media ports: {exc}")
            self._changed("transfer_failed", {"cause": f"no media ports: {exc}"})
            return
        self.call.parties.append(request.target)
        self._media.play_tone(staying.side, RINGBACK_HZ)
        self._transfer_staying = request.party_index
        try:
            new = await self._fork(
                [request.target],
                side_c,
                side_c.offer(staying.side.accepted),
                self.call.caller_id_destination,
                request.wait_for_pickup,
            )
        except ForkFailed as failed:
            # The transfer target did not answer: the original call goes on, if it still can.
            self._media.stop_tone(staying.side)
            self._changed("transfer_failed", {"cause": failed.cause})
            others = [c for i, c in self._connected.items() if i != request.party_index]
            if not others:
                raise CallEnded(Disposition.ANSWERED, f"transfer failed: {failed.cause}") from None
            self._media.bridge(staying.side, others[0].side)
            return
        finally:
            self._transfer_staying = None
        self._media.stop_tone(staying.side)
        for index, connected in list(self._connected.items()):
            if index not in (request.party_index, self._index_of(new.party)):
                connected.party.hangup_cause = "transferred"
                connected.party.ended = self._now()
                self._keep_stats(connected)
                del self._connected[index]
                self._bye_soon(connected.leg)
        self._media.bridge(staying.side, new.side)
        self._tone_for_sandbox(new)
        self._changed("transferred", {"to": request.target.number})

    # --- legs -------------------------------------------------------------------------------

    async def _pump(self, leg: Leg, offer: bytes | None) -> None:
        """Forward one leg's events to the controller until the leg is over."""
        try:
            await leg.start(offer)
            while True:
                event = await leg.next_event()
                await self._send.send(_LegMessage(leg, event))
                if isinstance(event, LegFailed | LegHungUp):
                    return
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            return
        except Exception as exc:  # a leg's bug must not take the call down
            logger.exception("call %s: leg %s failed", self.call.id, leg.label)
            with trio.move_on_after(1):
                await self._send.send(_LegMessage(leg, LegFailed(500, f"internal error: {exc}")))

    def _cancel_leg(self, leg: Leg) -> None:
        assert self._nursery is not None
        self._cancelled_legs[id(leg)] = leg
        self._nursery.start_soon(self._shielded, leg.cancel)

    def _bye_soon(self, leg: Leg) -> None:
        assert self._nursery is not None
        self._nursery.start_soon(self._bye_leg, leg)

    async def _bye_leg(self, leg: Leg) -> None:
        await self._shielded(leg.bye)

    async def _shielded(self, action: Callable[[], Awaitable[None]]) -> None:
        with trio.CancelScope(shield=True), trio.move_on_after(CLEANUP_SECONDS):
            try:
                await action()
            except Exception:
                logger.exception("call %s: cleanup failed", self.call.id)

    async def _hang_up_everything(self, cause: str) -> None:
        """BYE every connected leg at once (the other side gets BYE when one hangs up)."""
        connected = list(self._connected.values())
        self._connected.clear()
        inbound = self._inbound
        if (
            inbound is not None
            and not self._inbound_done
            and all(c.leg is not inbound for c in connected)
        ):
            # The caller was never connected (e.g. no media ports): it still gets its final
            # response, the status in ``final_status``.
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._shielded, inbound.bye)
        async with trio.open_nursery() as nursery:
            for c in connected:
                if c.party.ended is None:
                    c.party.ended = self._now()
                    c.party.hangup_cause = c.party.hangup_cause or cause
                nursery.start_soon(self._bye_leg, c.leg)
        for c in connected:
            self._keep_stats(c)

    def _keep_stats(self, connected: _Connected) -> None:
        """Note a leaving party whose media counters go into the record (its side stays
        allocated until the call's media closes, so they can still be read then)."""
        if connected.party.kind == "sandbox" and self._media is not None:
            self._media.stop_sandbox(connected.side)  # it left: it sends no more
        self._stats_due.append((connected.party, connected.side))

    def _new_side(self, label: str) -> MediaSide:
        """Relay ports for a party; none left (or no relay) ends the call, saying so."""
        assert self._media is not None
        try:
            return self._media.new_side(label, self.call.video)
        except Exception as exc:
            self.ctx.observer.shortage(self.call, f"no media ports: {exc}")
            raise CallEnded(Disposition.FAILED, f"no media ports: {exc}") from None

    async def _release_media(self) -> None:
        """Counters into the record, recording finished, relay endpoints released."""
        media, self._media = self._media, None
        due, self._stats_due = self._stats_due, []
        self._recording = False
        if media is None:
            return
        try:
            counters = await media.finish([side for _party, side in due])
        except Exception:  # the relay is gone: the record must still end
            logger.exception("call %s: media cleanup failed", self.call.id)
            return
        _record_counters(due, counters)

    def _collect_stats(self) -> None:
        """``_release_media``'s counters, read at once (the engine stops: no worker thread)."""
        due, self._stats_due = self._stats_due, []
        if self._media is None or not due:
            return
        _record_counters(due, self._media.stats([side for _party, side in due]))

    # --- record -----------------------------------------------------------------------------

    def _now(self) -> datetime:
        return self.ctx.wall_clock()

    def _changed(self, event: str, data: dict[str, object] | None = None) -> None:
        self.ctx.observer.changed(self.call, event, data or {})

    def _finish(self, disposition: Disposition, cause: str) -> None:
        call = self.call
        now = self._now()
        if self._media is not None:  # not released in order (the engine stops)
            try:
                self._collect_stats()
                self._media.close()
            except Exception:  # the relay is gone: the record must still end
                logger.exception("call %s: media cleanup failed", call.id)
        call.ended = now
        call.state = CallState.ENDED
        call.disposition = disposition
        call.hangup_cause = cause
        for party in call.parties:
            if party.ended is None:
                party.ended = now
                if party.status is not PartyStatus.UNKNOWN and party.hangup_cause is None:
                    party.hangup_cause = cause  # it was still ringing or talking
            party.status = PartyStatus.UNKNOWN  # nobody rings or talks on an ended call
        call.charge = self._charge()
        self.ctx.observer.changed(call, "ended", {"disposition": int(disposition), "cause": cause})

    def _charge(self) -> float:
        return call_charge(self.call, self.ctx.rate_for)


def call_charge(call: PhoneCall, rate_for: Callable[[Party], float]) -> float:
    """Per started minute of bridged time, at the rate of each answered public party, for the
    time that party was in the bridged call (a party transferred away stops paying)."""
    if call.bridged is None or call.ended is None:
        return 0.0
    total = 0.0
    for party in call.parties:
        if party.answered is None or party.kind != "public":
            continue
        joined = max(party.answered, call.bridged)
        left = min(party.ended or call.ended, call.ended)
        seconds = math.ceil(max(0.0, (left - joined).total_seconds()))
        total += rate_for(party) * math.ceil(seconds / 60)
    return round(total, 6)
