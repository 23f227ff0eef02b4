"""Store URLs: which backend, checked without connecting, and shown without a password."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from engine.store.interface import StoreError

SQLITE_PREFIX = "sqlite:///"
POSTGRES_SCHEMES = ("postgresql", "postgres")
EXPECTED = "expected 'sqlite:///PATH' or 'postgresql://USER:PASSWORD@HOST:PORT/DATABASE'"


@dataclass(frozen=True, slots=True)
class StoreUrl:
    backend: str  # "sqlite" or "postgresql"
    target: str  # the SQLite path, or the PostgreSQL URL (with its password: for connecting)
    shown: str  # the URL as messages show it (no password)


def redact(url: str) -> str:
    """``url`` without its password (in the user part or a ``password`` query parameter)."""
    try:
        parts = urlsplit(url)
        if "@" not in parts.netloc and "password" not in parts.query:
            return url  # nothing to hide: shown as written
        netloc = parts.netloc
        if "@" in netloc:
            user, _, host = netloc.rpartition("@")
            netloc = f"{user.partition(':')[0]}@{host}"
        query = parts.query
        if query:
            pairs = parse_qsl(query, keep_blank_values=True)
            query = urlencode([(k, "***" if k == "password" else v) for k, v in pairs])
        return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
    except ValueError:
        return "<unparsable url>"


def parse_store_url(url: str) -> StoreUrl:
    """Check ``url`` (scheme, host, port, database: nothing is opened) and say which backend
    it names; a bad one raises ``StoreError`` saying why, without its password."""
    if url.startswith(SQLITE_PREFIX) and len(url) > len(SQLITE_PREFIX):
        path = url[len(SQLITE_PREFIX) :]
        if "\x00" in path:
            raise StoreError(f"bad store path {path!r}: contains a NUL character")
        return StoreUrl("sqlite", path, url)
    scheme = url.partition(":")[0] if ":" in url else url
    shown = redact(url)
    if scheme not in POSTGRES_SCHEMES:
        raise StoreError(f"unsupported store url {shown!r} (scheme {scheme!r}): {EXPECTED}")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise StoreError(f"bad store url {shown!r}: {exc}") from None
    if not url.startswith(f"{scheme}://") or not parts.hostname:
        raise StoreError(f"bad store url {shown!r}: no host; {EXPECTED}")
    if port == 0:
        raise StoreError(f"bad store url {shown!r}: port 0")
    if not parts.path.strip("/"):
        raise StoreError(f"bad store url {shown!r}: no database name; {EXPECTED}")
    if "/" in parts.path.strip("/"):
        raise StoreError(f"bad store url {shown!r}: the database name cannot hold '/'")
    return StoreUrl("postgresql", url, shown)


def sqlite_folder(url: str) -> Path | None:
    """The folder of a ``sqlite:///`` store file (None for another backend or memory)."""
    if not url.startswith(SQLITE_PREFIX):
        return None
    path = url[len(SQLITE_PREFIX) :]
    return None if path == ":memory:" else Path(path).parent
