"""Inbound SIP calls (the softswitch case) on the controller: 183 with ringback first, 200 OK
only when the destination answers, the destination's failure as the caller's final status."""

from __future__ import annotations

import pytest
import trio
import trio.testing
from fakes import (
    EXT_A,
    EXT_B,
    EXT_C,
    FakeInbound,
    Harness,
    answers,
    at,
    charged_extension,
    fails,
    open_harness,
    party_sdp,
    rings,
)

from engine.call_types import RINGBACK_HZ
from engine.legs import LegAnswered, LegHungUp, LegRinging
from engine.model import CallState, Disposition, Flow, PartyStatus

CALLER_OFFER = party_sdp(6000)


@pytest.fixture
def mock_clock() -> trio.testing.MockClock:
    return trio.testing.MockClock(autojump_threshold=0)


def start(
    h: Harness,
    destination: str,
    *,
    from_extension: bool = True,
    offer: bytes | None = CALLER_OFFER,
    ack_answer: bytes | None = None,
) -> tuple[str, FakeInbound]:
    legs: list[FakeInbound] = []

    def make_leg(index: int, label: str) -> FakeInbound:
        leg = FakeInbound(index, label, offer)
        leg.ack_answer = ack_answer
        legs.append(leg)
        return leg

    call = h.engine.start_inbound(
        caller_number=EXT_A if from_extension else "+4930111111",
        caller_name=None if from_extension else "Carrier Caller",
        caller_extension=charged_extension() if from_extension else None,
        organization_id=3,
        destination=destination,
        video=False,
        make_leg=make_leg,
    )
    assert h.store.get_call(call.id) is not None  # recorded before the caller hears anything
    return call.id, legs[0]


async def test_caller_gets_183_then_200_only_when_the_destination_answers(mock_clock) -> None:
    async with open_harness({EXT_B: [answers(3, hangup=10)]}) as h:
        call_id, caller = start(h, EXT_B)
        await trio.sleep_until(2)
        assert len(caller.progressed) == 1
        when, status, sdp = caller.progressed[0]
        assert (when, status) == (0.0, 183)
        assert sdp is not None and b"m=audio 10000 " in sdp  # our side A answers the offer
        assert caller.accepted == []
        assert h.call(call_id).state is CallState.CALLING_DESTINATION
        call = await h.wait_ended(call_id)
        assert [t for t, _ in caller.accepted] == [3.0]
        assert caller.accepted[0][1] == sdp
        dest = h.legs.leg(EXT_B)
        assert dest.started_at == 0.0
        assert b"m=audio 20000 " in (dest.offer or b"")
        media = h.media(call_id)
        assert [(c.at, c.args) for c in media.named("play_tone")] == [(0.0, ("a", RINGBACK_HZ))]
        assert [(c.at, c.args) for c in media.named("bridge")] == [(3.0, ("a", "b"))]
        side_a = next(s for s in media.sides if s.label == "a")
        assert side_a.accepted == CALLER_OFFER
        assert caller.byes == [(10.0, None)]  # a BYE after the 200 OK, not a rejection
        assert call.origin == "sip"
        assert call.disposition is Disposition.ANSWERED
        assert call.bridged == at(3) and call.ended == at(10)
        assert call.extension == EXT_A


async def test_a_late_offer_gets_180_then_our_offer_in_the_200_and_the_ack_answer_is_used(
    mock_clock,
) -> None:
    async with open_harness({EXT_B: [answers(3, hangup=10)]}) as h:
        call_id, caller = start(h, EXT_B, offer=None, ack_answer=CALLER_OFFER)
        await trio.sleep_until(2)
        assert caller.progressed == [(0.0, 180, None)]  # no offer in an unreliable 18x
        dest = h.legs.leg(EXT_B)
        assert b"m=audio 20000 " in (dest.offer or b"")  # the destination is called anyway
        call = await h.wait_ended(call_id)
        when, offer = caller.accepted[0]
        assert when == 3.0 and offer is not None and b"m=audio 10000 " in offer  # side A
        side_a = h.media(call_id).sides[0]
        assert side_a.label == "a" and side_a.remote == [CALLER_OFFER]  # the ACK's answer
        assert call.disposition is Disposition.ANSWERED
        assert call.bridged == at(3)


async def test_a_late_offer_whose_ack_has_no_answer_ends_the_call(mock_clock) -> None:
    async with open_harness({EXT_B: [answers(3)]}) as h:
        call_id, caller = start(h, EXT_B, offer=None, ack_answer=None)
        call = await h.wait_ended(call_id)
        assert call.disposition is Disposition.FAILED
        assert call.hangup_cause == "the caller's ACK carried no SDP answer"
        assert call.bridged is None
        assert h.legs.leg(EXT_B).byes == [3.0]  # the answered destination is released
        assert [t for t, _ in caller.byes] == [3.0]


@pytest.mark.parametrize(
    ("answer", "cause"),
    [
        (b"not sdp", "the caller's SDP answer is unusable"),
        (CALLER_OFFER.replace(b"m=audio 6000 ", b"m=audio 0 "), "rejected every stream"),
    ],
)
async def test_a_late_offer_answer_we_cannot_use_ends_the_call(
    mock_clock, answer: bytes, cause: str
) -> None:
    async with open_harness({EXT_B: [answers(3)]}) as h:
        call_id, _caller = start(h, EXT_B, offer=None, ack_answer=answer)
        call = await h.wait_ended(call_id)
        assert call.disposition is Disposition.FAILED
        assert cause in (call.hangup_cause or "")
        assert h.legs.leg(EXT_B).byes == [3.0]


async def test_destination_busy_rejects_the_caller_with_486(mock_clock) -> None:
    async with open_harness({EXT_B: [fails(2, 486, "Busy Here")]}) as h:
        call_id, caller = start(h, EXT_B)
        call = await h.wait_ended(call_id)
        assert caller.final_status == 486
        assert caller.byes == [(2.0, 486)]
        assert caller.accepted == []
        assert call.disposition is Disposition.BUSY


async def test_destination_not_answering_rejects_the_caller_with_480(mock_clock) -> None:
    async with open_harness({EXT_B: [rings(), rings()]}) as h:
        call_id, caller = start(h, EXT_B)
        call = await h.wait_ended(call_id)
        for leg in h.legs.legs[EXT_B]:
            assert leg.cancels == [25.0]  # [calls] wait_for_pickup
        assert caller.byes == [(25.0, 480)]
        assert call.disposition is Disposition.NO_ANSWER


async def test_unreachable_destination_rejects_the_caller(mock_clock) -> None:
    async with open_harness({}) as h:  # no device: the provider fails the leg with 404
        call_id, caller = start(h, EXT_C)
        call = await h.wait_ended(call_id)
        assert caller.byes == [(0.0, 503)]
        assert call.disposition is Disposition.FAILED


async def test_caller_cancel_cancels_the_destination_forks(mock_clock) -> None:
    async with open_harness({EXT_B: [rings(), answers(10)]}) as h:
        call_id, caller = start(h, EXT_B)
        await trio.sleep_until(4)
        caller.push(LegHungUp("caller cancelled"))
        call = await h.wait_ended(call_id)
        for leg in h.legs.legs[EXT_B]:
            assert leg.cancels == [4.0]
            assert not leg.answered
        assert caller.accepted == []
        assert caller.byes == []  # it cancelled: nothing more to send it
        assert call.ended == at(4)
        assert call.disposition is Disposition.NO_ANSWER
        assert call.parties[0].hangup_cause == "source hung up"


async def test_caller_bye_after_the_answer_ends_the_destination(mock_clock) -> None:
    async with open_harness({EXT_B: [answers(1)]}) as h:
        call_id, caller = start(h, EXT_B)
        await trio.sleep_until(6)
        caller.push(LegHungUp("BYE"))
        call = await h.wait_ended(call_id)
        assert h.legs.leg(EXT_B).byes == [6.0]
        assert caller.byes == []
        assert call.disposition is Disposition.ANSWERED
        assert call.billable_seconds == 5


async def test_destination_early_media_reaches_the_caller(mock_clock) -> None:
    early = party_sdp(7100)
    script = [(1, LegRinging(183, early)), (4, LegAnswered(party_sdp(7102)))]
    async with open_harness({EXT_B: [script]}) as h:
        call_id, caller = start(h, EXT_B)
        await trio.sleep_until(2)
        media = h.media(call_id)
        assert [(c.at, c.args) for c in media.named("stop_tone")] == [(1.0, ("a",))]
        assert [(c.at, c.args) for c in media.named("bridge")] == [(1.0, ("a", "b"))]
        assert caller.accepted == []
        await trio.sleep_until(5)
        assert [t for t, _ in caller.accepted] == [4.0]
        await h.engine.hangup(call_id)
        await h.wait_ended(call_id)
        assert caller.byes == [(5.0, None)]


async def test_a_carrier_caller_is_an_incoming_public_party(mock_clock) -> None:
    async with open_harness({EXT_B: [answers(1, hangup=5)]}) as h:
        call_id, caller = start(h, EXT_B, from_extension=False)
        call = await h.wait_ended(call_id)
        source = call.parties[0]
        assert source.kind == "public" and source.flow is Flow.INCOMING
        assert call.caller_id == "Carrier Caller <+4930111111>"
        assert h.legs.caller_ids[EXT_B] == "Carrier Caller <+4930111111>"
        assert call.extension == EXT_B  # charged to the extension it reached
        assert call.parties[1].status is PartyStatus.UNKNOWN
        assert [t for t, _ in caller.accepted] == [1.0]


async def test_no_media_ports_still_gives_the_caller_a_final_503(
    mock_clock, caplog: pytest.LogCaptureFixture
) -> None:
    async with open_harness({EXT_B: [answers(1)]}) as h:
        h.media_factory.side_error = RuntimeError("no free RTP/RTCP port pair")
        call_id, caller = start(h, EXT_B)
        call = await h.wait_ended(call_id)
        assert caller.byes == [(0.0, 503)]  # rejected at once, not left unanswered
        assert call.disposition is Disposition.FAILED
        assert "no media ports" in (call.hangup_cause or "")
        assert not h.legs.legs.get(EXT_B)  # the destination was never rung
        assert f"call {call_id}: no media ports" in caplog.text


async def test_an_offer_we_cannot_answer_gets_488(mock_clock) -> None:
    async with open_harness({EXT_B: [answers(1)]}) as h:
        legs: list[FakeInbound] = []

        def make_leg(index: int, label: str) -> FakeInbound:
            legs.append(FakeInbound(index, label, b"garbage"))
            return legs[0]

        call = h.engine.start_inbound(
            caller_number=EXT_A,
            caller_name=None,
            caller_extension=charged_extension(),
            organization_id=3,
            destination=EXT_B,
            video=False,
            make_leg=make_leg,
        )
        ended = await h.wait_ended(call.id)
        assert legs[0].byes == [(0.0, 488)]
        assert "unusable SDP offer" in (ended.hangup_cause or "")
