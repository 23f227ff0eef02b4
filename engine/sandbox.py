"""Sandbox numbers ``CODE*00`` .. ``CODE*09``, answered by the engine itself.

Behaviour, exactly as VoipNow documents its sandbox (UnifiedAPI reference, 2.11):

====  ==============================================
*00   answers after 1 s          *05  answers after 3 s, or busy (50 %)
*01   answers after 2 s          *06  answers after 5 s, or busy (50 %)
*02   answers after 3 s          *07  answers after a random delay of at most 20 s
*03   answers after 4 s          *08  rings for 120 s and never answers
*04   answers after 5 s          *09  always busy
====  ==============================================

Our choices where the documentation is silent: a busy sandbox answers 486 at once (like a
phone that is in use); *08 gives up after 120 s with 480 (the call's waitForPickup normally
ends it first); an answered sandbox sends a 440 Hz tone (played by the relay) and never hangs up
by itself; the 3-minute cap and the "free of charge" rule are the call controller's.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import trio

from engine.legs import LegAnswered, LegEvent, LegFailed, LegRinging

SANDBOX_MAX_DURATION = 180  # seconds: sandbox calls are cut off after 3 minutes
SANDBOX_TONE_HZ = 440.0


@dataclass(frozen=True, slots=True)
class SandboxPlan:
    """What a sandbox number does on one call: answer after ``delay``, or fail with ``status``."""

    delay: float
    answers: bool
    status: int = 486


@dataclass(frozen=True, slots=True)
class SandboxPromise:
    """What the documentation promises a sandbox number does when called: answer after
    ``earliest`` to ``latest`` seconds (``answers``), be busy (``busy``), or, neither of them,
    ring without ever answering. ``text`` says it in words."""

    answers: bool
    earliest: float
    latest: float
    busy: bool
    text: str


def promise_for(index: int) -> SandboxPromise:
    """The documented behaviour of ``CODE*0<index>`` (what ``plan_for`` draws from)."""
    if 0 <= index <= 4:
        delay = float(index + 1)
        return SandboxPromise(True, delay, delay, False, f"answers after {delay:.0f} s")
    if index in (5, 6):
        delay = 3.0 if index == 5 else 5.0
        return SandboxPromise(True, delay, delay, True, f"answers after {delay:.0f} s or is busy")
    if index == 7:
        return SandboxPromise(True, 0.0, 20.0, False, "answers after at most 20 s")
    if index == 8:
        return SandboxPromise(False, 0.0, 0.0, False, "rings and never answers")
    if index == 9:
        return SandboxPromise(False, 0.0, 0.0, True, "is busy")
    raise ValueError(f"sandbox numbers are *00 to *09, not *{index:02d}")


def plan_for(index: int, rng: random.Random) -> SandboxPlan:
    if 0 <= index <= 4:
        return SandboxPlan(delay=float(index + 1), answers=True)
    if index == 5:
        return SandboxPlan(3.0, True) if rng.random() < 0.5 else SandboxPlan(0.0, False)
    if index == 6:
        return SandboxPlan(5.0, True) if rng.random() < 0.5 else SandboxPlan(0.0, False)
    if index == 7:
        return SandboxPlan(rng.uniform(0.0, 20.0), True)
    if index == 8:
        return SandboxPlan(120.0, False, 480)
    if index == 9:
        return SandboxPlan(0.0, False, 486)
    raise ValueError(f"sandbox numbers are *00 to *09, not *{index:02d}")


class SandboxLeg:
    """An in-process callee following a :class:`SandboxPlan`; time via trio (MockClock-friendly)."""

    def __init__(self, number: str, plan: SandboxPlan) -> None:
        self.number = number
        self.plan = plan
        self._events: list[LegEvent] = []
        self._started_at: float | None = None
        self._stage = 0
        self._done = trio.Event()

    @property
    def label(self) -> str:
        return f"sandbox {self.number}"

    async def start(self, offer: bytes | None) -> None:
        self._started_at = trio.current_time()

    async def next_event(self) -> LegEvent:
        if self._stage == 0:
            self._stage = 1
            if not self.plan.answers and self.plan.status == 486:
                self._stage = 3
                return LegFailed(486, "Busy Here")
            return LegRinging(180)
        if self._stage == 1:
            assert self._started_at is not None
            with trio.move_on_at(self._started_at + self.plan.delay):
                await self._done.wait()
            self._stage = 2
            if self._done.is_set():
                return LegFailed(487, "Request Terminated")
            if self.plan.answers:
                return LegAnswered(None)
            self._stage = 3
            return LegFailed(self.plan.status, "Temporarily Unavailable")
        await trio.sleep_forever()
        raise AssertionError("unreachable")

    async def cancel(self) -> None:
        self._done.set()

    async def bye(self) -> None:
        self._done.set()

    async def reinvite(self, sdp: bytes) -> bytes | None:
        return None
