"""SQLite with ``background=True`` (what ``b2bua serve`` opens): a call's writes run on the
store's writer thread, in order, and every other statement sees the writes made before it."""

from __future__ import annotations

import logging
import random
import sqlite3
import threading
from pathlib import Path

import pytest
import trio

from engine.model import CallState
from engine.store import DialogRecord, SqliteStore, open_store
from engine.store.service import StoreService
from engine.store.sql import SqlStore
from tests.engine.test_store import make_call


def rows(path: Path, sql: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    """What another process reading the file sees."""
    db = sqlite3.connect(path)
    try:
        return list(db.execute(sql, params).fetchall())
    finally:
        db.close()


def dialog(n: int, phonecall: str) -> DialogRecord:
    return DialogRecord(f"sip-{n}", f"tag-{n}", phonecall, "node-a", f'{{"n": {n}}}')


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "store.sqlite"


def test_the_calls_writes_run_on_the_writer_thread_not_the_callers(path: Path) -> None:
    store = SqliteStore(path, background=True)
    threads: list[str] = []
    original = store.write_row

    def spy(*args: object, **kwargs: object) -> None:
        threads.append(threading.current_thread().name)
        original(*args, **kwargs)  # type: ignore[arg-type]

    store.write_row = spy  # type: ignore[method-assign]
    call = make_call(random.Random(1))
    store.save_call(call)
    store.save_dialog(dialog(1, call.id))
    assert store.get_call(call.id) == call  # a read waits for the writes before it
    assert threads == [f"store-writer {path}"]
    store.close()


def test_each_read_sees_every_write_made_before_it(path: Path) -> None:
    store = open_store(f"sqlite:///{path}", background=True)
    rng = random.Random(2)
    calls = [make_call(rng, n) for n in range(200)]
    for call in calls:
        store.save_call(call)
    assert store.count_calls() == 200
    assert {c.id for c in store.list_calls()} == {c.id for c in calls}
    for n, call in enumerate(calls[:50]):
        store.save_dialog(dialog(n, call.id))
        store.remove_dialog(f"sip-{n}", f"tag-{n}")  # given in this order, done in this order
    store.save_dialog(dialog(999, calls[0].id))
    assert [d.sip_call_id for d in store.dialogs_of(calls[0].id)] == ["sip-999"]
    store.close()


def test_the_commit_policy_is_the_same_as_in_place(path: Path) -> None:
    """Only what recovery needs is written at once; the other updates go with the next
    commit or a read, as without the writer thread."""
    store = SqliteStore(path, background=True)
    call = make_call(random.Random(3))
    store.save_call(call)
    store.dialogs_of(call.id)  # any statement of ours: the writes before it have landed
    assert rows(path, "SELECT state FROM calls") == [("created",)]
    call.state = CallState.CALLING_SOURCE
    store.save_call(call)
    store.dialogs_of(call.id)
    assert rows(path, "SELECT state FROM calls") == [("created",)]
    again = store.get_call(call.id)  # reads flush the held updates
    assert again is not None and again.state is CallState.CALLING_SOURCE
    assert rows(path, "SELECT state FROM calls") == [("calling_source",)]
    call.state = CallState.ENDED
    store.save_call(call)
    store.close()  # writes what is queued before closing
    assert rows(path, "SELECT state FROM calls") == [("ended",)]


def test_the_record_written_is_the_call_as_it_was_when_saved(path: Path) -> None:
    """The writer takes the content at save time: later changes of the live object (the
    call goes on) are not written by that save."""
    store = SqliteStore(path, background=True)
    call = make_call(random.Random(4))
    gate = threading.Event()
    store._writer.submit(gate.wait)  # type: ignore[union-attr]  # hold the writer
    store.save_call(call)  # created: committed, queued behind the gate
    call.caller_id = "changed after the save <1>"
    gate.set()
    store.dialogs_of(call.id)
    (record,) = rows(path, "SELECT data FROM calls")
    assert "changed after the save" not in str(record[0])
    store.close()


def test_a_failed_write_is_logged_and_counted_and_the_others_land(
    path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = SqliteStore(path, background=True)
    writer = store._writer
    assert writer is not None
    gate = threading.Event()
    writer.submit(gate.wait)  # the next three wait together: one batch
    good = make_call(random.Random(5))
    writer.submit(lambda: store._execute("INSERT INTO no_such_table VALUES (1)") and None)
    store.save_call(good)
    with caplog.at_level(logging.WARNING, logger="engine.store.sqlite_writer"):
        gate.set()
        store.dialogs_of(good.id)
    assert store.write_errors == 1
    assert "a write failed and is lost" in caplog.text
    assert rows(path, "SELECT id FROM calls") == [(good.id,)]
    store.close()


def test_close_writes_everything_queued_then_the_file_holds_it(path: Path) -> None:
    store = SqliteStore(path, background=True)
    rng = random.Random(6)
    calls = [make_call(rng, n) for n in range(100)]
    for call in calls:
        store.save_call(call)
    store.close()
    assert rows(path, "SELECT COUNT(*) FROM calls") == [(100,)]
    reopened: SqlStore = SqliteStore(path)
    assert reopened.count_calls() == 100
    reopened.close()


def test_without_background_and_in_memory_writes_stay_in_place(path: Path) -> None:
    assert SqliteStore(path)._writer is None
    assert SqliteStore(":memory:", background=True)._writer is None  # one connection only


def test_the_writer_is_busy_from_a_write_given_until_it_is_committed(path: Path) -> None:
    store = SqliteStore(path, background=True)
    writer = store._writer
    assert writer is not None and writer.idle
    gate = threading.Event()
    writer.submit(gate.wait)
    store.save_call(make_call(random.Random(7)))
    assert not writer.idle  # taken or queued: the owner's statements must wait
    gate.set()
    store.wait_written()
    assert writer.idle and writer.written == 2
    store.close()


def test_a_durable_save_and_a_written_store_are_on_disk_when_they_return(path: Path) -> None:
    """A call with a statusCallback, and a create before its 202: waited for."""
    store = SqliteStore(path, background=True)
    call = make_call(random.Random(8))
    store.save_call(call)
    call.state = CallState.CALLING_SOURCE
    call.events = 3
    gate = threading.Event()
    store._writer.submit(gate.wait)  # type: ignore[union-attr]
    threading.Timer(0.05, gate.set).start()
    store.save_call(call, durable=True)
    assert rows(path, "SELECT state FROM calls") == [("calling_source",)]
    service = StoreService(store)
    other = make_call(random.Random(9))
    service.save_call(other)
    assert trio.run(service.written)
    assert len(rows(path, "SELECT id FROM calls")) == 2
    store.close()


def test_a_batch_that_finds_the_file_locked_is_tried_again_whole(
    path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Another process holding the write lock past the busy timeout: the batch waits its
    turn instead of being dropped."""
    store = SqliteStore(path, background=True, busy_timeout=0.1)
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")  # the other process's write lock

    class ReleaseOnRetry(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "database locked" in record.getMessage() and other.in_transaction:
                other.execute("COMMIT")  # the other process is done: the retry gets in

    release = ReleaseOnRetry()
    writer_log = logging.getLogger("engine.store.sqlite_writer")
    writer_log.addHandler(release)
    call = make_call(random.Random(10))
    try:
        with caplog.at_level(logging.WARNING, logger="engine.store.sqlite_writer"):
            store.save_call(call)
            store.wait_written()
    finally:
        writer_log.removeHandler(release)
        other.close()
    assert "database locked, batch tried again" in caplog.text
    assert store.write_errors == 0
    assert rows(path, "SELECT id FROM calls") == [(call.id,)]
    store.close()
