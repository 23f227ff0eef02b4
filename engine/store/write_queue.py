"""The write-behind queue of ``StoreService``: writes in order, merged while they wait, and
the readers waiting for them to land.

A write is a function of the backend, applied in a worker thread. A call's record and a
node's heartbeat are merged while they wait: a later save of the same call (or beat of the
same node) changes the waiting write instead of adding one, and a call's record is snapshot
only when the flusher takes it. Counters say how many writes were appended and how many have
landed (the queue is written in order), so a reader can wait for exactly the writes made
before it.
"""

from __future__ import annotations

import heapq
import itertools
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import trio

from engine.model import PhoneCall
from engine.store.sql import CallRow, SqlStore

Op = Callable[[SqlStore], None]


@dataclass(slots=True)
class CallWrite:
    """A call's record waiting in the queue; ``snapshot`` (on the trio thread) takes its
    content when the flusher takes the write."""

    call: PhoneCall
    row: CallRow | None = None

    def snapshot(self) -> None:
        self.row = CallRow.of(self.call)

    def __call__(self, backend: SqlStore) -> None:
        assert self.row is not None
        backend.write_row(self.row)


@dataclass(slots=True)
class Beat:
    node: str
    at: float
    api: str | None = None  # the node's API address (the cluster's internal hop)

    def __call__(self, backend: SqlStore) -> None:
        backend.beat(self.node, self.at, self.api)


class WriteQueue:
    def __init__(self) -> None:
        self._ops: deque[Op] = deque()
        self._waiting_calls: dict[str, CallWrite] = {}  # in the queue, not taken yet
        self._waiting_beats: dict[str, Beat] = {}
        self.appended = 0  # writes put in the queue so far (a merged update is not one)
        self.landed = 0  # of those, how many are committed
        self._work = trio.Event()
        # readers waiting for their writes: a heap of (appended then, a tie-breaker, event)
        self._readers: list[tuple[int, int, trio.Event]] = []
        self._reader_ids = itertools.count()

    def __len__(self) -> int:
        return len(self._ops)

    # ------------------------------------------------------------------ putting in

    def append(self, op: Op) -> None:
        self._ops.append(op)
        self.appended += 1
        self._work.set()

    def save_call(self, call: PhoneCall) -> None:
        waiting = self._waiting_calls.get(call.id)
        if waiting is not None:
            waiting.call = call
            return
        op = CallWrite(call)
        self._waiting_calls[call.id] = op
        self.append(op)

    def beat(self, node: str, at: float, api: str | None = None) -> None:
        waiting = self._waiting_beats.get(node)
        if waiting is not None:
            waiting.at = at
            waiting.api = api or waiting.api
            return
        op = Beat(node, at, api)
        self._waiting_beats[node] = op
        self.append(op)

    # ------------------------------------------------------------------ taking out

    async def wait_for_work(self) -> None:
        while not self._ops:
            await self._work.wait()
            self._work = trio.Event()

    def take(self, limit: int | None = None) -> list[Op]:
        """The first ``limit`` writes (all without a limit), their content as of now: a later
        save of one of them is a new write."""
        batch: list[Op] = []
        while self._ops and (limit is None or len(batch) < limit):
            op = self._ops.popleft()
            if isinstance(op, CallWrite):
                op.snapshot()
                if self._waiting_calls.get(op.call.id) is op:
                    del self._waiting_calls[op.call.id]
            elif isinstance(op, Beat) and self._waiting_beats.get(op.node) is op:
                del self._waiting_beats[op.node]
            batch.append(op)
        return batch

    def put_back(self, batch: list[Op]) -> None:
        """A batch that could not be written goes back in front, in order, and waits again
        (later saves merge into it meanwhile)."""
        self._ops.extendleft(reversed(batch))
        for op in batch:
            if isinstance(op, CallWrite):
                self._waiting_calls.setdefault(op.call.id, op)
            elif isinstance(op, Beat):
                self._waiting_beats.setdefault(op.node, op)

    def done(self, batch: list[Op]) -> None:
        """``batch`` (taken from the front) is committed: wake the readers it was holding."""
        self.landed += len(batch)
        readers = self._readers
        while readers and readers[0][0] <= self.landed:
            heapq.heappop(readers)[2].set()

    # ------------------------------------------------------------------ readers

    async def wait_landed(self, check: Callable[[], None], recheck: float) -> None:
        """Wait until every write appended before this call has landed; ``check`` raises to
        give up (the store down), and is asked again every ``recheck`` seconds and whenever
        ``wake_readers`` is called."""
        target = self.appended
        while self.landed < target:
            check()
            landed = trio.Event()
            heapq.heappush(self._readers, (target, next(self._reader_ids), landed))
            with trio.move_on_after(recheck):  # a stuck statement wakes nobody
                await landed.wait()

    def wake_readers(self) -> None:
        for _, _, event in self._readers:
            event.set()
        self._readers.clear()
