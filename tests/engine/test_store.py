"""The store, on both backends (SQLite and a real PostgreSQL): round trips, restart
durability, lookups, contacts, nonces, versioning."""

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
from typing import Any

import pytest

from engine.model import CallState, Disposition, Party, PartyStatus, PhoneCall, new_call_id
from engine.store import (
    SCHEMA_VERSION,
    DialogRecord,
    NodeBeat,
    SqliteStore,
    SqlStore,
    StoreError,
    StoreUnavailable,
    open_store,
)
from engine.store.schema import POSTGRESQL, SQLITE

T0 = datetime(2026, 11, 26, 22, 0, 0, tzinfo=UTC)
logger = logging.getLogger(__name__)

BACKENDS = ["sqlite", "postgresql"]


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


class Raw:
    """A second connection to the store's database, of its own (another process's view)."""

    def __init__(self, url: str) -> None:
        if url.startswith("sqlite:///"):
            self.db: Any = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
            self.dialect = SQLITE
        else:
            import psycopg

            self.db = psycopg.connect(url, autocommit=True)
            self.dialect = POSTGRESQL

    def rows(self, sql: str, params: tuple[object, ...] = ()) -> list[tuple[Any, ...]]:
        cursor = self.db.execute(self.dialect.sql(sql), params)
        return list(cursor.fetchall()) if cursor.description else []

    def close(self) -> None:
        self.db.close()


@pytest.fixture(params=BACKENDS)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of an empty store of each backend (a file, or a fresh PostgreSQL database)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.sqlite'}"
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
def store(store_url: str) -> Iterator[SqlStore]:
    s = open_store(store_url)
    yield s
    s.close()


@pytest.fixture
def raw(store_url: str) -> Iterator[Raw]:
    r = Raw(store_url)
    yield r
    r.close()


def test_save_get_update(store: SqlStore) -> None:
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


def test_survives_restart(store_url: str) -> None:
    rng = random.Random(2)
    first = open_store(store_url)
    calls = [make_call(rng, i, nonce=f"n{i}") for i in range(3)]
    for call in calls:
        first.save_call(call)
    first.save_contact("0003*210", "sip:210@127.0.0.1:5062", "127.0.0.1:5062 udp", 2e9, "c1", 1)
    first.close()

    second = open_store(store_url)
    assert second.list_calls() == calls
    assert second.find_call_by_nonce(12, "n1") == calls[1]
    assert [c.contact_uri for c in second.contacts("0003*210", 1e9)] == ["sip:210@127.0.0.1:5062"]
    assert second.schema_version == SCHEMA_VERSION
    second.close()


def test_a_relative_sqlite_path_is_in_the_current_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    first = open_store("sqlite:///calls.sqlite")
    call = make_call(random.Random(2))
    first.save_call(call)
    first.close()
    assert (tmp_path / "calls.sqlite").is_file()
    second = open_store(f"sqlite:///{tmp_path / 'calls.sqlite'}")  # absolute path form
    assert second.get_call(call.id) == call
    second.close()


def test_write_is_visible_to_another_connection_before_close(store: SqlStore, raw: Raw) -> None:
    """Committed on return: a crash after save_call keeps the record."""
    call = make_call(random.Random(3))
    store.save_call(call)
    ((data,),) = raw.rows("SELECT data FROM calls WHERE id = ?", (call.id,))
    assert json.loads(data)["id"] == call.id


def test_sqlite_runs_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    store = SqliteStore(path)
    other = sqlite3.connect(path)
    (mode,) = other.execute("PRAGMA journal_mode").fetchone()
    assert mode == "wal"
    other.close()
    store.close()


def test_the_states_recovery_needs_are_committed_at_once_the_others_at_the_next(
    store: SqlStore, raw: Raw
) -> None:
    def stored_state(call_id: str) -> str:
        ((state,),) = raw.rows("SELECT state FROM calls WHERE id = ?", (call_id,))
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
    again = store.get_call(call.id)  # reads flush
    assert again is not None and again.parties[0].hangup_cause == "source hung up"
    call.state = CallState.ENDED
    store.save_call(call)
    assert stored_state(call.id) == "ended"


def test_a_durable_save_is_committed_whatever_the_change(store: SqlStore, raw: Raw) -> None:
    """What the engine asks for calls with a statusCallback: every event counted on disk."""
    call = make_call(random.Random(5))
    store.save_call(call, durable=True)
    call.state = CallState.CALLING_SOURCE
    call.events = 2
    store.save_call(call, durable=True)
    ((state, data),) = raw.rows("SELECT state, data FROM calls WHERE id = ?", (call.id,))
    assert state == "calling_source"
    assert json.loads(data)["events"] == 2


def test_nonce_lookup_is_per_user_and_latest_wins(store: SqlStore) -> None:
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


def test_a_nonce_is_claimed_once_per_user_across_processes(store_url: str) -> None:
    first, second = open_store(store_url), open_store(store_url)
    assert first.claim_nonce(12, "n-1", "a" * 20) == "a" * 20
    # another process (node) given the same user's nonce reaches the first call
    assert second.claim_nonce(12, "n-1", "b" * 20) == "a" * 20
    assert second.claim_nonce(13, "n-1", "c" * 20) == "c" * 20  # per user
    first.close()
    second.close()


def test_digest_nonce_counts_only_grow_across_processes(store_url: str) -> None:
    first, second = open_store(store_url), open_store(store_url)
    assert first.advance_nonce_count("nonce-a", 1, 500.0)
    assert not second.advance_nonce_count("nonce-a", 1, 500.0)  # replayed on another node
    assert second.advance_nonce_count("nonce-a", 3, 500.0)
    assert not first.advance_nonce_count("nonce-a", 2, 500.0)  # lower than one used
    assert first.advance_nonce_count("nonce-b", 1, 100.0)
    first.purge_expired(200.0)  # nonce-b's row goes: a fresh count would start over
    assert second.advance_nonce_count("nonce-b", 1, 300.0)
    assert not second.advance_nonce_count("nonce-a", 3, 500.0)  # nonce-a's row stayed
    first.close()
    second.close()


def test_list_filters_order_and_paging(store: SqlStore) -> None:
    rng = random.Random(5)
    a = make_call(rng, 30)
    b = make_call(rng, 10, state=CallState.ENDED)
    c = make_call(rng, 20, user_id=13, extension="0003*211", state=CallState.BRIDGED)
    d = make_call(rng, 5, user_id=20, extension="0004*210", organization_id=4)
    e = make_call(rng, 30)  # published with a: insertion order breaks the tie
    for call in (a, b, c, d, e):
        store.save_call(call)
    assert store.list_calls() == [d, b, c, a, e]
    assert store.list_calls(newest_first=True) == [e, a, c, b, d]
    assert store.list_calls(user_id=12) == [b, a, e]
    assert store.list_calls(extension="0003*211") == [c]
    assert store.list_calls(organization_id=3) == [b, c, a, e]
    assert store.list_calls(organization_id=3, ended=True) == [b]
    assert store.list_calls(organization_id=3, ended=False) == [c, a, e]
    assert store.list_calls(limit=2) == [d, b]
    assert store.list_calls(limit=2, offset=2) == [c, a]
    assert store.list_calls(offset=3) == [a, e]
    assert store.list_calls(limit=0) == []
    assert store.count_calls(organization_id=3) == 4
    assert store.count_calls(user_id=12, ended=False) == 2
    assert store.live_calls() == [d, c, a, e]


def test_contacts_expire_refresh_and_remove(store: SqlStore) -> None:
    store.save_contact("0003*210", "sip:a@h:1", "10.0.0.1:5060 udp", 100.0, "cid-a", 1)
    store.save_contact("0003*210", "sip:b@h:2", "10.0.0.2:5060 tcp", 200.0, "cid-b", 7)
    store.save_contact("0003*211", "sip:c@h:3", "10.0.0.3:5060 udp", 200.0, "cid-c", 1)
    assert [c.contact_uri for c in store.contacts("0003*210", 50.0)] == ["sip:a@h:1", "sip:b@h:2"]
    assert [c.contact_uri for c in store.contacts("0003*210", 150.0)] == ["sip:b@h:2"]
    # refresh a binding: same key, new expiry and CSeq, and it keeps its place
    store.save_contact("0003*210", "sip:a@h:1", "10.0.0.9:5099 udp", 300.0, "cid-a", 2)
    assert [c.contact_uri for c in store.contacts("0003*210", 50.0)] == ["sip:a@h:1", "sip:b@h:2"]
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


def test_purge_drops_expired_contacts(store: SqlStore) -> None:
    store.save_contact("0003*210", "sip:old@h", "1.2.3.4:5060 udp", 100.0, "x", 1)
    store.save_contact("0003*210", "sip:live@h", "1.2.3.4:5060 udp", 500.0, "y", 1)
    assert store.purge_expired(200.0) == 1
    assert [c.contact_uri for c in store.contacts("0003*210", 0.0)] == ["sip:live@h"]


def _build_old_schema(raw: Raw, version: int) -> None:
    """The schema as the program of ``version`` left it, in ``raw``'s database."""
    for step in range(version):
        for statement in raw.dialect.migration(step):
            raw.rows(statement)
    if raw.dialect is SQLITE:
        raw.rows(f"PRAGMA user_version = {version}")
    else:
        raw.rows("CREATE TABLE schema_version (version INTEGER NOT NULL)")
        raw.rows("INSERT INTO schema_version (version) VALUES (?)", (version,))


def test_a_version_2_database_opens_and_loses_its_tokens_table(store_url: str, raw: Raw) -> None:
    """Tokens are signed, not stored: the upgrade to version 3 drops the table of issued
    tokens and keeps everything else."""
    _build_old_schema(raw, 2)
    raw.rows("INSERT INTO tokens VALUES ('h', 'demo-user-app', 'user', 12, 2e9)")
    raw.rows("INSERT INTO settings VALUES ('cluster.secret', 'kept')")
    call = make_call(random.Random(9), nonce="old")
    raw.rows(
        "INSERT INTO calls (id, user_id, organization_id, extension, nonce, state, published,"
        " data) VALUES (?, 12, 3, '0003*210', 'old', 'created', ?, ?)",
        (call.id, call.published.timestamp(), json.dumps(call.to_dict())),
    )

    store = open_store(store_url)
    assert store.schema_version == SCHEMA_VERSION
    assert store.find_call_by_nonce(12, "old") == call
    assert store.setting("cluster.secret") == "kept"
    assert store.claim_nonce(12, "old", "e" * 20) == call.id  # the old nonce still holds
    store.close()
    with pytest.raises(Exception, match="tokens"):
        raw.rows("SELECT COUNT(*) FROM tokens")


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("mysql://localhost/db", "expected 'sqlite:///PATH' or 'postgresql://"),
        ("sqlite://relative.db", "expected 'sqlite:///PATH' or 'postgresql://"),
        ("sqlite:///", "expected 'sqlite:///PATH' or 'postgresql://"),
        ("b2bua.sqlite", "expected 'sqlite:///PATH' or 'postgresql://"),
        ("postgresql:///b2bua", "no host"),
        ("postgresql://u:pw@host:99999/b2bua", "out of range"),
        ("postgresql://u:pw@host:notaport/b2bua", "bad store url"),
        ("postgresql://u:pw@host:5432", "no database name"),
        ("postgresql://u:pw@host:5432/", "no database name"),
    ],
)
def test_bad_urls_are_clear_errors_without_the_password(url: str, expected: str) -> None:
    with pytest.raises(StoreError, match=expected) as caught:
        open_store(url)
    assert "pw" not in str(caught.value)


def test_an_unreachable_postgresql_is_named_without_its_password() -> None:
    with socket_closed_port() as port:
        url = f"postgresql://b2bua:hunter2@127.0.0.1:{port}/b2bua"
        with pytest.raises(StoreUnavailable) as caught:
            open_store(url)
    message = str(caught.value)
    assert f"'postgresql://b2bua@127.0.0.1:{port}/b2bua'" in message
    assert "hunter2" not in message and "\n" not in message


class socket_closed_port:
    """A port on 127.0.0.1 where nothing listens (bound, never listening, while in use)."""

    def __enter__(self) -> int:
        import socket

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        return int(self.sock.getsockname()[1])

    def __exit__(self, *exc: object) -> None:
        self.sock.close()


def test_missing_folder_and_not_a_database(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="does not exist"):
        open_store(f"sqlite:///{tmp_path / 'nope' / 'x.sqlite'}")
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"this is not a database, just some text" * 100)
    with pytest.raises(StoreError, match="cannot open store"):
        open_store(f"sqlite:///{junk}")


def test_newer_schema_is_refused(store_url: str, raw: Raw) -> None:
    _build_old_schema(raw, 0)
    if raw.dialect is SQLITE:
        raw.rows(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    else:
        raw.rows("UPDATE schema_version SET version = ?", (SCHEMA_VERSION + 1,))
    with pytest.raises(StoreError, match="newer than this program supports"):
        open_store(store_url)


def test_corrupt_record_is_a_store_error(store: SqlStore, raw: Raw) -> None:
    call = make_call(random.Random(6))
    store.save_call(call)
    raw.rows("UPDATE calls SET data = '{\"id\": 1}'")
    with pytest.raises(StoreError, match=f"stored call {call.id} is unreadable"):
        store.get_call(call.id)


def test_save_call_rate(store: SqlStore, store_url: str) -> None:
    """Not a pass/fail benchmark: prints the rate (run with -s) and checks it is not absurd."""
    rng = random.Random(7)
    calls = [make_call(rng, i, nonce=str(i)) for i in range(500)]
    started = time.perf_counter()
    for call in calls:
        store.save_call(call)
    for call in calls:  # an update per call, as the engine does on each state change
        call.state = CallState.ENDED
        store.save_call(call)
    elapsed = time.perf_counter() - started
    rate = 2 * len(calls) / elapsed
    backend = store_url.partition(":")[0]
    logger.warning("save_call: %.0f writes/s (%s)", rate, backend)
    if os.environ.get("B2BUA_PRINT_RATES"):
        print(f"save_call: {rate:.0f} writes/s ({backend})")
    assert store.count_calls(ended=True) == len(calls)
    assert rate > 50  # far below what it does; catches an fsync-per-write regression


def test_nul_in_path_is_a_store_error() -> None:
    with pytest.raises(StoreError, match="NUL"):
        open_store("sqlite:///a\x00b")


def test_survives_a_killed_process(store_url: str) -> None:
    """A process that saves a call and dies without closing the store leaves the record."""
    script = (
        "import os, random, sys\n"
        "from engine.store import open_store\n"
        "from engine.model import PhoneCall, new_call_id\n"
        "store = open_store(sys.argv[1])\n"
        "call = PhoneCall(new_call_id(random.Random(8)), 12, 3, '0003*210', ['0003*00'],"
        " ['0003*01'], nonce='before-crash')\n"
        "store.save_call(call)\n"
        "os._exit(0)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, store_url], capture_output=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr.decode()
    store = open_store(store_url)
    call = store.find_call_by_nonce(12, "before-crash")
    assert call is not None and call.id == new_call_id(random.Random(8))
    store.close()


def test_settings_keep_the_first_value_across_processes(store_url: str) -> None:
    first, second = open_store(store_url), open_store(store_url)
    assert first.setting("secret") is None
    assert first.setting_default("secret", "from-first") == "from-first"
    # a second process sharing the store gets the first one's value, not its own
    assert second.setting_default("secret", "from-second") == "from-first"
    first.close()
    second.close()
    reopened = open_store(store_url)
    assert reopened.setting("secret") == "from-first"
    reopened.close()


def test_heartbeats_are_per_node_and_survive_a_restart(store_url: str) -> None:
    store = open_store(store_url)
    assert store.last_beat("node-a") is None
    store.beat("node-a", 1000.0)
    store.beat("node-a", 1002.5)
    store.beat("node-b", 999.0)
    store.close()
    reopened = open_store(store_url)
    assert (reopened.last_beat("node-a"), reopened.last_beat("node-b")) == (1002.5, 999.0)
    reopened.close()


def test_heartbeats_carry_each_node_api_address(store_url: str) -> None:
    store = open_store(store_url)
    store.beat("node-a", 1000.0, "http://10.0.0.1:8080")
    store.beat("node-a", 1002.0)  # a beat without an address keeps the one known
    store.beat("node-b", 999.0, "http://10.0.0.2:8080")
    assert store.nodes() == [
        NodeBeat("node-a", 1002.0, "http://10.0.0.1:8080"),
        NodeBeat("node-b", 999.0, "http://10.0.0.2:8080"),
    ]
    store.close()


def test_a_dead_nodes_live_calls_are_claimed_by_one_survivor_only(store_url: str) -> None:
    """Two survivors claim at once, each on its own connection: every call goes to one."""
    rng = random.Random(11)
    first, second = open_store(store_url), open_store(store_url)
    live = [make_call(rng, i, state=CallState.BRIDGED) for i in range(3)]
    ended = make_call(rng, 9, state=CallState.ENDED)
    mine = make_call(rng, 10, state=CallState.BRIDGED)
    for call in [*live, ended]:
        call.node = "node-b"
        first.save_call(call)
    mine.node = "node-a"
    first.save_call(mine)
    legacy = make_call(rng, 11, state=CallState.CREATED)  # written before calls had owners
    first.save_call(legacy)
    claimed = first.claim_calls("node-b", "node-a")
    again = second.claim_calls("node-b", "node-c")
    assert sorted(c.id for c in claimed) == sorted(c.id for c in live) and again == []
    assert all(c.node == "node-a" for c in claimed)
    assert second.get_call(live[0].id).node == "node-a"  # type: ignore[union-attr]
    assert second.get_call(ended.id).node == "node-b"  # type: ignore[union-attr]
    # after a restart a node settles its own live calls, and those with no owner
    own = {c.id for c in second.live_calls_of("node-a")}
    assert own == {c.id for c in live} | {mine.id, legacy.id}
    assert second.live_calls_of("node-b") == [second.get_call(legacy.id)]
    first.close()
    second.close()


def test_dialog_state_of_answered_legs_is_kept_until_the_leg_ends(store_url: str) -> None:
    store = open_store(store_url)
    a = DialogRecord("c1@h", "tag1", "p" * 20, "node-a", '{"x": 1}')
    b = DialogRecord("c2@h", "tag2", "p" * 20, "node-a", '{"x": 2}')
    other = DialogRecord("c3@h", "tag3", "q" * 20, "node-b", "{}")
    for record in (a, b, other):
        store.save_dialog(record)
    moved = DialogRecord("c1@h", "tag1", "p" * 20, "node-a", '{"x": 3}')  # a re-INVITE
    store.save_dialog(moved)
    assert store.dialogs_of("p" * 20) == [moved, b]
    store.remove_dialog("c2@h", "tag2")
    reopened = open_store(store_url)
    assert reopened.dialogs_of("p" * 20) == [moved]
    assert reopened.dialogs_of("q" * 20) == [other]
    store.close()
    reopened.close()


def test_a_binding_keeps_its_path(store: SqlStore) -> None:
    path = ("<sip:192.0.2.1;lr;received=sip:10.0.0.5:5062>", "<sip:edge.example.com;lr>")
    store.save_contact("0003*210", "sip:a@10.0.0.5", "192.0.2.1:5060 udp", 500.0, "r", 1, path)
    store.save_contact("0003*210", "sip:b@10.0.0.6", "10.0.0.6:5060 udp", 500.0, "r2", 1)
    by_uri = {c.contact_uri: c.path for c in store.contacts("0003*210", 0.0)}
    assert by_uri == {"sip:a@10.0.0.5": path, "sip:b@10.0.0.6": ()}
    assert {c.contact_uri: c.path for c in store.all_contacts(0.0)} == by_uri


def test_a_version_1_store_is_migrated(store_url: str, raw: Raw) -> None:
    _build_old_schema(raw, 1)
    migrated = open_store(store_url)
    assert migrated.schema_version == SCHEMA_VERSION
    migrated.beat("n", 1.0)
    assert migrated.last_beat("n") == 1.0
    assert migrated.claim_nonce(12, "x", "d" * 20) == "d" * 20
    migrated.close()


def test_two_processes_opening_a_new_store_at_once_both_get_the_schema(store_url: str) -> None:
    """Nodes of a cluster start together: the migration runs once, and neither fails."""
    script = (
        "import sys\n"
        "from engine.store import open_store\n"
        "s = open_store(sys.argv[1]); print(s.schema_version); s.close()\n"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", script, store_url], stdout=subprocess.PIPE)
        for _ in range(3)
    ]
    outputs = [p.communicate(timeout=60)[0].decode().strip() for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0]
    assert outputs == [str(SCHEMA_VERSION)] * 3


def test_a_url_is_shown_without_its_password() -> None:
    from engine.store import redact

    assert redact("postgresql://b2bua:pw@db:5432/b2bua") == "postgresql://b2bua@db:5432/b2bua"
    assert redact("postgresql://db/b2bua?password=pw&sslmode=require") == (
        "postgresql://db/b2bua?password=%2A%2A%2A&sslmode=require"
    )
    assert redact("postgresql:///b2bua") == "postgresql:///b2bua"


def test_digest_nonce_counts_in_the_store_refuse_a_replay_on_another_node(store_url: str) -> None:
    from engine.store.nonce_counts import StoreNonceCounts

    node_a, node_b = open_store(store_url), open_store(store_url)
    counts_a, counts_b = StoreNonceCounts(node_a), StoreNonceCounts(node_b)
    times = {"issued": 100.0, "expires": 400.0, "now": 150.0}
    assert counts_a.advance("n1", 1, **times)
    assert not counts_b.advance("n1", 1, **times)  # the same credential sent to node b
    assert counts_b.advance("n1", 2, **times)
    assert not counts_a.advance("n1", 2, **times)
    assert not counts_a.advance("n2", 1, issued=100.0, expires=140.0, now=150.0)  # expired
    node_a.close()
    node_b.close()


def test_digest_nonce_counts_fall_back_to_memory_while_the_store_is_down(
    tmp_path: Path,
) -> None:
    from engine.store.nonce_counts import StoreNonceCounts

    class Down(SqliteStore):
        def advance_nonce_count(self, nonce: str, nc: int, expires: float) -> bool:
            raise StoreUnavailable("connection refused")

    store = Down(tmp_path / "s.sqlite")
    counts = StoreNonceCounts(store)
    times = {"issued": 100.0, "expires": 400.0, "now": 150.0}
    assert counts.advance("n1", 1, **times)
    assert not counts.advance("n1", 1, **times)  # still no replay, to this node
    store.close()


def test_a_postgresql_store_reconnects_after_the_server_comes_back() -> None:
    """A lost connection is StoreUnavailable (with the URL shown without its password), and
    the next statement after the server's return connects again."""
    from tests.pg import remove_postgres, start_postgres

    server = start_postgres()
    try:
        store = open_store(server.url("postgres"))
        call = make_call(random.Random(10))
        store.save_call(call)
        server.stop()
        with pytest.raises(StoreUnavailable) as caught:
            store.get_call(call.id)
        assert "s3cret-pw" not in str(caught.value)
        server.start()
        assert store.get_call(call.id) == call
        store.close()
    finally:
        remove_postgres(server)
