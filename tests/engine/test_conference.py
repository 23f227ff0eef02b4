"""Conference extensions on the controller (MockClock, fake legs and media): ConferenceInvite
calls ring their party and join the room's mix when it answers, every member hears all the
others, the mix follows joins and leaves, the last one out ends the room; PINs, a full room,
and phones dialling the conference in."""

from __future__ import annotations

import logging

import pytest
import trio
import trio.testing
from fakes import (
    EXT_A,
    EXT_B,
    EXT_C,
    PUBLIC,
    FakeInbound,
    Harness,
    answers,
    at,
    charged_extension,
    open_harness,
    party_sdp,
    request,
    rings,
)

from engine.errors import (
    ActionNotSupported,
    ConferenceFull,
    ConferenceInvalid,
    ConferencePinInvalid,
)
from engine.legs import LegHungUp
from engine.model import CallState, Disposition, PartyStatus

ROOM = "0003*400"
PINNED = "0003*401"  # PIN 1234


@pytest.fixture
def mock_clock() -> trio.testing.MockClock:
    return trio.testing.MockClock(autojump_threshold=0)


async def invite(h: Harness, number: str, room: str = ROOM, **kw: object) -> str:
    return await h.originate([room], [number], conference=room, **kw)


def mixes(h: Harness) -> list[tuple[float, str, tuple[object, ...]]]:
    """Every start_mix/stop_mix any call's media was asked for, in time order."""
    found = [
        (c.at, c.name, c.args)
        for media in h.media_factory.by_call.values()
        for c in media.calls
        if c.name in ("start_mix", "stop_mix")
    ]
    # at one instant the old mix stops before the new one starts (on different media objects)
    return sorted(found, key=lambda item: (item[0], item[1] == "start_mix"))


def all_pairs(n: int) -> list[tuple[int, int]]:
    return sorted((i, j) for i in range(n) for j in range(n) if i != j)


async def test_three_invited_parties_all_hear_each_other_and_the_last_one_out_ends_it(
    mock_clock, caplog
) -> None:
    caplog.set_level(logging.INFO, logger="engine.conference")
    scripts = {
        EXT_A: [answers(1, hangup=10)],
        EXT_B: [answers(2, hangup=12)],
        EXT_C: [answers(3, hangup=14)],
    }
    async with open_harness(scripts) as h:
        ids = [await invite(h, number) for number in (EXT_A, EXT_B, EXT_C)]
        await trio.sleep_until(3.5)
        assert h.engine.conferences.size(ROOM) == 3
        calls = [await h.wait_ended(call_id) for call_id in ids]
        assert h.engine.conferences.room(ROOM) is None  # the last one out ended it
    timeline = [(t, name, args[1] if name == "start_mix" else None) for t, name, args in mixes(h)]
    assert timeline == [
        (2.0, "start_mix", all_pairs(2)),  # B joins A: the first mix
        (3.0, "stop_mix", None),
        (3.0, "start_mix", all_pairs(3)),  # C joins: everyone hears the two others
        (10.0, "stop_mix", None),
        (10.0, "start_mix", all_pairs(2)),  # A leaves
        (12.0, "stop_mix", None),  # B leaves: C alone, no mix
    ]
    for call, number, joined, left in zip(
        calls, (EXT_A, EXT_B, EXT_C), (1, 2, 3), (10, 12, 14), strict=True
    ):
        assert call.state is CallState.ENDED
        assert call.disposition is Disposition.ANSWERED
        assert call.hangup_cause == "destination hung up"
        room, guest = call.parties
        assert (room.extension, room.role) == (ROOM, "source")
        assert (guest.number, guest.role) == (number, "destination")
        assert guest.answered == at(joined) and guest.ended == at(left)
        assert call.bridged == at(joined)
        assert call.extension == EXT_A  # the charged Phone Terminal
    joined = [e.data for _, e in h.events if e.event == "conference_joined"]
    assert [d["parties"] for d in joined] == [1, 2, 3]
    assert all(d["conference"] == ROOM for d in joined)
    assert [r.message for r in caplog.records].count(
        f"conference {ROOM} ended: its last party left"
    ) == 1


async def test_the_invited_party_sees_the_caller_id_and_the_api_hangs_up_only_it(
    mock_clock,
) -> None:
    scripts = {EXT_A: [answers(1)], EXT_B: [answers(1)]}
    async with open_harness(scripts) as h:
        first = await invite(h, EXT_A, caller_id_destination="Board <4242400>")
        second = await invite(h, EXT_B)
        await trio.sleep_until(2)
        assert h.legs.caller_ids[EXT_A] == "Board <4242400>"
        assert await h.engine.hangup(first)
        call = await h.wait_ended(first)
        assert call.hangup_cause == "hung up via the API"
        assert h.legs.leg(EXT_A).byes == [2.0]
        assert h.call(second).state is CallState.BRIDGED  # the other party stays
        assert h.engine.conferences.size(ROOM) == 1
        assert await h.engine.hangup(second)
        await h.wait_ended(second)
        assert h.engine.conferences.room(ROOM) is None


async def test_an_invite_nobody_answers_frees_its_place(mock_clock) -> None:
    async with open_harness({EXT_A: [rings()]}) as h:
        h.engine.conferences.capacity = 1
        call_id = await invite(h, EXT_A, wait_for_pickup=5)
        with pytest.raises(ConferenceFull):  # its place is held while it rings
            await invite(h, EXT_B)
        call = await h.wait_ended(call_id)
        assert call.disposition is Disposition.NO_ANSWER
        assert h.legs.leg(EXT_A).cancels == [5.0]
        assert h.engine.conferences.room(ROOM) is None
        await invite(h, EXT_B)  # the place is free again


async def test_a_full_conference_refuses_further_invites_until_someone_leaves(
    mock_clock,
) -> None:
    scripts = {EXT_A: [answers(1, hangup=5)], EXT_B: [answers(1)], EXT_C: [answers(1)]}
    async with open_harness(scripts) as h:
        h.engine.conferences.capacity = 2
        await invite(h, EXT_A)
        await invite(h, EXT_B)
        with pytest.raises(ConferenceFull, match="is full"):
            await invite(h, EXT_C)
        assert len(h.engine.live_calls()) == 2  # nothing was started for the refused one
        await trio.sleep_until(6)
        await invite(h, EXT_C)


async def test_pins_and_numbers_that_are_no_conference_are_refused(mock_clock) -> None:
    async with open_harness({EXT_A: [answers(1)]}) as h:
        with pytest.raises(ConferencePinInvalid, match="missing"):
            await invite(h, EXT_A, room=PINNED)
        with pytest.raises(ConferencePinInvalid, match="wrong"):
            await invite(h, EXT_A, room=PINNED, pin="9999")
        with pytest.raises(ConferenceInvalid):
            await invite(h, EXT_A, room=EXT_B)
        assert h.engine.live_calls() == []
        call_id = await invite(h, EXT_A, room=PINNED, pin="1234")
        await trio.sleep_until(2)
        assert h.call(call_id).state is CallState.BRIDGED


async def test_a_public_party_pays_for_its_time_in_the_conference(mock_clock) -> None:
    async with open_harness({PUBLIC: [answers(1, hangup=62)]}) as h:
        call = await h.wait_ended(await invite(h, PUBLIC))
        assert call.billable_seconds == 61
        assert call.charge == pytest.approx(0.04)  # 2 started minutes at 0.02


def dial_in(h: Harness, destination: str = ROOM) -> tuple[str, FakeInbound]:
    legs: list[FakeInbound] = []

    def make_leg(index: int, label: str) -> FakeInbound:
        legs.append(FakeInbound(index, label, party_sdp(6000)))
        return legs[-1]

    call = h.engine.start_inbound(
        caller_number=EXT_A,
        caller_name=None,
        caller_extension=charged_extension(),
        organization_id=3,
        destination=destination,
        video=False,
        make_leg=make_leg,
    )
    return call.id, legs[0]


async def test_a_phone_dialling_the_conference_is_answered_and_joins_the_invited_party(
    mock_clock,
) -> None:
    async with open_harness({EXT_B: [answers(2)]}) as h:
        invited = await invite(h, EXT_B)
        call_id, caller = dial_in(h)
        await trio.sleep_until(1)
        assert [status for _, status, _ in caller.progressed] == [183]
        assert [t for t, _ in caller.accepted] == [0.0]  # answered at once: the room is there
        assert h.call(call_id).state is CallState.BRIDGED
        await trio.sleep_until(3)
        assert h.engine.conferences.size(ROOM) == 2
        assert [name for _, name, _ in mixes(h)] == ["start_mix"]
        caller.push(LegHungUp("BYE"))
        call = await h.wait_ended(call_id)
        assert call.disposition is Disposition.ANSWERED
        source, room = call.parties
        assert (source.number, room.extension) == (EXT_A, ROOM)
        assert room.status is PartyStatus.UNKNOWN and room.answered == at(0)
        assert h.call(invited).state is CallState.BRIDGED
        assert h.engine.conferences.size(ROOM) == 1


async def test_a_phone_dialling_a_conference_with_a_pin_gets_403_and_a_full_one_486(
    mock_clock,
) -> None:
    async with open_harness({EXT_B: [answers(1)]}) as h:
        call_id, caller = dial_in(h, PINNED)
        call = await h.wait_ended(call_id)
        assert caller.byes == [(0.0, 403)] and caller.accepted == []
        assert call.disposition is Disposition.NOT_ALLOWED
        h.engine.conferences.capacity = 1
        await invite(h, EXT_B)
        call_id, caller = dial_in(h)
        call = await h.wait_ended(call_id)
        assert caller.byes == [(0.0, 486)]
        assert call.disposition is Disposition.BUSY
        assert "is full" in (call.hangup_cause or "")


async def test_a_party_whose_codec_cannot_be_mixed_is_let_go_and_the_others_stay(
    mock_clock,
) -> None:
    async with open_harness({EXT_A: [answers(1)], EXT_B: [answers(2)]}) as h:
        first = await invite(h, EXT_A)
        await trio.sleep_until(1.5)
        # the relay refuses a mix with B's codec (start_mix runs on the first member's media)
        h.media(first).mix_error = ValueError("the mixer takes G.711 only, not payload type 9")
        second = await invite(h, EXT_B)
        call = await h.wait_ended(second)
        assert call.disposition is Disposition.FAILED
        assert call.hangup_cause == (
            "conference 0003*400: the mixer takes G.711 only, not payload type 9"
        )
        assert h.legs.leg(EXT_B).byes == [3.5]  # invited at 1.5 s, answered 2 s later
        assert h.call(first).state is CallState.BRIDGED
        assert h.engine.conferences.size(ROOM) == 1


async def test_a_replayed_nonce_takes_no_second_place_in_the_room(mock_clock) -> None:
    async with open_harness({EXT_A: [answers(1)]}) as h:
        h.engine.conferences.capacity = 1
        first = await invite(h, EXT_A, nonce="invite-1")
        call, created = await h.engine.originate(
            request([ROOM], [EXT_A], conference=ROOM, nonce="invite-1")
        )
        assert (call.id, created) == (first, False)
        assert h.engine.conferences.room(ROOM).taken == 1


async def test_a_media_backend_that_cannot_mix_refuses_invites_before_ringing(
    mock_clock,
) -> None:
    async with open_harness({EXT_A: [answers(1)]}) as h:
        h.engine.mixing_unavailable = "the rtpengine backend does not mix"
        with pytest.raises(ActionNotSupported, match="conferences: the rtpengine backend"):
            await invite(h, EXT_A)
        assert h.engine.live_calls() == [] and h.engine.conferences.room(ROOM) is None
        assert EXT_A not in h.legs.caller_ids  # nobody was rung
