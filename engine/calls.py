"""The Simple PhoneCall controller: RFC 3725 third-party call control with anchored media.

Theory of operation (one task per call, one nursery per call with one pump task per leg):

1. The record was stored by the engine before the API answered 202. ``SimpleCall.run`` INVITEs
   every source target at once (``engine.fork``): each registered device of an extension, the
   gateway of a public number, or a sandbox number. Every INVITE carries the same offer, pointing at
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

The in-call actions (hold, recording, transfer) are in ``engine.call_actions``, answering a SIP
caller in ``engine.call_inbound``, the way out (hang-ups, media counters, the final record and
its charge) in ``engine.call_end``, the protocols of the collaborators and the small types in
``engine.call_types``. This module has the call's run loop: its phases, its inbox and the pumps
that fill it.
"""

from __future__ import annotations

import logging
from functools import partial

import trio

from engine.call_actions import apply_control
from engine.call_end import CallEnd
from engine.call_inbound import accept_inbound, answer_inbound
from engine.call_types import (
    RINGBACK_HZ,
    CallContext,
    CallEnded,
    CallMedia,
    Connected,
    Control,
    DtmfHeard,
    Hangup,
    InboundSource,
    LegMessage,
    MediaSide,
    MediaUnavailable,
    status_for_disposition,
)
from engine.dtmf import digit_from_leg
from engine.fork import fork
from engine.legs import Leg, LegAnswered, LegDtmf, LegEvent, LegFailed, LegHungUp
from engine.model import CallState, Disposition, Party, PartyStatus, PhoneCall
from engine.sandbox import SANDBOX_MAX_DURATION, SANDBOX_TONE_HZ
from engine.supervise import is_supervisor, supervisor_hung_up

logger = logging.getLogger(__name__)


class SimpleCall(CallEnd):
    """Runs one PhoneCall from first INVITE to final record. Owned by the engine's nursery."""

    def __init__(
        self, call: PhoneCall, ctx: CallContext, *, inbound: InboundSource | None = None
    ) -> None:
        self.call = call
        self.ctx = ctx
        self._send, self._inbox = trio.open_memory_channel[LegMessage | Control](256)
        self._media: CallMedia | None = None
        self._connected: dict[int, Connected] = {}  # party index -> connected leg
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
                except MediaUnavailable as exc:  # rtpengine not answering: the cause names it
                    disposition = Disposition.ANSWERED if call.bridged else Disposition.FAILED
                    cause = str(exc)
                    if self._inbound is not None and not self._inbound_done:
                        self._inbound.final_status = 503
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
        self._media.on_dtmf(self._dtmf_heard)
        assert self._nursery is not None
        self._nursery.start_soon(self._watch_media, self._media)
        sources = [p for p in call.parties if p.role == "source"]
        destinations = [p for p in call.parties if p.role == "destination"]
        sandbox_involved = any(p.kind == "sandbox" for p in call.parties)

        # Phase 1: the source(s).
        if self._inbound is not None:
            source = await answer_inbound(self, self._inbound)
        else:
            call.state = CallState.CALLING_SOURCE
            self._changed("calling_source")
            side_a = self._new_side("a")
            source = await fork(
                self,
                sources,
                side_a,
                await side_a.offer(None),
                call.caller_id,
                call.wait_for_pickup,
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
                await self._media.play_tone(source.side, RINGBACK_HZ)
            side_b = self._new_side("b")
            try:
                dest = await fork(
                    self,
                    destinations,
                    side_b,
                    await side_b.offer(source.side.accepted),
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
                await accept_inbound(self, self._inbound, source, dest)
            # Phase 3: bridged.
            await self._media.stop_tone(source.side)
            await self._media.bridge(source.side, dest.side)
            await self._tone_for_sandbox(source, dest)
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

    async def _watch_media(self, media: CallMedia) -> None:
        """The media backend lost this call's media (rtpengine died): hang up, saying so."""
        cause = await media.watch()
        logger.warning("call %s: %s", self.call.id, cause)
        self.control(Hangup(cause))

    async def _tone_for_sandbox(self, *connected: Connected) -> None:
        """An answered sandbox number sends a tone to the other party, so media can be checked:
        the relay plays it as a phone of its own, so its counters show what it sent and got."""
        assert self._media is not None
        for c in connected:
            if c.party.kind == "sandbox":
                await self._media.start_sandbox(c.side, SANDBOX_TONE_HZ)

    def _index_of(self, party: Party) -> int:
        """The index of this very party (``Party`` compares by value; two may be equal)."""
        return next(i for i, p in enumerate(self.call.parties) if p is party)

    def _dtmf_heard(self, side: MediaSide, digit: str) -> None:
        try:
            self._send.send_nowait(DtmfHeard(side, digit))
        except (trio.WouldBlock, trio.ClosedResourceError, trio.BrokenResourceError):
            logger.info("call %s: DTMF %s dropped (call busy or ending)", self.call.id, digit)

    async def _stray(self, leg: Leg, event: LegEvent) -> None:
        """An event from a leg we no longer wait on (a cancelled loser, or a connected party)."""
        if isinstance(event, LegDtmf):
            digit_from_leg(self, leg, event.digit, event.duration_ms)
            return
        if isinstance(event, LegAnswered) and id(leg) in self._cancelled_legs:
            # A 2xx raced our CANCEL: cancel() on an answered leg ACKs and BYEs it (§15).
            return
        if isinstance(event, LegHungUp | LegFailed):
            # A BYE; or a connected leg that broke (its pump reports LegFailed 500): gone too.
            for index, connected in self._connected.items():
                if connected.leg is leg:
                    party = self.call.parties[index]
                    if is_supervisor(party):  # it leaves; the call goes on as it was
                        await supervisor_hung_up(self, connected)
                        return
                    cause = f"{party.role} hung up"
                    if isinstance(event, LegFailed):
                        cause = f"{party.role} leg failed: {event.status} {event.reason}"
                    party.hangup_cause = cause
                    party.ended = self._now()
                    await self._keep_stats(connected)
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

    async def _apply_control(self, request: Control) -> None:
        """Hold, recording or transfer (``engine.call_actions``), bridged or while a fork rings."""
        await apply_control(self, request)

    async def _talk(self) -> None:
        """Bridged: wait for a BYE from either side, a hang-up request or a transfer."""
        while True:
            message = await self._inbox.receive()
            if isinstance(message, LegMessage):
                await self._stray(message.leg, message.event)
            elif isinstance(message, Hangup):
                raise CallEnded(Disposition.ANSWERED, message.cause)
            else:
                await self._apply_control(message)

    # --- legs -------------------------------------------------------------------------------

    async def _pump(self, leg: Leg, offer: bytes | None) -> None:
        """Forward one leg's events to the controller until the leg is over: a SIP leg hands
        them over as they happen (``forward_events``: no task waits for them), others are
        read here."""
        try:
            await leg.start(offer)
            forward = getattr(leg, "forward_events", None)
            if forward is not None:
                forward(partial(self._forwarded, leg))
                return
            while True:
                event = await leg.next_event()
                await self._send.send(LegMessage(leg, event))
                if isinstance(event, LegFailed | LegHungUp):
                    return
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            return
        except Exception as exc:  # a leg's bug must not take the call down
            logger.exception("call %s: leg %s failed", self.call.id, leg.label)
            with trio.move_on_after(1):
                await self._send.send(LegMessage(leg, LegFailed(500, f"internal error: {exc}")))

    def _forwarded(self, leg: Leg, event: LegEvent) -> bool:
        try:
            self._send.send_nowait(LegMessage(leg, event))
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            return True  # the call is over: nobody wants it
        except trio.WouldBlock:
            return False
        return True

    # --- media side, events -----------------------------------------------------------------

    def _new_side(self, label: str) -> MediaSide:
        """Relay ports for a party; none left (or no relay) ends the call, saying so."""
        assert self._media is not None
        try:
            return self._media.new_side(label, self.call.video)
        except Exception as exc:
            self.ctx.observer.shortage(self.call, f"no media ports: {exc}")
            raise CallEnded(Disposition.FAILED, f"no media ports: {exc}") from None

    def _changed(self, event: str, data: dict[str, object] | None = None) -> None:
        self.ctx.observer.changed(self.call, event, data or {})
