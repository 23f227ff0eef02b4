"""The store inside the trio run (``StoreService``) in its queued mode, on trio's MockClock:
writes return at once and land in order, reads see what was written before them, an outage
is noticed within seconds, refuses creates and reads with 503, keeps every write and lands
them when the database is back; heartbeats and contacts during an outage.

The database here is SQLite behind a switch that makes it "unreachable" (the engine's unit
tests use fakes; tests/integration/test_store_postgres.py stops a real PostgreSQL)."""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
import trio.testing
from fakes import Clock

from api.app import create_app
from engine.config import default_config
from engine.directory import demo_directory
from engine.engine import OriginateRequest, open_engine
from engine.heartbeat import heartbeat
from engine.model import CallState, Party, PhoneCall, new_call_id
from engine.store import SqliteStore, StoreUnavailable
from engine.store.service import StoreService
from engine.store.sql import Cursor

T0 = datetime(2026, 12, 7, 22, 0, tzinfo=UTC)
PUBLIC_URL = "https://uapi.example.com"


async def token(http: httpx.AsyncClient) -> str:
    reply = await http.post(
        "/oauth/token.php",
        data={
            "grant_type": "client_credentials",
            "client_id": "demo-user-app",
            "client_secret": "demo-user-secret",
        },
    )
    assert reply.status_code == 200, reply.text
    return str(reply.json()["access_token"])


class Switchable(SqliteStore):
    """SQLite that can be made unreachable (every statement raises ``StoreUnavailable``), or
    stuck (the worker waits until released), like a PostgreSQL server going away."""

    def __init__(self, path: str) -> None:
        self.down = False
        self.stuck = False
        self.statements = 0
        super().__init__(path)

    async def worker(self, fn: Callable[[], Any]) -> Any:
        """The service's worker, in place on the trio thread (no thread: mock time stays put
        while the "database" works), and held while the "server" is stuck."""
        await trio.sleep(0.001)  # a round trip
        while self.stuck:
            await trio.sleep(0.1)
        return fn()

    def _execute(self, sql: str, params: Sequence[object] = ()) -> Cursor:
        if self.down:
            raise StoreUnavailable("connection refused (the test's switch)")
        self.statements += 1
        return super()._execute(sql, params)


@pytest.fixture
def mock_clock() -> trio.testing.MockClock:
    return trio.testing.MockClock(autojump_threshold=0)


@pytest.fixture
def backend(tmp_path: Path) -> Switchable:
    return Switchable(str(tmp_path / "store.sqlite"))


def make_call(seed: int, state: CallState = CallState.CREATED) -> PhoneCall:
    return PhoneCall(
        id=new_call_id(random.Random(seed)),
        user_id=12,
        organization_id=3,
        extension="0003*210",
        sources=["0003*00"],
        destinations=["0003*01"],
        published=T0,
        state=state,
        parties=[Party("0003*00", "source", "sandbox"), Party("0003*01", "destination", "sandbox")],
    )


async def test_writes_return_at_once_and_reads_see_them(
    mock_clock: trio.testing.MockClock, backend: Switchable
) -> None:
    store = StoreService(backend, worker=backend.worker, queued=True)
    async with trio.open_nursery() as nursery:
        await nursery.start(store.run)
        call = make_call(1)
        before = backend.statements
        store.save_call(call)
        call.state = CallState.BRIDGED
        store.save_call(call)
        assert backend.statements == before  # nothing written on the trio thread
        again = await store.aget_call(call.id)  # waits for the queued writes
        assert again is not None and again.state is CallState.BRIDGED
        assert await store.acount_calls(user_id=12) == 1
        nursery.cancel_scope.cancel()
    store.close()


async def test_an_outage_is_noticed_writes_wait_and_land_when_it_is_back(
    mock_clock: trio.testing.MockClock, backend: Switchable
) -> None:
    store = StoreService(backend, worker=backend.worker, queued=True, probe=1.0, retry=0.5)
    async with trio.open_nursery() as nursery:
        await nursery.start(store.run)
        assert store.available
        backend.down = True
        started = trio.current_time()
        while store.available:
            await trio.sleep(0.1)
        assert trio.current_time() - started <= 5.0  # noticed within 5 s, idle as it was

        # live calls go on: their writes are kept
        calls = [make_call(seed) for seed in range(3)]
        for call in calls:
            store.save_call(call)
        calls[0].state = CallState.ENDED
        store.save_call(calls[0])  # merged into the waiting write
        store.beat("node-a", 1000.0)
        store.beat("node-a", 1002.0)
        with pytest.raises(StoreUnavailable, match="unreachable"):
            await store.aget_call(calls[0].id)
        await trio.sleep(30)
        assert store.retried >= 2  # retried all along
        for _ in range(50):  # a long outage does not pile up a write per change
            calls[1].events += 1
            store.save_call(calls[1])
            await trio.sleep(0.3)
        assert len(store._writes) == 4  # three calls and one beat

        backend.down = False
        back = trio.current_time()
        while not store.available or store._writes:
            await trio.sleep(0.1)
        assert trio.current_time() - back <= 10.0  # landed within 10 s of the return
        assert store.up_since >= back  # what a failover judge counts silence from
        nursery.cancel_scope.cancel()
    stored = [backend.get_call(call.id) for call in calls]
    assert [c.state if c else None for c in stored] == [
        CallState.ENDED,
        CallState.CREATED,
        CallState.CREATED,
    ]
    assert stored[1] is not None and stored[1].events == calls[1].events  # the latest landed
    assert backend.last_beat("node-a") == 1002.0
    store.close()


async def test_a_statement_stuck_on_a_vanished_server_counts_as_an_outage(
    mock_clock: trio.testing.MockClock,
    backend: Switchable,
) -> None:
    store = StoreService(backend, worker=backend.worker, queued=True, stuck=3.0)
    async with trio.open_nursery() as nursery:
        await nursery.start(store.run)
        backend.stuck = True  # the next statement hangs (a server gone without a word)
        store.save_call(make_call(4))
        await trio.sleep(1.0)
        assert store.available
        await trio.sleep(3.0)
        assert not store.available
        backend.stuck = False
        while store._writes or not store.available:
            await trio.sleep(0.1)
        nursery.cancel_scope.cancel()
    assert backend.get_call(make_call(4).id) is not None
    store.close()


async def test_contacts_are_read_from_memory_and_follow_other_nodes(
    mock_clock: trio.testing.MockClock, backend: Switchable, tmp_path: Path
) -> None:
    store = StoreService(backend, worker=backend.worker, queued=True, refresh_contacts=1.0)
    other_node = SqliteStore(str(tmp_path / "store.sqlite"))
    async with trio.open_nursery() as nursery:
        await nursery.start(store.run)
        backend.down = True  # even with the database gone, this node's own changes show
        store.save_contact("0003*210", "sip:a@h", "10.0.0.1:5060 udp", 2e9, "c", 1)
        assert [c.contact_uri for c in store.contacts("0003*210", 0.0)] == ["sip:a@h"]
        backend.down = False
        other_node.save_contact("0003*211", "sip:b@h", "10.0.0.2:5060 udp", 2e9, "d", 1)
        await trio.sleep(2.5)
        assert [c.contact_uri for c in store.contacts("0003*211", 0.0)] == ["sip:b@h"]
        assert [c.contact_uri for c in store.contacts("0003*210", 0.0)] == ["sip:a@h"]
        store.remove_contacts("0003*210")
        assert store.contacts("0003*210", 0.0) == []
        nursery.cancel_scope.cancel()
    other_node.close()
    store.close()


async def test_the_heartbeat_reports_an_outage_once_and_its_end(
    mock_clock: trio.testing.MockClock, backend: Switchable, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="engine.heartbeat")
    store = StoreService(backend, worker=backend.worker, queued=True)
    async with trio.open_nursery() as nursery:
        await nursery.start(store.run)
        nursery.start_soon(heartbeat, store, "node-a", 2.0)
        await trio.sleep(3)
        backend.down = True
        await trio.sleep(10)
        backend.down = False
        await trio.sleep(5)
        nursery.cancel_scope.cancel()
    lines = [r.getMessage() for r in caplog.records if r.name == "engine.heartbeat"]
    assert lines == [
        "heartbeat of node node-a not recorded: the store is unreachable",
        "heartbeat of node node-a recorded again",
    ]
    store.close()


async def test_creates_get_503_while_the_store_is_down_and_live_calls_go_on(
    mock_clock: trio.testing.MockClock,
    backend: Switchable,
) -> None:
    wall = Clock()
    store = StoreService(backend, worker=backend.worker, queued=True)
    directory = demo_directory()
    async with trio.open_nursery() as nursery:
        await nursery.start(store.run)
        async with open_engine(
            default_config(), directory, store, wall_clock=wall, rng=random.Random(3)
        ) as engine:
            app = create_app(engine, public_url=PUBLIC_URL, clock=wall)
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
                live, _ = await engine.originate(
                    OriginateRequest(
                        user_id=12,
                        organization_id=3,
                        extension=directory.extension("0003*210"),
                        sources=["0003*00"],
                        destinations=["0003*01"],
                        call_duration=30,
                    )
                )
                backend.down = True
                await trio.sleep(5)
                headers = {"Authorization": f"Bearer {await token(http)}"}
                body: dict[str, Any] = {
                    "extension": "210",
                    "phoneCallView": [{"source": ["0003*00"], "destination": ["0003*01"]}],
                }
                reply = await http.post("/uapi/phoneCalls/@me/simple", json=body, headers=headers)
                assert reply.status_code == 503
                assert reply.json()["error"]["code"] == "service_unavailable"
                reply = await http.get("/uapi/phoneCalls/@me/210", headers=headers)
                assert reply.status_code == 503
                # the live call is read from memory, and goes on to its end
                reply = await http.get(f"/uapi/phoneCalls/@me/210/{live.id}", headers=headers)
                assert reply.status_code == 200
                await trio.sleep(40)
                assert live.state is CallState.ENDED
                backend.down = False
                await trio.sleep(5)
                reply = await http.get(f"/uapi/phoneCalls/@me/210/{live.id}", headers=headers)
                assert reply.json()["entry"][0]["state"] == "ended"
        nursery.cancel_scope.cancel()
    ended = backend.get_call(live.id)
    assert ended is not None and ended.state is CallState.ENDED  # landed after the return
    store.close()


async def test_a_nonce_sent_to_two_nodes_reaches_one_call(
    mock_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    """Two engines (nodes) on one store, the same user's nonce given to both: the second
    answers with the first one's call and rings nobody, also when it comes while the first
    node has claimed the nonce but not yet written its call (the race the claim settles)."""
    from engine.store import open_store

    url = f"sqlite:///{tmp_path / 'shared.sqlite'}"
    directory = demo_directory()
    wall = Clock()

    def request(nonce: str) -> OriginateRequest:
        return OriginateRequest(
            user_id=12,
            organization_id=3,
            extension=directory.extension("0003*210"),
            sources=["0003*00"],
            destinations=["0003*01"],
            nonce=nonce,
            call_duration=5,
        )

    async with (
        open_engine(default_config(), directory, open_store(url), wall_clock=wall) as node_a,
        open_engine(default_config(), directory, open_store(url), wall_clock=wall) as node_b,
    ):
        first, created_a = await node_a.originate(request("one"))
        again, created_b = await node_b.originate(request("one"))
        assert (created_a, created_b) == (True, False)
        assert again.id == first.id
        assert node_b.live_count == 0  # node b rang nobody

        # node a is in the middle of a create: nonce claimed, record written 0.5 s later
        other = make_call(77)
        other.nonce = "two"
        assert node_a.store.claim_nonce(12, "two", other.id) == other.id

        async def node_a_writes_its_record() -> None:
            await trio.sleep(0.5)
            node_a.store.save_call(other)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(node_a_writes_its_record)
            raced, created = await node_b.originate(request("two"))
        assert not created and raced.id == other.id
        assert node_b.live_count == 0
