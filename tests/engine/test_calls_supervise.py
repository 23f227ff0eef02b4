"""Monitor, Whisper and BargeIn on the controller: who is rung, what the relay is asked to mix,
the state rules and the refusals; scripted fake legs on MockClock."""

from __future__ import annotations

import pytest
import trio
import trio.testing
from fakes import (
    EXT_A,
    EXT_B,
    EXT_C,
    PUBLIC,
    PUBLIC_2,
    SANDBOX,
    answers,
    at,
    open_harness,
    rings,
)

from engine.engine import CallAction
from engine.errors import (
    ActionInProgress,
    CallNotBridged,
    CodecNotMixable,
    NoPartyToWhisperTo,
    TransferTargetInvalid,
    ViewNotFound,
)
from engine.legs import LegHungUp
from engine.model import CallState, Disposition, PartyStatus

BRIDGED = {EXT_A: [answers(1)], EXT_B: [answers(1)], EXT_C: [answers(2)]}
EVERYONE = [(0, 1), (0, 2), (1, 0), (1, 2), (2, 0), (2, 1)]
G722_SDP = (
    b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    b"m=audio 5004 RTP/AVP 9\r\na=rtpmap:9 G722/8000\r\na=sendrecv\r\n"
)


@pytest.fixture
def mock_clock() -> trio.testing.MockClock:
    return trio.testing.MockClock(autojump_threshold=0)


def listen(action: str, **kw: object) -> CallAction:
    return CallAction(action, send_call_to=kw.pop("to", EXT_C), **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("action", "view", "private", "hears"),
    [
        ("Monitor", None, False, [(0, 1), (1, 0), (2, 0), (2, 1)]),
        ("BargeIn", None, False, EVERYONE),
        ("Whisper", "01", False, [(0, 1), (1, 0), (1, 2), (2, 0), (2, 1)]),
        ("Whisper", "00", True, [(0, 1), (0, 2), (1, 0)]),
    ],
)
async def test_the_supervisor_is_rung_then_mixed_in_as_the_action_says(
    mock_clock, action: str, view: str | None, private: bool, hears: list[tuple[int, int]]
) -> None:
    async with open_harness(BRIDGED) as h:
        call_id = await h.originate([EXT_A], [EXT_B])
        await trio.sleep_until(5)
        await h.engine.act(
            call_id,
            listen(
                action,
                phone_call_view_id=view,
                private_whisper=private,
                caller_id="Boss <0003*210>",
            ),
        )
        await trio.sleep_until(6)
        leg = h.legs.leg(EXT_C)
        assert leg.started_at == 5.0 and leg.offer is not None
        assert h.legs.caller_ids[EXT_C] == "Boss <0003*210>"
        assert h.media(call_id).named("start_mix") == []  # it rings: nothing mixed yet
        await trio.sleep_until(8)
        (mixed,) = h.media(call_id).named("start_mix")
        assert mixed.at == 7.0
        assert mixed.args == (("a", "b", "supervisor"), hears)
        call = h.call(call_id)
        supervisor = call.parties[2]
        assert supervisor.number == EXT_C
        assert supervisor.role == action.lower()
        assert supervisor.status is PartyStatus.ON_CALL and supervisor.answered == at(7)
        assert supervisor.caller_id == "Boss <0003*210>"
        assert "supervisor_joined" in h.names(call_id)
        assert call.state is CallState.BRIDGED


async def test_the_supervisor_leaving_leaves_the_call_as_it_was(mock_clock) -> None:
    async with open_harness(BRIDGED) as h:
        call_id = await h.originate([EXT_A], [EXT_B])
        await trio.sleep_until(5)
        await h.engine.act(call_id, listen("BargeIn"))
        await trio.sleep_until(10)
        h.legs.leg(EXT_C).push(LegHungUp("BYE"))
        await trio.sleep_until(11)
        (stopped,) = h.media(call_id).named("stop_mix")
        assert stopped.at == 10.0
        call = h.call(call_id)
        assert call.state is CallState.BRIDGED
        assert call.parties[2].ended == at(10)
        assert call.parties[2].hangup_cause == "supervisor hung up"
        assert "supervisor_left" in h.names(call_id)
        assert h.legs.leg(EXT_A).byes == [] and h.legs.leg(EXT_B).byes == []
        # another supervisor may come in now
        await h.engine.act(call_id, listen("Monitor"))
        await trio.sleep_until(20)
        assert len(h.media(call_id).named("start_mix")) == 2
        assert await h.engine.hangup(call_id)
        ended = await h.wait_ended(call_id)
        assert ended.disposition is Disposition.ANSWERED
        assert h.legs.leg(EXT_C, 0).byes == []  # it had left
        assert h.legs.legs[EXT_C][1].byes == [20.0]  # the second one is hung up with the call


@pytest.mark.parametrize("leaving", [EXT_A, EXT_B])
async def test_a_party_hanging_up_ends_the_call_for_everyone(mock_clock, leaving: str) -> None:
    async with open_harness(BRIDGED) as h:
        call_id = await h.originate([EXT_A], [EXT_B])
        await trio.sleep_until(5)
        await h.engine.act(call_id, listen("Monitor"))
        await trio.sleep_until(10)
        h.legs.leg(leaving).push(LegHungUp("BYE"))
        call = await h.wait_ended(call_id)
        staying = EXT_B if leaving == EXT_A else EXT_A
        assert h.legs.leg(staying).byes == [10.0]
        assert h.legs.leg(EXT_C).byes == [10.0]  # the supervisor gets BYE too
        assert call.disposition is Disposition.ANSWERED
        assert call.parties[2].ended == at(10)


async def test_no_answer_drops_the_supervisor_and_the_call_goes_on(mock_clock) -> None:
    async with open_harness({EXT_A: [answers(1)], EXT_B: [answers(1)], EXT_C: [rings()]}) as h:
        call_id = await h.originate([EXT_A], [EXT_B])
        await trio.sleep_until(5)
        await h.engine.act(
            call_id,
            CallAction("Whisper", send_call_to="212", phone_call_view_id="00", wait_for_pickup=7),
        )
        await trio.sleep_until(20)
        assert h.legs.leg(EXT_C).cancels == [12.0]
        assert h.media(call_id).named("start_mix") == []
        call = h.call(call_id)
        assert call.state is CallState.BRIDGED
        assert call.parties[2].hangup_cause == "no answer within waitForPickup"
        failed = [e for _, e in h.events if e.event == "supervisor_failed"]
        assert failed and failed[0].data["cause"] == "no answer within waitForPickup"
        # nobody is joining any more: the next action is taken
        await h.engine.act(call_id, CallAction("OnHold", phone_call_view_id="01"))


async def test_a_party_leaving_while_the_supervisor_rings_ends_everything(mock_clock) -> None:
    async with open_harness({EXT_A: [answers(1)], EXT_B: [answers(1)], EXT_C: [rings()]}) as h:
        call_id = await h.originate([EXT_A], [EXT_B])
        await trio.sleep_until(5)
        await h.engine.act(call_id, listen("BargeIn"))
        await trio.sleep_until(6)
        h.legs.leg(EXT_A).push(LegHungUp("BYE"))
        await h.wait_ended(call_id)
        assert h.legs.leg(EXT_C).cancels == [6.0]
        assert h.legs.leg(EXT_B).byes == [6.0]


async def test_a_mix_the_relay_refuses_drops_the_supervisor_with_bye(mock_clock) -> None:
    async with open_harness(BRIDGED) as h:
        call_id = await h.originate([EXT_A], [EXT_B])
        await trio.sleep_until(5)
        h.media(call_id).mix_error = ValueError("the mixer takes G.711 only")
        await h.engine.act(call_id, listen("Monitor"))
        await trio.sleep_until(10)
        assert h.legs.leg(EXT_C).byes == [7.0]
        failed = [e for _, e in h.events if e.event == "supervisor_failed"]
        assert "G.711" in str(failed[0].data["cause"])
        assert h.call(call_id).state is CallState.BRIDGED


async def test_refusals(mock_clock) -> None:
    scripts = {EXT_A: [answers(1)], EXT_B: [answers(1)], EXT_C: [rings()]}
    async with open_harness(scripts) as h:
        call_id = await h.originate([EXT_A], [EXT_B])
        with pytest.raises(CallNotBridged):
            await h.engine.act(call_id, listen("Monitor"))
        await trio.sleep_until(5)
        for bad in (None, "", "0004*210", "300", "5551234", EXT_A):
            with pytest.raises(TransferTargetInvalid):
                await h.engine.act(call_id, CallAction("Monitor", send_call_to=bad))
        with pytest.raises(ViewNotFound):
            await h.engine.act(call_id, listen("BargeIn", phone_call_view_id="07"))
        with pytest.raises(NoPartyToWhisperTo, match="phoneCallViewId"):
            await h.engine.act(call_id, listen("Whisper"))  # both parties are extensions
        await h.engine.act(call_id, listen("Monitor"))
        await trio.sleep_until(6)  # ringing
        with pytest.raises(ActionInProgress):
            await h.engine.act(call_id, listen("BargeIn", to="211"))
        with pytest.raises(ActionInProgress):
            await h.engine.act(call_id, CallAction("Transfer", send_call_to="0003*00"))


async def test_whisper_goes_to_the_one_party_of_the_organization(mock_clock) -> None:
    async with open_harness({EXT_A: [answers(1)], PUBLIC: [answers(1)], EXT_C: [answers(1)]}) as h:
        call_id = await h.originate([PUBLIC], [EXT_A])
        await trio.sleep_until(5)
        await h.engine.act(call_id, listen("Whisper"))
        await trio.sleep_until(7)
        (mixed,) = h.media(call_id).named("start_mix")
        assert (1, 2) in mixed.args[1] and (0, 2) not in mixed.args[1]


async def test_whisper_without_a_party_of_the_organization_is_refused(mock_clock) -> None:
    async with open_harness({PUBLIC: [answers(1)], PUBLIC_2: [answers(1)]}) as h:
        call_id = await h.originate([PUBLIC], [PUBLIC_2])
        await trio.sleep_until(5)
        with pytest.raises(NoPartyToWhisperTo):
            await h.engine.act(call_id, listen("Whisper", phone_call_view_id="00"))


async def test_a_call_to_a_sandbox_number_can_be_monitored(mock_clock) -> None:
    async with open_harness({EXT_A: [answers(1)], EXT_C: [answers(1)]}) as h:
        call_id = await h.originate([EXT_A], [SANDBOX])
        await trio.sleep_until(5)
        await h.engine.act(call_id, listen("Monitor"))
        await trio.sleep_until(7)
        (mixed,) = h.media(call_id).named("start_mix")
        assert mixed.args[0] == ("a", "b", "supervisor")


async def test_a_party_on_another_codec_than_g711_is_refused_saying_which(mock_clock) -> None:
    async with open_harness({EXT_A: [answers(1)], EXT_B: [answers(1, sdp=G722_SDP)]}) as h:
        call_id = await h.originate([EXT_A], [EXT_B])
        await trio.sleep_until(5)
        with pytest.raises(CodecNotMixable, match=r"0003\*211 talks G722"):
            await h.engine.act(call_id, listen("BargeIn"))
        assert EXT_C not in h.legs.legs


async def test_a_listen_in_queued_behind_a_transfer_fails_without_ringing(mock_clock) -> None:
    scripts = {EXT_A: [answers(1)], EXT_B: [answers(1)], EXT_C: [answers(1)], PUBLIC: [rings()]}
    async with open_harness(scripts) as h:
        call_id = await h.originate([EXT_A], [EXT_B], allow_public_transfer=True)
        await trio.sleep_until(5)
        # both accepted by the engine before the call's task took the first
        await h.engine.act(call_id, CallAction("Transfer", send_call_to=PUBLIC))
        await h.engine.act(call_id, listen("Monitor"))
        await trio.sleep_until(8)
        failed = [e for _, e in h.events if e.event == "supervisor_failed"]
        assert failed and failed[0].data["cause"] == "another party is joining"
        assert EXT_C not in h.legs.legs
