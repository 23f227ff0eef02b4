"""How a call ends: its legs hung up (CANCEL, BYE), its media counters read, its record
finished and charged.

``CallEnd`` is the part of ``engine.calls.SimpleCall`` that does it: the call's run loop calls
``_hang_up_everything``, ``_release_media`` and ``_finish`` on its way out; a fork cancels its
losers with ``_cancel_leg``; the in-call actions let a party go with ``_bye_soon`` and
``_keep_stats``. ``call_charge`` is the charge rule, which a restart's recovery applies too.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable
from datetime import datetime

import trio

from engine.call_types import CallContext, CallMedia, Connected, InboundSource, MediaSide
from engine.legs import Leg
from engine.model import CallState, Disposition, Party, PartyStatus, PhoneCall

logger = logging.getLogger(__name__)

CLEANUP_SECONDS = 5.0  # deadline for shielded CANCEL/BYE on the way out


def _record_counters(
    due: list[tuple[Party, MediaSide]], counters: list[dict[str, dict[str, int]]]
) -> None:
    """Each leaving party's media counters into its record, in order."""
    for (party, _side), kinds in zip(due, counters, strict=True):
        party.media = kinds


class CallEnd:
    """The ending of a ``SimpleCall`` (its state is set by ``SimpleCall.__init__``)."""

    call: PhoneCall
    ctx: CallContext
    _media: CallMedia | None
    _connected: dict[int, Connected]
    _cancelled_legs: dict[int, Leg]
    _nursery: trio.Nursery | None
    _inbound: InboundSource | None
    _inbound_done: bool
    _recording: bool
    _stats_due: list[tuple[Party, MediaSide]]

    # --- legs -------------------------------------------------------------------------------

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
