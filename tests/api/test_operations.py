"""``/metrics``, ``/health`` and the access log of the app, in process (``api.operations``)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from uapi_helpers import PUBLIC_URL

from api.app import create_app
from api.operations import ACCESS_LOGGER
from engine.engine import Engine


class FakeOperations:
    def __init__(self) -> None:
        self.done: list[tuple[str, str, int]] = []
        self.healthy = True

    def metrics(self) -> tuple[bytes, str]:
        return b"b2bua_up 1\n", "text/plain; version=0.0.4; charset=utf-8"

    def health(self) -> tuple[int, dict[str, Any]]:
        if self.healthy:
            return 200, {"status": "ok"}
        return 503, {"status": "failing", "media": "down"}

    def request_done(self, method: str, route: str, status: int, seconds: float) -> None:
        assert seconds >= 0
        self.done.append((method, route, status))


@pytest.fixture
def operations() -> FakeOperations:
    return FakeOperations()


@pytest.fixture
async def ops_client(
    engine: Engine, wall_clock: Any, operations: FakeOperations
) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(engine, public_url=PUBLIC_URL, clock=wall_clock, operations=operations)
    transport = httpx.ASGITransport(app=app, client=("192.0.2.5", 41000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


async def test_metrics_and_health_need_no_token(
    mock_clock: Any, ops_client: httpx.AsyncClient, operations: FakeOperations
) -> None:
    reply = await ops_client.get("/metrics")
    assert reply.status_code == 200 and reply.text == "b2bua_up 1\n"
    assert reply.headers["content-type"].startswith("text/plain; version=0.0.4")
    reply = await ops_client.get("/health")
    assert reply.status_code == 200 and reply.json() == {"status": "ok"}
    operations.healthy = False
    reply = await ops_client.get("/health")
    assert reply.status_code == 503 and reply.json()["media"] == "down"


async def test_requests_are_reported_by_route_template_and_access_logged(
    mock_clock: Any,
    ops_client: httpx.AsyncClient,
    operations: FakeOperations,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.INFO, logger=ACCESS_LOGGER):
        await ops_client.get("/uapi/phoneCalls/@me/210/abc123")  # no token: 401
        await ops_client.get("/uapi/phoneCalls/@me/210/abc123/")  # served as the bare path
        await ops_client.get("/uapi/phoneCalls/12/simple")  # POST only: 405
        await ops_client.get("/nothing/here")
    call = "/uapi/phoneCalls/{userId}/{extension}/{phoneCallId}"
    assert operations.done == [
        ("GET", call, 401),
        ("GET", call, 401),
        ("GET", "/uapi/phoneCalls/{userId}/simple", 405),
        ("GET", "(unmatched)", 404),
    ]
    records = [r for r in caplog.records if r.name == ACCESS_LOGGER]
    assert [r.levelno for r in records] == [logging.INFO] * 4
    first = records[0]
    assert first.getMessage().startswith(f'192.0.2.5:41000 "GET {call}" 401 ')
    assert (first.method, first.route, first.status, first.client) == (  # type: ignore[attr-defined]
        "GET",
        call,
        401,
        "192.0.2.5:41000",
    )


async def test_without_operations_the_two_paths_are_404_and_requests_still_logged(
    mock_clock: Any, client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger=ACCESS_LOGGER):
        assert (await client.get("/metrics")).status_code == 404
        assert (await client.get("/health")).status_code == 404
    assert len([r for r in caplog.records if r.name == ACCESS_LOGGER]) == 2
