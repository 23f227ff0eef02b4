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
takes to get to it), no longer when it returns; a process killed in that moment loses it,
as a crash a moment earlier would have. Where a caller needs the write on disk before it
goes on (a create's record before its 202, a call with a statusCallback at each event),
``SqliteStore`` waits for it (``wait_written``). An error is logged and counted (``errors``),
never raised to the caller, whose call has moved on: a batch the database refuses is
written again one statement at a time, so one bad row does not take the others with it; a
batch that finds the file locked by another process is tried again whole, twice.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections import deque
from collections.abc import Callable
from contextlib import AbstractContextManager

logger = logging.getLogger(__name__)

Write = Callable[[], None]

# tries of a batch while another process holds the database's write lock (each waits out
# SQLite's busy timeout, 5 s): then its writes are tried one by one, and those that fail lost
_ATTEMPTS = 3


def _busy(exc: sqlite3.OperationalError) -> bool:
    text = str(exc).lower()
    return "locked" in text or "busy" in text


class SqliteWriter:
    """Runs ``Write`` functions on one thread, in order, batched in ``transaction()``s."""

    def __init__(self, name: str, transaction: Callable[[], AbstractContextManager[None]]) -> None:
        self.name = name
        self._transaction = transaction
        self._queue: deque[Write] = deque()
        # writes given and not done yet, queued or in the batch being written: one number,
        # so the owner's unlocked ``idle`` check cannot fall between the queue emptied and
        # the batch begun
        self._outstanding = 0
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
            self._outstanding += 1
            if len(self._queue) == 1:
                self._cond.notify_all()

    @property
    def idle(self) -> bool:
        """No write given is still to do (read without the lock: one int)."""
        return self._outstanding == 0

    def drain(self) -> None:
        """Return once every write submitted so far is done (at once on the writer's own
        thread, whose writes are the ones being done)."""
        if self._outstanding == 0 or threading.current_thread() is self._thread:
            return
        with self._cond:
            while self._outstanding:
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
            try:
                self._write(batch)
            finally:
                with self._cond:
                    self._outstanding -= len(batch)
                    self.written += len(batch)
                    self.batches += 1
                    self._cond.notify_all()

    def _write(self, batch: list[Write]) -> None:
        for attempt in range(1, _ATTEMPTS + 1):
            try:
                with self._transaction():
                    for write in batch:
                        write()
                return
            except sqlite3.OperationalError as exc:
                if not _busy(exc) or attempt == _ATTEMPTS:
                    logger.warning(
                        "store %s: a batch of %d writes failed (%s)", self.name, len(batch), exc
                    )
                    break
                # another process holds the file's write lock past the busy timeout: the
                # batch is kept and tried again whole, in order
                logger.warning("store %s: database locked, batch tried again (%s)", self.name, exc)
            except Exception as exc:  # rolled back: each again on its own
                logger.warning(
                    "store %s: a batch of %d writes failed (%s)", self.name, len(batch), exc
                )
                break
        for write in batch:
            try:
                write()
            except Exception:
                self.errors += 1
                logger.exception("store %s: a write failed and is lost", self.name)
