"""The real ``b2bua serve`` on a real PostgreSQL: a click-to-call between SIPp phones whose
record lands in the database, the start-up error when the database cannot be reached, and the
database stopped under a live call and started again.

One PostgreSQL for the module (its own: one test stops it), a fresh database per test.
"""

from __future__ import annotations

import json
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.pg import PgServer, remove_postgres, start_postgres

from .harness import B2buaServer, Sipp, b2bua_command
from .test_calls_sipp import first, registered_phone
from .uapi import Uapi


@pytest.fixture(scope="module")
def pg() -> Iterator[PgServer]:
    server = start_postgres()
    try:
        yield server
    finally:
        remove_postgres(server)


@pytest.fixture
def pg_database(pg: PgServer) -> Iterator[str]:
    if not pg.running:  # a test that stopped it failed before starting it again
        pg.start()
    name = pg.new_database()
    try:
        yield name
    finally:
        pg.drop_database(name)


def stored_call(pg: PgServer, database: str, call_id: str) -> tuple[str, dict[str, Any]] | None:
    rows = pg.sql(f"SELECT state, data FROM calls WHERE id = '{call_id}'", database)
    if not rows:
        return None
    state, data = rows[0]
    return str(state), json.loads(str(data))


def wait_for(check: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(0.1)


def test_a_click_to_call_between_sipp_phones_lands_in_postgresql(
    pg: PgServer,
    pg_database: str,
    gateway: Callable[..., Sipp],
    b2bua_factory: Callable[..., B2buaServer],
) -> None:
    server = b2bua_factory(config={"store": {"url": pg.url(pg_database)}})
    source = registered_phone(gateway, server, "0003*210", "secret210", stay_ms=20000)
    destination = registered_phone(gateway, server, "0003*211", "secret211", stay_ms=20000)
    # the registrations are in the database, not only in the node's memory
    contacts = pg.sql("SELECT extended FROM contacts ORDER BY extended", pg_database)
    assert contacts == [("0003*210",), ("0003*211",)]

    api = Uapi(server.api_url, "test-user-app", "test-user-secret")
    call_id = api.call_id(
        api.create(["0003*210"], ["0003*211"], query={"callDuration": 3}, nonce="pg-1")
    )
    record = api.wait_ended(call_id, timeout=30)
    assert record["disposition"] == 0
    for phone in (source, destination):
        assert first(phone.received("INVITE"))
        assert first(phone.received("BYE"))

    state, data = wait_for(
        lambda: stored_call(pg, pg_database, call_id), 10, "the record in PostgreSQL"
    )
    assert state == "ended"
    assert data["disposition"] == 0 and data["bridged"] is not None
    assert [p["number"] for p in data["parties"]] == ["0003*210", "0003*211"]
    # the nonce is claimed in the database: a repeated create reaches the same call
    again = api.create(["0003*210"], ["0003*211"], nonce="pg-1")
    assert api.call_id(again) == call_id
    assert pg.sql("SELECT call_id FROM nonces", pg_database) == [(call_id,)]
    api.close()


def test_an_unreachable_database_at_start_up_is_one_line_without_the_password_and_exit_1(
    tmp_path: Path,
) -> None:
    with socket.socket() as closed:  # bound, never listening: connection refused
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
        url = f"postgresql://b2bua:hunter2@127.0.0.1:{port}/b2bua"
        config = tmp_path / "config.toml"
        config.write_text(
            '[sip]\nlisten = ["udp:127.0.0.1:0"]\n[api]\nlisten = "127.0.0.1:0"\n'
            f'[store]\nurl = "{url}"\n'
        )
        done = subprocess.run(
            [*b2bua_command(), "serve", "--config", str(config)],
            capture_output=True,
            text=True,
            timeout=60,
            stdin=subprocess.DEVNULL,
        )
    assert done.returncode == 1, done
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(
        f"b2bua: cannot open store 'postgresql://b2bua@127.0.0.1:{port}/b2bua': "
    )
    assert "refused" in lines[0].lower()
    assert "hunter2" not in done.stderr + done.stdout
    assert "Traceback" not in done.stderr


def test_postgresql_stopped_under_a_live_call_and_started_again(
    pg: PgServer,
    pg_database: str,
    gateway: Callable[..., Sipp],
    b2bua_factory: Callable[..., B2buaServer],
) -> None:
    server = b2bua_factory(config={"store": {"url": pg.url(pg_database)}})
    phone = registered_phone(gateway, server, "0003*210", "secret210", stay_ms=40000)
    api = Uapi(server.api_url, "test-user-app", "test-user-secret")
    call_id = api.call_id(api.create(["0003*210"], ["0003*00"], query={"callDuration": 12}))
    api.wait(call_id, lambda r: r.get("state") == "bridged", timeout=20)

    pg.stop()
    stopped = time.monotonic()

    def create_refused() -> httpx.Response | None:
        reply = api.create(["0003*09"], ["0003*09"])  # busy sandbox: over at once if accepted
        return reply if reply.status_code == 503 else None

    refused = wait_for(create_refused, 5.0, "creates refused with 503")
    assert refused.json()["error"]["code"] == "service_unavailable"
    assert time.monotonic() - stopped <= 5.0

    # the live call goes on to its end: BYE at callDuration, the server still up
    bye = phone.wait_for_message("BYE", timeout=20)
    answered = first(phone.sent(200))
    assert 10.0 <= bye.timestamp - answered.timestamp <= 14.5
    assert server.running
    assert stored_call_state_unreadable(pg, pg_database)

    pg.start()
    back = time.monotonic()
    _state, data = wait_for(
        lambda: _ended(stored_call(pg, pg_database, call_id)), 10.0, "the final record landed"
    )
    assert time.monotonic() - back <= 10.0
    assert data["hangup_cause"] == "call duration reached"
    assert api.get(call_id)["state"] == "ended"
    # creates work again
    assert api.create(["0003*09"], ["0003*09"]).status_code == 202
    assert server.running
    output = server.output()
    assert "Traceback" not in output  # nothing crashed: the outage is two log lines
    assert "unreachable" in output and "reachable again" in output
    phone.kill()
    api.close()


def _ended(found: tuple[str, dict[str, Any]] | None) -> tuple[str, dict[str, Any]] | None:
    return found if found is not None and found[0] == "ended" else None


def stored_call_state_unreadable(pg: PgServer, database: str) -> bool:
    """While the server is stopped nothing can read the database (the test's own check that
    the outage was real)."""
    try:
        pg.sql("SELECT 1", database)
    except Exception:
        return True
    return False
