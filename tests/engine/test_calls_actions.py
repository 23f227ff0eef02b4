"""PhoneCall actions and API hang-up on the controller, with scripted fake legs on MockClock."""

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

from engine.call_types import RINGBACK_HZ
from engine.engine import CallAction
from engine.errors import (
    ActionNotSupported,
    CallNotBridged,
    CallNotFound,
    CallNotLive,
    PublicTransferNotAllowed,
    RecordingFormatUnsupported,
    TransferTargetInvalid,
    ViewNotFound,
)
from engine.legs import LegHungUp
from engine.model import CallState, Disposition, PartyStatus
from sip.uac_session import ReinviteFailed


@pytest.fixture
def mock_clock() -> trio.testing.MockClock:
    return trio.testing.MockClock(autojump_threshold=0)


# Source EXT_A answers at 1 s, destination EXT_B at 1 s after that: bridged at 2 s.
BRIDGED = {EXT_A: [answers(1)], EXT_B: [answers(1)]}


async def until(seconds: float) -> None:
    await trio.sleep_until(seconds)


# --- hang-up via the API -------------------------------------------------------------------


async def test_hangup_while_the_sources_ring_cancels_every_fork(mock_clock) -> None:
    async with open_harness({EXT_A: [rings(), rings()], EXT_B: [rings()]}) as h:
        call_id = await h.originate([EXT_A, EXT_B], [EXT_C])
        await until(3)
        assert await h.engine.hangup(call_id)
        call = await h.wait_ended(call_id)
        for leg in [*h.legs.legs[EXT_A], *h.legs.legs[EXT_B]]:
            assert leg.cancels == [3.0] and leg.byes == []
        assert EXT_C not in h.legs.legs
        assert call.ended == at(3)
        assert call.disposition is Disposition.NO_ANSWER
        assert call.hangup_cause == "hung up via the API"


async def test_hangup_while_the_destination_rings(mock_clock) -> None:
    async with open_harness({EXT_A: [answers(1)], EXT_B: [rings()]}) as h:
        call_id = await h.originate([EXT_A], [EXT_B])
        await until(4)
        assert await h.engine.hangup(call_id, phone_number=EXT_B)
        call = await h.wait_ended(call_id)
        assert h.legs.leg(EXT_B).cancels == [4.0]
        assert h.legs.leg(EXT_A).byes == [4.0]
        assert call.ended == at(4) and call.bridged is None


async def test_hangup_while_bridged_byes_both_legs(mock_clock) -> None:
    async with open_harness(BRIDGED) as h:
        call_id = await h.originate([EXT_A], [EXT_B])
        await until(10)
        assert h.call(call_id).state is CallState.BRIDGED
        assert await h.engine.hangup(call_id)
        call = await h.wait_ended(call_id)
        assert h.legs.leg(EXT_A).byes == [10.0]
        assert h.legs.leg(EXT_B).byes == [10.0]
        assert call.disposition is Disposition.ANSWERED
        assert call.hangup_cause == "hung up via the API"
        assert call.billable_seconds == 8
        assert h.names(call_id).count("ended") == 1


async def test_hangup_naming_a_stranger_changes_nothing(mock_clock) -> None:
    async with open_harness(BRIDGED) as h:
        call_id = await h.originate([EXT_A], [EXT_B])
        await until(5)
        before = h.call(call_id).to_dict()
        seen = len(h.events)
        assert await h.engine.hangup(call_id, phone_number="5555555") is False
        await until(30)
        assert h.call(call_id).to_dict() == before
        assert len(h.events) == seen
        assert h.legs.leg(EXT_A).byes == [] and h.legs.leg(EXT_B).byes == []
        assert await h.engine.hangup("0" * 20) is False
        assert await h.engine.hangup(call_id, phone_number=EXT_A)
        await h.wait_ended(call_id)


# --- hold ----------------------------------------------------------------------------------


async def test_hold_and_unhold_reinvite_the_right_leg(mock_clock) -> None:
    async with open_harness(BRIDGED) as h:
        call_id = await h.originate([EXT_A], [EXT_B])
        await until(5)
        await h.engine.act(call_id, CallAction("OnHold", transfer_number=EXT_B))
        await until(6)
        b = h.legs.leg(EXT_B)
        assert [t for t, _ in b.reinvites] == [5.0]
        assert b"a=sendonly" in b.reinvites[0][1]
        assert b"m=audio 20000 " in b.reinvites[0][1]  # still the relay's side B
        assert h.call(call_id).parties[1].on_hold == at(5)
        await h.engine.act(call_id, CallAction("OffHold", transfer_number=EXT_B))
        await until(9)
        assert [t for t, _ in b.reinvites] == [5.0, 6.0]
        assert b"a=sendrecv" in b.reinvites[1][1]
        assert h.call(call_id).parties[1].on_hold is None
        assert h.legs.leg(EXT_A).reinvites == []
        media = h.media(call_id)
        assert [(c.at, c.args) for c in media.named("set_hold")] == [
            (5.0, ("b", True)),
            (6.0, ("b", False)),
        ]
        names = h.names(call_id)
        assert names.index("hold") < names.index("unhold")
        await h.engine.hangup(call_id)
        await h.wait_ended(call_id)


async def test_hold_by_view_id_reaches_the_source(mock_clock) -> None:
    async with open_harness(BRIDGED) as h:
        call_id = await h.originate([EXT_A], [EXT_B])
        await until(5)
        await h.engine.act(call_id, CallAction("OnHold", phone_call_view_id="0"))
        await until(6)
        a = h.legs.leg(EXT_A)
        assert len(a.reinvites) == 1 and b"a=sendonly" in a.reinvites[0][1]
        assert b"m=audio 10000 " in a.reinvites[0][1]
        assert h.legs.leg(EXT_B).reinvites == []
        assert [c.args for c in h.media(call_id).named("set_hold")] == [("a", True)]
        with pytest.raises(ViewNotFound, match="no phoneCallView '7' in this call"):
            await h.engine.act(call_id, CallAction("OnHold", phone_call_view_id="7"))
        await h.engine.hangup(call_id)
        await h.wait_ended(call_id)


# --- recording -----------------------------------------------------------------------------


async def test_start_and_stop_recording(mock_clock) -> None:
    async with open_harness(BRIDGED) as h:
        call_id = await h.originate([EXT_A], [EXT_B])
        await until(4)
        await h.engine.act(call_id, CallAction("StartRecording"))
        await h.engine.act(call_id, CallAction("StartRecording"))  # already recording: no-op
        await until(5)
        call = h.call(call_id)
        assert [p.recording for p in call.parties] == [at(4), at(4)]
        await h.engine.act(call_id, CallAction("StopRecording", format="wav"))
        await until(6)
        assert [p.recording for p in call.parties] == [None, None]
        media = h.media(call_id)
        assert [(c.at, c.args) for c in media.named("start_recording")] == [(4.0, ("a", "b"))]
        assert [c.at for c in media.named("stop_recording")] == [5.0]
        assert "recording_started" in h.names(call_id)
        assert "recording_stopped" in h.names(call_id)
        with pytest.raises(RecordingFormatUnsupported, match="'mp3' unsupported"):
            await h.engine.act(call_id, CallAction("StartRecording", format="mp3"))
        await h.engine.hangup(call_id)
        await h.wait_ended(call_id)


async def test_recording_stops_when_the_call_ends(mock_clock) -> None:
    async with open_harness({EXT_A: [answers(1)], EXT_B: [answers(1, hangup=10)]}) as h:
        call_id = await h.originate([EXT_A], [EXT_B])
        await until(4)
        await h.engine.act(call_id, CallAction("StartRecording"))
        await h.wait_ended(call_id)
        media = h.media(call_id)
        assert [c.at for c in media.named("stop_recording")] == [11.0]
        assert media.closed


# --- transfer ------------------------------------------------------------------------------


async def test_transfer_rings_the_target_and_releases_the_transferred_party(mock_clock) -> None:
    scripts = {**BRIDGED, EXT_C: [answers(3, hangup=10)]}
    async with open_harness(scripts) as h:
        call_id = await h.originate([EXT_A], [EXT_B])
        await until(5)
        await h.engine.act(call_id, CallAction("Transfer", send_call_to=EXT_C))
        await until(6)
        c = h.legs.leg(EXT_C)
        assert c.started_at == 5.0
        assert b"m=audio 30000 " in (c.offer or b"")
        media = h.media(call_id)
        assert (5.0, ("a", RINGBACK_HZ)) in [(m.at, m.args) for m in media.named("play_tone")]
        call = await h.wait_ended(call_id)
        assert h.legs.leg(EXT_B).byes == [8.0]
        assert h.legs.leg(EXT_A).byes == [15.0]  # the new party hung up at 5 + 10
        assert (8.0, ("a", "c")) in [(m.at, m.args) for m in media.named("bridge")]
        assert call.parties[1].hangup_cause == "transferred"
        assert call.parties[1].ended == at(8)
        # every party's counters, the transferred one's too, in one read at the end
        assert [(m.at, m.args) for m in media.named("stats")] == [(15.0, ("b", "c", "a"))]
        assert call.parties[1].media is not None
        assert [p.number for p in call.parties] == [EXT_A, EXT_B, EXT_C]
        assert call.parties[2].answered == at(8)
        assert call.disposition is Disposition.ANSWERED
        assert "transferred" in h.names(call_id)


async def test_transfer_to_a_sandbox_number(mock_clock) -> None:
    async with open_harness(BRIDGED) as h:
        call_id = await h.originate([EXT_A], [EXT_B])
        await until(5)
        await h.engine.act(call_id, CallAction("Transfer", send_call_to=SANDBOX))
        await until(7)
        assert h.legs.leg(EXT_B).byes == [6.0]  # *00 answers after 1 s
        assert h.call(call_id).parties[2].status is PartyStatus.ON_CALL
        await h.engine.hangup(call_id)
        await h.wait_ended(call_id)
        assert h.legs.leg(EXT_A).byes == [7.0]


async def test_transfer_target_not_answering_keeps_the_call(mock_clock) -> None:
    async with open_harness({**BRIDGED, EXT_C: [rings()]}) as h:
        call_id = await h.originate([EXT_A], [EXT_B])
        await until(5)
        await h.engine.act(call_id, CallAction("Transfer", send_call_to=EXT_C, wait_for_pickup=4))
        await until(12)
        assert h.legs.leg(EXT_C).cancels == [9.0]
        call = h.call(call_id)
        assert call.state is CallState.BRIDGED
        assert h.legs.leg(EXT_A).byes == [] and h.legs.leg(EXT_B).byes == []
        media = h.media(call_id)
        assert (9.0, ("a", "b")) in [(m.at, m.args) for m in media.named("bridge")]
        assert (9.0, ("a",)) in [(m.at, m.args) for m in media.named("stop_tone")]
        assert "transfer_failed" in h.names(call_id)
        # The call goes on: a BYE from the destination still ends it.
        h.legs.leg(EXT_B).push(LegHungUp("BYE"))
        call = await h.wait_ended(call_id)
        assert h.legs.leg(EXT_A).byes == [12.0]
        assert call.disposition is Disposition.ANSWERED


async def test_hangup_while_a_transfer_rings_ends_the_call(mock_clock) -> None:
    async with open_harness({**BRIDGED, EXT_C: [rings()]}) as h:
        call_id = await h.originate([EXT_A], [EXT_B])
        await until(5)
        await h.engine.act(call_id, CallAction("Transfer", send_call_to=EXT_C))
        await until(7)
        assert await h.engine.hangup(call_id)
        call = await h.wait_ended(call_id)
        assert call.ended == at(7)
        assert h.legs.leg(EXT_C).cancels == [7.0]
        assert h.legs.leg(EXT_A).byes == [7.0]
        assert h.legs.leg(EXT_B).byes == [7.0]
        assert call.disposition is Disposition.ANSWERED


async def test_the_staying_party_hanging_up_during_a_transfer_ends_the_call(mock_clock) -> None:
    async with open_harness({**BRIDGED, EXT_C: [rings()]}) as h:
        call_id = await h.originate([EXT_A], [EXT_B])
        await until(5)
        await h.engine.act(call_id, CallAction("Transfer", send_call_to=EXT_C))
        await until(7)
        h.legs.leg(EXT_A).push(LegHungUp("BYE"))
        call = await h.wait_ended(call_id)
        assert call.ended == at(7)
        assert h.legs.leg(EXT_C).cancels == [7.0]
        assert h.legs.leg(EXT_B).byes == [7.0]
        assert call.parties[0].hangup_cause == "source hung up"


async def test_transfer_to_a_public_number_needs_allow_public_transfer(mock_clock) -> None:
    async with open_harness({**BRIDGED, PUBLIC: [answers(1)]}) as h:
        call_id = await h.originate([EXT_A], [EXT_B])
        await until(5)
        with pytest.raises(PublicTransferNotAllowed, match="allowPublicTransfer=true"):
            await h.engine.act(call_id, CallAction("Transfer", send_call_to=PUBLIC))
        await until(10)
        assert PUBLIC not in h.legs.legs
        assert h.call(call_id).state is CallState.BRIDGED
        await h.engine.hangup(call_id)
        await h.wait_ended(call_id)

        allowed = await h.originate([EXT_A], [EXT_B], allow_public_transfer=True)
        await trio.sleep(5)
        await h.engine.act(allowed, CallAction("Transfer", send_call_to=PUBLIC))
        await trio.sleep(2)
        assert h.legs.leg(PUBLIC).answered
        assert h.legs.leg(EXT_B, 1).byes != []
        await h.engine.hangup(allowed)
        await h.wait_ended(allowed)


async def test_transfer_needs_a_target(mock_clock) -> None:
    async with open_harness(BRIDGED) as h:
        call_id = await h.originate([EXT_A], [EXT_B])
        await until(5)
        for target in (None, "not a number"):
            with pytest.raises(TransferTargetInvalid):
                await h.engine.act(call_id, CallAction("Transfer", send_call_to=target))
        await h.engine.hangup(call_id)
        await h.wait_ended(call_id)


# --- refused actions -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "action", ["OnHold", "OffHold", "StartRecording", "StopRecording", "Transfer"]
)
async def test_actions_on_a_call_that_is_not_bridged_are_refused(mock_clock, action: str) -> None:
    async with open_harness({EXT_A: [answers(1)], EXT_B: [rings()]}) as h:
        call_id = await h.originate([EXT_A], [EXT_B])
        await until(3)
        with pytest.raises(CallNotBridged, match="needs a connected call"):
            await h.engine.act(call_id, CallAction(action, send_call_to=EXT_C))
        await until(5)
        assert h.legs.leg(EXT_A).reinvites == [] and h.legs.leg(EXT_B).reinvites == []
        assert h.media(call_id).named("start_recording") == []
        assert EXT_C not in h.legs.legs
        await h.engine.hangup(call_id)
        await h.wait_ended(call_id)


async def test_unknown_actions_and_ended_or_missing_calls_are_refused(mock_clock) -> None:
    async with open_harness({EXT_A: [answers(1)], EXT_B: [answers(1, hangup=3)]}) as h:
        call_id = await h.originate([EXT_A], [EXT_B])
        await until(3)
        with pytest.raises(ActionNotSupported, match="action 'Dance' is not implemented"):
            await h.engine.act(call_id, CallAction("Dance"))
        await h.wait_ended(call_id)
        with pytest.raises(CallNotLive) as ended:
            await h.engine.act(call_id, CallAction("OnHold"))
        assert ended.value.call_id == call_id
        with pytest.raises(CallNotFound) as missing:
            await h.engine.act("0" * 20, CallAction("OnHold"))
        assert missing.value.call_id == "0" * 20


async def test_the_transferred_party_leaving_early_does_not_stop_the_transfer(mock_clock) -> None:
    async with open_harness({**BRIDGED, EXT_C: [answers(4, hangup=20)]}) as h:
        call_id = await h.originate([EXT_A], [EXT_B])
        await until(5)
        await h.engine.act(call_id, CallAction("Transfer", send_call_to=EXT_C))
        await until(7)
        h.legs.leg(EXT_B).push(LegHungUp("BYE"))
        await until(10)
        call = h.call(call_id)
        assert call.state is CallState.BRIDGED
        assert h.legs.leg(EXT_C).cancels == [] and h.legs.leg(EXT_C).answered
        assert h.legs.leg(EXT_A).byes == []
        assert (9.0, ("a", "c")) in [(m.at, m.args) for m in h.media(call_id).named("bridge")]
        assert call.parties[1].ended == at(7)
        call = await h.wait_ended(call_id)
        assert h.legs.leg(EXT_A).byes == [25.0]


async def test_a_failed_transfer_after_the_transferred_party_left_ends_the_call(
    mock_clock,
) -> None:
    async with open_harness({**BRIDGED, EXT_C: [rings()]}) as h:
        call_id = await h.originate([EXT_A], [EXT_B])
        await until(5)
        await h.engine.act(call_id, CallAction("Transfer", send_call_to=EXT_C, wait_for_pickup=6))
        await until(7)
        h.legs.leg(EXT_B).push(LegHungUp("BYE"))
        call = await h.wait_ended(call_id)
        assert call.ended == at(11)
        assert h.legs.leg(EXT_C).cancels == [11.0]
        assert h.legs.leg(EXT_A).byes == [11.0]
        assert call.hangup_cause.startswith("transfer failed")


async def test_a_second_transfer_while_one_rings_is_ignored(mock_clock) -> None:
    async with open_harness({**BRIDGED, EXT_C: [answers(3)], PUBLIC: [answers(1)]}) as h:
        call_id = await h.originate([EXT_A], [EXT_B], allow_public_transfer=True)
        await until(5)
        await h.engine.act(call_id, CallAction("Transfer", send_call_to=EXT_C))
        await until(6)
        await h.engine.act(call_id, CallAction("Transfer", send_call_to=PUBLIC))
        await until(12)
        assert PUBLIC not in h.legs.legs
        assert h.legs.leg(EXT_B).byes == [8.0]
        assert (8.0, ("a", "c")) in [(m.at, m.args) for m in h.media(call_id).named("bridge")]
        assert h.names(call_id).count("transfer_failed") == 1
        await h.engine.hangup(call_id)
        call = await h.wait_ended(call_id)
        assert h.legs.leg(EXT_C).byes == [12.0]
        assert call.disposition is Disposition.ANSWERED


async def test_a_transferred_public_party_is_charged_only_for_its_own_time(mock_clock) -> None:
    # PUBLIC is bridged from 2 s to the transfer's answer at 8 s (one started minute); the
    # public target is in the call from 8 s until it hangs up at 5 + 3 + 100 = 108 s (two).
    scripts = {EXT_A: [answers(1)], PUBLIC: [answers(1)], PUBLIC_2: [answers(3, hangup=103)]}
    async with open_harness(scripts) as h:
        call_id = await h.originate([EXT_A], [PUBLIC], allow_public_transfer=True)
        await until(5)
        await h.engine.act(call_id, CallAction("Transfer", send_call_to=PUBLIC_2))
        call = await h.wait_ended(call_id)
        assert call.ended == at(108)
        assert call.parties[1].ended == at(8)
        assert call.charge == pytest.approx(0.02 * 1 + 0.02 * 2)


async def test_two_answering_destinations_bridge_only_once(mock_clock) -> None:
    scripts = {EXT_A: [answers(1)], EXT_B: [answers(2)], EXT_C: [answers(2)]}
    async with open_harness(scripts) as h:
        call_id = await h.originate([EXT_A], [EXT_B, EXT_C])
        await until(10)
        b, c = h.legs.leg(EXT_B), h.legs.leg(EXT_C)
        loser = b if b.cancels else c
        assert loser.cancels == [3.0] and loser.acked_and_byed
        assert [m.args for m in h.media(call_id).named("bridge")] == [("a", "b")]
        assert h.names(call_id).count("bridged") == 1
        await h.engine.hangup(call_id)
        call = await h.wait_ended(call_id)
        winner = b if loser is c else c
        assert winner.byes == [10.0] and loser.byes == []
        assert sum(p.answered is not None for p in call.parties if p.role == "destination") == 1


async def test_a_refused_hold_reinvite_keeps_the_call(mock_clock) -> None:
    async with open_harness(BRIDGED) as h:
        call_id = await h.originate([EXT_A], [EXT_B])
        await until(5)
        h.legs.leg(EXT_B).reinvite_error = ReinviteFailed(488, "Not Acceptable Here")
        await h.engine.act(call_id, CallAction("OnHold", transfer_number=EXT_B))
        await until(8)
        call = h.call(call_id)
        assert call.state is CallState.BRIDGED
        assert call.parties[1].on_hold is None
        assert h.media(call_id).named("set_hold") == []
        assert "hold_failed" in h.names(call_id)
        assert h.legs.leg(EXT_A).byes == [] and h.legs.leg(EXT_B).byes == []
        await h.engine.hangup(call_id)
        call = await h.wait_ended(call_id)
        assert call.disposition is Disposition.ANSWERED
        assert call.hangup_cause == "hung up via the API"


async def test_a_recording_that_cannot_start_keeps_the_call(mock_clock) -> None:
    async with open_harness(BRIDGED) as h:
        call_id = await h.originate([EXT_A], [EXT_B])
        await until(4)
        h.media(call_id).recording_error = OSError("No space left on device")
        await h.engine.act(call_id, CallAction("StartRecording"))
        await until(6)
        call = h.call(call_id)
        assert call.state is CallState.BRIDGED
        assert [p.recording for p in call.parties] == [None, None]
        assert "recording_failed" in h.names(call_id)
        await h.engine.act(call_id, CallAction("StopRecording"))
        await h.engine.hangup(call_id)
        call = await h.wait_ended(call_id)
        assert h.media(call_id).named("stop_recording") == []
        assert call.disposition is Disposition.ANSWERED
        assert call.hangup_cause == "hung up via the API"


async def test_no_party_still_looks_ringing_once_the_call_ended(mock_clock) -> None:
    async with open_harness({EXT_A: [answers(1)], EXT_B: [rings()], EXT_C: [rings()]}) as h:
        call_id = await h.originate([EXT_A], [EXT_B, EXT_C])
        await until(4)
        assert h.call(call_id).parties[1].status is PartyStatus.RINGING
        await h.engine.hangup(call_id)
        call = await h.wait_ended(call_id)
        assert [p.status for p in call.parties] == [PartyStatus.UNKNOWN] * 3
        assert all(p.ended == at(4) for p in call.parties)
        assert [p.hangup_cause for p in call.parties] == ["hung up via the API"] * 3
        stored = h.store.get_call(call_id)
        assert stored is not None
        assert [p.status for p in stored.parties] == [PartyStatus.UNKNOWN] * 3


async def test_a_relay_gone_while_recording_still_ends_the_call(mock_clock) -> None:
    async with open_harness({EXT_A: [answers(1)], EXT_B: [answers(1, hangup=10)]}) as h:
        call_id = await h.originate([EXT_A], [EXT_B])
        await until(4)
        await h.engine.act(call_id, CallAction("StartRecording"))
        await until(5)
        h.media(call_id).stop_error = RuntimeError("relay process is gone")
        call = await h.wait_ended(call_id)
        assert call.state is CallState.ENDED
        assert call.disposition is Disposition.ANSWERED
        assert h.names(call_id).count("ended") == 1
        assert h.store.get_call(call_id).state is CallState.ENDED


async def test_a_transfer_without_media_ports_fails_and_the_call_goes_on(mock_clock) -> None:
    async with open_harness({**BRIDGED, EXT_C: [answers(1)]}) as h:
        call_id = await h.originate([EXT_A], [EXT_B])
        await until(5)
        h.media(call_id).side_error = RuntimeError("no free RTP/RTCP port pair")
        await h.engine.act(call_id, CallAction("Transfer", send_call_to=EXT_C))
        await until(6)
        call = h.call(call_id)
        assert call.state is CallState.BRIDGED
        assert [p.number for p in call.parties] == [EXT_A, EXT_B]
        assert not h.legs.legs.get(EXT_C)
        assert "transfer_failed" in h.names(call_id)
