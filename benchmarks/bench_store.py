"""The store's cost per call, SQLite vs PostgreSQL, through the engine's own store layer.

Each simulated call makes the store traffic a Simple PhoneCall makes (``Engine`` with a
statusCallback-free call): the record saved at creation with its nonce claimed, six updates
spread over the call (calling the source, ringing, answered, calling the destination, ringing,
answered), bridged, ended, and the API reading the final record once. Calls start at
``--rate`` per second for ``--seconds``, each lasting ``--call-seconds``, all through one
``StoreService`` in one trio run, as ``b2bua serve`` does (SQLite in place on the trio thread;
PostgreSQL through the write-behind queue and a worker thread).

Printed per backend, per call: the trio thread's CPU (what the signalling loses), the process's
other threads' CPU (the worker writing to PostgreSQL), the database server's own CPU
(PostgreSQL's processes, from /proc; SQLite runs inside the trio thread), and the commits
(transactions) per call. ``sqlite/queue`` is SQLite through the same write-behind queue and
worker thread as PostgreSQL: what SQLite would cost with the one design for both.
``sqlite/writer`` is SQLite as ``b2bua serve`` opens it: a call's writes on the store's writer
thread (``engine.store.sqlite_writer``), the commit policy of SQLite in place.

    .venv/bin/python benchmarks/bench_store.py --rate 100 --seconds 10

PostgreSQL is started by the script (Debian's PostgreSQL 15, fsync on, in a temporary
folder), or given with ``--url``. Results vary with the machine's other load.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import trio

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from engine.model import CallState, Party, PhoneCall, new_call_id  # noqa: E402
from engine.store import open_store  # noqa: E402
from engine.store.service import StoreService  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")
STATES = [
    CallState.CALLING_SOURCE,
    CallState.CALLING_SOURCE,
    CallState.CALLING_SOURCE,
    CallState.CALLING_DESTINATION,
    CallState.CALLING_DESTINATION,
    CallState.CALLING_DESTINATION,
    CallState.BRIDGED,
    CallState.ENDED,
]


def proc_cpu(pids: list[int]) -> float:
    """CPU seconds (user + system) of these processes so far."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / TICKS


@dataclass
class Result:
    backend: str
    calls: int
    trio_cpu: float
    other_threads_cpu: float
    database_cpu: float
    commits: int
    wall: float

    def row(self) -> str:
        per = 1e6 / self.calls
        return (
            f"{self.backend:<12} {self.calls:>6} {self.trio_cpu * per:>10.0f} "
            f"{self.other_threads_cpu * per:>12.0f} {self.database_cpu * per:>10.0f} "
            f"{(self.trio_cpu + self.other_threads_cpu + self.database_cpu) * per:>9.0f} "
            f"{self.commits / self.calls:>8.2f} {self.wall:>7.1f}"
        )


def make_call(rng: random.Random, n: int) -> PhoneCall:
    return PhoneCall(
        id=new_call_id(rng),
        user_id=12,
        organization_id=3,
        extension="0003*210",
        sources=["0003*210"],
        destinations=["0003*211"],
        caller_id="John Doe <4242425>",
        nonce=f"bench-{n}",
        published=datetime.now(UTC),
        parties=[
            Party("0003*210", "source", "extension", extension="0003*210"),
            Party("0003*211", "destination", "extension", extension="0003*211"),
        ],
    )


async def one_call(store: StoreService | None, call: PhoneCall, length: float) -> None:
    """``store`` None: the same steps without a store (the harness's own cost)."""
    if store is not None:
        await store.aclaim_nonce(call.user_id, call.nonce or "", call.id)
        store.save_call(call)
    step = length / len(STATES)
    for state in STATES:
        await trio.sleep(step)
        call.state = state
        call.events += 1
        if state is CallState.ENDED:
            call.ended = datetime.now(UTC)
        if store is not None:
            store.save_call(call)
    if store is not None:
        read = await store.aget_call(call.id)
        assert read is not None and read.state is CallState.ENDED


async def load(store: StoreService | None, rate: float, seconds: float, length: float) -> int:
    rng = random.Random(1)
    calls = int(rate * seconds)
    async with trio.open_nursery() as nursery:
        if store is not None:
            await nursery.start(store.run)
        async with trio.open_nursery() as calls_nursery:
            for n in range(calls):
                calls_nursery.start_soon(one_call, store, make_call(rng, n), length)
                await trio.sleep(1 / rate)
        nursery.cancel_scope.cancel()
    return calls


def commits(store: StoreService) -> int:
    """Transactions committed so far in the store's database (PostgreSQL: pg_stat_database;
    SQLite: counted by the caller as one per statement outside a batch)."""
    backend = store.backend
    if backend.dialect.name != "postgresql":
        return 0
    row = backend._execute(
        "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"
    ).fetchone()
    return int(row[0])


def run_none(args: argparse.Namespace) -> Result:
    process_before = time.process_time()
    thread_before = time.thread_time()
    wall = time.monotonic()
    calls = trio.run(load, None, args.rate, args.seconds, args.call_seconds)
    wall = time.monotonic() - wall
    trio_cpu = time.thread_time() - thread_before
    other = time.process_time() - process_before - trio_cpu
    return Result("(no store)", calls, trio_cpu, other, 0.0, 0, wall)


def run_backend(
    name: str,
    url: str,
    server_pids: Callable[[], list[int]],
    args: argparse.Namespace,
    *,
    queued: bool | None = None,
    background: bool = False,
) -> Result:
    backend = open_store(url, background=background)
    pids = server_pids()  # after connecting: the connection's own server process is one
    if backend.dialect.name == "sqlite":  # commits: one per statement outside a transaction
        counted = [0]
        execute = backend._execute

        def counting(sql: str, params: object = ()) -> object:
            if not getattr(backend._db, "in_transaction", False):
                counted[0] += 1
            return execute(sql, params)  # type: ignore[arg-type]

        backend._execute = counting  # type: ignore[method-assign]
    store = StoreService(backend, queued=queued)
    main = threading.get_native_id()
    commits_before = commits(store)
    db_before = proc_cpu(pids)
    process_before = time.process_time()
    thread_before = time.thread_time()
    wall = time.monotonic()
    calls = trio.run(load, store, args.rate, args.seconds, args.call_seconds)
    wall = time.monotonic() - wall
    trio_cpu = time.thread_time() - thread_before
    other = time.process_time() - process_before - trio_cpu
    database = proc_cpu(pids) - db_before
    assert threading.get_native_id() == main
    sqlite = backend.dialect.name == "sqlite"
    n_commits = counted[0] if sqlite else commits(store) - commits_before - 1
    store.close()
    writer = getattr(backend, "_writer", None)
    if writer is not None:  # its batches are transactions the count above does not see
        n_commits += writer.batches
    return Result(name, calls, trio_cpu, other, database, n_commits, wall)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=100.0, help="calls started per second")
    parser.add_argument("--seconds", type=float, default=10.0, help="how long calls start")
    parser.add_argument("--call-seconds", type=float, default=2.0, help="each call's length")
    parser.add_argument("--url", help="an existing PostgreSQL database (else one is started)")
    parser.add_argument("--repeat", type=int, default=1, help="runs per backend")
    args = parser.parse_args()

    from tests.pg import remove_postgres, start_postgres

    server = None
    pids: Callable[[], list[int]] = list  # a server given by --url: its CPU is not measured
    if args.url:
        url = args.url
    else:
        server = start_postgres(durable=True)
        url, pids = server.url(server.new_database()), server.pids
    results = []
    try:
        with tempfile.TemporaryDirectory() as folder:
            for run in range(args.repeat):
                results.append(run_none(args))
                sqlite_url = f"sqlite:///{folder}/bench{run}.sqlite"
                results.append(run_backend("sqlite", sqlite_url, list, args))
                queued_url = f"sqlite:///{folder}/queued{run}.sqlite"
                results.append(run_backend("sqlite/queue", queued_url, list, args, queued=True))
                writer_url = f"sqlite:///{folder}/writer{run}.sqlite"
                results.append(
                    run_backend("sqlite/writer", writer_url, list, args, background=True)
                )
                results.append(run_backend("postgresql", url, pids, args))
    finally:
        if server is not None:
            remove_postgres(server)
    print(
        f"{args.rate:.0f} calls/s for {args.seconds:.0f} s, {args.call_seconds:.1f} s each;"
        f" load average {os.getloadavg()[0]:.2f}; {os.cpu_count()} cores"
    )
    print("per call, µs of CPU (the store's cost: a backend's row minus the no-store row):")
    print(
        f"{'backend':<12} {'calls':>6} {'trio thr.':>10} {'other thr.':>12} {'database':>10}"
        f" {'total':>9} {'commits':>8} {'wall s':>7}"
    )
    for result in results:
        print(result.row())
    return 0


if __name__ == "__main__":
    sys.exit(main())
