"""Park and UnPark inside a ``SimpleCall``'s task (the engine checked the request first).

Park releases the parking party (BYE) and plays music on hold to the other one, which stays
on its own side of the relay. The call then waits, reading its inbox, until an UnPark's
``sendCallTo`` answers (bridged with the parked party), the parked party hangs up, the call is
hung up, or ``maxInParking`` passes: then the extension that parked it is rung back; if it
does not answer either, the call ends. callDuration keeps running meanwhile. The music is
``[calls] music_on_hold`` (a WAV file) played by the relay, or its built-in tone.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import trio

from engine.call_types import (
    CallEnded,
    Connected,
    DtmfHeard,
    ForkFailed,
    Hangup,
    LegMessage,
    Park,
    UnPark,
)
from engine.dtmf import digit_from_media
from engine.fork import fork
from engine.model import Disposition, Party, PartyStatus

if TYPE_CHECKING:
    from engine.calls import SimpleCall

logger = logging.getLogger(__name__)


async def park(controller: SimpleCall, request: Park) -> None:
    """Park ``request.parked_index``; return once it is bridged again (UnPark or ring-back)."""
    assert controller._media is not None
    parker = controller._connected.get(request.parker_index)
    parked = controller._connected.get(request.parked_index)
    if parker is None or parked is None or len(controller._connected) != 2:
        controller._changed("park_failed", {"cause": "the call is not between these two parties"})
        return
    if controller._recording:  # the recorded conversation is over (its file is complete)
        controller._recording = False
        await controller._media.stop_recording()
        parker.party.recording = parked.party.recording = None
        controller._changed("recording_stopped", {"cause": "parked"})
    now = controller._now()
    parker.party.hangup_cause = "parked the call"
    parker.party.ended = now
    parker.party.status = PartyStatus.UNKNOWN
    await controller._keep_stats(parker)
    del controller._connected[request.parker_index]
    controller._bye_soon(parker.leg)
    await controller._media.play_music(parked.side)
    party = parked.party
    party.parked, party.parked_pos, party.parked_by = (
        now,
        request.position,
        request.ring_back.extension,
    )
    controller._changed(
        "parked",
        {"party": party.number, "parkedPos": request.position, "parkedBy": party.parked_by},
    )
    deadline = trio.current_time() + request.max_in_parking
    while True:
        with trio.move_on_at(deadline):
            message = await controller._inbox.receive()
            if isinstance(message, LegMessage):
                await controller._stray(message.leg, message.event)  # its BYE ends the call
            elif isinstance(message, Hangup):
                raise CallEnded(Disposition.ANSWERED, message.cause)
            elif isinstance(message, UnPark):
                if await _ring(
                    controller,
                    parked,
                    message.target,
                    message.caller_id,
                    message.wait_for_pickup,
                    "unpark_failed",
                ):
                    return
            elif isinstance(message, DtmfHeard):  # the parked party pressed a key
                digit_from_media(controller, message.side, message.digit)
            else:  # the engine refuses the rest while parked; one that raced the Park
                controller._changed("action_failed", {"cause": "the call is parked"})
            continue
        # maxInParking passed: ring the extension that parked it.
        back = request.ring_back
        controller._changed("park_expired", {"party": party.number, "ringing": back.number})
        if await _ring(
            controller,
            parked,
            back,
            controller.call.caller_id_destination,
            float(controller.call.wait_for_pickup),
            "ring_back_failed",
        ):
            return
        raise CallEnded(
            Disposition.ANSWERED,
            f"parked call not picked up: {back.number} did not answer the ring-back "
            f"after maxInParking ({request.max_in_parking:g} s)",
        )


async def _ring(
    controller: SimpleCall,
    parked: Connected,
    target: Party,
    caller_id: str | None,
    wait_for_pickup: float,
    failed_event: str,
) -> bool:
    """Ring ``target`` for the parked party (which keeps hearing music); answered: bridged."""
    assert controller._media is not None
    try:
        side = controller._media.new_side("c", controller.call.video)
    except Exception as exc:  # no relay ports left: it stays parked
        controller.ctx.observer.shortage(controller.call, f"unpark without media ports: {exc}")
        controller._changed(failed_event, {"cause": f"no media ports: {exc}"})
        return False
    controller.call.parties.append(target)
    try:
        new = await fork(
            controller,
            [target],
            side,
            await side.offer(parked.side.accepted),
            caller_id,
            wait_for_pickup,
        )
    except ForkFailed as failed:
        controller._changed(failed_event, {"to": target.number, "cause": failed.cause})
        return False
    await controller._media.stop_tone(parked.side)
    await controller._media.bridge(parked.side, new.side)
    await controller._tone_for_sandbox(new)
    party = parked.party
    party.parked = party.parked_pos = party.parked_by = None
    controller._changed("unparked", {"party": party.number, "to": target.number})
    return True
