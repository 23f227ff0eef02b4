"""Each sandbox number's behaviour as VoipNow documents it (UnifiedAPI reference, 2.11), over
many draws."""

from __future__ import annotations

import random

import pytest

from engine.sandbox import SandboxPlan, plan_for, promise_for


@pytest.mark.parametrize("index", range(5))
def test_00_to_04_always_answer_after_index_plus_one_seconds(index: int) -> None:
    rng = random.Random(index)
    for _ in range(50):
        assert plan_for(index, rng) == SandboxPlan(float(index + 1), True)


@pytest.mark.parametrize(("index", "delay"), [(5, 3.0), (6, 5.0)])
def test_05_and_06_answer_after_their_delay_or_are_busy(index: int, delay: float) -> None:
    rng = random.Random(42)
    plans = [plan_for(index, rng) for _ in range(400)]
    answers = [p for p in plans if p.answers]
    busy = [p for p in plans if not p.answers]
    assert answers and busy, "both outcomes happen"
    assert all(p.delay == delay for p in answers)
    assert all(p.status == 486 and p.delay == 0 for p in busy)
    assert 0.35 < len(answers) / len(plans) < 0.65


def test_07_answers_after_a_random_delay_of_at_most_20_s() -> None:
    rng = random.Random(7)
    delays = [plan_for(7, rng).delay for _ in range(500)]
    assert all(0 <= d <= 20 for d in delays)
    assert max(delays) - min(delays) > 10, "the delay really varies"
    assert all(plan_for(7, rng).answers for _ in range(50))


def test_08_rings_120_s_and_never_answers() -> None:
    assert plan_for(8, random.Random()) == SandboxPlan(120.0, False, 480)


def test_09_is_always_busy() -> None:
    assert plan_for(9, random.Random()) == SandboxPlan(0.0, False, 486)


def test_there_is_no_sandbox_10() -> None:
    with pytest.raises(ValueError, match="00 to \\*09"):
        plan_for(10, random.Random())


@pytest.mark.parametrize("index", range(10))
def test_every_plan_drawn_keeps_the_documented_promise(index: int) -> None:
    """``promise_for`` (what ``b2bua demo`` checks a call against) says what ``plan_for`` does."""
    promise = promise_for(index)
    rng = random.Random(index)
    for _ in range(200):
        plan = plan_for(index, rng)
        if plan.answers:
            assert promise.answers and promise.earliest <= plan.delay <= promise.latest
        elif plan.status == 486:
            assert promise.busy
        else:  # rings on, never answers
            assert not promise.answers and not promise.busy
