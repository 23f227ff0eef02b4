"""ThrottledWarning: the first at once, then one line per interval with the count left out."""

from __future__ import annotations

import logging

import pytest
import trio
import trio.testing

from engine.throttle import ThrottledWarning


@pytest.fixture
def mock_clock() -> trio.testing.MockClock:
    return trio.testing.MockClock(autojump_threshold=0)


async def test_repeats_within_the_interval_are_counted_not_logged(
    mock_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    warning = ThrottledWarning(logging.getLogger("test.throttle"), interval=10.0)
    with caplog.at_level(logging.WARNING, logger="test.throttle"):
        warning.warn("call a: no media ports")
        for name in "bcd":
            await trio.sleep(1)
            warning.warn(f"call {name}: no media ports")
        assert [r.getMessage() for r in caplog.records] == ["call a: no media ports"]
        await trio.sleep(7)  # 10 s after the first line
        warning.warn("call e: no media ports")
        await trio.sleep(10)
        warning.warn("call f: no media ports")  # nothing left out since e
    assert [r.getMessage() for r in caplog.records] == [
        "call a: no media ports",
        "call e: no media ports (and 3 more like it in the last 10 s)",
        "call f: no media ports",
    ]
