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

The in-call actions (hold, recording, transfer) are in ``engine.call_actions``, the protocols
of the collaborators and the small types in ``engine.call_types``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable
from datetime import datetime
from functools import partial

import trio

from engine.call_actions import apply_control
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
    bind_media,
    status_for_disposition,
)
from engine.dtmf import digit_from_leg
from engine.fork import fork
from engine.legs import Leg, LegAnswered, LegDtmf, LegEvent, LegFailed, LegHungUp
from engine.model import CallState, Disposition, Party, PartyStatus, PhoneCall
from engine.sandbox import SANDBOX_MAX_DURATION, SANDBOX_TONE_HZ
from engine.supervise import is_supervisor, supervisor_hung_up
from sip import sdp
from sip.errors import RemoteProtocolError

logger = logging.getLogger(__name__)

CLEANUP_SECONDS = 5.0  # deadline for shielded CANCEL/BYE on the way out


def _record_counters(
    due: list[tuple[Party, MediaSide]], counters: list[dict[str, dict[str, int]]]
) -> None:
    """Each leaving party's media counters into its record, in order."""
    for (party, _side), kinds in zip(due, counters, strict=True):
        party.media = kinds


class SimpleCall:
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
            source = await self._answer_inbound(self._inbound)
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
                await self._accept_inbound(self._inbound, source, dest)
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

    async def _answer_inbound(self, inbound: InboundSource) -> Connected:
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
            self._inbound_answer = await side_a.answer(inbound.offer) if inbound.offer else None
        except MediaUnavailable:
            raise  # not the caller's fault: 503 (see run)
        except Exception as exc:  # an offer we cannot answer
            inbound.final_status = 488
            raise CallEnded(Disposition.FAILED, f"unusable SDP offer: {exc}") from None
        bind_media(inbound, side_a)
        connected = Connected(inbound, party, side_a)
        self._connected[inbound.party_index] = connected
        assert self._nursery is not None
        self._nursery.start_soon(self._pump, inbound, None)
        # 183 with our answer: the caller hears ringback (early media). A late offer gets 180:
        # our offer may only go in a reliable response, the 200 OK.
        await inbound.progress(183 if self._inbound_answer else 180, self._inbound_answer)
        party.status = PartyStatus.OFF_HOOK
        return connected

    async def _accept_inbound(
        self, inbound: InboundSource, source: Connected, dest: Connected
    ) -> None:
        if inbound.offer is not None:
            await inbound.accept(self._inbound_answer)
            return
        # Late offer: the 200 carries our offer (with the codecs the destination chose), the
        # caller's ACK the answer (RFC 3261 §13.2.1, RFC 3264).
        answer = await inbound.accept(await source.side.offer(dest.side.accepted))
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
        await source.side.apply_remote(answer)

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

    def _cancel_leg(self, leg: Leg) -> None:
        assert self._nursery is not None
        self._cancelled_legs[id(leg)] = leg
        if not self._at_once(leg, "cancel_nowait"):
            self._nursery.start_soon(self._shielded, leg.cancel)

    def _bye_soon(self, leg: Leg) -> None:
        assert self._nursery is not None
        if not self._at_once(leg, "bye_nowait"):
            self._nursery.start_soon(self._bye_leg, leg)

    def _at_once(self, leg: Leg, name: str) -> bool:
        """Hang ``leg`` up now when it can do so without waiting (a SIP leg: the request
        only goes out), sparing a task; False when it needs one."""
        action: Callable[[], None] | None = getattr(leg, name, None)
        if action is None:
            return False
        try:
            action()
        except Exception:
            logger.exception("call %s: cleanup failed", self.call.id)
        return True

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
            # The caller was never connected (e.g. no media ports): it still gets its final
            # response, the status in ``final_status``.
            and not self._at_once(inbound, "bye_nowait")
        ):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._shielded, inbound.bye)
        waiting = []
        for c in connected:
            if c.party.ended is None:
                c.party.ended = self._now()
                c.party.hangup_cause = c.party.hangup_cause or cause
            if not self._at_once(c.leg, "bye_nowait"):
                waiting.append(c.leg)
        if waiting:
            async with trio.open_nursery() as nursery:
                for leg in waiting:
                    nursery.start_soon(self._bye_leg, leg)
        for c in connected:
            await self._keep_stats(c)

    async def _keep_stats(self, connected: Connected) -> None:
        """Note a leaving party whose media counters go into the record (its side stays
        allocated until the call's media closes, so they can still be read then)."""
        if connected.party.kind == "sandbox" and self._media is not None:
            await self._media.stop_sandbox(connected.side)  # it left: it sends no more
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
