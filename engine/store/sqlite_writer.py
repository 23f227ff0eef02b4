"""The SQLite store's writer thread: a call's committed writes leave the signalling thread.

A click-to-call commits a few rows (its record when created, bridged and ended, and the
dialog state of each answered leg, added and dropped). On the trio thread these statements
were the largest single block of the call path (about a sixth of its CPU time at 150 calls/s,
most of it inside SQLite, which needs no Python). ``SqliteWriter`` runs them on a thread of
its own instead, in the order they were given, as many as are waiting in one transaction.

Order and reads: only the thread that owns the store gives writes (the one-thread-at-a-time
rule of ``SqlStore``), and every statement it runs itself, a read above all, first waits
until the writer has written everything given before (``drain``): a read sees every write
made before it, as when the writes ran in place. For a local SQLite file the wait is the
time of the few statements still queued.

Durability: a write is committed a moment after ``save_call`` returns (the time the writer
takes to get to it: well under a millisecond when the machine is not starved), no longer
when it returns; a process killed in that moment loses it, as a crash a moment earlier
would have. An error is logged and counted (``errors``), never raised to the caller, whose
call has moved on: a batch that fails is written again one statement at a time, so one bad
row does not take the others with it.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from contextlib import AbstractContextManager

logger = logging.getLogger(__name__)

Write = Callable[[], None]


class SqliteWriter:
    """Runs ``Write`` functions on one thread, in order, batched in ``transaction()``s."""

    def __init__(self, name: str, transaction: Callable[[], AbstractContextManager[None]]) -> None:
        self.name = name
        self._transaction = transaction
        self._queue: deque[Write] = deque()
        self._busy = False  # the thread is writing a batch it took
        self._closed = False
        self._cond = threading.Condition()
        self.errors = 0  # writes that failed (logged)
        self.written = 0  # writes done
        self.batches = 0  # transactions they took
        self._thread = threading.Thread(target=self._run, name=f"store-writer {name}", daemon=True)
        self._thread.start()

    def submit(self, write: Write) -> None:
        """Queue ``write``; it runs after every write submitted before it."""
        with self._cond:
            if self._closed:
                raise RuntimeError("the store's writer is closed")
            self._queue.append(write)
            if len(self._queue) == 1:
                self._cond.notify_all()

    @property
    def idle(self) -> bool:
        return not self._queue and not self._busy

    def drain(self) -> None:
        """Return once every write submitted so far is done (at once on the writer's own
        thread, whose writes are the ones being done)."""
        if not self._queue and not self._busy:
            return
        if threading.current_thread() is self._thread:
            return
        with self._cond:
            while self._queue or self._busy:
                self._cond.wait()

    def close(self) -> None:
        """Write what is queued, then stop the thread."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closed:
                    self._cond.wait()
                if not self._queue:  # closed, and all written
                    return
                batch = list(self._queue)
                self._queue.clear()
                self._busy = True
            try:
                self._write(batch)
            finally:
                with self._cond:
                    self._busy = False
                    self.written += len(batch)
                    self.batches += 1
                    self._cond.notify_all()

    def _write(self, batch: list[Write]) -> None:
        try:
            with self._transaction():
                for write in batch:
                    write()
            return
        except Exception as exc:  # rolled back: each again on its own
            logger.warning("store %s: a batch of %d writes failed (%s)", self.name, len(batch), exc)
        for write in batch:
            try:
                write()
            except Exception:
                self.errors += 1
                logger.exception("store %s: a write failed and is lost", self.name)
