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

``StoreService`` is made of parts with one job each, base classes sharing the state that
``service_core.ServiceCore`` sets up (with the worker thread, availability and the prober):
``service_writes`` (the writes, the flusher, ``close``), ``service_contacts`` (the contacts'
copy and its reload), ``service_sync_reads`` and ``service_awaited_reads``; the queue itself is
``write_queue``. Callers use ``StoreService`` alone.
"""

from __future__ import annotations

import trio

from engine.store.service_awaited_reads import AwaitedReads
from engine.store.service_contacts import ContactsCopy
from engine.store.service_sync_reads import SyncReads
from engine.store.service_writes import Writes
from engine.store.sql import SqlStore


class StoreService(Writes, ContactsCopy, SyncReads, AwaitedReads):
    """``backend`` behind a write-behind queue when it is remote (see the module's text)."""

    @classmethod
    def of(cls, store: SqlStore | StoreService) -> StoreService:
        return store if isinstance(store, StoreService) else cls(store)

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
