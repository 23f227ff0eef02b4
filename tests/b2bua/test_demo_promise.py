"""``b2bua demo``'s verdict: the final record checked against what each sandbox number promises."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from b2bua.demo import ANSWERED, BUSY, NO_ANSWER, check_promise, promised, sandbox_index

START = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
FAILED = 2


def record(
    source_after: float | None,
    dest_after: float | None,
    disposition: int,
    cause: str = "call duration reached",
) -> dict[str, Any]:
    """A final record: the source answered ``source_after`` s after the call was created,
    the destination ``dest_after`` s after the source answered (None: did not answer)."""

    def iso(moment: datetime) -> str:
        return moment.isoformat().replace("+00:00", "Z")

    source: dict[str, Any] = {"role": "source", "number": "S"}
    dest: dict[str, Any] = {"role": "destination", "number": "D"}
    if source_after is not None:
        answered = START + timedelta(seconds=source_after)
        source["answered"] = iso(answered)
        if dest_after is not None:
            dest["answered"] = iso(answered + timedelta(seconds=dest_after))
    return {
        "published": iso(START),
        "state": "ended",
        "disposition": disposition,
        "hangupCause": cause,
        "phoneCallView": [source, dest],
    }


AS_PROMISED = [
    ("0003*00", "0003*01", record(1.0, 2.1, ANSWERED)),
    ("0003*04", "0003*02", record(5.2, 3.0, ANSWERED)),
    ("0003*00", "0003*09", record(1.0, None, BUSY, "every destination failed")),
    ("0003*00", "0003*08", record(1.0, None, NO_ANSWER, "no answer within waitForPickup")),
    ("0003*05", "0003*00", record(None, None, BUSY, "every source failed")),
    ("0003*05", "0003*00", record(3.0, 1.0, ANSWERED)),
    ("0003*00", "0003*06", record(1.0, None, BUSY)),
    ("0003*00", "0003*06", record(1.0, 5.0, ANSWERED)),
    ("0003*07", "0003*07", record(19.5, 0.2, ANSWERED)),
    ("0003*08", "0003*00", record(None, None, NO_ANSWER, "no answer within waitForPickup")),
    ("0003*09", "0003*00", record(None, None, BUSY)),
]


@pytest.mark.parametrize(("source", "destination", "final"), AS_PROMISED)
def test_calls_that_keep_the_promise_pass(
    source: str, destination: str, final: dict[str, Any]
) -> None:
    assert check_promise(final, source, destination, 5) == []


BROKEN = [
    # what the old check let through: only *00-*04 pairs and *09 were checked
    ("0003*00", "0003*08", record(1.0, None, BUSY), "0003*08 ended the call (BUSY)"),
    ("0003*00", "0003*08", record(1.0, 3.0, ANSWERED), "0003*08 answered, but it rings"),
    ("0003*00", "0003*09", record(1.0, 0.1, ANSWERED), "0003*09 answered, but it is busy"),
    ("0003*00", "0003*05", record(1.0, None, FAILED), "0003*05 ended the call (FAILED)"),
    ("0003*05", "0003*00", record(None, None, NO_ANSWER), "0003*05 did not answer (NO ANSWER)"),
    ("0003*05", "0003*00", record(4.5, 1.0, ANSWERED), "0003*05 answered after 4.5 s"),
    ("0003*07", "0003*00", record(23.0, 1.0, ANSWERED), "0003*07 answered after 23.0 s"),
    ("0003*09", "0003*00", record(None, None, NO_ANSWER), "0003*09 did not answer"),
    ("0003*00", "0003*01", record(1.0, 4.0, ANSWERED), "0003*01 answered after 4.0 s"),
    ("0003*00", "0003*01", record(1.0, None, FAILED), "0003*01 ended the call (FAILED)"),
    (
        "0003*00",
        "0003*01",
        record(1.0, 2.0, ANSWERED, "hung up by the App"),
        "should end when callDuration (5 s) runs out",
    ),
    ("0003*00", "0003*01", record(1.0, 2.0, FAILED), "both answered, but the call ended FAILED"),
]


@pytest.mark.parametrize(("source", "destination", "final", "problem"), BROKEN)
def test_calls_that_break_the_promise_are_named(
    source: str, destination: str, final: dict[str, Any], problem: str
) -> None:
    problems = check_promise(final, source, destination, 5)
    assert any(problem in text for text in problems), problems


def test_a_destination_that_answered_before_being_called_is_named() -> None:
    final = record(1.0, 2.0, BUSY)
    del final["phoneCallView"][0]["answered"]  # the source never answered
    problems = check_promise(final, "0003*09", "0003*00", 5)
    assert problems == ["0003*00 answered, but it is called only once 0003*09 has"]


@pytest.mark.parametrize("number", ["0003*210", "5551234", "0004*00", "0003*0", "0003*10", ""])
def test_the_demo_takes_its_sandbox_numbers_only(number: str) -> None:
    with pytest.raises(ValueError, match="the demo calls the sandbox numbers 0003\\*00 to"):
        sandbox_index(number)
    assert [sandbox_index(f"0003*0{i}") for i in range(10)] == list(range(10))


@pytest.mark.parametrize(
    ("source", "destination", "duration", "final"),
    [
        # callDuration counts from the source's answer: it can end the call while the
        # destination still rings, and that is what the numbers promise then
        ("0003*07", "0003*04", 1, record(12.7, None, NO_ANSWER, "call duration reached")),
        ("0003*00", "0003*04", 5, record(1.0, None, NO_ANSWER, "call duration reached")),
        ("0003*00", "0003*04", 5, record(1.0, 5.0, ANSWERED)),
        ("0003*00", "0003*07", 3, record(1.0, None, NO_ANSWER, "call duration reached")),
        ("0003*00", "0003*08", 3, record(1.0, None, NO_ANSWER, "call duration reached")),
    ],
)
def test_a_call_duration_that_runs_out_while_the_destination_rings(
    source: str, destination: str, duration: int, final: dict[str, Any]
) -> None:
    assert check_promise(final, source, destination, duration) == []


def test_a_destination_that_should_have_answered_before_the_call_duration_ran_out() -> None:
    final = record(1.0, None, NO_ANSWER, "call duration reached")
    assert check_promise(final, "0003*00", "0003*01", 5) == [
        "0003*01 did not answer (NO ANSWER), but it answers after 2 s"
    ]


@pytest.mark.parametrize(
    ("source", "destination", "duration", "line"),
    [
        (
            "0003*00",
            "0003*01",
            5,
            "0003*00 answers after 1 s; when it answers, 0003*01 answers after 2 s",
        ),
        ("0003*00", "0003*09", 5, "0003*00 answers after 1 s; when it answers, 0003*09 is busy"),
        (
            "0003*00",
            "0003*08",
            60,
            "0003*00 answers after 1 s; when it answers, 0003*08 rings "
            "and never answers (NO ANSWER after 25 s)",
        ),
        (
            "0003*08",
            "0003*00",
            5,
            "0003*08 rings and never answers (NO ANSWER after 25 s), so 0003*00 is never called",
        ),
        (
            "0003*00",
            "0003*04",
            2,
            "0003*00 answers after 1 s; when it answers, 0003*04 answers "
            "after 5 s, but callDuration (2 s from the source's answer) runs out before that: "
            "NO ANSWER",
        ),
        (
            "0003*00",
            "0003*07",
            5,
            "0003*00 answers after 1 s; when it answers, 0003*07 answers "
            "after at most 20 s, unless callDuration (5 s from the source's answer) runs out first",
        ),
    ],
)
def test_the_demo_says_what_it_expects_before_calling(
    source: str, destination: str, duration: int, line: str
) -> None:
    assert promised(source, destination, 25, duration) == f"promised: {line}"
