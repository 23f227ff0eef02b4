"""What a call does on request once answered: hold and resume, recording, transfer.

The functions run inside a ``SimpleCall``'s task (from its talk loop, or while a transfer's
fork rings). A request that fails (a re-INVITE not answered, no disk space, a transfer target
that does not answer) is reported as an event and the call goes on as it was.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import trio

from engine.call_types import (
    RINGBACK_HZ,
    CallEnded,
    Connected,
    Control,
    DtmfHeard,
    ForkFailed,
    Hold,
    Park,
    PickUp,
    Recording,
    Supervise,
    Transfer,
    UnPark,
)
from engine.dtmf import digit_from_media
from engine.fork import fork
from engine.model import Disposition
from engine.parking import park
from engine.supervise import supervise, talking

if TYPE_CHECKING:
    from engine.calls import SimpleCall

logger = logging.getLogger(__name__)

HOLD_ANSWER_SECONDS = 8.0  # how long a hold/resume re-INVITE may take before we give up


async def apply_control(controller: SimpleCall, request: Control) -> None:
    """Hold or resume a party, start or stop recording, transfer, or bring in a supervisor (a
    hang-up is not here: the call's own loops end the call on it)."""
    assert controller._media is not None
    if isinstance(request, DtmfHeard):
        digit_from_media(controller, request.side, request.digit)
    elif isinstance(request, Hold):
        connected = controller._connected.get(request.party_index)
        if connected is None:
            return
        party = connected.party
        try:
            # Bounded: a phone that never answers must not hold up hang-ups behind it.
            with trio.fail_after(HOLD_ANSWER_SECONDS):
                answer = await connected.leg.reinvite(await _hold_sdp(connected, request.held))
            if answer:
                await connected.side.apply_remote(answer)
        except Exception as exc:  # 488/491/408 or no answer in time: the call goes on
            logger.warning(
                "call %s: re-INVITE of %s failed: %s", controller.call.id, party.number, exc
            )
            controller._changed("hold_failed", {"party": party.number, "error": str(exc)})
            return
        await controller._media.set_hold(connected.side, request.held)
        party.on_hold = controller._now() if request.held else None
        controller._changed("hold" if request.held else "unhold", {"party": party.number})
    elif isinstance(request, Recording):
        pair = talking(controller)  # a supervisor listening in is not recorded
        if request.start and not controller._recording and pair is not None:
            a, b = pair.connected
            try:
                path = await controller._media.start_recording(a.side, b.side)
            except Exception as exc:  # no disk space, bad directory: the call goes on
                logger.warning("call %s: recording not started: %s", controller.call.id, exc)
                controller._changed("recording_failed", {"error": str(exc)})
                return
            controller._recording = True
            for c in (a, b):
                c.party.recording = controller._now()
            controller._changed("recording_started", {"path": path})
        elif not request.start and controller._recording:
            controller._recording = False
            await controller._media.stop_recording()
            for c in controller._connected.values():
                c.party.recording = None
            controller._changed("recording_stopped", {})
    elif isinstance(request, Transfer):
        await _transfer(controller, request)
    elif isinstance(request, Park):
        await park(controller, request)
    elif isinstance(request, UnPark | PickUp):  # raced a change: not parked, or not ringing
        name = "unpark" if isinstance(request, UnPark) else "pickup"
        cause = "the call is not parked" if name == "unpark" else "the call is not ringing"
        controller._changed(f"{name}_failed", {"cause": cause})
    elif isinstance(request, Supervise):
        await supervise(controller, request)


async def _hold_sdp(connected: Connected, held: bool) -> bytes:
    direction = "sendonly" if held else "sendrecv"
    return await connected.side.offer(connected.side.accepted, direction)


async def _transfer(controller: SimpleCall, request: Transfer) -> None:
    """Send the party that stays to a new number; the transferring party is released."""
    assert controller._media is not None
    staying = controller._connected.get(request.party_index)
    if staying is None:
        return
    try:
        side_c = controller._media.new_side("c", controller.call.video)
    except Exception as exc:  # no relay ports left: the call goes on as it was
        controller.ctx.observer.shortage(controller.call, f"transfer without media ports: {exc}")
        controller._changed("transfer_failed", {"cause": f"no media ports: {exc}"})
        return
    controller.call.parties.append(request.target)
    await controller._media.play_tone(staying.side, RINGBACK_HZ)
    controller._transfer_staying = request.party_index
    try:
        new = await fork(
            controller,
            [request.target],
            side_c,
            await side_c.offer(staying.side.accepted),
            controller.call.caller_id_destination,
            request.wait_for_pickup,
        )
    except ForkFailed as failed:
        # The transfer target did not answer: the original call goes on, if it still can.
        await controller._media.stop_tone(staying.side)
        controller._changed("transfer_failed", {"cause": failed.cause})
        others = [c for i, c in controller._connected.items() if i != request.party_index]
        if not others:
            raise CallEnded(Disposition.ANSWERED, f"transfer failed: {failed.cause}") from None
        await controller._media.bridge(staying.side, others[0].side)
        return
    finally:
        controller._transfer_staying = None
    await controller._media.stop_tone(staying.side)
    for index, connected in list(controller._connected.items()):
        if index not in (request.party_index, controller._index_of(new.party)):
            connected.party.hangup_cause = "transferred"
            connected.party.ended = controller._now()
            await controller._keep_stats(connected)
            del controller._connected[index]
            controller._bye_soon(connected.leg)
    await controller._media.bridge(staying.side, new.side)
    await controller._tone_for_sandbox(new)
    controller._changed("transferred", {"to": request.target.number})
