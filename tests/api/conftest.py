"""Fixtures for the UAPI facade: the real engine (sandbox numbers answered in-process, no
sockets) on trio's MockClock, the ASGI app, and an httpx client talking to it in process."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import trio
import trio.testing
from uapi_helpers import PUBLIC_URL

from api.app import create_app
from engine.config_model import default_config
from engine.directory import demo_directory
from engine.engine import Engine, open_engine
from engine.store import open_store


class WallClock:
    """Wall clock that follows trio's clock (so records and token expiry move with MockClock),
    plus a manual offset for jumping past token lifetimes."""

    def __init__(self) -> None:
        self.base = datetime(2026, 1, 1, tzinfo=UTC)
        self.offset = timedelta()

    def __call__(self) -> datetime:
        return self.base + self.offset + timedelta(seconds=trio.current_time())


@pytest.fixture
def mock_clock() -> trio.testing.MockClock:
    return trio.testing.MockClock(autojump_threshold=0)


@pytest.fixture
def wall_clock(mock_clock: trio.testing.MockClock) -> WallClock:
    return WallClock()


@pytest.fixture
async def engine(wall_clock: WallClock) -> AsyncIterator[Engine]:
    store = open_store("sqlite:///:memory:")
    async with open_engine(
        default_config(), demo_directory(), store, wall_clock=wall_clock, rng=random.Random(7)
    ) as running:
        yield running


@pytest.fixture
def app(engine: Engine, wall_clock: WallClock) -> Any:
    return create_app(engine, public_url=PUBLIC_URL, clock=wall_clock)


@pytest.fixture
async def client(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http
