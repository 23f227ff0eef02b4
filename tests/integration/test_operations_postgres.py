"""``/health`` and the store metrics of the real ``b2bua serve`` on a real PostgreSQL that goes
away and comes back. A PostgreSQL of its own (the test stops it)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.pg import PgServer, remove_postgres, start_postgres

from .harness import B2buaServer
from .test_operations import poll_health, scrape, value


@pytest.fixture(scope="module")
def pg() -> Iterator[PgServer]:
    server = start_postgres()
    try:
        yield server
    finally:
        remove_postgres(server)


def test_health_names_the_store_while_postgresql_is_down(
    pg: PgServer, b2bua_factory: Callable[..., B2buaServer]
) -> None:
    database = pg.new_database()
    server = b2bua_factory(config={"store": {"url": pg.url(database)}})
    ok = poll_health(server.api_url, lambda code, body: code == 200)
    assert ok["store"] == "ok"
    metrics = scrape(server.api_url)
    assert value(metrics, "b2bua_store_up") == 1
    assert value(metrics, "b2bua_store_errors_total") == 0
    pg.stop()
    try:
        down = poll_health(server.api_url, lambda code, body: code != 200, timeout=15)
        assert down["code"] == 503 and down["status"] == "failing"
        assert down["store"] == "the store is unreachable" and down["failing"] == ["store"]
        metrics = scrape(server.api_url)
        assert value(metrics, "b2bua_store_up") == 0
        assert value(metrics, "b2bua_store_errors_total") >= 1  # the probe's failed statement
    finally:
        pg.start()
    back = poll_health(server.api_url, lambda code, body: code == 200, timeout=15)
    assert back["store"] == "ok"
    assert value(scrape(server.api_url), "b2bua_store_up") == 1
