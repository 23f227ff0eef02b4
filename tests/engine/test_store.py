"""The SQLite store: round trips, restart durability, lookups, contacts, versioning."""

from __future__ import annotations

import json
import logging
import os
import random
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from engine.model import CallState, Disposition, Party, PartyStatus, PhoneCall, new_call_id
from engine.store import _MIGRATIONS, SCHEMA_VERSION, SqliteStore, StoreError, open_store

T0 = datetime(2026, 11, 26, 22, 0, 0, tzinfo=UTC)
logger = logging.getLogger(__name__)


def make_call(
    rng: random.Random,
    offset: int = 0,
    *,
    user_id: int = 12,
    extension: str = "0003*210",
    organization_id: int = 3,
    nonce: str | None = None,
    state: CallState = CallState.CREATED,
) -> PhoneCall:
    return PhoneCall(
        id=new_call_id(rng),
        user_id=user_id,
        organization_id=organization_id,
        extension=extension,
        sources=["0003*210"],
        destinations=["0003*05"],
        caller_id="John Doe <4242425>",
        nonce=nonce,
        published=T0 + timedelta(seconds=offset),
        state=state,
        parties=[
            Party("0003*210", "source", "extension", extension="0003*210"),
            Party("0003*05", "destination", "sandbox"),
        ],
    )


@pytest.fixture
def store() -> Iterator[SqliteStore]:
    s = open_store("sqlite:///:memory:")
    yield s
    s.close()


def test_save_get_update(store: SqliteStore) -> None:
    rng = random.Random(1)
    call = make_call(rng, nonce="abc")
    store.save_call(call)
    assert store.get_call(call.id) == call
    assert store.get_call("0" * 20) is None

    call.state = CallState.ENDED
    call.disposition = Disposition.BUSY
    call.ended = T0 + timedelta(seconds=9)
    call.parties[1].status = PartyStatus.RINGING
    store.save_call(call)
    again = store.get_call(call.id)
    assert again == call and again is not call
    assert store.count_calls() == 1


def test_survives_restart(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    rng = random.Random(2)
    first = open_store("sqlite:///calls.sqlite")  # relative to the current folder
    calls = [make_call(rng, i, nonce=f"n{i}") for i in range(3)]
    for call in calls:
        first.save_call(call)
    first.save_contact("0003*210", "sip:210@127.0.0.1:5062", "127.0.0.1:5062 udp", 2e9, "c1", 1)
    first.close()
    assert (tmp_path / "calls.sqlite").is_file()

    second = open_store(f"sqlite:///{tmp_path / 'calls.sqlite'}")  # absolute path form
    assert second.list_calls() == calls
    assert second.find_call_by_nonce(12, "n1") == calls[1]
    assert [c.contact_uri for c in second.contacts("0003*210", 1e9)] == ["sip:210@127.0.0.1:5062"]
    assert second.schema_version == SCHEMA_VERSION
    second.close()


def test_write_is_visible_to_another_connection_before_close(tmp_path: Path) -> None:
    """Committed on return: a crash after save_call keeps the record."""
    path = tmp_path / "s.sqlite"
    store = SqliteStore(path)
    call = make_call(random.Random(3))
    store.save_call(call)
    other = sqlite3.connect(path)
    (data,) = other.execute("SELECT data FROM calls WHERE id = ?", (call.id,)).fetchone()
    assert json.loads(data)["id"] == call.id
    (mode,) = other.execute("PRAGMA journal_mode").fetchone()
    assert mode == "wal"
    other.close()
    store.close()


def test_the_states_recovery_needs_are_committed_at_once_the_others_at_the_next(
    tmp_path: Path,
) -> None:
    path = tmp_path / "s.sqlite"
    store = SqliteStore(path)
    other = sqlite3.connect(path)

    def stored_state(call_id: str) -> str:
        (state,) = other.execute("SELECT state FROM calls WHERE id = ?", (call_id,)).fetchone()
        return str(state)

    call = make_call(random.Random(4))
    store.save_call(call)
    assert stored_state(call.id) == "created"
    call.state = CallState.CALLING_SOURCE
    store.save_call(call)  # not needed by recovery: written with the next commit
    assert stored_state(call.id) == "created"
    call.state = CallState.BRIDGED
    store.save_call(call)
    assert stored_state(call.id) == "bridged"
    call.parties[0].hangup_cause = "source hung up"
    store.save_call(call)
    assert store.get_call(call.id).parties[0].hangup_cause == "source hung up"  # reads flush
    call.state = CallState.ENDED
    store.save_call(call)
    assert stored_state(call.id) == "ended"
    other.close()
    store.close()


def test_a_durable_save_is_committed_whatever_the_change(tmp_path: Path) -> None:
    """What the engine asks for calls with a statusCallback: every event counted on disk."""
    path = tmp_path / "s.sqlite"
    store = SqliteStore(path)
    other = sqlite3.connect(path)
    call = make_call(random.Random(5))
    store.save_call(call, durable=True)
    call.state = CallState.CALLING_SOURCE
    call.events = 2
    store.save_call(call, durable=True)
    (state, data) = other.execute(
        "SELECT state, data FROM calls WHERE id = ?", (call.id,)
    ).fetchone()
    assert state == "calling_source"
    assert json.loads(data)["events"] == 2
    other.close()
    store.close()


def test_nonce_lookup_is_per_user_and_latest_wins(store: SqliteStore) -> None:
    rng = random.Random(4)
    old = make_call(rng, 0, nonce="same")
    new = make_call(rng, 10, nonce="same")
    someone_else = make_call(rng, 20, user_id=13, extension="0003*211", nonce="same")
    for call in (new, old, someone_else):
        store.save_call(call)
    assert store.find_call_by_nonce(12, "same") == new
    assert store.find_call_by_nonce(13, "same") == someone_else
    assert store.find_call_by_nonce(12, "other") is None
    assert store.find_call_by_nonce(99, "same") is None


def test_list_filters_order_and_paging(store: SqliteStore) -> None:
    rng = random.Random(5)
    a = make_call(rng, 30)
    b = make_call(rng, 10, state=CallState.ENDED)
    c = make_call(rng, 20, user_id=13, extension="0003*211", state=CallState.BRIDGED)
    d = make_call(rng, 5, user_id=20, extension="0004*210", organization_id=4)
    for call in (a, b, c, d):
        store.save_call(call)
    assert store.list_calls() == [d, b, c, a]
    assert store.list_calls(newest_first=True) == [a, c, b, d]
    assert store.list_calls(user_id=12) == [b, a]
    assert store.list_calls(extension="0003*211") == [c]
    assert store.list_calls(organization_id=3) == [b, c, a]
    assert store.list_calls(organization_id=3, ended=True) == [b]
    assert store.list_calls(organization_id=3, ended=False) == [c, a]
    assert store.list_calls(limit=2) == [d, b]
    assert store.list_calls(limit=2, offset=2) == [c, a]
    assert store.list_calls(limit=0) == []
    assert store.count_calls(organization_id=3) == 3
    assert store.count_calls(user_id=12, ended=False) == 1
    assert store.live_calls() == [d, c, a]


def test_contacts_expire_refresh_and_remove(store: SqliteStore) -> None:
    store.save_contact("0003*210", "sip:a@h:1", "10.0.0.1:5060 udp", 100.0, "cid-a", 1)
    store.save_contact("0003*210", "sip:b@h:2", "10.0.0.2:5060 tcp", 200.0, "cid-b", 7)
    store.save_contact("0003*211", "sip:c@h:3", "10.0.0.3:5060 udp", 200.0, "cid-c", 1)
    assert [c.contact_uri for c in store.contacts("0003*210", 50.0)] == ["sip:a@h:1", "sip:b@h:2"]
    assert [c.contact_uri for c in store.contacts("0003*210", 150.0)] == ["sip:b@h:2"]
    # refresh a binding: same key, new expiry and CSeq
    store.save_contact("0003*210", "sip:a@h:1", "10.0.0.9:5099 udp", 300.0, "cid-a", 2)
    refreshed = [c for c in store.contacts("0003*210", 150.0) if c.contact_uri == "sip:a@h:1"]
    assert len(refreshed) == 1
    assert (refreshed[0].received, refreshed[0].expires_at, refreshed[0].cseq) == (
        "10.0.0.9:5099 udp",
        300.0,
        2,
    )
    store.remove_contact("0003*210", "sip:a@h:1")
    assert [c.contact_uri for c in store.contacts("0003*210", 0.0)] == ["sip:b@h:2"]
    store.remove_contacts("0003*210")
    assert store.contacts("0003*210", 0.0) == []
    assert len(store.contacts("0003*211", 0.0)) == 1


def test_purge_drops_expired_contacts(store: SqliteStore) -> None:
    store.save_contact("0003*210", "sip:old@h", "1.2.3.4:5060 udp", 100.0, "x", 1)
    store.save_contact("0003*210", "sip:live@h", "1.2.3.4:5060 udp", 500.0, "y", 1)
    assert store.purge_expired(200.0) == 1
    assert [c.contact_uri for c in store.contacts("0003*210", 0.0)] == ["sip:live@h"]


def test_a_version_2_database_opens_and_loses_its_tokens_table(tmp_path: Path) -> None:
    """Tokens are signed, not stored: the upgrade to version 3 drops the table of issued
    tokens and keeps everything else."""
    path = tmp_path / "v2.sqlite"
    db = sqlite3.connect(path)
    for version in (0, 1):  # the schema as version 2 of the program left it
        for statement in _MIGRATIONS[version]:
            db.execute(statement)
    db.execute("PRAGMA user_version = 2")
    db.execute("INSERT INTO tokens VALUES ('h', 'demo-user-app', 'user', 12, 2e9)")
    db.execute("INSERT INTO settings VALUES ('cluster.secret', 'kept')")
    call = make_call(random.Random(9), nonce="old")
    db.execute(
        "INSERT INTO calls VALUES (?, 12, 3, '0003*210', 'old', 'created', ?, ?)",
        (call.id, call.published.timestamp(), json.dumps(call.to_dict())),
    )
    db.commit()
    db.close()

    store = SqliteStore(path)
    assert store.schema_version == SCHEMA_VERSION
    assert store.find_call_by_nonce(12, "old") == call
    assert store.setting("cluster.secret") == "kept"
    store.close()
    db = sqlite3.connect(path)
    tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    db.close()
    assert "tokens" not in tables
    assert {"calls", "contacts", "settings", "heartbeats"} <= tables


@pytest.mark.parametrize(
    "url", ["postgres://localhost/db", "sqlite://relative.db", "sqlite:///", "b2bua.sqlite"]
)
def test_bad_urls_are_clear_errors(url: str) -> None:
    with pytest.raises(StoreError, match="expected 'sqlite:///PATH'"):
        open_store(url)


def test_missing_folder_and_not_a_database(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="does not exist"):
        open_store(f"sqlite:///{tmp_path / 'nope' / 'x.sqlite'}")
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"this is not a database, just some text" * 100)
    with pytest.raises(StoreError, match="cannot open store"):
        open_store(f"sqlite:///{junk}")


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "future.sqlite"
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.close()
    with pytest.raises(StoreError, match="newer than this program supports"):
        SqliteStore(path)


def test_corrupt_record_is_a_store_error(store: SqliteStore) -> None:
    call = make_call(random.Random(6))
    store.save_call(call)
    store._db.execute("UPDATE calls SET data = '{\"id\": 1}'")
    with pytest.raises(StoreError, match=f"stored call {call.id} is unreadable"):
        store.get_call(call.id)


def test_save_call_rate(tmp_path: Path) -> None:
    """Not a pass/fail benchmark: prints the rate (run with -s) and checks it is not absurd."""
    store = SqliteStore(tmp_path / "bench.sqlite")
    rng = random.Random(7)
    calls = [make_call(rng, i, nonce=str(i)) for i in range(2000)]
    started = time.perf_counter()
    for call in calls:
        store.save_call(call)
    for call in calls:  # an update per call, as the engine does on each state change
        call.state = CallState.ENDED
        store.save_call(call)
    elapsed = time.perf_counter() - started
    rate = 2 * len(calls) / elapsed
    logger.warning("save_call: %.0f writes/s (file store, WAL, synchronous=NORMAL)", rate)
    if os.environ.get("B2BUA_PRINT_RATES"):
        print(f"save_call: {rate:.0f} writes/s")
    assert store.count_calls(ended=True) == len(calls)
    assert rate > 200  # far below what it does; catches an fsync-per-write regression
    store.close()


def test_nul_in_path_is_a_store_error() -> None:
    with pytest.raises(StoreError, match="NUL"):
        open_store("sqlite:///a\x00b")


def test_survives_a_killed_process(tmp_path: Path) -> None:
    """A process that saves a call and dies without closing the store leaves the record."""
    path = tmp_path / "killed.sqlite"
    script = (
        "import os, random, sys\n"
        "from engine.store import SqliteStore\n"
        "from engine.model import PhoneCall, new_call_id\n"
        "store = SqliteStore(sys.argv[1])\n"
        "call = PhoneCall(new_call_id(random.Random(8)), 12, 3, '0003*210', ['0003*00'],"
        " ['0003*01'], nonce='before-crash')\n"
        "store.save_call(call)\n"
        "os._exit(0)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(path)], capture_output=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr.decode()
    store = SqliteStore(path)
    call = store.find_call_by_nonce(12, "before-crash")
    assert call is not None and call.id == new_call_id(random.Random(8))
    store.close()


def test_settings_keep_the_first_value_across_processes(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'shared.sqlite'}"
    first, second = open_store(url), open_store(url)
    assert first.setting("secret") is None
    assert first.setting_default("secret", "from-first") == "from-first"
    # a second process sharing the file gets the first one's value, not its own
    assert second.setting_default("secret", "from-second") == "from-first"
    first.close()
    second.close()
    reopened = open_store(url)
    assert reopened.setting("secret") == "from-first"
    reopened.close()


def test_heartbeats_are_per_node_and_survive_a_restart(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'beats.sqlite'}"
    store = open_store(url)
    assert store.last_beat("node-a") is None
    store.beat("node-a", 1000.0)
    store.beat("node-a", 1002.0)
    store.beat("node-b", 999.0)
    store.close()
    reopened = open_store(url)
    assert (reopened.last_beat("node-a"), reopened.last_beat("node-b")) == (1002.0, 999.0)
    reopened.close()


def test_a_version_1_store_is_migrated(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    db = sqlite3.connect(path)
    for statement in _MIGRATIONS[0]:  # the schema as version 1 of the program left it
        db.execute(statement)
    db.execute("PRAGMA user_version = 1")
    db.commit()
    db.close()
    migrated = open_store(f"sqlite:///{path}")
    assert migrated.schema_version == SCHEMA_VERSION
    migrated.beat("n", 1.0)
    assert migrated.last_beat("n") == 1.0
    migrated.close()
