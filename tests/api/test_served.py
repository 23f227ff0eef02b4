"""The app behind hypercorn's trio worker on a real loopback socket: SSE really streams (events
arrive while the call is live) and a client that goes away ends its subscription."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
import trio
import trio.testing
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve
from uapi_helpers import auth, create_call, simple_body, wait_until


@pytest.fixture
def mock_clock() -> trio.testing.MockClock:
    # real sockets: virtual time runs 10x real time instead of jumping
    return trio.testing.MockClock(rate=10)


@asynccontextmanager
async def served(app: Any) -> AsyncIterator[str]:
    config = HypercornConfig()
    config.bind = ["127.0.0.1:0"]
    config.accesslog = None
    config.graceful_timeout = 0.5
    stop = trio.Event()
    async with trio.open_nursery() as nursery:
        binds = await nursery.start(
            lambda task_status: serve(
                app, config, shutdown_trigger=stop.wait, task_status=task_status
            )
        )
        yield binds[0]
        stop.set()
        nursery.cancel_scope.cancel()


async def test_sse_streams_live_over_hypercorn_and_cleans_up_on_disconnect(
    mock_clock, app, engine
) -> None:
    async with served(app) as base, httpx.AsyncClient(base_url=base, timeout=60) as client:
        headers = await auth(client)
        call_id = await create_call(
            client, headers, simple_body(source="0003*08"), params={"waitForPickup": "110"}
        )  # rings
        url = f"/uapi/phoneCalls/@me/0003*210/{call_id}/events"
        with trio.fail_after(10):
            head = await client.head(url, headers=headers)
        assert head.status_code == 200
        assert head.headers["content-type"].startswith("text/event-stream")
        seen: list[dict[str, Any]] = []
        async with client.stream("GET", url, headers=headers) as response:
            assert response.status_code == 200
            async for line in response.aiter_lines():
                if line.startswith("data: "):
                    seen.append(json.loads(line[6:]))
                if any(p["event"] == "ringing" for p in seen):
                    subscribers = engine._live[call_id].subscribers
                    assert [ch.statistics().open_receive_channels for ch in subscribers] == [1]
                    break  # leave while the call is still ringing
        assert engine.get_call(call_id).ended is None
        assert [p["seq"] for p in seen] == list(range(1, len(seen) + 1))
        # the server noticed the disconnect and closed its subscription (the engine drops the
        # channel itself at its next event)
        live = engine._live[call_id]

        def unsubscribed() -> bool:
            return all(ch.statistics().open_receive_channels == 0 for ch in live.subscribers)

        await wait_until(unsubscribed, step=0.1, limit=30)

        # a second follower sees the hang-up and its stream ends by itself
        async with trio.open_nursery() as nursery:

            async def hang_up() -> None:
                await trio.sleep(2)
                response = await client.delete(url.removesuffix("/events"), headers=headers)
                assert response.status_code == 200

            nursery.start_soon(hang_up)
            response = await client.get(url, headers=headers)
        frames = [
            json.loads(line[6:]) for line in response.text.splitlines() if line.startswith("data: ")
        ]
        assert frames[-1]["final"] and frames[-1]["event"] == "ended"
        assert sum(1 for f in frames if f["final"]) == 1
