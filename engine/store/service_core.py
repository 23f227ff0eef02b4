"""What the parts of ``StoreService`` share: its state, the worker thread the backend runs in,
and whether the database is reachable (``available``, and the prober that finds out when
nothing else asks it).

``ServiceCore`` is the base of the other parts (``service_writes``, ``service_contacts``,
``service_sync_reads``, ``service_awaited_reads``): they read and change this state directly,
so a write costs no extra call on its way to the queue.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any, TypeVar, cast

import trio

from engine.store.interface import ContactRecord, StoreError, StoreUnavailable
from engine.store.sql import SqlStore
from engine.store.write_queue import WriteQueue

logger = logging.getLogger(__name__)

T = TypeVar("T")

# runs a blocking function off the trio thread: trio.to_thread.run_sync by default (a test on
# MockClock passes one that runs it in place, so mock time does not jump while a thread runs)
Worker = Callable[[Callable[[], Any]], Awaitable[Any]]


class ServiceCore:
    """The state of a ``StoreService``, its worker thread and its availability."""

    def __init__(
        self,
        backend: SqlStore,
        *,
        queued: bool | None = None,
        retry: float = 0.5,
        probe: float = 1.0,
        stuck: float = 3.0,
        refresh_contacts: float = 1.0,
        batch: int = 500,
        worker: Worker | None = None,
    ) -> None:
        self.backend = backend
        self.queued = backend.remote if queued is None else queued
        self.retry = retry
        self.probe = probe
        self.stuck = stuck
        self.refresh_contacts = refresh_contacts
        self.batch = batch
        # the backend's connection is used by one thread at a time
        self._lock = threading.Lock()
        self._limiter = trio.CapacityLimiter(1)
        self._worker: Worker = worker or partial(trio.to_thread.run_sync, limiter=self._limiter)
        self._writes = WriteQueue()
        self._up = True
        self._last_error = ""
        self._busy = 0  # operations in the worker or waiting for it
        # while there are some: when the last one finished (or the first began): nothing done
        # for ``stuck`` seconds is a database gone without a word
        self._busy_since: float | None = None
        self._last_success = 0.0
        self.up_since = 0.0
        self.down_since: float | None = None
        self.retried = 0  # batches retried after a failure (for tests and metrics)
        # this node's copy of the contacts (queued mode): extended -> contact_uri -> record
        self._contacts: dict[str, dict[str, ContactRecord]] = {}
        self._contact_writes = 0  # bumped by every own change, so a reload cannot undo one
        self._running = False

    @property
    def name(self) -> str:
        return self.backend.name

    # ------------------------------------------------------------------ availability

    @property
    def available(self) -> bool:
        if not self.queued:
            return True
        busy = self._busy_since
        if busy is not None and trio.current_time() - busy > self.stuck:
            return False
        return self._up

    def _check_available(self) -> None:
        if not self.available:
            raise StoreUnavailable(f"store {self.name!r} unreachable: {self._last_error}")

    def _mark_down(self, exc: BaseException) -> None:
        self._last_error = str(exc)
        if self._up:
            self._up = False
            self.down_since = trio.current_time()
            logger.error("store %s unreachable: %s (writes are kept and retried)", self.name, exc)
        self._writes.wake_readers()  # each finds the store down and says so

    def _mark_up(self) -> None:
        now = trio.current_time()
        self._last_success = now
        if not self._up:
            down = now - (self.down_since or now)
            self._up = True
            self.up_since = now
            self.down_since = None
            logger.warning(
                "store %s reachable again after %.1f s; %d writes waiting",
                self.name,
                down,
                len(self._writes),
            )

    # ------------------------------------------------------------------ the worker thread

    async def _in_thread(self, fn: Callable[[], T]) -> T:
        def locked() -> T:
            with self._lock:
                return fn()

        if self._busy == 0:
            self._busy_since = trio.current_time()
        self._busy += 1
        try:
            return cast(T, await self._worker(locked))
        finally:
            self._busy -= 1
            self._busy_since = None if self._busy == 0 else trio.current_time()

    async def _prober(self) -> None:
        while True:
            await trio.sleep(self.probe)
            now = trio.current_time()
            if self._busy_since is not None or now - self._last_success < self.probe:
                continue  # a flush or read is at it, or one just succeeded
            try:
                await self._in_thread(self.backend.ping)
            except StoreUnavailable as exc:
                self._mark_down(exc)
            except StoreError as exc:
                logger.warning("store %s: probe failed: %s", self.name, exc)
            else:
                self._mark_up()
