"""How control calls reach the relay's forwarding thread: a queue of commands and an eventfd.

A control call (any thread) changes the control state under the relay's lock, then submits a
small command; the loop runs queued commands, under the same lock, before it looks at the
packets of each poll, so a packet sent after a control call returned is handled with that call
in effect. Before the loop runs (and after it stopped) a command runs at once.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Callable

logger = logging.getLogger(__name__)


class CommandQueue:
    """Commands for the loop thread; ``lock`` is the relay's (control state and this queue)."""

    def __init__(self, lock: threading.Lock) -> None:
        self.lock = lock
        self.pending: list[Callable[[], None]] = []
        self.wake_fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self.running = False  # the loop takes commands; else they run at once

    def submit(self, command: Callable[[], None]) -> None:
        """Run ``command`` in the loop (now, if it is not running). Caller holds the lock."""
        if self.running:
            self.pending.append(command)
            self.wake()
        else:
            command()

    def flush(self, timeout: float = 1.0) -> None:
        """Wait until the loop has run the commands queued so far."""
        done = threading.Event()
        with self.lock:
            if not self.running or not self.pending:
                return
            self.pending.append(done.set)
            self.wake()
        done.wait(timeout)

    def wake(self) -> None:
        with contextlib.suppress(OSError):  # counter saturated: the loop is awake anyway
            os.eventfd_write(self.wake_fd, 1)

    def take_wakeup(self) -> None:
        """Reset the eventfd (loop thread, when it polled readable)."""
        with contextlib.suppress(OSError):
            os.eventfd_read(self.wake_fd)

    def run_pending(self) -> None:
        """Run the queued commands (loop thread)."""
        with self.lock:
            commands, self.pending = self.pending, []
            for command in commands:
                try:
                    command()
                except Exception:
                    logger.exception("relay command failed")

    def close(self) -> None:
        """Run what is still queued (e.g. a release() just before close) and close the eventfd.
        Caller holds the lock; the loop has stopped."""
        self.running = False
        pending, self.pending = self.pending, []
        for command in pending:
            try:
                command()
            except Exception:
                logger.exception("relay command failed while closing")
        os.close(self.wake_fd)
