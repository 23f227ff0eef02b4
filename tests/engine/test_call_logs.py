"""What the engine tells an operator (INFO) and the counts metrics read, on MockClock."""

from __future__ import annotations

import logging
import random

import pytest
import trio
import trio.testing
from test_calls_sandbox import Clock, request

from engine.config import default_config
from engine.directory import demo_directory
from engine.engine import open_engine
from engine.limiter import FailureLimiter, LimiterPolicy
from engine.logctx import CALL_ID
from engine.store import open_store


@pytest.fixture
def mock_clock() -> trio.testing.MockClock:
    return trio.testing.MockClock(autojump_threshold=0)


async def test_creation_and_end_at_info_with_the_call_id_and_the_rest_at_debug(
    mock_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    seen_in_task: list[str | None] = []
    legs_seen: list[int] = []
    with caplog.at_level(logging.DEBUG, logger="engine"):
        async with open_engine(
            default_config(),
            demo_directory(),
            open_store("sqlite:///:memory:"),
            wall_clock=Clock(),
            rng=random.Random(1),
        ) as engine:
            # a listener runs in the task that publishes: the call's own for what it does
            engine.listeners.append(lambda call, ev: seen_in_task.append(CALL_ID.get()))
            call, _ = await engine.originate(request(["0003*00"], ["0003*01"], call_duration=10))
            assert engine.live_legs == 0  # created, nobody rung yet
            await trio.sleep(4)  # *00 answered at 1 s, *01 at 3 s: both legs up
            legs_seen.append(engine.live_legs)
            while engine.live_count:
                await trio.sleep(0.5)
            assert engine.live_legs == 0
    assert legs_seen == [2]
    about = [r for r in caplog.records if getattr(r, "call", None) == call.id]
    info = [r.getMessage() for r in about if r.levelno == logging.INFO]
    assert info == [
        f"call {call.id} created (api): 0003*00 -> 0003*01",
        f"call {call.id} ended: ANSWERED after 8 s bridged (call duration reached)",
    ]
    assert any(r.levelno == logging.DEBUG and "bridged" in r.getMessage() for r in about)
    # every event after "created" (published from the caller's task) came from the call's task
    assert seen_in_task[0] is None and set(seen_in_task[1:]) == {call.id}


def test_the_limiter_counts_failures_and_blocks() -> None:
    limiter = FailureLimiter("sip digest", LimiterPolicy(per_pair=2, per_source=100, per_user=100))
    for attempt in range(3):
        limiter.failure("0003*210", "192.0.2.7", float(attempt))
    assert limiter.failures == 3
    assert limiter.blocks == 2  # the second and the third failure each start (extend) a block


def test_a_new_binding_and_its_removal_at_info_its_refreshes_at_debug(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from test_registrar import authed, make

    registrar, clock = make()
    contact = ["<sip:alice@10.0.0.5:5062>"]
    with caplog.at_level(logging.DEBUG, logger="engine.registrar"):
        assert authed(registrar, "0003*210", "secret210", contact, cseq=2).status == 200
        clock.now += 60
        assert authed(registrar, "0003*210", "secret210", contact, cseq=4).status == 200
        clock.now += 60
        gone = authed(registrar, "0003*210", "secret210", contact, cseq=6, expires=0)
        assert gone.status == 200
    lines = [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "engine.registrar"]
    where = "sip:alice@10.0.0.5:5062 via 192.0.2.10:5062 udp"
    assert lines == [
        ("INFO", f"0003*210 registered {where} for 3600 s"),
        ("DEBUG", f"0003*210 refreshed {where} for 3600 s"),
        ("INFO", f"0003*210 unregistered {where}"),
    ]
