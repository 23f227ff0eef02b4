"""DTMF on the call controller: each digit a party sends becomes one ``dtmf`` event naming
that party, and a SIP INFO digit is played to the other party when it took telephone-event."""

from __future__ import annotations

import pytest
import trio
import trio.testing
from fakes import EXT_A, EXT_B, answers, open_harness, rings

from engine.legs import LegDtmf, LegHungUp

BRIDGED = {EXT_A: [answers(1)], EXT_B: [answers(1)]}


@pytest.fixture
def mock_clock() -> trio.testing.MockClock:
    return trio.testing.MockClock(autojump_threshold=0)


def dtmf_events(h, call_id: str) -> list[dict[str, object]]:  # type: ignore[no-untyped-def]
    return [e.data for _, e in h.events if e.call_id == call_id and e.event == "dtmf"]


async def test_an_info_digit_is_reported_with_its_party_and_played_to_the_other(
    mock_clock,
) -> None:
    async with open_harness(BRIDGED) as h:
        call_id = await h.originate([EXT_A], [EXT_B])
        await trio.sleep_until(3)
        h.legs.leg(EXT_A).push(LegDtmf("5", 160))
        await trio.sleep(0.1)  # two legs' pumps: the order between them is trio's
        h.legs.leg(EXT_B).push(LegDtmf("#", 100))
        await trio.sleep_until(4)
        assert dtmf_events(h, call_id) == [
            {"digit": "5", "party": EXT_A},
            {"digit": "#", "party": EXT_B},
        ]
        sent = [m.args for m in h.media(call_id).named("send_dtmf")]
        assert sent == [("b", "5", 160, True), ("a", "#", 100, True)]
        h.legs.leg(EXT_B).push(LegHungUp("BYE"))
        await h.wait_ended(call_id)


async def test_a_party_without_telephone_event_is_not_played_the_digit_but_it_is_reported(
    mock_clock,
) -> None:
    async with open_harness(BRIDGED) as h:
        call_id = await h.originate([EXT_A], [EXT_B])
        await trio.sleep_until(3)
        h.media(call_id).dtmf_sides = {"a"}
        h.legs.leg(EXT_A).push(LegDtmf("1", 250))
        await trio.sleep_until(4)
        assert dtmf_events(h, call_id) == [{"digit": "1", "party": EXT_A}]
        assert [m.args for m in h.media(call_id).named("send_dtmf")] == [("b", "1", 250, False)]
        assert h.call(call_id).state.value == "bridged"  # the call goes on


async def test_a_digit_the_relay_heard_is_reported_for_the_side_that_sent_it(mock_clock) -> None:
    async with open_harness(BRIDGED) as h:
        call_id = await h.originate([EXT_A], [EXT_B])
        await trio.sleep_until(3)
        media = h.media(call_id)
        side_b = next(s for s in media.sides if s.label == "b")
        assert media.dtmf_listener is not None
        for digit in "42":
            media.dtmf_listener(side_b, digit)
        await trio.sleep_until(4)
        assert dtmf_events(h, call_id) == [
            {"digit": "4", "party": EXT_B},
            {"digit": "2", "party": EXT_B},
        ]
        # the relay forwarded those packets itself: nothing is played again
        assert media.named("send_dtmf") == []


async def test_a_source_digit_while_the_destination_rings_is_reported_not_played(
    mock_clock,
) -> None:
    async with open_harness({EXT_A: [answers(1)], EXT_B: [rings()]}) as h:
        call_id = await h.originate([EXT_A], [EXT_B])
        await trio.sleep_until(3)
        h.legs.leg(EXT_A).push(LegDtmf("9", 200))
        await trio.sleep_until(4)
        assert dtmf_events(h, call_id) == [{"digit": "9", "party": EXT_A}]
        assert h.media(call_id).named("send_dtmf") == []
        assert await h.engine.hangup(call_id)
        await h.wait_ended(call_id)


async def test_a_parked_party_pressing_keys_is_reported_not_refused(mock_clock) -> None:
    from engine.engine import CallAction

    async with open_harness(BRIDGED) as h:
        call_id = await h.originate([EXT_A], [EXT_B])
        await trio.sleep_until(5)
        await h.engine.act(call_id, CallAction("Park", phone_call_view_id="00", max_in_parking=30))
        await trio.sleep_until(6)
        media = h.media(call_id)
        side_b = next(s for s in media.sides if s.label == "b")
        assert media.dtmf_listener is not None
        media.dtmf_listener(side_b, "3")  # RFC 4733 from the parked party
        h.legs.leg(EXT_B).push(LegDtmf("4", 100))  # and a SIP INFO
        await trio.sleep_until(7)
        assert dtmf_events(h, call_id) == [
            {"digit": "3", "party": EXT_B},
            {"digit": "4", "party": EXT_B},
        ]
        assert "action_failed" not in h.names(call_id)
        h.legs.leg(EXT_B).push(LegHungUp("BYE"))
        await h.wait_ended(call_id)
