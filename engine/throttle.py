"""A warning that can repeat per call, logged at most once per interval.

When the server runs short of something (media ports, file descriptors) every new call fails
the same way, hundreds a second under load; one line per call would bury the rest of the log.
``ThrottledWarning.warn`` logs the first occurrence at once, then at most one line per
``interval`` seconds, each saying how many were left out since the last one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import trio


class ThrottledWarning:
    def __init__(
        self,
        logger: logging.Logger,
        interval: float = 10.0,
        clock: Callable[[], float] = trio.current_time,
    ) -> None:
        self._logger = logger
        self._interval = interval
        self._clock = clock
        self._next_at: float | None = None
        self._left_out = 0

    def warn(self, message: str) -> None:
        now = self._clock()
        if self._next_at is not None and now < self._next_at:
            self._left_out += 1
            return
        if self._left_out:
            message += f" (and {self._left_out} more like it in the last {self._interval:g} s)"
            self._left_out = 0
        self._logger.warning("%s", message)
        self._next_at = now + self._interval
