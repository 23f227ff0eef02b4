"""The writes of ``StoreService`` (a call's record, heartbeats, dialogs): SQLite in place,
PostgreSQL into the write-behind queue; the flusher that writes the queue in batches from the
worker thread, and ``close``, which writes what is left.

The contacts' writes are in ``service_contacts`` (they change this node's copy too).
"""

from __future__ import annotations

import logging
import time
from functools import partial

import trio

from engine.model import PhoneCall
from engine.store.interface import DialogRecord, StoreError, StoreUnavailable
from engine.store.service_core import ServiceCore
from engine.store.write_queue import Op

logger = logging.getLogger(__name__)


class Writes(ServiceCore):
    """The writes, the flusher and the last flush at ``close``."""

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
        nodes read them; False when they have not (the store is down, or slow). In place:
        the backend's own writer thread, if it has one, is waited for (SQLite's)."""
        if not self.queued:
            self.backend.wait_written()
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

    # ------------------------------------------------------------------ flushing

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
