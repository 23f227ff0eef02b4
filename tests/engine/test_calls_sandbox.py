"""The Simple PhoneCall controller on MockClock, with sandbox parties and scripted fake legs."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
import trio
import trio.testing

from engine.config_model import default_config
from engine.directory import demo_directory
from engine.engine import OriginateRequest, open_engine
from engine.model import CallState, Disposition
from engine.store import open_store


class Clock:
    """Wall clock that follows trio's (mock) clock, so record times match waits."""

    def __init__(self) -> None:
        self.base = datetime(2026, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.base + timedelta(seconds=trio.current_time())


@pytest.fixture
def mock_clock() -> trio.testing.MockClock:
    return trio.testing.MockClock(autojump_threshold=0)


def request(sources: list[str], destinations: list[str], **kw: object) -> OriginateRequest:
    directory = demo_directory()
    ext = directory.extension("0003*210")
    assert ext is not None
    return OriginateRequest(
        user_id=12,
        organization_id=3,
        extension=ext,
        sources=sources,
        destinations=destinations,
        **kw,  # type: ignore[arg-type]
    )


async def run_call(req: OriginateRequest, seed: int = 1):
    store = open_store("sqlite:///:memory:")
    events = []
    async with open_engine(
        default_config(), demo_directory(), store, wall_clock=Clock(), rng=random.Random(seed)
    ) as engine:
        engine.listeners.append(lambda call, ev: events.append((trio.current_time(), ev.event)))
        call, created = await engine.originate(req)
        assert created
        while engine.live_count:
            await trio.sleep(0.1)
        return engine.get_call(call.id), events


async def test_sandbox_to_sandbox_answers_and_bridges(mock_clock) -> None:
    call, events = await run_call(request(["0003*00"], ["0003*01"], call_duration=10))
    assert call.state is CallState.ENDED
    assert call.disposition is Disposition.ANSWERED
    # *00 answers after 1 s, *01 after 2 s more; callDuration counts from the source's answer.
    names = [e for _, e in events]
    assert names[0] == "created" and names[-1] == "ended"
    assert names.count("ended") == 1
    t = dict((name, when) for when, name in events)
    assert t["source_answered"] == pytest.approx(1.0)
    assert t["bridged"] == pytest.approx(3.0)
    assert t["ended"] == pytest.approx(11.0)
    assert call.hangup_cause == "call duration reached"
    assert call.billable_seconds == 8


async def test_wait_for_pickup_expiry_cancels_everything(mock_clock) -> None:
    call, events = await run_call(request(["0003*08"], ["0003*00"], wait_for_pickup=7))
    assert call.disposition is Disposition.NO_ANSWER
    ended_at = next(when for when, name in events if name == "ended")
    assert ended_at == pytest.approx(7.0)
    assert call.answered is None
    assert call.hangup_cause == "no answer within waitForPickup"


async def test_busy_source(mock_clock) -> None:
    call, _ = await run_call(request(["0003*09"], ["0003*00"]))
    assert call.disposition is Disposition.BUSY
    assert call.parties[0].sip_status == 486


async def test_destination_busy_ends_the_source(mock_clock) -> None:
    call, events = await run_call(request(["0003*00"], ["0003*09"]))
    assert call.disposition is Disposition.BUSY
    assert call.answered is not None and call.bridged is None
    assert [name for _, name in events].count("ended") == 1


async def test_first_answer_wins(mock_clock) -> None:
    call, _ = await run_call(request(["0003*04", "0003*00"], ["0003*01"], call_duration=5))
    winner = [p for p in call.parties if p.role == "source" and p.answered is not None]
    assert [p.number for p in winner] == ["0003*00"]
    loser = call.parties[0]
    assert loser.hangup_cause == "answered elsewhere"


async def test_sandbox_calls_are_capped_at_three_minutes(mock_clock) -> None:
    call, events = await run_call(request(["0003*00"], ["0003*00"], call_duration=3600))
    ended_at = next(when for when, name in events if name == "ended")
    assert ended_at == pytest.approx(1.0 + 180.0)
    assert call.charge == 0.0


async def test_nonce_retry_returns_the_same_call(mock_clock) -> None:
    store = open_store("sqlite:///:memory:")
    async with open_engine(default_config(), demo_directory(), store, wall_clock=Clock()) as engine:
        first, created = await engine.originate(request(["0003*00"], ["0003*00"], nonce="abc"))
        again, created_again = await engine.originate(
            request(["0003*00"], ["0003*00"], nonce="abc")
        )
        assert created and not created_again
        assert again.id == first.id
        assert engine.live_count == 1


async def test_hangup_via_api_ends_a_bridged_call(mock_clock) -> None:
    store = open_store("sqlite:///:memory:")
    async with open_engine(default_config(), demo_directory(), store, wall_clock=Clock()) as engine:
        call, _ = await engine.originate(request(["0003*00"], ["0003*00"]))
        await trio.sleep(5)
        assert engine.get_call(call.id).state is CallState.BRIDGED
        assert await engine.hangup(call.id, phone_number="5555555") is False
        assert await engine.hangup(call.id)
        await trio.sleep(0.1)
        final = engine.get_call(call.id)
        assert final.state is CallState.ENDED
        assert final.disposition is Disposition.ANSWERED
        assert final.hangup_cause == "hung up via the API"


async def test_restart_marks_live_calls_ended(mock_clock, tmp_path) -> None:
    url = f"sqlite:///{tmp_path}/calls.sqlite"
    store = open_store(url)
    ids: list[str] = []

    async def first_process(task_status=trio.TASK_STATUS_IGNORED) -> None:
        async with open_engine(default_config(), demo_directory(), store, wall_clock=Clock()) as e:
            call, _ = await e.originate(request(["0003*00"], ["0003*00"]))
            ids.append(call.id)
            task_status.started()
            await trio.sleep_forever()

    async with trio.open_nursery() as nursery:
        await nursery.start(first_process)
        await trio.sleep(5)
        assert store.get_call(ids[0]).state is CallState.BRIDGED
        store.close()  # the process "dies": nothing more reaches the database
        nursery.cancel_scope.cancel()
    store2 = open_store(url)
    async with open_engine(default_config(), demo_directory(), store2, wall_clock=Clock()) as e2:
        again = e2.get_call(ids[0])
        assert again.state is CallState.ENDED
        assert again.disposition is Disposition.ANSWERED
        assert "restart" in again.hangup_cause
