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
    PickUp,
    Transfer,
    bind_media,
    disposition_for_status,
)
from engine.legs import Leg, LegAnswered, LegFailed, LegHungUp, LegRinging
from engine.model import CallState, Disposition, Party, PartyStatus

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
    pickups: dict[int, float] = {}  # id() of a PickUp's leg -> when it stops ringing
    try:
        with trio.move_on_after(wait_for_pickup) as pickup_scope:
            while active and winner is None:
                if pickups:  # a PickUp rings for its own waitForPickup
                    with trio.move_on_at(min(pickups.values())) as expiry:
                        message = await controller._inbox.receive()
                    if expiry.cancelled_caught:
                        _pickups_expired(controller, active, pickups)
                        continue
                else:
                    message = await controller._inbox.receive()
                if isinstance(message, PickUp):
                    _pick_up(controller, message, parties, (side, offer), active, pickups)
                    pickup_scope.deadline = max(pickup_scope.deadline, max(pickups.values()))
                    continue
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
                        await _early_media(controller, early_media_to, side, event.sdp)
                        early_leg = id(leg)
                elif isinstance(event, LegAnswered):
                    del active[id(leg)]
                    await side.apply_remote(event.sdp)
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
                            await controller._media.play_tone(early_media_to.side, RINGBACK_HZ)
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


async def _early_media(
    controller: SimpleCall, source: Connected, side: MediaSide, sdp: bytes
) -> None:
    """A 183 with SDP from the destination: the source hears it instead of our ringback."""
    assert controller._media is not None
    await side.apply_remote(sdp)
    await controller._media.stop_tone(source.side)
    await controller._media.bridge(source.side, side)


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


def _pick_up(
    controller: SimpleCall,
    request: PickUp,
    parties: Sequence[Party],
    media: tuple[MediaSide, bytes],
    active: dict[int, tuple[Leg, _Active]],
    pickups: dict[int, float],
) -> None:
    """PickUp: ring ``sendCallTo`` beside the destination's devices for its own waitForPickup
    (the call keeps ringing as long); the first to answer wins, the others get CANCEL."""
    call = controller.call
    if call.state is not CallState.CALLING_DESTINATION or parties[0].role != "destination":
        controller._changed("pickup_failed", {"cause": "the call is not ringing"})
        return
    target = request.target
    target.status = PartyStatus.TRYING
    target.caller_id = request.caller_id
    call.parties.append(target)
    assert controller._nursery is not None
    side, offer = media
    until = trio.current_time() + request.wait_for_pickup
    for leg in controller.ctx.legs(call, target, request.caller_id):
        bind_media(leg, side)
        active[id(leg)] = (leg, _Active(target, side))
        pickups[id(leg)] = until
        controller._nursery.start_soon(controller._pump, leg, offer)
    controller._changed("pickup", {"party": target.number})


def _pickups_expired(
    controller: SimpleCall, active: dict[int, tuple[Leg, _Active]], pickups: dict[int, float]
) -> None:
    """A PickUp's waitForPickup passed: CANCEL its legs; the destination rings on."""
    now = trio.current_time()
    for leg_id in [i for i, until in pickups.items() if until <= now]:
        del pickups[leg_id]
        entry = active.pop(leg_id, None)
        if entry is None:  # it failed already
            continue
        leg, info = entry
        controller._cancel_leg(leg)
        party = info.party
        if party.ended is None and all(a.party is not party for _, a in active.values()):
            party.status = PartyStatus.UNKNOWN
            party.ended = controller._now()
            party.hangup_cause = "no answer within waitForPickup"
            controller._changed("pickup_failed", {"party": party.number, "cause": "no answer"})
