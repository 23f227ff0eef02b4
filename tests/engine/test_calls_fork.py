"""The Simple PhoneCall controller with scripted fake legs on MockClock: forking, first answer
wins, waitForPickup, destination failures, early media, callDuration, BYE, events and record."""

from __future__ import annotations

import functools

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
    BrokenLeg,
    FakeLeg,
    answers,
    at,
    fails,
    open_harness,
    party_sdp,
    request,
    rings,
)

from engine.call_types import RINGBACK_HZ
from engine.engine import CallAction
from engine.legs import LegAnswered, LegFailed, LegHungUp, LegRinging
from engine.model import CallState, Disposition, PartyStatus


@pytest.fixture
def mock_clock() -> trio.testing.MockClock:
    return trio.testing.MockClock(autojump_threshold=0)


def all_legs(legs: dict[str, list[FakeLeg]]) -> list[FakeLeg]:
    return [leg for group in legs.values() for leg in group]


# --- phase 1: the sources ----------------------------------------------------------------


async def test_every_source_rings_at_once_and_the_first_answer_wins(mock_clock) -> None:
    scripts = {
        EXT_A: [answers(3), rings()],  # two devices of one extension
        EXT_B: [answers(5)],
        PUBLIC: [rings()],
        EXT_C: [answers(2, hangup=10)],
    }
    async with open_harness(scripts) as h:
        call_id = await h.originate([EXT_A, EXT_B, PUBLIC], [EXT_C])
        call = await h.wait_ended(call_id)
        source_legs = [*h.legs.legs[EXT_A], *h.legs.legs[EXT_B], *h.legs.legs[PUBLIC]]
        assert [leg.started_at for leg in source_legs] == [0.0, 0.0, 0.0, 0.0]
        assert len({leg.offer for leg in source_legs}) == 1  # the same offer: relay side A
        assert b"m=audio 10000 " in (source_legs[0].offer or b"")
        winner, *losers = source_legs
        assert winner.cancels == [] and winner.byes == [13.0]
        for loser in losers:
            assert loser.cancels == [3.0]
            assert not loser.answered
        assert h.when(call_id, "source_answered") == 3.0
        assert call.parties[1].hangup_cause == "answered elsewhere"
        assert call.parties[2].hangup_cause == "answered elsewhere"
        assert call.parties[0].answered == at(3)
        # The destination is called only once the source answered, with side B's offer.
        dest = h.legs.leg(EXT_C)
        assert dest.started_at == 3.0
        assert b"m=audio 20000 " in (dest.offer or b"")
        assert call.disposition is Disposition.ANSWERED


async def test_a_late_2xx_from_a_loser_is_ended_and_not_bridged(mock_clock) -> None:
    # Both sources answer at the same instant: whichever the controller sees second raced the
    # CANCEL; cancel() on an answered leg is ACK + BYE (sip.uac_session).
    scripts = {EXT_A: [answers(2)], EXT_B: [answers(2)], EXT_C: [answers(1, hangup=5)]}
    async with open_harness(scripts) as h:
        call_id = await h.originate([EXT_A, EXT_B], [EXT_C])
        call = await h.wait_ended(call_id)
        a, b = h.legs.leg(EXT_A), h.legs.leg(EXT_B)
        winner, loser = (a, b) if call.parties[0].answered is not None else (b, a)
        assert loser.answered  # its 200 OK came after the winner's
        assert loser.cancels == [2.0] and loser.acked_and_byed
        assert winner.cancels == []
        assert h.names(call_id).count("source_answered") == 1
        assert [c.args for c in h.media(call_id).named("bridge")] == [("a", "b")]
        assert sum(p.answered is not None for p in call.parties if p.role == "source") == 1
        assert call.disposition is Disposition.ANSWERED


async def test_one_device_answering_cancels_the_other_device(mock_clock) -> None:
    scripts = {EXT_A: [rings(), answers(4)], EXT_C: [answers(1, hangup=2)]}
    async with open_harness(scripts) as h:
        call_id = await h.originate([EXT_A], [EXT_C])
        call = await h.wait_ended(call_id)
        first, second = h.legs.legs[EXT_A]
        assert first.cancels == [4.0]
        assert second.cancels == [] and second.byes == [6.0]
        assert call.parties[0].hangup_cause != "answered elsewhere"
        assert call.parties[0].answered == at(4)


async def test_a_device_failing_while_another_rings_keeps_the_party_ringing(mock_clock) -> None:
    scripts = {EXT_A: [fails(1, 480, "Temporarily Unavailable"), answers(6)], EXT_C: [rings()]}
    async with open_harness(scripts) as h:
        call_id = await h.originate([EXT_A], [EXT_C], wait_for_pickup=10)
        await trio.sleep(3)
        party = h.call(call_id).parties[0]
        assert party.status is PartyStatus.RINGING
        assert party.ended is None and party.hangup_cause is None
        assert "failed" not in h.names(call_id)
        await trio.sleep(4)
        assert h.call(call_id).state is CallState.CALLING_DESTINATION
        assert h.call(call_id).parties[0].sip_status == 200
        await h.engine.hangup(call_id)
        await h.wait_ended(call_id)


async def test_wait_for_pickup_cancels_every_source_fork(mock_clock) -> None:
    scripts = {EXT_A: [rings(), rings()], EXT_B: [rings()], EXT_C: [answers(1)]}
    async with open_harness(scripts) as h:
        call_id = await h.originate([EXT_A, EXT_B], [EXT_C], wait_for_pickup=7)
        call = await h.wait_ended(call_id)
        for leg in all_legs(h.legs.legs):
            assert leg.cancels == [7.0]
            assert leg.byes == []
        assert EXT_C not in h.legs.legs  # the destination was never called
        assert call.disposition is Disposition.NO_ANSWER
        assert h.when(call_id, "ended") == 7.0
        assert call.ended == at(7)
        for party in call.parties[:2]:
            assert party.hangup_cause == "no answer within waitForPickup"
            assert party.ended == at(7)


async def test_every_source_failing_ends_the_call_with_their_combined_disposition(
    mock_clock,
) -> None:
    scripts = {EXT_A: [fails(1, 404)], EXT_B: [fails(2, 486, "Busy Here")], EXT_C: [answers(1)]}
    async with open_harness(scripts) as h:
        call_id = await h.originate([EXT_A, EXT_B], [EXT_C])
        call = await h.wait_ended(call_id)
        assert call.disposition is Disposition.BUSY
        assert h.when(call_id, "ended") == 2.0
        assert EXT_C not in h.legs.legs
        assert call.parties[0].sip_status == 404
        assert call.parties[1].sip_status == 486
        assert call.parties[2].hangup_cause is None  # never called


# --- phase 2: the destinations -----------------------------------------------------------


async def test_wait_for_pickup_in_the_destination_phase(mock_clock) -> None:
    scripts = {EXT_A: [answers(2)], EXT_B: [rings()], PUBLIC: [rings(), rings()]}
    async with open_harness(scripts) as h:
        call_id = await h.originate([EXT_A], [EXT_B, PUBLIC], wait_for_pickup=7)
        call = await h.wait_ended(call_id)
        for leg in [*h.legs.legs[EXT_B], *h.legs.legs[PUBLIC]]:
            assert leg.started_at == 2.0
            assert leg.cancels == [9.0]
        assert h.legs.leg(EXT_A).byes == [9.0]
        assert call.disposition is Disposition.NO_ANSWER
        assert call.ended == at(9)
        assert call.bridged is None


async def test_busy_destination_ends_the_source_with_bye(mock_clock) -> None:
    scripts = {EXT_A: [answers(1)], EXT_B: [fails(2, 486, "Busy Here")]}
    async with open_harness(scripts) as h:
        call_id = await h.originate([EXT_A], [EXT_B])
        call = await h.wait_ended(call_id)
        assert h.legs.leg(EXT_A).byes == [3.0]
        assert call.disposition is Disposition.BUSY
        assert call.parties[1].sip_status == 486
        assert call.parties[1].hangup_cause == "486 Busy Here"
        assert call.charge == 0.0


@pytest.mark.parametrize(
    ("statuses", "expected"),
    [
        ((503, 486, 480), Disposition.BUSY),
        ((503, 480, 403), Disposition.NO_ANSWER),
        ((403, 500, 502), Disposition.NOT_ALLOWED),
        ((500, 502, 404), Disposition.FAILED),
        ((603, 500, 500), Disposition.BUSY),
    ],
)
async def test_every_destination_failing_combines_dispositions(
    mock_clock, statuses: tuple[int, int, int], expected: Disposition
) -> None:
    destinations = [EXT_B, EXT_C, PUBLIC]
    scripts = {EXT_A: [answers(1)]}
    for i, (number, status) in enumerate(zip(destinations, statuses, strict=True)):
        scripts[number] = [fails(2 + i, status)]
    async with open_harness(scripts) as h:
        call_id = await h.originate([EXT_A], destinations)
        call = await h.wait_ended(call_id)
        assert call.disposition is expected
        assert call.ended == at(5)  # the last failure, 1 + 4 s
        assert h.legs.leg(EXT_A).byes == [5.0]
        assert [p.sip_status for p in call.parties[1:]] == list(statuses)


async def test_early_media_replaces_the_ringback(mock_clock) -> None:
    early = party_sdp(7000)
    script = [
        (0.5, LegRinging(180)),
        (2, LegRinging(183, early)),
        (5, LegAnswered(party_sdp(7002))),
    ]
    scripts = {EXT_A: [answers(1, hangup=20)], EXT_B: [script]}
    async with open_harness(scripts) as h:
        call_id = await h.originate([EXT_A], [EXT_B])
        await h.wait_ended(call_id)
        media = h.media(call_id)
        assert [(c.at, c.args) for c in media.named("play_tone")] == [(1.0, ("a", RINGBACK_HZ))]
        assert (3.0, ("a",)) in [(c.at, c.args) for c in media.named("stop_tone")]
        assert [(c.at, c.args) for c in media.named("bridge")] == [
            (3.0, ("a", "b")),
            (6.0, ("a", "b")),
        ]
        side_b = next(s for s in media.sides if s.label == "b")
        assert side_b.remote[0] == early
        assert media.closed


# --- phase 3: bridged --------------------------------------------------------------------


async def test_call_duration_counts_from_the_source_answer(mock_clock) -> None:
    scripts = {EXT_A: [answers(4)], EXT_B: [answers(3)]}
    async with open_harness(scripts) as h:
        call_id = await h.originate([EXT_A], [EXT_B], call_duration=20)
        call = await h.wait_ended(call_id)
        assert h.legs.leg(EXT_A).byes == [24.0]
        assert h.legs.leg(EXT_B).byes == [24.0]
        assert call.bridged == at(7) and call.ended == at(24)
        assert call.disposition is Disposition.ANSWERED
        assert call.hangup_cause == "call duration reached"
        assert call.billable_seconds == 17
        assert h.names(call_id).count("ended") == 1


async def test_call_duration_reached_while_the_destination_rings_cancels_it(mock_clock) -> None:
    scripts = {EXT_A: [answers(1)], EXT_B: [rings()]}
    async with open_harness(scripts) as h:
        call_id = await h.originate([EXT_A], [EXT_B], call_duration=10, wait_for_pickup=25)
        call = await h.wait_ended(call_id)
        assert h.legs.leg(EXT_B).cancels == [11.0]
        assert h.legs.leg(EXT_A).byes == [11.0]
        assert call.ended == at(11)
        assert call.bridged is None


@pytest.mark.parametrize("who", ["source", "destination"])
async def test_a_bye_from_either_side_ends_the_other(mock_clock, who: str) -> None:
    # The source answers at 1; the destination (started at 1) answers at 3; BYE at 8.
    source = answers(1, hangup=8) if who == "source" else answers(1)
    destination = answers(2, hangup=7) if who == "destination" else answers(2)
    async with open_harness({EXT_A: [source], EXT_B: [destination]}) as h:
        call_id = await h.originate([EXT_A], [EXT_B])
        call = await h.wait_ended(call_id)
        hung_up, other = (0, 1) if who == "source" else (1, 0)
        legs = [h.legs.leg(EXT_A), h.legs.leg(EXT_B)]
        assert legs[other].byes == [8.0]
        assert legs[hung_up].byes == [] and legs[hung_up].cancels == []
        assert call.disposition is Disposition.ANSWERED
        assert call.ended == at(8)
        assert call.parties[hung_up].hangup_cause == f"{who} hung up"
        assert call.parties[other].hangup_cause is not None
        assert all(p.ended == at(8) for p in call.parties)
        assert call.parties[0].media == {"audio": {"packets_in": 50, "packets_out": 50}}
        assert call.parties[1].media == call.parties[0].media
        # both parties' counters are read at the end, in one relay round trip
        assert [m.args for m in h.media(call_id).named("stats")] == [
            ("a", "b") if who == "source" else ("b", "a")
        ]
        assert h.names(call_id).count("ended") == 1
        assert h.names(call_id)[-1] == "ended"


# --- record and events -------------------------------------------------------------------


async def test_record_is_stored_before_originate_returns_and_on_every_change(mock_clock) -> None:
    # Two source devices (one loses), a destination that rings first, then BYE at 8 s.
    scripts = {
        EXT_A: [answers(1, ring=0.5), rings()],
        EXT_B: [[(1, LegRinging(180)), (2, LegAnswered(party_sdp(5010))), (7, LegHungUp("BYE"))]],
    }
    async with open_harness(scripts) as h:
        mismatches: list[str] = []

        def check(call, event) -> None:
            stored = h.store.get_call(call.id)
            if stored is None or stored.to_dict() != call.to_dict():
                mismatches.append(event.event)

        h.engine.listeners.append(check)
        call, _ = await h.engine.originate(request([EXT_A], [EXT_B]))
        stored = h.store.get_call(call.id)
        assert stored is not None and stored.state is CallState.CREATED
        # Between changes (at 0.25 s, 0.75 s, ...) the stored record is the live one.
        await trio.sleep(0.25)
        while h.call(call.id).state is not CallState.ENDED:
            await trio.sleep(0.5)
            stored = h.store.get_call(call.id)
            assert stored is not None
            assert stored.to_dict() == h.call(call.id).to_dict(), trio.current_time()
        await h.wait_ended(call.id)
        assert mismatches == []
        assert len([e for _, e in h.events if e.call_id == call.id]) >= 8
        final = h.store.get_call(call.id)
        assert final is not None and final.state is CallState.ENDED
        assert final.disposition is Disposition.ANSWERED


async def test_subscribers_see_increasing_sequence_numbers_and_one_final_event(
    mock_clock,
) -> None:
    scripts = {EXT_A: [answers(1)], EXT_B: [answers(2, hangup=5)]}
    async with open_harness(scripts) as h:
        call_id = await h.originate([EXT_A], [EXT_B])
        received = []
        async with h.engine.subscribe(call_id) as events:
            async for event in events:
                received.append(event)
        seqs = [e.seq for e in received]
        assert seqs == list(range(1, len(seqs) + 1))
        assert [e.final for e in received].count(True) == 1 and received[-1].final
        names = [e.event for e in received]
        assert names[0] == "created" and names[-1] == "ended"
        for name in ("calling_source", "source_answered", "calling_destination", "bridged"):
            assert name in names


# --- charge ------------------------------------------------------------------------------


async def test_public_destination_is_charged_per_started_minute(mock_clock) -> None:
    # Bridged at 2 s, the destination hangs up 61 s later: two started minutes at 0.02.
    scripts = {EXT_A: [answers(1)], PUBLIC: [answers(1, hangup=62)]}
    async with open_harness(scripts) as h:
        call_id = await h.originate([EXT_A], [PUBLIC])
        call = await h.wait_ended(call_id)
        assert call.billable_seconds == 61
        assert call.charge == pytest.approx(0.04)


async def test_two_public_parties_are_both_charged(mock_clock) -> None:
    scripts = {PUBLIC_2: [answers(1)], PUBLIC: [answers(1, hangup=31)]}
    async with open_harness(scripts) as h:
        call_id = await h.originate([PUBLIC_2], [PUBLIC])
        call = await h.wait_ended(call_id)
        assert call.billable_seconds == 30
        assert call.charge == pytest.approx(0.04)


async def test_sandbox_parties_are_free(mock_clock) -> None:
    async with open_harness({EXT_A: [answers(1)]}) as h:
        call_id = await h.originate([EXT_A], [SANDBOX], call_duration=125)
        call = await h.wait_ended(call_id)
        assert call.bridged == at(2) and call.ended == at(126)
        assert call.charge == 0.0
        # An answered sandbox sends its tone to the other party: the relay plays the sandbox
        # (side b) as a phone of its own, from the bridge on, until it leaves.
        media = h.media(call_id)
        assert [(c.at, c.args) for c in media.named("start_sandbox")] == [(2.0, ("b", 440.0))]
        assert [(c.at, c.args) for c in media.named("stop_sandbox")] == [(126.0, ("b",))]


# --- robustness ----------------------------------------------------------------------------


async def test_a_leg_that_raises_in_start_fails_only_its_own_fork(mock_clock) -> None:
    scripts = {EXT_A: [rings(), answers(2)], EXT_B: [answers(1, hangup=4)]}
    async with open_harness(scripts) as h:
        h.legs.factories[EXT_C] = BrokenLeg
        h.legs.scripts[EXT_C] = [answers(1)]
        call_id = await h.originate([EXT_A, EXT_C], [EXT_B])
        call = await h.wait_ended(call_id)
        assert call.disposition is Disposition.ANSWERED
        assert call.parties[1].sip_status == 500
        assert call.parties[0].answered == at(2)
        assert call.ended == at(6)


async def test_legs_that_raise_in_cancel_and_bye_still_end_the_call_once(mock_clock) -> None:
    scripts = {EXT_A: [answers(1), rings()], EXT_B: [answers(1)]}
    async with open_harness(scripts) as h:
        h.legs.factories[EXT_A] = functools.partial(BrokenLeg, broken_cleanup=True)
        call_id = await h.originate([EXT_A], [EXT_B], call_duration=30)
        call = await h.wait_ended(call_id)
        assert h.legs.leg(EXT_A, 1).cancels == [1.0]
        assert h.legs.leg(EXT_A).byes == [31.0] and h.legs.leg(EXT_B).byes == [31.0]
        assert call.disposition is Disposition.ANSWERED
        assert call.hangup_cause == "call duration reached"
        assert h.names(call_id).count("ended") == 1


async def test_engine_shutdown_ends_live_calls_cleanly(mock_clock) -> None:
    scripts = {EXT_A: [answers(1)], EXT_B: [answers(1)], EXT_C: [rings()], PUBLIC: [rings()]}
    async with open_harness(scripts) as h:
        bridged = await h.originate([EXT_A], [EXT_B])
        ringing = await h.originate([EXT_C], [PUBLIC])
        await trio.sleep(5)
    assert h.legs.leg(EXT_A).byes == [5.0] and h.legs.leg(EXT_B).byes == [5.0]
    assert h.legs.leg(EXT_C).cancels == [5.0]
    for call_id in (bridged, ringing):
        stored = h.store.get_call(call_id)
        assert stored is not None and stored.state is CallState.ENDED
        assert stored.hangup_cause == "server shutting down"
        assert stored.ended == at(5)
    assert h.store.get_call(bridged).disposition is Disposition.ANSWERED
    assert h.store.get_call(ringing).disposition is Disposition.NO_ANSWER


async def test_ringback_returns_when_the_early_media_destination_fails(mock_clock) -> None:
    early = [(1, LegRinging(183, party_sdp(7000))), (3, LegFailed(480, "Temporarily Unavailable"))]
    scripts = {EXT_A: [answers(1)], EXT_B: [early], EXT_C: [answers(6)]}
    async with open_harness(scripts) as h:
        call_id = await h.originate([EXT_A], [EXT_B, EXT_C])
        await trio.sleep_until(10)
        media = h.media(call_id)
        assert [(c.at, c.args) for c in media.named("play_tone")] == [
            (1.0, ("a", RINGBACK_HZ)),
            (4.0, ("a", RINGBACK_HZ)),
        ]
        assert [c.at for c in media.named("stop_tone")] == [2.0, 7.0]
        assert h.call(call_id).state is CallState.BRIDGED
        await h.engine.hangup(call_id)
        await h.wait_ended(call_id)


async def test_party_statuses_a_user_sees_over_the_call(mock_clock) -> None:
    source = [(0.5, LegRinging(180)), (1, LegAnswered(party_sdp(5000)))]
    dest = [(1, LegRinging(180)), (3, LegAnswered(party_sdp(5002))), (10, LegHungUp("BYE"))]
    async with open_harness({EXT_A: [source], EXT_B: [dest]}) as h:
        call_id = await h.originate([EXT_A], [EXT_B], caller_id_destination="Sales <4242>")
        seen: list[tuple[float, PartyStatus, PartyStatus]] = []
        for t in (0.25, 0.75, 1.5, 2.5, 5, 20):
            await trio.sleep_until(t)
            src, dst = h.call(call_id).parties
            seen.append((t, src.status, dst.status))
        S = PartyStatus
        assert seen == [
            (0.25, S.TRYING, S.UNKNOWN),
            (0.75, S.RINGING, S.UNKNOWN),
            (1.5, S.OTHER_SIDE_RINGING, S.TRYING),
            (2.5, S.OTHER_SIDE_RINGING, S.RINGING),
            (5, S.ON_CALL, S.ON_CALL),
            (20, S.UNKNOWN, S.UNKNOWN),
        ]
        call = h.call(call_id)
        assert call.parties[0].ringing == at(0.5) and call.parties[1].ringing == at(2)
        assert call.parties[1].answered == at(4) and call.bridged == at(4)
        assert h.legs.caller_ids == {EXT_A: "John Doe <4242425>", EXT_B: "Sales <4242>"}
        assert call.parties[1].caller_id == "Sales <4242>"


async def test_a_sandbox_destination_caps_the_call_at_three_minutes(mock_clock) -> None:
    async with open_harness({EXT_A: [answers(2)]}) as h:
        call_id = await h.originate([EXT_A], [SANDBOX], call_duration=3600)
        call = await h.wait_ended(call_id)
        assert h.legs.leg(EXT_A).byes == [182.0]
        assert call.ended == at(182)


async def test_call_duration_reached_while_a_transfer_rings(mock_clock) -> None:
    scripts = {EXT_A: [answers(1)], EXT_B: [answers(1)], EXT_C: [rings()]}
    async with open_harness(scripts) as h:
        call_id = await h.originate([EXT_A], [EXT_B], call_duration=20)
        await trio.sleep_until(15)
        await h.engine.act(call_id, CallAction("Transfer", send_call_to=EXT_C))
        call = await h.wait_ended(call_id)
        assert h.legs.leg(EXT_C).cancels == [21.0]
        assert h.legs.leg(EXT_A).byes == [21.0] and h.legs.leg(EXT_B).byes == [21.0]
        assert call.hangup_cause == "call duration reached"
        assert call.disposition is Disposition.ANSWERED


async def test_hangups_racing_each_other_end_the_call_once(mock_clock) -> None:
    async with open_harness({EXT_A: [answers(1)], EXT_B: [answers(1)]}) as h:
        call_id = await h.originate([EXT_A], [EXT_B])
        await trio.sleep_until(10)
        h.legs.leg(EXT_B).push(LegHungUp("BYE"))  # the destination's BYE, and at once:
        assert await h.engine.hangup(call_id)
        assert await h.engine.hangup(call_id)
        call = await h.wait_ended(call_id)
        assert h.legs.leg(EXT_A).byes == [10.0]
        assert len(h.legs.leg(EXT_B).byes) <= 1
        assert h.names(call_id).count("ended") == 1
        assert call.ended == at(10)
        assert call.disposition is Disposition.ANSWERED
        assert not await h.engine.hangup(call_id)


async def test_a_connected_leg_that_breaks_ends_the_call(mock_clock) -> None:
    scripts = {EXT_A: [answers(1)], EXT_B: [answers(1)]}
    async with open_harness(scripts) as h:
        h.legs.factories[EXT_B] = functools.partial(BrokenLeg, broken_after=5)
        call_id = await h.originate([EXT_A], [EXT_B])
        call = await h.wait_ended(call_id)
        assert h.legs.leg(EXT_A).byes == [6.0]
        assert call.ended == at(6)
        assert call.disposition is Disposition.ANSWERED
        assert call.parties[1].hangup_cause.startswith("destination leg failed: 500")


async def test_a_fork_that_already_failed_is_not_cancelled(mock_clock) -> None:
    scripts = {EXT_A: [fails(1, 480), answers(3)], EXT_B: [rings()], EXT_C: [answers(1)]}
    async with open_harness(scripts) as h:
        call_id = await h.originate([EXT_A, EXT_B], [EXT_C])
        await trio.sleep_until(5)
        failed, winner = h.legs.legs[EXT_A]
        assert failed.cancels == [] and failed.byes == []
        assert winner.cancels == []
        assert h.legs.leg(EXT_B).cancels == [3.0]
        assert h.call(call_id).parties[0].sip_status == 200
        await h.engine.hangup(call_id)
        await h.wait_ended(call_id)
        assert failed.byes == [] and winner.byes == [5.0]


async def test_an_internal_error_on_a_bridged_call_byes_both_and_keeps_it_answered(
    mock_clock,
) -> None:
    async with open_harness({PUBLIC_2: [answers(1)], PUBLIC: [answers(1)]}) as h:
        call_id = await h.originate([PUBLIC_2], [PUBLIC])
        await trio.sleep_until(70)
        h.media(call_id).hold_error = RuntimeError("relay bug")
        await h.engine.act(call_id, CallAction("OnHold", phone_call_view_id="1"))
        call = await h.wait_ended(call_id)
        assert h.legs.leg(PUBLIC).byes == [70.0] and h.legs.leg(PUBLIC_2).byes == [70.0]
        assert call.disposition is Disposition.ANSWERED
        assert call.hangup_cause == "internal error"
        assert call.charge == pytest.approx(2 * 0.02 * 2)  # 68 s bridged: two minutes each
        assert h.names(call_id).count("ended") == 1
        assert h.engine.live_count == 0


async def test_a_run_of_calls_without_media_ports_is_one_warning_per_interval(
    mock_clock, caplog: pytest.LogCaptureFixture
) -> None:
    async with open_harness({EXT_A: [answers(1)], EXT_B: [answers(1)]}) as h:
        h.media_factory.side_error = RuntimeError("no free RTP/RTCP port pair")
        for _ in range(5):
            await h.wait_ended(await h.originate([EXT_A], [EXT_B]))
        await trio.sleep(10)
        last = await h.originate([EXT_A], [EXT_B])
        await h.wait_ended(last)
    lines = [r.getMessage() for r in caplog.records if "no media ports" in r.getMessage()]
    assert len(lines) == 2
    assert lines[1] == (
        f"call {last}: no media ports: no free RTP/RTCP port pair"
        " (and 4 more like it in the last 10 s)"
    )


async def test_no_media_ports_fails_the_call_with_the_reason_and_rings_nobody(
    mock_clock, caplog: pytest.LogCaptureFixture
) -> None:
    async with open_harness({EXT_A: [answers(1)], EXT_B: [answers(1)]}) as h:
        h.media_factory.side_error = RuntimeError("no free RTP/RTCP port pair")
        call_id = await h.originate([EXT_A], [EXT_B])
        call = await h.wait_ended(call_id)
        assert call.disposition is Disposition.FAILED
        assert call.hangup_cause == "no media ports: no free RTP/RTCP port pair"
        assert not h.legs.legs  # nobody was rung
        # the server's own shortage, so the operator's log says it too
        assert f"call {call_id}: no media ports: no free RTP/RTCP port pair" in caplog.text


class _HangsUpAtOnce(FakeLeg):
    """A leg that, like a SIP leg, cancels and hangs up without waiting."""

    def cancel_nowait(self) -> None:
        self.cancel_nowait_at = trio.current_time()
        self.cancels.append(trio.current_time())
        self.finished = True
        self._script.clear()
        self._wake.set()

    def bye_nowait(self) -> None:
        self.byes.append(trio.current_time())
        self.finished = True
        self._script.clear()
        self._wake.set()

    async def cancel(self) -> None:
        raise AssertionError("cancel_nowait is there: no task should wait in cancel")

    async def bye(self) -> None:
        raise AssertionError("bye_nowait is there: no task should wait in bye")


async def test_legs_that_hang_up_at_once_get_their_bye_and_cancel_without_a_task(
    mock_clock,
) -> None:
    scripts = {EXT_A: [answers(1), rings()], EXT_B: [answers(1, hangup=4)]}
    async with open_harness(scripts) as h:
        h.legs.factories[EXT_A] = _HangsUpAtOnce
        h.legs.factories[EXT_B] = _HangsUpAtOnce
        call_id = await h.originate([EXT_A], [EXT_B])
        call = await h.wait_ended(call_id)
    source, other_device = h.legs.leg(EXT_A, 0), h.legs.leg(EXT_A, 1)
    assert other_device.cancels == [1.0]  # the losing device, when the first answered
    assert source.byes == [5.0]  # when the destination hung up (4 s after its start at 1 s)
    assert h.legs.leg(EXT_B).byes == []  # it hung up itself
    assert call.disposition is Disposition.ANSWERED and call.ended == at(5)
