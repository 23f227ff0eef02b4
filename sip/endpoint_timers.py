"""The endpoint's one timer task: the transaction layer's timers and the sessions'.

``EndpointTimers`` is mixed into ``sip.endpoint.SipEndpoint`` (its state is set there, the
pump reads it on every message).  The task sleeps until the earliest of
``layer.get_timer()`` and the sessions' timers (``schedule_session_timer``: the INVITE
sessions have no task of their own) and fires what is due; whoever schedules an earlier
deadline wakes it.  Time is read only through ``trio.current_time()``, so
``trio.testing.MockClock`` drives every timer in tests.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Protocol

import trio

from sip.timers import TimerQueue
from sip.transaction import TransactionLayer

__all__ = ["EndpointTimers", "TimerOwner"]

# the endpoint's lines keep the logger name they had when this was one module
log = logging.getLogger("sip.endpoint")


class TimerOwner(Protocol):
    """Whoever asked for a session timer: told when it is due."""

    def timer_due(self) -> None: ...


class EndpointTimers:
    """The timer task of ``SipEndpoint`` (a mixin: its state is set by ``SipEndpoint``)."""

    _layer: TransactionLayer
    _session_timers: TimerQueue[TimerOwner]
    _timer_wakeup: trio.Event
    _sleeping_until: float
    # the endpoint's own: drains the transaction layer's events
    _pump: Callable[[], None]

    def schedule_session_timer(self, deadline: float, owner: TimerOwner) -> int:
        """Call ``owner.timer_due()`` at ``deadline``; the token cancels it."""
        token = self._session_timers.schedule(deadline, owner)
        if deadline < self._sleeping_until:
            self._timer_wakeup.set()
        return token

    def cancel_session_timer(self, token: int) -> None:
        self._session_timers.cancel(token)

    def _next_deadline(self) -> float:
        deadline = self._layer.get_timer()
        session = self._session_timers.earliest()
        if deadline is None:
            return math.inf if session is None else session
        return deadline if session is None or deadline <= session else session

    async def _timer_loop(self) -> None:
        while True:
            self._sleeping_until = self._next_deadline()
            self._timer_wakeup = trio.Event()
            if self._sleeping_until > trio.current_time():
                with trio.move_on_at(self._sleeping_until):
                    await self._timer_wakeup.wait()
            else:
                await trio.lowlevel.checkpoint()
            self._sleeping_until = math.inf
            now = trio.current_time()
            deadline = self._layer.get_timer()
            if deadline is not None and deadline <= now:
                try:
                    self._layer.handle_timer(now)
                except Exception:
                    log.exception("transaction timer failed")
                self._pump()
            while (due := self._session_timers.pop_due(now)) is not None:
                try:
                    due[0].timer_due()
                except Exception:
                    log.exception("session timer failed")
