"""Ringing a set of parties at once: the first to answer wins, every other fork is cancelled.

``fork`` runs inside a ``SimpleCall``'s task and reads the call's one inbox meanwhile: leg
events of the fork, strays from legs the call no longer waits on, and control requests (a
hang-up cancels every fork still ringing; hold and recording apply as they would when bridged).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import trio

from engine.call_types import (
    RINGBACK_HZ,
    CallEnded,
    Connected,
    Control,
    ForkFailed,
    Hangup,
    LegMessage,
    MediaSide,
    Transfer,
    bind_media,
    disposition_for_status,
)
from engine.legs import Leg, LegAnswered, LegFailed, LegHungUp, LegRinging
from engine.model import Disposition, Party, PartyStatus

if TYPE_CHECKING:
    from engine.calls import SimpleCall


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


async def fork(
    controller: SimpleCall,
    parties: Sequence[Party],
    side: MediaSide,
    offer: bytes,
    caller_id: str | None,
    wait_for_pickup: float,
    *,
    early_media_to: Connected | None = None,
) -> Connected:
    """Ring every party's legs at once; return the first to answer, cancel the rest."""
    assert controller._nursery is not None and controller._media is not None
    active: dict[int, tuple[Leg, _Active]] = {}
    for party in parties:
        party.status = PartyStatus.TRYING
        party.caller_id = caller_id
        for leg in controller.ctx.legs(controller.call, party, caller_id):
            bind_media(leg, side)
            active[id(leg)] = (leg, _Active(party, side))
            controller._nursery.start_soon(controller._pump, leg, offer)
    controller._changed("trying", {"parties": [p.number for p in parties]})
    failures: list[Disposition] = []
    winner: Connected | None = None
    early_leg: int | None = None  # id() of the leg whose early media the source hears
    try:
        with trio.move_on_after(wait_for_pickup) as pickup_scope:
            while active and winner is None:
                message = await controller._inbox.receive()
                if not isinstance(message, LegMessage):
                    await _control_while_ringing(controller, message, active)
                    continue
                leg, event = message.leg, message.event
                entry = active.get(id(leg))
                if entry is None:
                    await controller._stray(leg, event)
                    continue
                info = entry[1]
                if isinstance(event, LegRinging):
                    if info.party.status < PartyStatus.RINGING:
                        info.party.status = PartyStatus.RINGING
                        info.party.ringing = controller._now()
                        controller._changed("ringing", {"party": info.party.number})
                    if event.sdp and early_media_to is not None:
                        _early_media(controller, early_media_to, side, event.sdp)
                        early_leg = id(leg)
                elif isinstance(event, LegAnswered):
                    del active[id(leg)]
                    side.apply_remote(event.sdp)
                    info.party.status = PartyStatus.ON_CALL
                    info.party.answered = controller._now()
                    info.party.sip_status = 200
                    winner = Connected(leg, info.party, side)
                elif isinstance(event, LegFailed):
                    del active[id(leg)]
                    _leg_failed(controller, info.party, event, active)
                    failures.append(disposition_for_status(event.status))
                    if early_leg == id(leg) and active and early_media_to is not None:
                        # Its early media is gone, others still ring: ringback again.
                        early_leg = None
                        if early_media_to.party.kind != "sandbox":
                            controller._media.play_tone(early_media_to.side, RINGBACK_HZ)
                elif isinstance(event, LegHungUp):  # cannot happen before an answer
                    del active[id(leg)]
    except BaseException:
        # CallEnded, or callDuration's deadline (a Cancelled): stop every fork still ringing.
        for leg, _ in active.values():
            controller._cancel_leg(leg)
        raise
    for leg, info in active.values():
        controller._cancel_leg(leg)
        if winner is not None and info.party is not winner.party:
            info.party.hangup_cause = "answered elsewhere"
            info.party.status = PartyStatus.UNKNOWN
            info.party.ended = controller._now()
    if winner is not None:
        controller._connected[controller._index_of(winner.party)] = winner
        return winner
    if pickup_scope.cancelled_caught:
        for party in parties:
            if party.ended is None:
                party.status = PartyStatus.UNKNOWN
                party.ended = controller._now()
                party.hangup_cause = "no answer within waitForPickup"
        raise ForkFailed(Disposition.NO_ANSWER, "no answer within waitForPickup")
    raise ForkFailed(_combine(failures), "every " + parties[0].role + " failed")


def _leg_failed(
    controller: SimpleCall, party: Party, event: LegFailed, active: dict[int, tuple[Leg, _Active]]
) -> None:
    still_ringing = any(info.party is party for _, info in active.values())
    if party.sip_status is None or party.sip_status == 480:
        party.sip_status = event.status
    if not still_ringing:
        party.status = PartyStatus.UNKNOWN
        party.ended = controller._now()
        party.hangup_cause = f"{event.status} {event.reason}"
        controller._changed("failed", {"party": party.number, "status": event.status})


def _early_media(controller: SimpleCall, source: Connected, side: MediaSide, sdp: bytes) -> None:
    """A 183 with SDP from the destination: the source hears it instead of our ringback."""
    assert controller._media is not None
    side.apply_remote(sdp)
    controller._media.stop_tone(source.side)
    controller._media.bridge(source.side, side)


async def _control_while_ringing(
    controller: SimpleCall, request: Control, active: dict[int, tuple[Leg, _Active]]
) -> None:
    if isinstance(request, Hangup):
        for leg, _ in active.values():
            controller._cancel_leg(leg)
        active.clear()
        raise CallEnded(
            Disposition.ANSWERED if controller.call.bridged else Disposition.NO_ANSWER,
            request.cause,
        )
    if isinstance(request, Transfer):  # only during a transfer: one at a time
        controller._changed("transfer_failed", {"cause": "a transfer is already in progress"})
        return
    await controller._apply_control(request)
