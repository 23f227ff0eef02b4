"""Persistence: PhoneCall records, registrar contacts, settings and node heartbeats, in SQLite.
(OAuth tokens are signed and self-contained, see ``api.oauth``: nothing is stored per token.)

One connection in WAL mode with ``synchronous=NORMAL``: every write is its own committed
transaction, so it survives the process dying (an OS crash may lose the last few, which is
the trade WAL+NORMAL makes for speed). The engine calls the store from one thread; the store
is not safe for concurrent use.

A call is kept as a JSON blob (``PhoneCall.to_dict``) plus the columns that queries filter on.
The schema version lives in ``PRAGMA user_version``; ``_MIGRATIONS`` lists the steps from each
version to the next, so an old database is upgraded on open and a newer one is refused.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from engine.model import CallState, PhoneCall

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 3

# _MIGRATIONS[n] takes a database at version n to version n + 1.
_MIGRATIONS: dict[int, tuple[str, ...]] = {
    0: (
        """CREATE TABLE calls (
            id TEXT PRIMARY KEY,
            user_id INTEGER NOT NULL,
            organization_id INTEGER NOT NULL,
            extension TEXT NOT NULL,
            nonce TEXT,
            state TEXT NOT NULL,
            published REAL NOT NULL,
            data TEXT NOT NULL
        )""",
        "CREATE INDEX calls_user ON calls (user_id, published)",
        "CREATE INDEX calls_extension ON calls (extension, published)",
        "CREATE INDEX calls_organization ON calls (organization_id, published)",
        "CREATE INDEX calls_nonce ON calls (user_id, nonce) WHERE nonce IS NOT NULL",
        "CREATE INDEX calls_live ON calls (state) WHERE state != 'ended'",
        "CREATE INDEX calls_published ON calls (published)",
        """CREATE TABLE contacts (
            extended TEXT NOT NULL,
            contact_uri TEXT NOT NULL,
            received TEXT NOT NULL,
            expires_at REAL NOT NULL,
            call_id TEXT NOT NULL,
            cseq INTEGER NOT NULL,
            PRIMARY KEY (extended, contact_uri)
        )""",
        """CREATE TABLE tokens (
            token_hash TEXT PRIMARY KEY,
            client_id TEXT NOT NULL,
            owner_kind TEXT NOT NULL,
            owner_id INTEGER,
            expires_at REAL NOT NULL
        )""",
    ),
    1: (
        # named values the process keeps across restarts (e.g. its generated signing secret)
        "CREATE TABLE settings (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
        # the last sign of life of each node: what recovery after a crash counts up to
        "CREATE TABLE heartbeats (node TEXT PRIMARY KEY, at REAL NOT NULL)",
    ),
    2: (
        # tokens are signed and carry their own claims now: the table of issued ones goes
        "DROP TABLE IF EXISTS tokens",
    ),
}


# The states whose change save_call commits at once: what recovery after a crash needs.
_COMMITTED_STATES = frozenset({CallState.CREATED, CallState.BRIDGED, CallState.ENDED})


class StoreError(Exception):
    """The store cannot be opened or used (bad URL, unreadable file, newer schema...)."""


@dataclass(frozen=True, slots=True)
class ContactRecord:
    """One registered device of an extension (RFC 3261 section 10 binding)."""

    extended: str  # "0003*210"
    contact_uri: str  # the Contact URI as registered
    received: str  # where the REGISTER came from: "HOST:PORT TRANSPORT", e.g. "127.0.0.1:5062 udp"
    expires_at: float  # wall-clock epoch seconds
    call_id: str
    cseq: int


class Store(Protocol):
    def save_call(self, call: PhoneCall, *, durable: bool = False) -> None: ...
    def get_call(self, call_id: str) -> PhoneCall | None: ...
    def find_call_by_nonce(self, user_id: int, nonce: str) -> PhoneCall | None: ...
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
    ) -> list[PhoneCall]: ...
    def count_calls(
        self,
        *,
        user_id: int | None = None,
        extension: str | None = None,
        organization_id: int | None = None,
        ended: bool | None = None,
    ) -> int: ...
    def live_calls(self) -> list[PhoneCall]: ...
    def save_contact(
        self,
        extended: str,
        contact_uri: str,
        received: str,
        expires_at: float,
        call_id: str,
        cseq: int,
    ) -> None: ...
    def remove_contact(self, extended: str, contact_uri: str) -> None: ...
    def remove_contacts(self, extended: str) -> None: ...
    def contacts(self, extended: str, now: float) -> list[ContactRecord]: ...
    def purge_expired(self, now: float) -> int: ...
    def setting(self, name: str) -> str | None: ...
    def setting_default(self, name: str, value: str) -> str: ...
    def beat(self, node: str, at: float) -> None: ...
    def last_beat(self, node: str) -> float | None: ...
    def close(self) -> None: ...


def _call_filter(
    user_id: int | None,
    extension: str | None,
    organization_id: int | None,
    ended: bool | None,
) -> tuple[str, list[object]]:
    clauses: list[str] = []
    params: list[object] = []
    if user_id is not None:
        clauses.append("user_id = ?")
        params.append(user_id)
    if extension is not None:
        clauses.append("extension = ?")
        params.append(extension)
    if organization_id is not None:
        clauses.append("organization_id = ?")
        params.append(organization_id)
    if ended is not None:
        clauses.append("state = ?" if ended else "state != ?")
        params.append(CallState.ENDED.value)
    where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
    return where, params


class SqliteStore:
    """The SQLite store. ``path`` is a file name (relative to the current folder) or
    ``":memory:"``."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        try:
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open store {self.path!r}: {exc}") from None
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._migrate()
        except sqlite3.Error as exc:
            self._db.close()
            raise StoreError(f"cannot open store {self.path!r}: {exc}") from None
        except StoreError:
            self._db.close()
            raise
        # save_call's bookkeeping: the state last committed per live call, and the updates
        # not written yet (see save_call)
        self._written_state: dict[str, CallState] = {}
        self._pending: dict[str, PhoneCall] = {}

    def _migrate(self) -> None:
        (version,) = self._db.execute("PRAGMA user_version").fetchone()
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"store {self.path!r} has schema version {version}, newer than this program "
                f"supports ({SCHEMA_VERSION}); upgrade the program or use another file"
            )
        while version < SCHEMA_VERSION:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for statement in _MIGRATIONS[version]:
                    self._db.execute(statement)
                self._db.execute(f"PRAGMA user_version = {version + 1}")
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            logger.info("store %s: schema version %d -> %d", self.path, version, version + 1)
            version += 1

    @property
    def schema_version(self) -> int:
        (version,) = self._db.execute("PRAGMA user_version").fetchone()
        return int(version)

    # ------------------------------------------------------------------ calls

    def save_call(self, call: PhoneCall, *, durable: bool = False) -> None:
        """Insert or update the record of ``call``; ``durable``: committed now, whatever the
        change (the engine asks it for calls with a statusCallback).

        A new record, and a call becoming bridged or ended, are committed when this returns,
        so a crash keeps what a restart needs to settle the call (``Engine.recover``: live or
        not, bridged or not). Any other update (calling the source or the destination, a
        party ringing, answering, hanging up, held: most of a call's ~8 events) is kept in
        memory and written with the call's latest content at its next committed change, or
        before any read or ``close``: each write is a JSON dump of the whole record and a
        committed statement, the largest single cost per call under load.
        """
        state = call.state
        written = self._written_state.get(call.id)
        if (
            written is not None
            and not durable
            and (written is state or state not in _COMMITTED_STATES)
        ):
            self._pending[call.id] = call
            return
        self._pending.pop(call.id, None)
        self._write_call(call, update=written is not None)
        if state is CallState.ENDED:
            self._written_state.pop(call.id, None)
        else:
            self._written_state[call.id] = state

    def flush(self) -> None:
        """Write the updates ``save_call`` kept in memory, in one transaction."""
        if not self._pending:
            return
        pending = list(self._pending.values())
        self._pending.clear()
        self._db.execute("BEGIN")
        try:
            for call in pending:
                self._write_call(call, update=True)
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def _write_call(self, call: PhoneCall, *, update: bool = False) -> None:
        """Upsert the record; ``update``: it is in the table already, and only its state and
        data can have changed (the other columns are fixed at creation), so no other index
        is rewritten: about half the cost of the upsert."""
        data = json.dumps(call.to_dict(), separators=(",", ":"))
        if update:
            cursor = self._db.execute(
                "UPDATE calls SET state = ?, data = ? WHERE id = ?",
                (call.state.value, data, call.id),
            )
            if cursor.rowcount == 1:
                return
        self._db.execute(
            "INSERT INTO calls (id, user_id, organization_id, extension, nonce, state, published,"
            " data) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET"
            " user_id = excluded.user_id, organization_id = excluded.organization_id,"
            " extension = excluded.extension, nonce = excluded.nonce, state = excluded.state,"
            " published = excluded.published, data = excluded.data",
            (
                call.id,
                call.user_id,
                call.organization_id,
                call.extension,
                call.nonce,
                call.state.value,
                call.published.timestamp(),
                data,
            ),
        )

    def _load(self, row: tuple[str, str] | None) -> PhoneCall | None:
        if row is None:
            return None
        call_id, data = row
        try:
            return PhoneCall.from_dict(json.loads(data))
        except ValueError as exc:  # json.JSONDecodeError is a ValueError
            raise StoreError(f"stored call {call_id} is unreadable: {exc}") from None

    def get_call(self, call_id: str) -> PhoneCall | None:
        self.flush()
        row = self._db.execute("SELECT id, data FROM calls WHERE id = ?", (call_id,)).fetchone()
        return self._load(row)

    def find_call_by_nonce(self, user_id: int, nonce: str) -> PhoneCall | None:
        """The latest call of ``user_id`` created with ``nonce``."""
        self.flush()
        row = self._db.execute(
            "SELECT id, data FROM calls WHERE user_id = ? AND nonce = ?"
            " ORDER BY published DESC, rowid DESC LIMIT 1",
            (user_id, nonce),
        ).fetchone()
        return self._load(row)

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
        """Calls matching every given filter, by ``published`` (oldest first by default)."""
        self.flush()
        where, params = _call_filter(user_id, extension, organization_id, ended)
        order = "DESC" if newest_first else "ASC"
        sql = f"SELECT id, data FROM calls{where} ORDER BY published {order}, rowid {order}"
        sql += " LIMIT ? OFFSET ?"
        params += [-1 if limit is None else max(0, limit), max(0, offset)]
        calls = []
        for row in self._db.execute(sql, params).fetchall():
            call = self._load(row)
            if call is not None:
                calls.append(call)
        return calls

    def count_calls(
        self,
        *,
        user_id: int | None = None,
        extension: str | None = None,
        organization_id: int | None = None,
        ended: bool | None = None,
    ) -> int:
        self.flush()
        where, params = _call_filter(user_id, extension, organization_id, ended)
        (count,) = self._db.execute(f"SELECT COUNT(*) FROM calls{where}", params).fetchone()
        return int(count)

    def live_calls(self) -> list[PhoneCall]:
        """Calls not yet ended (after a restart: the ones the engine must settle)."""
        return self.list_calls(ended=False)

    # ------------------------------------------------------------------ contacts

    def save_contact(
        self,
        extended: str,
        contact_uri: str,
        received: str,
        expires_at: float,
        call_id: str,
        cseq: int,
    ) -> None:
        """Add or refresh one binding of ``extended``."""
        self._db.execute(
            "INSERT INTO contacts (extended, contact_uri, received, expires_at, call_id, cseq)"
            " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (extended, contact_uri) DO UPDATE SET"
            " received = excluded.received, expires_at = excluded.expires_at,"
            " call_id = excluded.call_id, cseq = excluded.cseq",
            (extended, contact_uri, received, expires_at, call_id, cseq),
        )

    def remove_contact(self, extended: str, contact_uri: str) -> None:
        self._db.execute(
            "DELETE FROM contacts WHERE extended = ? AND contact_uri = ?", (extended, contact_uri)
        )

    def remove_contacts(self, extended: str) -> None:
        """Drop every binding of ``extended`` (``Contact: *``, ``Expires: 0``)."""
        self._db.execute("DELETE FROM contacts WHERE extended = ?", (extended,))

    def contacts(self, extended: str, now: float) -> list[ContactRecord]:
        """Unexpired bindings of ``extended`` at wall-clock ``now``, oldest first."""
        rows = self._db.execute(
            "SELECT extended, contact_uri, received, expires_at, call_id, cseq FROM contacts"
            " WHERE extended = ? AND expires_at > ? ORDER BY rowid",
            (extended, now),
        ).fetchall()
        return [ContactRecord(*row) for row in rows]

    def purge_expired(self, now: float) -> int:
        """Delete the contacts expired at ``now``; returns how many went."""
        cursor = self._db.execute("DELETE FROM contacts WHERE expires_at <= ?", (now,))
        return max(0, cursor.rowcount)

    # ------------------------------------------------------------------ settings, heartbeats

    def setting(self, name: str) -> str | None:
        row = self._db.execute("SELECT value FROM settings WHERE name = ?", (name,)).fetchone()
        return None if row is None else str(row[0])

    def setting_default(self, name: str, value: str) -> str:
        """The stored value of ``name``; ``value`` is stored first when there is none (the
        first writer wins, so processes sharing a store agree)."""
        self._db.execute(
            "INSERT OR IGNORE INTO settings (name, value) VALUES (?, ?)", (name, value)
        )
        stored = self.setting(name)
        assert stored is not None
        return stored

    def beat(self, node: str, at: float) -> None:
        """Record that ``node`` was alive at ``at`` (wall-clock epoch seconds)."""
        self._db.execute(
            "INSERT INTO heartbeats (node, at) VALUES (?, ?)"
            " ON CONFLICT (node) DO UPDATE SET at = excluded.at",
            (node, at),
        )

    def last_beat(self, node: str) -> float | None:
        row = self._db.execute("SELECT at FROM heartbeats WHERE node = ?", (node,)).fetchone()
        return None if row is None else float(row[0])

    def close(self) -> None:
        try:
            self.flush()
        finally:
            self._db.close()


def open_store(url: str) -> SqliteStore:
    """Open the store named by ``url``: ``sqlite:///PATH`` (relative to the current folder),
    ``sqlite:////ABSOLUTE/PATH`` or ``sqlite:///:memory:``."""
    prefix = "sqlite:///"
    if not url.startswith(prefix) or len(url) == len(prefix):
        scheme = url.partition(":")[0] if ":" in url else url
        raise StoreError(
            f"unsupported store url {url!r} (scheme {scheme!r}): expected 'sqlite:///PATH'"
        )
    path = url[len(prefix) :]
    if "\x00" in path:
        raise StoreError(f"bad store path {path!r}: contains a NUL character")
    if path != ":memory:":
        parent = Path(path).parent
        if not parent.is_dir():
            raise StoreError(f"cannot open store {url!r}: folder {str(parent)!r} does not exist")
    return SqliteStore(path)
