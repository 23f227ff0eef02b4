"""Park, UnPark and PickUp on the controller, with scripted fake legs on MockClock."""

from __future__ import annotations

import pytest
import trio
import trio.testing
from fakes import EXT_A, EXT_B, EXT_C, PUBLIC, SANDBOX, answers, at, open_harness, rings

from engine.engine import CallAction
from engine.errors import (
    ActionInProgress,
    CallNotBridged,
    CallNotParked,
    CallNotRinging,
    CallParked,
    ParkingTimeInvalid,
    TransferTargetInvalid,
    ViewNotFound,
)
from engine.legs import LegHungUp
from engine.model import CallState, Disposition


@pytest.fixture
def mock_clock() -> trio.testing.MockClock:
    return trio.testing.MockClock(autojump_threshold=0)


# Source EXT_A answers at 1 s, destination EXT_B at 1 s after that: bridged at 2 s.
BRIDGED = {EXT_A: [answers(1)], EXT_B: [answers(1)]}


def park(view: str = "00", seconds: int | None = 30) -> CallAction:
    return CallAction("Park", phone_call_view_id=view, max_in_parking=seconds)


def timed(media, name: str) -> list[tuple[float, tuple[object, ...]]]:
    return [(m.at, m.args) for m in media.named(name)]


async def test_park_byes_the_parker_and_plays_hold_music_to_the_other(mock_clock) -> None:
    async with open_harness(BRIDGED) as h:
        call_id = await h.originate([EXT_A], [EXT_B])
        await trio.sleep_until(5)
        await h.engine.act(call_id, park("00"))
        await trio.sleep_until(6)
        assert h.legs.leg(EXT_A).byes == [5.0]
        assert h.legs.leg(EXT_B).byes == []
        assert timed(h.media(call_id), "play_music") == [(5.0, ("b",))]
        call = h.call(call_id)
        parked = call.parties[1]
        assert (parked.parked, parked.parked_pos, parked.parked_by) == (at(5), 1, EXT_A)
        assert call.parties[0].hangup_cause == "parked the call"
        assert "parked" in h.names(call_id)
        h.legs.leg(EXT_B).push(LegHungUp("BYE"))  # the parked party hangs up: the call ends
        call = await h.wait_ended(call_id)
        assert call.disposition is Disposition.ANSWERED
        assert len(h.legs.legs[EXT_A]) == 1  # nobody was rung back


async def test_max_in_parking_rings_the_parker_back_and_bridges_it(mock_clock) -> None:
    async with open_harness(BRIDGED) as h:
        call_id = await h.originate([EXT_A], [EXT_B])
        await trio.sleep_until(5)
        await h.engine.act(call_id, park("00", 30))
        await trio.sleep_until(37)
        back = h.legs.legs[EXT_A][1]
        assert back.started_at == 35.0  # 5 + maxInParking
        media = h.media(call_id)
        assert (36.0, ("b", "c")) in timed(media, "bridge")  # it answered after 1 s
        assert (36.0, ("b",)) in timed(media, "stop_tone")
        call = h.call(call_id)
        assert call.parties[1].parked is None and call.parties[1].parked_pos is None
        assert [p.number for p in call.parties] == [EXT_A, EXT_B, EXT_A]
        names = h.names(call_id)
        assert names.index("parked") < names.index("park_expired") < names.index("unparked")
        await h.engine.hangup(call_id)
        await h.wait_ended(call_id)
        assert back.byes == [37.0] and h.legs.leg(EXT_B).byes == [37.0]


async def test_a_ring_back_nobody_answers_ends_the_call_saying_why(mock_clock) -> None:
    async with open_harness(BRIDGED) as h:
        call_id = await h.originate([EXT_A], [EXT_B], wait_for_pickup=20)
        await trio.sleep_until(5)
        h.legs.scripts[EXT_A] = [rings(), rings()]  # two devices, neither answers now
        await h.engine.act(call_id, park("00", 10))
        call = await h.wait_ended(call_id)
        assert [leg.cancels for leg in h.legs.legs[EXT_A][1:]] == [[35.0], [35.0]]
        assert h.legs.leg(EXT_B).byes == [35.0]
        assert call.ended == at(35)
        assert call.disposition is Disposition.ANSWERED
        assert call.hangup_cause == (
            f"parked call not picked up: {EXT_A} did not answer the ring-back "
            "after maxInParking (10 s)"
        )


async def test_unpark_bridges_send_call_to_with_the_parked_party(mock_clock) -> None:
    async with open_harness({**BRIDGED, EXT_C: [answers(2)]}) as h:
        call_id = await h.originate([EXT_A], [EXT_B])
        await trio.sleep_until(5)
        await h.engine.act(call_id, park("01", 30))  # the destination parks the source
        await trio.sleep_until(10)
        unpark = CallAction(
            "UnPark", send_call_to="212", caller_id="Desk <0003*210>", phone_call_view_id="00"
        )
        await h.engine.act(call_id, unpark)
        await trio.sleep_until(13)
        assert h.legs.leg(EXT_B).byes == [5.0]
        assert h.legs.leg(EXT_C).started_at == 10.0
        assert h.legs.caller_ids[EXT_C] == "Desk <0003*210>"
        assert (12.0, ("a", "c")) in timed(h.media(call_id), "bridge")
        call = h.call(call_id)
        assert call.parties[0].parked is None and call.parties[2].answered == at(12)
        await trio.sleep_until(40)  # past maxInParking: no ring-back
        assert len(h.legs.legs[EXT_B]) == 1
        h.legs.leg(EXT_C).push(LegHungUp("BYE"))
        call = await h.wait_ended(call_id)
        assert h.legs.leg(EXT_A).byes == [40.0]


async def test_unpark_not_answered_keeps_the_call_parked(mock_clock) -> None:
    async with open_harness({**BRIDGED, EXT_C: [rings()]}) as h:
        call_id = await h.originate([EXT_A], [EXT_B])
        await trio.sleep_until(5)
        await h.engine.act(call_id, park("00", 30))
        await trio.sleep_until(10)
        await h.engine.act(call_id, CallAction("UnPark", send_call_to=EXT_C, wait_for_pickup=4))
        await trio.sleep_until(15)
        assert h.legs.leg(EXT_C).cancels == [14.0]
        call = h.call(call_id)
        assert call.state is CallState.BRIDGED
        assert call.parties[1].parked == at(5) and call.parties[1].parked_pos == 1
        assert "unpark_failed" in h.names(call_id)
        assert (14.0, ("b",)) not in timed(h.media(call_id), "stop_tone")  # music goes on
        await trio.sleep_until(36)
        assert h.legs.legs[EXT_A][1].started_at == 35.0  # the timer still runs
        await h.engine.hangup(call_id)
        await h.wait_ended(call_id)


async def test_parking_slots_are_unique_in_the_organization_and_freed(mock_clock) -> None:
    scripts = {**BRIDGED, "0003*212": [answers(1)], "0003*211": [answers(1)]}
    async with open_harness(scripts) as h:
        first = await h.originate([EXT_A], [EXT_B])
        second = await h.originate([EXT_C], [EXT_B])
        await trio.sleep_until(5)
        await h.engine.act(first, park("00"))
        await h.engine.act(second, park("00"))
        await trio.sleep_until(6)
        assert h.call(first).parties[1].parked_pos == 1
        assert h.call(second).parties[1].parked_pos == 2
        await h.engine.hangup(first)
        await h.wait_ended(first)
        third = await h.originate([EXT_A], [EXT_B])
        await trio.sleep_until(10)
        await h.engine.act(third, park("00"))
        await trio.sleep_until(11)
        assert h.call(third).parties[1].parked_pos == 1  # the ended call's slot is free
        for call_id in (second, third):
            await h.engine.hangup(call_id)
            await h.wait_ended(call_id)


async def test_pickup_cancels_every_ringing_device_and_bridges_the_caller(mock_clock) -> None:
    async with open_harness(
        {EXT_A: [answers(1)], EXT_B: [rings(), rings()], EXT_C: [answers(2)]}
    ) as h:
        call_id = await h.originate([EXT_A], [EXT_B])
        await trio.sleep_until(5)
        await h.engine.act(
            call_id, CallAction("PickUp", send_call_to=EXT_C, phone_call_view_id="01")
        )
        await trio.sleep_until(8)
        assert h.legs.leg(EXT_C).started_at == 5.0
        assert [leg.cancels for leg in h.legs.legs[EXT_B]] == [[7.0], [7.0]]
        assert (7.0, ("a", "b")) in timed(h.media(call_id), "bridge")
        call = h.call(call_id)
        assert call.state is CallState.BRIDGED and call.bridged == at(7)
        assert call.parties[2].number == EXT_C and call.parties[2].answered == at(7)
        assert call.parties[1].hangup_cause == "answered elsewhere"
        assert "pickup" in h.names(call_id)
        h.legs.leg(EXT_C).push(LegHungUp("BYE"))
        await h.wait_ended(call_id)
        assert h.legs.leg(EXT_A).byes == [8.0]


async def test_the_ringing_extension_answering_first_cancels_the_pickup(mock_clock) -> None:
    async with open_harness({EXT_A: [answers(1)], EXT_B: [answers(6)], EXT_C: [rings()]}) as h:
        call_id = await h.originate([EXT_A], [EXT_B])
        await trio.sleep_until(5)
        await h.engine.act(call_id, CallAction("PickUp", send_call_to=EXT_C))
        await trio.sleep_until(8)
        assert h.legs.leg(EXT_C).cancels == [7.0]  # EXT_B answered at 1 + 6
        assert h.call(call_id).parties[1].answered == at(7)
        await h.engine.hangup(call_id)
        await h.wait_ended(call_id)


async def test_park_refusals(mock_clock) -> None:
    async with open_harness({**BRIDGED, EXT_C: [rings()]}) as h:
        ringing = await h.originate([EXT_C], [EXT_B])
        await trio.sleep_until(3)
        with pytest.raises(CallNotBridged, match="Park needs a connected call"):
            await h.engine.act(ringing, park("00"))
        call_id = await h.originate([EXT_A], [EXT_B])
        sandbox = await h.originate([EXT_A], [SANDBOX])
        await trio.sleep_until(8)
        with pytest.raises(ViewNotFound, match="Park needs phoneCallViewId"):
            await h.engine.act(call_id, park(None))  # type: ignore[arg-type]
        with pytest.raises(ViewNotFound, match="no phoneCallView '07'"):
            await h.engine.act(call_id, park("07"))
        with pytest.raises(ViewNotFound, match="only an extension can park"):
            await h.engine.act(sandbox, park("01"))
        for seconds in (9, 3601):
            with pytest.raises(ParkingTimeInvalid, match="10-3600 seconds"):
                await h.engine.act(call_id, park("00", seconds))
        with pytest.raises(CallNotParked, match="UnPark needs a parked call"):
            await h.engine.act(call_id, CallAction("UnPark", send_call_to=EXT_C))
        await h.engine.act(call_id, park("00"))
        with pytest.raises(CallParked, match="parked already"):
            await h.engine.act(call_id, park("01"))  # before the call's task took the first
        await trio.sleep_until(9)
        for action in ("Park", "OnHold", "StartRecording", "Transfer", "PickUp", "Monitor"):
            with pytest.raises(CallParked):
                await h.engine.act(call_id, CallAction(action, "212", phone_call_view_id="01"))
        for target in (None, PUBLIC, SANDBOX, "0004*210", "0003*300", "999"):
            with pytest.raises(TransferTargetInvalid):
                await h.engine.act(call_id, CallAction("UnPark", send_call_to=target))
        with pytest.raises(ViewNotFound, match="is not parked"):
            await h.engine.act(
                call_id, CallAction("UnPark", send_call_to=EXT_C, phone_call_view_id="00")
            )
        assert EXT_C not in h.legs.caller_ids or len(h.legs.legs[EXT_C]) == 1
        for each in (ringing, call_id, sandbox):
            await h.engine.hangup(each)
            await h.wait_ended(each)


async def test_pickup_refusals(mock_clock) -> None:
    async with open_harness({**BRIDGED, EXT_C: [rings()], PUBLIC: [rings()]}) as h:
        sources_ringing = await h.originate([EXT_C], [EXT_B])
        bridged = await h.originate([EXT_A], [EXT_B])
        await trio.sleep_until(3)
        pickup = CallAction("PickUp", send_call_to="211")
        with pytest.raises(CallNotRinging, match="PickUp needs a call ringing at an extension"):
            await h.engine.act(sources_ringing, pickup)
        with pytest.raises(CallNotRinging):
            await h.engine.act(bridged, pickup)
        to_public = await h.originate([EXT_A], [PUBLIC])  # a public number: no extension rings
        dest_ringing = await h.originate([EXT_A], [EXT_C])
        await trio.sleep_until(5)
        with pytest.raises(CallNotRinging):
            await h.engine.act(to_public, pickup)
        with pytest.raises(CallNotRinging, match="phoneCallView 00 is not an extension ringing"):
            await h.engine.act(
                dest_ringing, CallAction("PickUp", send_call_to="211", phone_call_view_id="00")
            )
        with pytest.raises(TransferTargetInvalid, match="ringing already"):
            await h.engine.act(dest_ringing, CallAction("PickUp", send_call_to="212"))
        for target in (None, PUBLIC, SANDBOX, "0004*210"):
            with pytest.raises(TransferTargetInvalid):
                await h.engine.act(dest_ringing, CallAction("PickUp", send_call_to=target))
        for each in (sources_ringing, bridged, to_public, dest_ringing):
            await h.engine.hangup(each)
            await h.wait_ended(each)


async def test_without_max_in_parking_the_config_default_applies(mock_clock) -> None:
    async with open_harness(BRIDGED) as h:
        assert h.engine.config.calls.max_in_parking == 180
        call_id = await h.originate([EXT_A], [EXT_B], call_duration=1000)
        await trio.sleep_until(5)
        await h.engine.act(call_id, park("00", None))
        await trio.sleep_until(186)
        assert h.legs.legs[EXT_A][1].started_at == 185.0
        await h.engine.hangup(call_id)
        await h.wait_ended(call_id)


async def test_call_duration_still_ends_a_parked_call(mock_clock) -> None:
    async with open_harness(BRIDGED) as h:
        call_id = await h.originate([EXT_A], [EXT_B], call_duration=20)
        await trio.sleep_until(5)
        await h.engine.act(call_id, park("00", 60))
        call = await h.wait_ended(call_id)
        assert call.ended == at(21)  # source answered at 1, + callDuration
        assert call.hangup_cause == "call duration reached"
        assert h.legs.leg(EXT_B).byes == [21.0] and len(h.legs.legs[EXT_A]) == 1
        # its slot is free again
        again = await h.originate([EXT_A], [EXT_B])
        await trio.sleep_until(30)
        await h.engine.act(again, park("00"))
        await trio.sleep_until(31)
        assert h.call(again).parties[1].parked_pos == 1
        await h.engine.hangup(again)
        await h.wait_ended(again)


async def test_a_pickup_not_answered_in_its_wait_leaves_the_destination_ringing(
    mock_clock,
) -> None:
    async with open_harness({EXT_A: [answers(1)], EXT_B: [answers(15)], EXT_C: [rings()]}) as h:
        call_id = await h.originate([EXT_A], [EXT_B])
        await trio.sleep_until(5)
        await h.engine.act(call_id, CallAction("PickUp", send_call_to=EXT_C, wait_for_pickup=4))
        await trio.sleep_until(17)
        assert h.legs.leg(EXT_C).cancels == [9.0]
        assert h.legs.leg(EXT_B).cancels == []
        call = h.call(call_id)
        assert call.parties[2].hangup_cause == "no answer within waitForPickup"
        assert "pickup_failed" in h.names(call_id)
        assert call.state is CallState.BRIDGED and call.parties[1].answered == at(16)
        await h.engine.hangup(call_id)
        await h.wait_ended(call_id)


async def test_a_pickup_rings_past_the_calls_own_wait_for_pickup(mock_clock) -> None:
    async with open_harness({EXT_A: [answers(1)], EXT_B: [rings()], EXT_C: [answers(12)]}) as h:
        call_id = await h.originate([EXT_A], [EXT_B], wait_for_pickup=10)  # dest until 11
        await trio.sleep_until(5)
        await h.engine.act(call_id, CallAction("PickUp", send_call_to=EXT_C, wait_for_pickup=20))
        await trio.sleep_until(18)
        assert h.legs.leg(EXT_B).cancels == [17.0]  # when EXT_C answered, not at 11
        assert h.call(call_id).bridged == at(17)
        await h.engine.hangup(call_id)
        await h.wait_ended(call_id)


async def test_park_finishes_a_running_recording(mock_clock) -> None:
    async with open_harness(BRIDGED) as h:
        call_id = await h.originate([EXT_A], [EXT_B])
        await trio.sleep_until(3)
        await h.engine.act(call_id, CallAction("StartRecording"))
        await trio.sleep_until(5)
        await h.engine.act(call_id, park("00"))
        await trio.sleep_until(6)
        media = h.media(call_id)
        assert [m.at for m in media.named("stop_recording")] == [5.0]
        assert not media.recording
        assert all(p.recording is None for p in h.call(call_id).parties)
        await h.engine.hangup(call_id)
        await h.wait_ended(call_id)


async def test_park_waits_while_a_supervisor_listens_in(mock_clock) -> None:
    async with open_harness({**BRIDGED, EXT_C: [answers(1)]}) as h:
        call_id = await h.originate([EXT_A], [EXT_B])
        await trio.sleep_until(5)
        await h.engine.act(call_id, CallAction("Monitor", send_call_to=EXT_C))
        await trio.sleep_until(7)
        with pytest.raises(ActionInProgress, match="listening"):
            await h.engine.act(call_id, park("00"))
        assert h.legs.leg(EXT_A).byes == [] and h.call(call_id).parties[1].parked is None
        await h.engine.hangup(call_id)
        await h.wait_ended(call_id)
