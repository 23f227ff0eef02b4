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

SCHEMA_VERSION = 4

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
    3: (
        # the cluster: the node that owns a call (runs its tasks and media), the dialog state
        # of every answered leg (what another node needs to BYE it when the owner dies), the
        # RFC 3327 Path of a binding, each node's API address beside its heartbeat, and the
        # digest nonce counts every node shares (engine/cluster.py, docs/CLUSTER.md)
        "ALTER TABLE calls ADD COLUMN node TEXT",
        "CREATE INDEX calls_node_live ON calls (node) WHERE state != 'ended'",
        """CREATE TABLE dialogs (
            sip_call_id TEXT NOT NULL,
            local_tag TEXT NOT NULL,
            phonecall TEXT NOT NULL,
            node TEXT NOT NULL,
            data TEXT NOT NULL,
            PRIMARY KEY (sip_call_id, local_tag)
        )""",
        "CREATE INDEX dialogs_phonecall ON dialogs (phonecall)",
        "ALTER TABLE contacts ADD COLUMN path TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE heartbeats ADD COLUMN api TEXT",
        """CREATE TABLE nonce_counts (
            nonce TEXT PRIMARY KEY,
            nc INTEGER NOT NULL,
            expires REAL NOT NULL
        )""",
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
    path: tuple[str, ...] = ()  # RFC 3327 Path values of the REGISTER, first hop first


@dataclass(frozen=True, slots=True)
class DialogRecord:
    """The stored dialog state of one answered leg (``engine.dialogs``): enough for any node
    to end it with a BYE when the node that owns its call is gone."""

    sip_call_id: str
    local_tag: str
    phonecall: str  # the PhoneCall the leg belongs to
    node: str  # the node that owns the call
    data: str  # JSON, see engine.dialogs.DialogState


@dataclass(frozen=True, slots=True)
class NodeBeat:
    """A node's last heartbeat and the address of its API (None: unknown)."""

    node: str
    at: float
    api: str | None


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
        path: tuple[str, ...] = (),
    ) -> None: ...
    def remove_contact(self, extended: str, contact_uri: str) -> None: ...
    def remove_contacts(self, extended: str) -> None: ...
    def contacts(self, extended: str, now: float) -> list[ContactRecord]: ...
    def purge_expired(self, now: float) -> int: ...
    def setting(self, name: str) -> str | None: ...
    def setting_default(self, name: str, value: str) -> str: ...
    def beat(self, node: str, at: float, api: str | None = None) -> None: ...
    def last_beat(self, node: str) -> float | None: ...
    def nodes(self) -> list[NodeBeat]: ...
    def live_calls_of(self, node: str) -> list[PhoneCall]: ...
    def claim_calls(self, dead: str, survivor: str) -> list[PhoneCall]: ...
    def save_dialog(self, record: DialogRecord) -> None: ...
    def remove_dialog(self, sip_call_id: str, local_tag: str) -> None: ...
    def dialogs_of(self, phonecall: str) -> list[DialogRecord]: ...
    def advance_nonce(self, nonce: str, nc: int, expires: float) -> bool: ...
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
                "UPDATE calls SET state = ?, data = ?, node = ? WHERE id = ?",
                (call.state.value, data, call.node or None, call.id),
            )
            if cursor.rowcount == 1:
                return
        self._db.execute(
            "INSERT INTO calls (id, user_id, organization_id, extension, nonce, state, published,"
            " data, node) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET"
            " user_id = excluded.user_id, organization_id = excluded.organization_id,"
            " extension = excluded.extension, nonce = excluded.nonce, state = excluded.state,"
            " published = excluded.published, data = excluded.data, node = excluded.node",
            (
                call.id,
                call.user_id,
                call.organization_id,
                call.extension,
                call.nonce,
                call.state.value,
                call.published.timestamp(),
                data,
                call.node or None,
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
        """Calls not yet ended, of every node."""
        return self.list_calls(ended=False)

    def live_calls_of(self, node: str) -> list[PhoneCall]:
        """Calls of ``node`` not yet ended (after a restart: the ones it must settle); a
        record without an owner (written before the cluster existed) counts as its own."""
        self.flush()
        rows = self._db.execute(
            "SELECT id, data FROM calls WHERE state != ? AND (node = ? OR node IS NULL)"
            " ORDER BY published, rowid",
            (CallState.ENDED.value, node),
        ).fetchall()
        return [call for call in map(self._load, rows) if call is not None]

    def claim_calls(self, dead: str, survivor: str) -> list[PhoneCall]:
        """Make ``survivor`` the owner of the live calls of node ``dead`` and return them.
        One statement: of several survivors claiming at once, each call goes to one only."""
        self.flush()
        rows = self._db.execute(
            "UPDATE calls SET node = ? WHERE node = ? AND state != ? RETURNING id, data",
            (survivor, dead, CallState.ENDED.value),
        ).fetchall()
        calls = [call for call in map(self._load, rows) if call is not None]
        for call in calls:
            call.node = survivor
        return calls

    # ------------------------------------------------------------------ dialogs of answered legs

    def save_dialog(self, record: DialogRecord) -> None:
        """Keep (or update) the dialog state of an answered leg."""
        self._db.execute(
            "INSERT INTO dialogs (sip_call_id, local_tag, phonecall, node, data)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT (sip_call_id, local_tag) DO UPDATE SET"
            " phonecall = excluded.phonecall, node = excluded.node, data = excluded.data",
            (record.sip_call_id, record.local_tag, record.phonecall, record.node, record.data),
        )

    def remove_dialog(self, sip_call_id: str, local_tag: str) -> None:
        self._db.execute(
            "DELETE FROM dialogs WHERE sip_call_id = ? AND local_tag = ?",
            (sip_call_id, local_tag),
        )

    def dialogs_of(self, phonecall: str) -> list[DialogRecord]:
        rows = self._db.execute(
            "SELECT sip_call_id, local_tag, phonecall, node, data FROM dialogs"
            " WHERE phonecall = ? ORDER BY rowid",
            (phonecall,),
        ).fetchall()
        return [DialogRecord(*row) for row in rows]

    # ------------------------------------------------------------------ digest nonce counts

    def advance_nonce(self, nonce: str, nc: int, expires: float) -> bool:
        """Record count ``nc`` of digest ``nonce`` if it is above every count recorded for it
        (kept until ``expires``); False for a count already used or lower (a replay). One
        statement, so two nodes checking the same count at once accept it once."""
        cursor = self._db.execute(
            "INSERT INTO nonce_counts (nonce, nc, expires) VALUES (?, ?, ?)"
            " ON CONFLICT (nonce) DO UPDATE SET nc = excluded.nc"
            " WHERE nonce_counts.nc < excluded.nc",
            (nonce, nc, expires),
        )
        return cursor.rowcount == 1

    # ------------------------------------------------------------------ contacts

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
        """Add or refresh one binding of ``extended``; ``path``: the REGISTER's Path values
        (RFC 3327), first hop first."""
        self._db.execute(
            "INSERT INTO contacts (extended, contact_uri, received, expires_at, call_id, cseq,"
            " path) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (extended, contact_uri) DO UPDATE"
            " SET received = excluded.received, expires_at = excluded.expires_at,"
            " call_id = excluded.call_id, cseq = excluded.cseq, path = excluded.path",
            (extended, contact_uri, received, expires_at, call_id, cseq, _join_path(path)),
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
            "SELECT extended, contact_uri, received, expires_at, call_id, cseq, path"
            " FROM contacts WHERE extended = ? AND expires_at > ? ORDER BY rowid",
            (extended, now),
        ).fetchall()
        return [
            ContactRecord(ext, uri, received, expires, call_id, cseq, _split_path(path))
            for ext, uri, received, expires, call_id, cseq, path in rows
        ]

    def purge_expired(self, now: float) -> int:
        """Delete the contacts expired at ``now``; returns how many went."""
        cursor = self._db.execute("DELETE FROM contacts WHERE expires_at <= ?", (now,))
        self._db.execute("DELETE FROM nonce_counts WHERE expires < ?", (now,))
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

    def beat(self, node: str, at: float, api: str | None = None) -> None:
        """Record that ``node`` was alive at ``at`` (wall-clock epoch seconds); ``api``: the
        base URL of its API, where other nodes reach it (kept when None)."""
        self._db.execute(
            "INSERT INTO heartbeats (node, at, api) VALUES (?, ?, ?)"
            " ON CONFLICT (node) DO UPDATE SET at = excluded.at,"
            " api = COALESCE(excluded.api, heartbeats.api)",
            (node, at, api),
        )

    def nodes(self) -> list[NodeBeat]:
        """Every node that ever beat, with its last beat and API address."""
        rows = self._db.execute("SELECT node, at, api FROM heartbeats ORDER BY node").fetchall()
        return [NodeBeat(str(n), float(at), None if a is None else str(a)) for n, at, a in rows]

    def last_beat(self, node: str) -> float | None:
        row = self._db.execute("SELECT at FROM heartbeats WHERE node = ?", (node,)).fetchone()
        return None if row is None else float(row[0])

    def close(self) -> None:
        try:
            self.flush()
        finally:
            self._db.close()


# Path values are kept in one column, one per line (a header value never holds a line break).
def _join_path(path: tuple[str, ...]) -> str:
    return "\n".join(path)


def _split_path(text: str | None) -> tuple[str, ...]:
    return tuple(line for line in (text or "").split("\n") if line)


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
