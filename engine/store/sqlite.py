"""The SQLite backend: one connection in WAL mode with ``synchronous=NORMAL``.

Every write is committed, so it survives the process dying (an OS crash may lose the last
few, which is the trade WAL+NORMAL makes for speed). The schema version lives in ``PRAGMA
user_version``.

``background=True`` (what ``b2bua serve`` uses) runs a call's writes (its record, its legs'
dialog state) on a writer thread of their own, ``engine.store.sqlite_writer``: committed a
moment after they are made instead of before ``save_call`` returns, off the signalling
thread. Any other statement first waits for the writes before it, so reads see them.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import partial
from pathlib import Path

from engine.model import PhoneCall
from engine.store.interface import DialogRecord, StoreError
from engine.store.schema import SQLITE
from engine.store.sql import CallRow, Cursor, SqlStore
from engine.store.sqlite_writer import SqliteWriter


class SqliteStore(SqlStore):
    """The SQLite store. ``path`` is a file name (relative to the current folder) or
    ``":memory:"``."""

    dialect = SQLITE

    def __init__(
        self, path: str | Path, *, background: bool = False, busy_timeout: float = 5.0
    ) -> None:
        super().__init__()
        self._writer: SqliteWriter | None = None
        self.path = self.name = str(path)
        try:
            # busy_timeout: how long a statement waits for another process's write lock
            self._db = sqlite3.connect(
                self.path, timeout=busy_timeout, isolation_level=None, check_same_thread=False
            )
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
        if background and self.path != ":memory:":
            self._writer = SqliteWriter(self.path, self._transaction)

    @property
    def write_errors(self) -> int:
        """Writes of the writer thread that failed (logged, not raised)."""
        return 0 if self._writer is None else self._writer.errors

    def _execute(self, sql: str, params: Sequence[object] = ()) -> Cursor:
        self.wait_written()  # a statement of ours comes after the writes given before it
        return self._db.execute(sql, params)

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        self.wait_written()
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
            self._db.execute("COMMIT")
        except BaseException:
            if self._db.in_transaction:  # also when the COMMIT itself failed (a busy file)
                self._db.execute("ROLLBACK")
            raise

    def _read_version(self) -> int:
        (version,) = self._execute("PRAGMA user_version").fetchone()
        return int(version)

    def _write_version(self, version: int) -> None:
        self._db.execute(f"PRAGMA user_version = {int(version)}")

    # --- the writes the writer thread takes (``background``) --------------------------------

    def wait_written(self) -> None:
        """Return once every write made so far is committed (at once without the writer, or
        on the writer's own thread)."""
        if self._writer is not None:
            self._writer.drain()

    def save_call(self, call: PhoneCall, *, durable: bool = False) -> None:
        super().save_call(call, durable=durable)
        if durable:  # what a statusCallback's receiver may see is on disk before it goes out
            self.wait_written()

    def _write_call(self, call: PhoneCall, *, update: bool = False) -> None:
        writer = self._writer
        if writer is None:
            super()._write_call(call, update=update)
            return
        # the record's content now (the call goes on changing), written on the thread
        writer.submit(partial(self.write_row, CallRow.of(call), update=update))

    def flush(self) -> None:
        writer = self._writer
        if writer is None:
            super().flush()
            return
        pending, self._pending = list(self._pending.values()), {}
        for call in pending:
            writer.submit(partial(self.write_row, CallRow.of(call), update=True))

    def save_dialog(self, record: DialogRecord) -> None:
        writer = self._writer
        if writer is None:
            super().save_dialog(record)
        else:
            writer.submit(partial(SqlStore.save_dialog, self, record))

    def remove_dialog(self, sip_call_id: str, local_tag: str) -> None:
        writer = self._writer
        if writer is None:
            super().remove_dialog(sip_call_id, local_tag)
        else:
            writer.submit(partial(SqlStore.remove_dialog, self, sip_call_id, local_tag))

    def close(self) -> None:
        try:
            self.flush()
            if self._writer is not None:
                self._writer.close()
        finally:
            self._db.close()
