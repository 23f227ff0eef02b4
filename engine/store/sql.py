"""The store's queries, once for both backends (``SqlStore``); a backend supplies the
connection (``sqlite.SqliteStore``, ``postgres.PostgresStore``) and its ``Dialect``.

A call is kept as a JSON blob (``PhoneCall.to_dict``) plus the columns that queries filter on.
Every write is its own committed statement unless said otherwise (``flush`` batches).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol

from engine.model import CallState, PhoneCall
from engine.store.interface import ContactRecord, DialogRecord, NodeBeat, StoreError
from engine.store.schema import SCHEMA_VERSION, Dialect

logger = logging.getLogger(__name__)

# The states whose change save_call commits at once: what recovery after a crash needs.
_COMMITTED_STATES = frozenset({CallState.CREATED, CallState.BRIDGED, CallState.ENDED})

# "no limit" for LIMIT ? (both backends take a number there; SQLite has no LIMIT ALL)
_NO_LIMIT = 2**62


@dataclass(frozen=True, slots=True)
class CallRow:
    """A call's record as written: a snapshot (``PhoneCall.to_dict`` builds new containers),
    so it can be written from another thread while the call goes on."""

    id: str
    user_id: int
    organization_id: int
    extension: str
    nonce: str | None
    state: str
    published: float
    record: dict[str, Any]
    node: str | None = None  # the owner ("" in the record: NULL)

    @classmethod
    def of(cls, call: PhoneCall) -> CallRow:
        return cls(
            call.id,
            call.user_id,
            call.organization_id,
            call.extension,
            call.nonce,
            call.state.value,
            call.published.timestamp(),
            call.to_dict(),
            call.node or None,
        )


class Cursor(Protocol):
    @property
    def rowcount(self) -> int: ...
    def fetchone(self) -> Any: ...
    def fetchall(self) -> Sequence[Any]: ...


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


class SqlStore:
    """Every query of the ``Store`` protocol over a DB-API connection; not safe for concurrent
    use (one thread at a time: the engine's, or the write-behind queue's worker)."""

    dialect: Dialect
    name: str  # what error messages call this store (a path, or a URL without password)
    remote = False  # True: a database server, reached over the network (writes are queued)
    available = True  # (StoreService knows better: a remote one can be down)

    def __init__(self) -> None:
        # save_call's bookkeeping: the state last committed per live call, and the updates
        # not written yet (see save_call)
        self._written_state: dict[str, CallState] = {}
        self._pending: dict[str, PhoneCall] = {}

    @property
    def write_errors(self) -> int:
        """Writes made in the background that failed (logged, not raised): none here."""
        return 0

    def wait_written(self) -> None:
        """Return once every write made so far is committed: at once here, where each write
        is committed before it returns (SQLite's writer thread waits for its queue)."""

    # ------------------------------------------------------------------ the backend's part

    def _execute(self, sql: str, params: Sequence[object] = ()) -> Cursor:
        """Run one statement written with ``?`` placeholders (in a transaction if one is open,
        else committed on its own)."""
        raise NotImplementedError

    def _transaction(self) -> AbstractContextManager[None]:
        """A transaction around the block: committed at its end, rolled back on an error."""
        raise NotImplementedError

    def _read_version(self) -> int:
        raise NotImplementedError

    def _write_version(self, version: int) -> None:
        raise NotImplementedError

    def _lock_for_migration(self) -> None:
        """Inside the migration's transaction: keep other processes from migrating at once."""

    def close(self) -> None:
        raise NotImplementedError

    # ------------------------------------------------------------------ schema

    def _migrate(self) -> None:
        """Bring the schema to ``SCHEMA_VERSION``, one step per transaction; a newer schema
        is refused."""
        while True:
            with self._transaction():
                self._lock_for_migration()
                version = self._read_version()
                if version > SCHEMA_VERSION:
                    raise StoreError(
                        f"store {self.name!r} has schema version {version}, newer than this "
                        f"program supports ({SCHEMA_VERSION}); upgrade the program or use "
                        "another database"
                    )
                if version == SCHEMA_VERSION:
                    return
                for statement in self.dialect.migration(version):
                    self._execute(statement)
                self._write_version(version + 1)
            logger.info("store %s: schema version %d -> %d", self.name, version, version + 1)

    @property
    def schema_version(self) -> int:
        return self._read_version()

    # ------------------------------------------------------------------ calls

    def save_call(self, call: PhoneCall, *, durable: bool = False) -> None:
        """Insert or update the record of ``call``; ``durable``: committed now, whatever the
        change (the engine asks it for calls with a statusCallback).

        A new record, and a call becoming bridged or ended, are committed when this returns
        (with SQLite's writer thread: handed to it, committed a moment later; ``durable``
        ones before this returns),
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
        with self._transaction():
            for call in pending:
                self._write_call(call, update=True)
        for call in pending:  # only once committed: a failed flush keeps them for the next
            if self._pending.get(call.id) is call:
                del self._pending[call.id]

    def _write_call(self, call: PhoneCall, *, update: bool = False) -> None:
        self.write_row(CallRow.of(call), update=update)

    def write_row(self, row: CallRow, *, update: bool = False) -> None:
        """Upsert a call's record; ``update``: it is in the table already, and only its state
        and data can have changed (the other columns are fixed at creation), so no other index
        is rewritten: about half the cost of the upsert."""
        data = json.dumps(row.record, separators=(",", ":"))
        if update:
            cursor = self._execute(
                "UPDATE calls SET state = ?, data = ?, node = ? WHERE id = ?",
                (row.state, data, row.node, row.id),
            )
            if cursor.rowcount == 1:
                return
        self._execute(
            "INSERT INTO calls (id, user_id, organization_id, extension, nonce, state, published,"
            " data, node) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET"
            " user_id = excluded.user_id, organization_id = excluded.organization_id,"
            " extension = excluded.extension, nonce = excluded.nonce, state = excluded.state,"
            " published = excluded.published, data = excluded.data, node = excluded.node",
            (
                row.id,
                row.user_id,
                row.organization_id,
                row.extension,
                row.nonce,
                row.state,
                row.published,
                data,
                row.node,
            ),
        )

    def _load(self, row: Sequence[Any] | None) -> PhoneCall | None:
        if row is None:
            return None
        call_id, data, node = row
        try:
            call = PhoneCall.from_dict(json.loads(data))
        except ValueError as exc:  # json.JSONDecodeError is a ValueError
            raise StoreError(f"stored call {call_id} is unreadable: {exc}") from None
        call.node = node or ""  # the column is the truth: a claim changes only it
        return call

    def get_call(self, call_id: str) -> PhoneCall | None:
        self.flush()
        row = self._execute("SELECT id, data, node FROM calls WHERE id = ?", (call_id,)).fetchone()
        return self._load(row)

    def find_call_by_nonce(self, user_id: int, nonce: str) -> PhoneCall | None:
        """The latest call of ``user_id`` created with ``nonce``."""
        self.flush()
        row = self._execute(
            "SELECT id, data, node FROM calls WHERE user_id = ? AND nonce = ?"
            " ORDER BY published DESC, rowid DESC LIMIT 1",
            (user_id, nonce),
        ).fetchone()
        return self._load(row)

    def claim_nonce(self, user_id: int, nonce: str, call_id: str) -> str:
        """Claim ``user_id``'s ``nonce`` for a new call ``call_id``; returns the id of the call
        that holds it: ``call_id`` when this claim won, else the earlier one's (atomic, so two
        processes given one nonce at once agree)."""
        self._execute(
            "INSERT INTO nonces (user_id, nonce, call_id) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
            (user_id, nonce, call_id),
        )
        row = self._execute(
            "SELECT call_id FROM nonces WHERE user_id = ? AND nonce = ?", (user_id, nonce)
        ).fetchone()
        return call_id if row is None else str(row[0])

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
        sql = f"SELECT id, data, node FROM calls{where} ORDER BY published {order}, rowid {order}"
        sql += " LIMIT ? OFFSET ?"
        params += [_NO_LIMIT if limit is None else max(0, limit), max(0, offset)]
        calls = []
        for row in self._execute(sql, params).fetchall():
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
        (count,) = self._execute(f"SELECT COUNT(*) FROM calls{where}", params).fetchone()
        return int(count)

    def live_calls(self) -> list[PhoneCall]:
        """Calls not yet ended, of every node."""
        return self.list_calls(ended=False)

    def live_calls_of(self, node: str) -> list[PhoneCall]:
        """Calls of ``node`` not yet ended (after a restart: the ones it must settle); a
        record without an owner (written before the cluster existed) counts as its own."""
        self.flush()
        rows = self._execute(
            "SELECT id, data, node FROM calls WHERE state != ? AND (node = ? OR node IS NULL)"
            " ORDER BY published, rowid",
            (CallState.ENDED.value, node),
        ).fetchall()
        return [call for call in map(self._load, rows) if call is not None]

    def claim_calls(self, dead: str, survivor: str) -> list[PhoneCall]:
        """Make ``survivor`` the owner of the live calls of node ``dead`` and return them.
        One statement: of several survivors claiming at once, each call goes to one only."""
        self.flush()
        rows = self._execute(
            "UPDATE calls SET node = ? WHERE node = ? AND state != ? RETURNING id, data, node",
            (survivor, dead, CallState.ENDED.value),
        ).fetchall()
        calls = [call for call in map(self._load, rows) if call is not None]
        for call in calls:
            call.node = survivor
        return calls

    # ------------------------------------------------------------------ dialogs of answered legs

    def save_dialog(self, record: DialogRecord) -> None:
        """Keep (or update) the dialog state of an answered leg."""
        self._execute(
            "INSERT INTO dialogs (sip_call_id, local_tag, phonecall, node, data)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT (sip_call_id, local_tag) DO UPDATE SET"
            " phonecall = excluded.phonecall, node = excluded.node, data = excluded.data",
            (record.sip_call_id, record.local_tag, record.phonecall, record.node, record.data),
        )

    def remove_dialog(self, sip_call_id: str, local_tag: str) -> None:
        self._execute(
            "DELETE FROM dialogs WHERE sip_call_id = ? AND local_tag = ?",
            (sip_call_id, local_tag),
        )

    def dialogs_of(self, phonecall: str) -> list[DialogRecord]:
        rows = self._execute(
            "SELECT sip_call_id, local_tag, phonecall, node, data FROM dialogs"
            " WHERE phonecall = ? ORDER BY rowid",
            (phonecall,),
        ).fetchall()
        return [DialogRecord(*row) for row in rows]

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
        self._execute(
            "INSERT INTO contacts (extended, contact_uri, received, expires_at, call_id, cseq,"
            " path) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (extended, contact_uri) DO UPDATE"
            " SET received = excluded.received, expires_at = excluded.expires_at,"
            " call_id = excluded.call_id, cseq = excluded.cseq, path = excluded.path",
            (extended, contact_uri, received, expires_at, call_id, cseq, join_path(path)),
        )

    def remove_contact(self, extended: str, contact_uri: str) -> None:
        self._execute(
            "DELETE FROM contacts WHERE extended = ? AND contact_uri = ?", (extended, contact_uri)
        )

    def remove_contacts(self, extended: str) -> None:
        """Drop every binding of ``extended`` (``Contact: *``, ``Expires: 0``)."""
        self._execute("DELETE FROM contacts WHERE extended = ?", (extended,))

    def contacts(self, extended: str, now: float) -> list[ContactRecord]:
        """Unexpired bindings of ``extended`` at wall-clock ``now``, oldest first."""
        rows = self._execute(
            "SELECT extended, contact_uri, received, expires_at, call_id, cseq, path"
            " FROM contacts WHERE extended = ? AND expires_at > ? ORDER BY rowid",
            (extended, now),
        ).fetchall()
        return [_contact(row) for row in rows]

    def all_contacts(self, now: float) -> list[ContactRecord]:
        """Every unexpired binding at ``now``, oldest first (a node's local copy)."""
        rows = self._execute(
            "SELECT extended, contact_uri, received, expires_at, call_id, cseq, path"
            " FROM contacts WHERE expires_at > ? ORDER BY rowid",
            (now,),
        ).fetchall()
        return [_contact(row) for row in rows]

    def purge_expired(self, now: float) -> int:
        """Delete the contacts and digest nonce counts expired at ``now``; returns how many
        contacts went."""
        cursor = self._execute("DELETE FROM contacts WHERE expires_at <= ?", (now,))
        removed = max(0, cursor.rowcount)
        self._execute("DELETE FROM nonce_counts WHERE expires_at <= ?", (now,))
        return removed

    # ------------------------------------------------------------------ digest nonce counts

    def advance_nonce_count(self, nonce: str, nc: int, expires: float) -> bool:
        """Record ``nc`` for the digest ``nonce`` if it is above every count recorded for it
        (atomic across processes sharing the store): True when accepted, False for a count
        already used or lower (a replay). The row is kept until ``expires`` (``purge_expired``
        drops it)."""
        cursor = self._execute(
            "INSERT INTO nonce_counts (nonce, nc, expires_at) VALUES (?, ?, ?)"
            " ON CONFLICT (nonce) DO UPDATE SET nc = excluded.nc"
            " WHERE nonce_counts.nc < excluded.nc",
            (nonce, nc, expires),
        )
        return cursor.rowcount == 1

    # ------------------------------------------------------------------ settings, heartbeats

    def ping(self) -> None:
        """One round trip to the database (raises when it cannot be reached)."""
        self._execute("SELECT 1").fetchone()

    def setting(self, name: str) -> str | None:
        row = self._execute("SELECT value FROM settings WHERE name = ?", (name,)).fetchone()
        return None if row is None else str(row[0])

    def setting_default(self, name: str, value: str) -> str:
        """The stored value of ``name``; ``value`` is stored first when there is none (the
        first writer wins, so processes sharing a store agree)."""
        self._execute(
            "INSERT INTO settings (name, value) VALUES (?, ?) ON CONFLICT DO NOTHING",
            (name, value),
        )
        stored = self.setting(name)
        assert stored is not None
        return stored

    def beat(self, node: str, at: float, api: str | None = None) -> None:
        """Record that ``node`` was alive at ``at`` (wall-clock epoch seconds); ``api``: the
        base URL of its API, where other nodes reach it (kept when None)."""
        self._execute(
            "INSERT INTO heartbeats (node, at, api) VALUES (?, ?, ?)"
            " ON CONFLICT (node) DO UPDATE SET at = excluded.at,"
            " api = COALESCE(excluded.api, heartbeats.api)",
            (node, at, api),
        )

    def nodes(self) -> list[NodeBeat]:
        """Every node that ever beat, with its last beat and API address."""
        rows = self._execute("SELECT node, at, api FROM heartbeats ORDER BY node").fetchall()
        return [NodeBeat(str(n), float(at), None if a is None else str(a)) for n, at, a in rows]

    def last_beat(self, node: str) -> float | None:
        row = self._execute("SELECT at FROM heartbeats WHERE node = ?", (node,)).fetchone()
        return None if row is None else float(row[0])


# Path values are kept in one column, one per line (a header value never holds a line break).
def join_path(path: tuple[str, ...]) -> str:
    return "\n".join(path)


def _contact(row: Sequence[Any]) -> ContactRecord:
    extended, uri, received, expires_at, call_id, cseq, path = row
    hops = tuple(line for line in (path or "").split("\n") if line)
    return ContactRecord(extended, uri, received, float(expires_at), call_id, int(cseq), hops)
