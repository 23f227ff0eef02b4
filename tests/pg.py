"""A real PostgreSQL for the tests: started once per session on a free port, a fresh database
per test.

- ``postgres_server`` (session): a ``PgServer`` in a temporary data directory, stopped and
  removed at the end of the session.
- ``pg_url`` (function): the URL of a new, empty database on it (``CREATE DATABASE``), dropped
  after the test.
- ``start_postgres(folder)``: a server of a test's own (to stop and start it under a live
  server), stopped by the caller.

Debian's PostgreSQL 15 refuses to run as root, so as root every command runs as the
``postgres`` user (``runuser``). Without PostgreSQL installed the tests that need it are
skipped, except in CI (``CI`` set), where that is a failure.
"""

from __future__ import annotations

import itertools
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

PG_BINDIRS = ("/usr/lib/postgresql/15/bin", "/usr/lib/postgresql/16/bin")
USER = "b2bua"
PASSWORD = "s3cret-pw"  # trust auth: accepted and ignored; here to check it is never shown


def pg_bindir() -> Path | None:
    for folder in PG_BINDIRS:
        if Path(folder, "pg_ctl").is_file():
            return Path(folder)
    found = shutil.which("pg_ctl")
    return Path(found).parent if found else None


def require_postgres() -> Path:
    """The folder of PostgreSQL's programs; skip (fail in CI) when it is not installed."""
    bindir = pg_bindir()
    if bindir is None:
        message = "PostgreSQL is not installed (Debian: apt-get install postgresql)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    try:
        import psycopg  # noqa: F401
    except ImportError:
        message = "psycopg is not installed (pip install -e '.[postgresql]')"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return bindir


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PgServer:
    """One PostgreSQL cluster in ``folder`` (data, socket, log), listening on 127.0.0.1."""

    def __init__(self, bindir: Path, folder: Path, *, durable: bool = False) -> None:
        self.bindir = bindir
        self.durable = durable  # fsync and synchronous commit on (benchmarks); off for tests
        self.folder = folder
        self.data = folder / "data"
        self.sockets = folder / "sockets"
        self.log = folder / "postgres.log"
        self.port = 0
        self._as_postgres = os.geteuid() == 0
        self._databases = itertools.count(1)

    def _run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        command = list(args)
        if self._as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0:
            raise RuntimeError(f"{args[0]} failed ({done.returncode}): {done.stderr}{done.stdout}")
        return done

    def init(self) -> None:
        self.sockets.mkdir(parents=True)
        if self._as_postgres:
            shutil.chown(self.folder, "postgres")
            shutil.chown(self.sockets, "postgres")
        self._run(
            str(self.bindir / "initdb"),
            "-D", str(self.data), "-U", USER, "--auth=trust", "-E", "UTF8", "--no-sync",
        )  # fmt: skip

    def start(self) -> None:
        """Start (again) on ``port``, or on a free port the first time."""
        for attempt in range(5):
            port = self.port or free_port()
            options = f"-p {port} -k {self.sockets} -c listen_addresses=127.0.0.1"
            if not self.durable:
                options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
            try:
                self._run(
                    str(self.bindir / "pg_ctl"),
                    "-D", str(self.data), "-o", options, "-l", str(self.log), "-w", "-t", "60",
                    "start",
                )  # fmt: skip
            except RuntimeError:
                if self.port or attempt == 4:  # a restart must keep its port
                    raise RuntimeError(f"postgres did not start: {self.describe()}") from None
                continue
            self.port = port
            return

    def stop(self) -> None:
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")

    @property
    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def url(self, database: str = "postgres", *, password: str = PASSWORD) -> str:
        return f"postgresql://{USER}:{password}@127.0.0.1:{self.port}/{database}"

    def sql(self, statement: str, database: str = "postgres") -> list[tuple[object, ...]]:
        """Run one statement (autocommit) and return its rows."""
        import psycopg

        with psycopg.connect(self.url(database), autocommit=True) as db:
            cursor = db.execute(statement)  # type: ignore[arg-type]
            return list(cursor.fetchall()) if cursor.description else []

    def new_database(self) -> str:
        name = f"t{os.getpid()}_{next(self._databases)}"
        self.sql(f"CREATE DATABASE {name}")
        return name

    def drop_database(self, name: str) -> None:
        self.sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def pids(self) -> list[int]:
        """The server's processes: the postmaster and its children (backends, writers...)."""
        try:
            postmaster = int((self.data / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return []
        pids = [postmaster]
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            if ppid == postmaster:
                pids.append(int(stat.parent.name))
        return pids

    def describe(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-4000:]
        except OSError:
            return "(no log)"


def start_postgres(folder: Path | None = None, *, durable: bool = False) -> PgServer:
    """A started PostgreSQL of its own (``remove_postgres`` stops and removes it)."""
    bindir = require_postgres()
    base = Path(tempfile.mkdtemp(prefix="b2bua-pg-", dir=folder))
    server = PgServer(bindir, base, durable=durable)
    server.init()
    server.start()
    return server


def remove_postgres(server: PgServer) -> None:
    try:
        if server.running:
            server.stop()
    finally:
        shutil.rmtree(server.folder, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PgServer]:
    server = start_postgres()
    try:
        yield server
    finally:
        remove_postgres(server)


@pytest.fixture
def pg_url(postgres_server: PgServer) -> Iterator[str]:
    """A fresh, empty database's URL (with a password, which trust auth ignores)."""
    name = postgres_server.new_database()
    try:
        yield postgres_server.url(name)
    finally:
        postgres_server.drop_database(name)
