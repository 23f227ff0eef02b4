"""Persistence: PhoneCall records, registrar contacts, idempotent-create nonces, digest nonce
counts, settings and node heartbeats, in SQLite (one process) or PostgreSQL (a cluster).
(OAuth tokens are signed and self-contained, see ``api.oauth``: nothing is stored per token.)

The front door: ``open_store(url)`` gives the backend the URL names, behind the ``Store``
protocol. The modules split the work: ``interface`` (the protocol and its records),
``schema`` (the migrations and dialect differences, once for both backends), ``sql`` (every
query, once), ``sqlite`` and ``postgres`` (the connections), ``url`` (checking URLs).
"""

from __future__ import annotations

from pathlib import Path

from engine.store.interface import (
    ContactRecord,
    DialogRecord,
    NodeBeat,
    Store,
    StoreError,
    StoreUnavailable,
)
from engine.store.schema import MIGRATIONS, SCHEMA_VERSION
from engine.store.sql import SqlStore
from engine.store.sqlite import SqliteStore
from engine.store.url import parse_store_url, redact

__all__ = [
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "ContactRecord",
    "DialogRecord",
    "NodeBeat",
    "SqlStore",
    "SqliteStore",
    "Store",
    "StoreError",
    "StoreUnavailable",
    "open_store",
    "parse_store_url",
    "redact",
]


def open_store(url: str, *, background: bool = False) -> SqlStore:
    """Open the store named by ``url``: ``sqlite:///PATH`` (relative to the current folder),
    ``sqlite:////ABSOLUTE/PATH``, ``sqlite:///:memory:``, or
    ``postgresql://USER:PASSWORD@HOST:PORT/DATABASE`` (the schema is created or migrated).

    ``background``: SQLite writes a call's rows on a writer thread of its own
    (``engine.store.sqlite``); PostgreSQL's writes go through ``StoreService``'s queue anyway."""
    parsed = parse_store_url(url)
    if parsed.backend == "postgresql":
        try:
            from engine.store.postgres import PostgresStore
        except ImportError:
            raise StoreError(
                f"store {parsed.shown!r} needs psycopg: pip install 'trio-b2bua[postgresql]'"
            ) from None
        return PostgresStore(parsed.target, parsed.shown)
    path = parsed.target
    if path != ":memory:":
        parent = Path(path).parent
        if not parent.is_dir():
            raise StoreError(f"cannot open store {url!r}: folder {str(parent)!r} does not exist")
    return SqliteStore(path, background=background)
