"""The store as the engine uses it inside a trio run: ``StoreService``.

SQLite is a file on this machine: its statements take microseconds, so the service calls it
directly on the trio thread, as before (``inline``). PostgreSQL is a server over the network,
so with it the trio thread never waits for the database (``queued``):

- **writes** (a call's record, contacts, heartbeats) go into a write-behind queue in order and
  return at once. A task flushes the queue in a worker thread, in batches of one transaction
  each, in order; while the database is unreachable the batch is retried every ``retry``
  seconds, so every write lands once it is back. Updates of one call (or one node's beat)
  still waiting in the queue are merged into the latest content.
- **reads** the API needs (``aget_call``, ``alist_calls``, ``acount_calls``, ``aclaim_nonce``,
  ``afind_call_by_nonce``) are awaited in a worker thread, after the writes queued before them
  have landed (a client reads what it wrote).
- **contacts**, which the SIP path reads synchronously for every call to an extension, are
  read from a copy in memory: this node's own registrations at once, the other nodes' ones
  from a reload of the table every ``refresh_contacts`` seconds.
- **availability**: ``available`` turns False within ``probe`` seconds (plus the driver's
  connect timeout, 3 s) of the database becoming unreachable (a failed flush or probe, or a
  statement stuck for ``stuck`` seconds), and True again at the first success.
  ``up_since`` tells since when (trio clock) the store has been reachable without a break.

The synchronous reads of ``Store`` (``get_call``, ``list_calls``...) stay for start-up
(recovery, the signing secret) and embedders; on PostgreSQL they block on the database.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any, TypeVar, cast

import trio

from engine.model import PhoneCall
from engine.store.interface import (
    ContactRecord,
    DialogRecord,
    NodeBeat,
    StoreError,
    StoreUnavailable,
)
from engine.store.sql import SqlStore
from engine.store.write_queue import Op, WriteQueue

logger = logging.getLogger(__name__)

T = TypeVar("T")

# runs a blocking function off the trio thread: trio.to_thread.run_sync by default (a test on
# MockClock passes one that runs it in place, so mock time does not jump while a thread runs)
Worker = Callable[[Callable[[], Any]], Awaitable[Any]]


class StoreService:
    """``backend`` behind a write-behind queue when it is remote (see the module's text)."""

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

    @classmethod
    def of(cls, store: SqlStore | StoreService) -> StoreService:
        return store if isinstance(store, StoreService) else cls(store)

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

    # ------------------------------------------------------------------ running

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """The flusher, the prober and the contacts' reload (queued mode); until cancelled."""
        self.up_since = trio.current_time()
        if not self.queued:
            task_status.started()
            await trio.sleep_forever()
        await self._reload_contacts()
        self._running = True
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._flusher)
                nursery.start_soon(self._prober)
                nursery.start_soon(self._contacts_reloader)
                task_status.started()
        finally:
            self._running = False

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

    async def _flusher(self) -> None:
        while True:
            await self._writes.wait_for_work()
            batch = self._writes.take(self.batch)
            try:
                await self._in_thread(partial(self._apply, batch))
            except StoreUnavailable as exc:
                self._writes.put_back(batch)
                self.retried += 1
                self._mark_down(exc)
                await trio.sleep(self.retry)
                continue
            self._mark_up()
            self._writes.done(batch)

    def _apply(self, batch: list[Op]) -> None:
        """In the worker thread: the batch in one transaction; a write the database refuses
        for its content (not for being unreachable) is logged and skipped, never retried for
        ever, and the others are written."""
        backend = self.backend
        try:
            with backend._transaction():
                for op in batch:
                    op(backend)
            return
        except StoreUnavailable:
            raise
        except StoreError as exc:
            logger.warning("store %s: a batch failed (%s); writing one by one", self.name, exc)
        for op in batch:
            try:
                op(backend)
            except StoreUnavailable:
                raise
            except StoreError as exc:
                logger.error("store %s: write dropped, refused by the database: %s", self.name, exc)

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

    async def _contacts_reloader(self) -> None:
        while True:
            await trio.sleep(self.refresh_contacts)
            if self._up:
                await self._reload_contacts()

    async def _reload_contacts(self) -> None:
        before = self._contact_writes
        try:
            records = await self._in_thread(partial(self.backend.all_contacts, time.time()))
        except StoreError:
            return  # the prober and flusher report outages; keep the copy
        if self._contact_writes != before:
            return  # an own change since the read started: the next reload gets it
        copy: dict[str, dict[str, ContactRecord]] = {}
        for record in records:
            copy.setdefault(record.extended, {})[record.contact_uri] = record
        self._contacts = copy

    # ------------------------------------------------------------------ writes

    def save_call(self, call: PhoneCall, *, durable: bool = False) -> None:
        if not self.queued:
            self.backend.save_call(call, durable=durable)
            return
        self._writes.save_call(call)

    def beat(self, node: str, at: float, api: str | None = None) -> None:
        if not self.queued:
            self.backend.beat(node, at, api)
            return
        self._writes.beat(node, at, api)

    def save_contact(
        self,
        extended: str,
        contact_uri: str,
        received: str,
        expires_at: float,
        call_id: str,
        cseq: int,
        path: tuple[str, ...] = (),
    ) -> None:
        args = (extended, contact_uri, received, expires_at, call_id, cseq, path)
        if not self.queued:
            self.backend.save_contact(*args)
            return
        self._contacts.setdefault(extended, {})[contact_uri] = ContactRecord(*args)
        self._contact_writes += 1
        self._writes.append(lambda b: b.save_contact(*args))

    def remove_contact(self, extended: str, contact_uri: str) -> None:
        if not self.queued:
            self.backend.remove_contact(extended, contact_uri)
            return
        self._contacts.get(extended, {}).pop(contact_uri, None)
        self._contact_writes += 1
        self._writes.append(lambda b: b.remove_contact(extended, contact_uri))

    def remove_contacts(self, extended: str) -> None:
        if not self.queued:
            self.backend.remove_contacts(extended)
            return
        self._contacts.pop(extended, None)
        self._contact_writes += 1
        self._writes.append(lambda b: b.remove_contacts(extended))

    def save_dialog(self, record: DialogRecord) -> None:
        if not self.queued:
            self.backend.save_dialog(record)
            return
        self._writes.append(lambda b: b.save_dialog(record))

    def remove_dialog(self, sip_call_id: str, local_tag: str) -> None:
        if not self.queued:
            self.backend.remove_dialog(sip_call_id, local_tag)
            return
        self._writes.append(lambda b: b.remove_dialog(sip_call_id, local_tag))

    async def written(self, timeout: float = 1.0) -> bool:
        """Wait (``timeout`` s at most) until every write queued so far has landed, so other
        nodes read them; False when they have not (the store is down, or slow)."""
        if not self.queued:
            return True
        with trio.move_on_after(timeout):
            try:
                await self._writes.wait_landed(self._check_available, self.stuck / 2)
            except StoreUnavailable:
                return False
            return True
        return False

    def flush(self) -> None:
        """Inline: write the updates the backend holds back. Queued: nothing (the flusher
        writes continuously; ``close`` writes what is left)."""
        if not self.queued:
            self.backend.flush()

    # ------------------------------------------------------------------ synchronous reads

    def contacts(self, extended: str, now: float) -> list[ContactRecord]:
        if not self.queued:
            return self.backend.contacts(extended, now)
        return [r for r in self._contacts.get(extended, {}).values() if r.expires_at > now]

    def _blocking(self, fn: Callable[[], T]) -> T:
        with self._lock:
            return fn()

    def get_call(self, call_id: str) -> PhoneCall | None:
        return self._blocking(partial(self.backend.get_call, call_id))

    def find_call_by_nonce(self, user_id: int, nonce: str) -> PhoneCall | None:
        return self._blocking(partial(self.backend.find_call_by_nonce, user_id, nonce))

    def claim_nonce(self, user_id: int, nonce: str, call_id: str) -> str:
        return self._blocking(partial(self.backend.claim_nonce, user_id, nonce, call_id))

    def list_calls(
        self,
        *,
        user_id: int | None = None,
        extension: str | None = None,
        organization_id: int | None = None,
        ended: bool | None = None,
        limit: int | None = None,
        offset: int = 0,
        newest_first: bool = False,
    ) -> list[PhoneCall]:
        return self._blocking(
            partial(
                self.backend.list_calls,
                user_id=user_id,
                extension=extension,
                organization_id=organization_id,
                ended=ended,
                limit=limit,
                offset=offset,
                newest_first=newest_first,
            )
        )

    def count_calls(
        self,
        *,
        user_id: int | None = None,
        extension: str | None = None,
        organization_id: int | None = None,
        ended: bool | None = None,
    ) -> int:
        return self._blocking(
            partial(
                self.backend.count_calls,
                user_id=user_id,
                extension=extension,
                organization_id=organization_id,
                ended=ended,
            )
        )

    def live_calls(self) -> list[PhoneCall]:
        return self._blocking(self.backend.live_calls)

    def purge_expired(self, now: float) -> int:
        return self._blocking(partial(self.backend.purge_expired, now))

    def advance_nonce_count(self, nonce: str, nc: int, expires: float) -> bool:
        return self._blocking(partial(self.backend.advance_nonce_count, nonce, nc, expires))

    def setting(self, name: str) -> str | None:
        return self._blocking(partial(self.backend.setting, name))

    def setting_default(self, name: str, value: str) -> str:
        return self._blocking(partial(self.backend.setting_default, name, value))

    def last_beat(self, node: str) -> float | None:
        return self._blocking(partial(self.backend.last_beat, node))

    def nodes(self) -> list[NodeBeat]:
        return self._blocking(self.backend.nodes)

    def live_calls_of(self, node: str) -> list[PhoneCall]:
        return self._blocking(partial(self.backend.live_calls_of, node))

    def claim_calls(self, dead: str, survivor: str) -> list[PhoneCall]:
        return self._blocking(partial(self.backend.claim_calls, dead, survivor))

    def dialogs_of(self, phonecall: str) -> list[DialogRecord]:
        return self._blocking(partial(self.backend.dialogs_of, phonecall))

    # ------------------------------------------------------------------ awaited reads

    async def _read(self, fn: Callable[[], T]) -> T:
        if not self.queued:
            return fn()
        self._check_available()
        # the writes queued before this read land first: a client reads what it did
        await self._writes.wait_landed(self._check_available, self.stuck / 2)
        try:
            result = await self._in_thread(fn)
        except StoreUnavailable as exc:
            self._mark_down(exc)
            raise
        self._mark_up()
        return result

    async def aget_call(self, call_id: str) -> PhoneCall | None:
        return await self._read(partial(self.backend.get_call, call_id))

    async def afind_call_by_nonce(self, user_id: int, nonce: str) -> PhoneCall | None:
        return await self._read(partial(self.backend.find_call_by_nonce, user_id, nonce))

    async def aclaim_nonce(self, user_id: int, nonce: str, call_id: str) -> str:
        return await self._read(partial(self.backend.claim_nonce, user_id, nonce, call_id))

    async def alist_calls(
        self,
        *,
        user_id: int | None = None,
        extension: str | None = None,
        organization_id: int | None = None,
        ended: bool | None = None,
        limit: int | None = None,
        offset: int = 0,
        newest_first: bool = False,
    ) -> list[PhoneCall]:
        return await self._read(
            partial(
                self.backend.list_calls,
                user_id=user_id,
                extension=extension,
                organization_id=organization_id,
                ended=ended,
                limit=limit,
                offset=offset,
                newest_first=newest_first,
            )
        )

    async def acount_calls(
        self,
        *,
        user_id: int | None = None,
        extension: str | None = None,
        organization_id: int | None = None,
        ended: bool | None = None,
    ) -> int:
        return await self._read(
            partial(
                self.backend.count_calls,
                user_id=user_id,
                extension=extension,
                organization_id=organization_id,
                ended=ended,
            )
        )

    async def anodes(self) -> list[NodeBeat]:
        return await self._read(self.backend.nodes)

    async def aclaim_calls(self, dead: str, survivor: str) -> list[PhoneCall]:
        return await self._read(partial(self.backend.claim_calls, dead, survivor))

    async def adialogs_of(self, phonecall: str) -> list[DialogRecord]:
        return await self._read(partial(self.backend.dialogs_of, phonecall))

    async def apurge_expired(self, now: float) -> int:
        return await self._read(partial(self.backend.purge_expired, now))

    # ------------------------------------------------------------------ closing

    def close(self, timeout: float = 5.0) -> None:
        """Write what is still queued (trying for ``timeout`` seconds), then close."""
        try:
            if len(self._writes):
                self._drain_blocking(timeout)
        finally:
            with self._lock:
                self.backend.close()

    def _drain_blocking(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        batch = self._writes.take()
        while True:
            try:
                with self._lock:
                    self._apply(batch)
            except StoreUnavailable as exc:
                if time.monotonic() < deadline:
                    time.sleep(0.5)
                    continue
                logger.error(
                    "store %s: %d writes lost at shutdown, unreachable: %s",
                    self.name,
                    len(batch),
                    exc,
                )
            return
