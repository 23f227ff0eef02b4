"""The controller when its media backend fails (rtpengine not answering, or lost under a live
call), and a backend that cannot record: scripted fakes on MockClock."""

from __future__ import annotations

import pytest
import trio
import trio.testing
from fakes import EXT_A, EXT_B, answers, at, open_harness

from engine.call_types import MediaUnavailable
from engine.engine import CallAction
from engine.errors import ActionNotSupported
from engine.model import CallState, Disposition

DOWN = "rtpengine udp:127.0.0.1:2223 did not answer offer (3 tries, 0.5 s each)"


@pytest.fixture
def mock_clock() -> trio.testing.MockClock:
    return trio.testing.MockClock(autojump_threshold=0)


async def test_a_backend_not_answering_fails_the_call_naming_it(mock_clock) -> None:
    async with open_harness({EXT_A: [answers(1)], EXT_B: [answers(1)]}) as h:
        h.media_factory.offer_error = MediaUnavailable(DOWN)
        call_id = await h.originate([EXT_A], [EXT_B])
        call = await h.wait_ended(call_id)
        assert call.disposition is Disposition.FAILED
        assert call.hangup_cause == DOWN
        assert EXT_A not in h.legs.legs  # nobody was rung: the offer never came
        # the engine goes on: the next call, with the backend back, is bridged
        h.media_factory.offer_error = None
        again = await h.originate([EXT_A], [EXT_B])
        await trio.sleep(3)
        assert h.call(again).state is CallState.BRIDGED


async def test_media_lost_under_a_live_call_hangs_it_up_with_the_cause(mock_clock) -> None:
    async with open_harness({EXT_A: [answers(1)], EXT_B: [answers(1)]}) as h:
        call_id = await h.originate([EXT_A], [EXT_B])
        await trio.sleep_until(5)
        assert h.call(call_id).state is CallState.BRIDGED
        h.media(call_id).lose("media lost: rtpengine udp:127.0.0.1:2223 stopped answering")
        call = await h.wait_ended(call_id)
        assert call.ended == at(5)
        assert call.disposition is Disposition.ANSWERED
        assert call.hangup_cause == "media lost: rtpengine udp:127.0.0.1:2223 stopped answering"
        assert h.legs.leg(EXT_A).byes == [5.0]
        assert h.legs.leg(EXT_B).byes == [5.0]


async def test_recording_on_a_backend_that_cannot_record_is_refused(mock_clock) -> None:
    async with open_harness({EXT_A: [answers(1)], EXT_B: [answers(1)]}) as h:
        h.engine.recording_unavailable = "recording is not available with the rtpengine backend"
        call_id = await h.originate([EXT_A], [EXT_B])
        await trio.sleep_until(3)
        with pytest.raises(ActionNotSupported, match="StartRecording: recording is not avail"):
            await h.engine.act(call_id, CallAction(action="StartRecording"))
        assert h.media(call_id).named("start_recording") == []


async def test_listen_in_on_a_backend_that_cannot_mix_is_refused(mock_clock) -> None:
    async with open_harness({EXT_A: [answers(1)], EXT_B: [answers(1)]}) as h:
        h.engine.mixing_unavailable = "listen-in is not available with the rtpengine backend"
        call_id = await h.originate([EXT_A], [EXT_B])
        await trio.sleep_until(3)
        for action in ("Monitor", "Whisper", "BargeIn"):
            with pytest.raises(ActionNotSupported, match=f"{action}: listen-in is not avail"):
                await h.engine.act(call_id, CallAction(action=action, send_call_to=EXT_A))
        assert h.media(call_id).named("start_mix") == []
        assert h.call(call_id).state is CallState.BRIDGED
