"""The PostgreSQL backend (psycopg 3): one connection, autocommit, reconnected when lost.

Every write is its own committed statement (``flush`` batches in one transaction), so a
record is in the database when the call returns. The schema version lives in the one-row
table ``schema_version``; nodes starting together migrate one at a time (an advisory lock).
A lost or refused connection raises ``StoreUnavailable``; the next call connects again.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from typing import Any

import psycopg

from engine.store.interface import StoreError, StoreUnavailable
from engine.store.schema import POSTGRESQL
from engine.store.sql import Cursor, SqlStore

logger = logging.getLogger(__name__)

# pg_advisory_xact_lock key of schema migrations (any constant shared by every node)
_MIGRATION_LOCK = 0x62327561  # "b2ua"


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


class PostgresStore(SqlStore):
    """The store in a PostgreSQL database; ``url`` is a libpq URL
    (``postgresql://USER:PASSWORD@HOST:PORT/DATABASE``), ``shown`` the same without its
    password (what messages say)."""

    dialect = POSTGRESQL
    remote = True

    def __init__(self, url: str, shown: str, *, connect_timeout: int = 3) -> None:
        super().__init__()
        self._url = url
        self.name = shown
        self.connect_timeout = connect_timeout
        self._db: psycopg.Connection[Any] | None = None
        self._in_transaction = False
        try:
            self._connect()
            self._migrate()
        except StoreError as exc:
            self._drop()
            raise type(exc)(f"cannot open store {shown!r}: {exc}") from None

    # ------------------------------------------------------------------ the connection

    def _connect(self) -> psycopg.Connection[Any]:
        try:
            self._db = psycopg.connect(
                self._url,
                autocommit=True,
                connect_timeout=self.connect_timeout,
                # a server that vanishes without closing the connection (power off, network
                # cut) fails the statement within seconds instead of TCP's minutes
                keepalives=1,
                keepalives_idle=2,
                keepalives_interval=1,
                keepalives_count=3,
                tcp_user_timeout=5000,
            )
        except psycopg.OperationalError as exc:
            raise StoreUnavailable(_one_line(exc)) from None
        except psycopg.Error as exc:
            raise StoreError(_one_line(exc)) from None
        return self._db

    def _connection(self) -> psycopg.Connection[Any]:
        db = self._db
        if db is None or db.closed or db.broken:
            if self._in_transaction:
                raise StoreUnavailable("the connection was lost in a transaction")
            self._drop()
            db = self._connect()
        return db

    def _drop(self) -> None:
        db, self._db = self._db, None
        if db is not None:
            with suppress(psycopg.Error):
                db.close()

    @property
    def connected(self) -> bool:
        return self._db is not None and not self._db.closed and not self._db.broken

    # ------------------------------------------------------------------ SqlStore's hooks

    def _execute(self, sql: str, params: Sequence[object] = ()) -> Cursor:
        db = self._connection()
        try:
            return db.execute(self.dialect.sql(sql), params)
        except psycopg.OperationalError as exc:
            if db.broken or db.closed:
                raise StoreUnavailable(_one_line(exc)) from None
            raise StoreError(_one_line(exc)) from None
        except psycopg.Error as exc:
            raise StoreError(_one_line(exc)) from None

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        db = self._connection()
        self._in_transaction = True
        try:
            with db.transaction():
                yield
        except psycopg.OperationalError as exc:
            raise StoreUnavailable(_one_line(exc)) from None
        except psycopg.Error as exc:
            raise StoreError(_one_line(exc)) from None
        finally:
            self._in_transaction = False

    def _lock_for_migration(self) -> None:
        self._execute("SELECT pg_advisory_xact_lock(?)", (_MIGRATION_LOCK,))
        self._execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")

    def _read_version(self) -> int:
        row = self._execute("SELECT MAX(version) FROM schema_version").fetchone()
        return 0 if row is None or row[0] is None else int(row[0])

    def _write_version(self, version: int) -> None:
        self._execute("DELETE FROM schema_version")
        self._execute("INSERT INTO schema_version (version) VALUES (?)", (version,))

    def close(self) -> None:
        try:
            if self._pending:
                self.flush()
        except StoreError as exc:
            logger.error(
                "store %s: %d updates not written at close: %s", self.name, len(self._pending), exc
            )
        finally:
            self._drop()
