"""Call progress: Server-Sent Events and statusCallback POSTs to a real local HTTP receiver."""

from __future__ import annotations

import json
from contextlib import asynccontextmanager
from typing import Any

import h11
import httpx
import pytest
import trio
import trio.testing
from uapi_helpers import PUBLIC_URL, assert_error, auth, create_call, simple_body, wait_until

from api.app import create_app
from api.events import open_callback_dispatcher

BASE = "/uapi/phoneCalls/@me/0003*210"


def parse_sse(text: str) -> list[dict[str, Any]]:
    frames = []
    for block in text.split("\n\n"):
        fields: dict[str, str] = {}
        for line in block.splitlines():
            if line.startswith(":"):
                continue
            name, _, value = line.partition(": ")
            fields[name] = value
        if fields:
            frames.append(fields)
    return frames


async def test_sse_streams_every_change_and_ends_after_the_final_one(mock_clock, client, engine):
    headers = await auth(client)
    call_id = await create_call(client, headers, params={"callDuration": "3"})
    response = await client.get(f"{BASE}/{call_id}/events", headers=headers)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    frames = parse_sse(response.text)
    payloads = [json.loads(f["data"]) for f in frames]
    assert [int(f["id"]) for f in frames] == [p["seq"] for p in payloads]
    assert [p["seq"] for p in payloads] == list(range(1, len(payloads) + 1))
    assert [f["event"] for f in frames] == [p["event"] for p in payloads]
    assert payloads[0]["event"] == "created"
    assert "bridged" in [p["event"] for p in payloads]
    assert [p["final"] for p in payloads].count(True) == 1 and payloads[-1]["final"]
    assert payloads[-1]["event"] == "ended"
    assert all(p["phoneCallId"] == call_id and p["at"].endswith("Z") for p in payloads)
    assert engine.get_call(call_id).ended is not None


async def test_sse_messages_are_what_the_openapi_document_says(mock_clock, client, engine):
    """/events is typed as text/event-stream messages (id, event, data holding a CallEvent),
    not a plain string: every message of a real stream fits that description."""
    from schema_check import problems

    spec = (await client.get("/uapi/openapi.json")).json()
    operation = spec["paths"]["/uapi/phoneCalls/{userId}/{extension}/{phoneCallId}/events"]["get"]
    content = operation["responses"]["200"]["content"]
    assert list(content) == ["text/event-stream"]
    message = spec["components"]["schemas"][content["text/event-stream"]["schema"]["$ref"][21:]]
    assert message["type"] == "object" and set(message["required"]) == {"id", "event", "data"}
    data = message["properties"]["data"]
    assert data["contentMediaType"] == "application/json"

    headers = await auth(client)
    call_id = await create_call(client, headers, params={"callDuration": "3"})
    response = await client.get(f"{BASE}/{call_id}/events", headers=headers)
    frames = parse_sse(response.text)
    assert len(frames) >= 4
    for frame in frames:
        assert not problems(frame, message, spec), frame
        assert not problems(json.loads(frame["data"]), data["contentSchema"], spec), frame


async def test_sse_resumes_after_last_event_id(mock_clock, client, engine):
    headers = await auth(client)
    call_id = await create_call(client, headers, simple_body(source="0003*08"))
    await trio.sleep(1)
    async with trio.open_nursery() as nursery:

        async def hang_up_soon() -> None:
            await trio.sleep(5)
            await client.delete(f"{BASE}/{call_id}", headers=headers)

        nursery.start_soon(hang_up_soon)
        response = await client.get(
            f"{BASE}/{call_id}/events", headers={**headers, "Last-Event-ID": "1"}
        )
    payloads = [json.loads(f["data"]) for f in parse_sse(response.text)]
    assert payloads[0]["seq"] == 2
    assert payloads[-1]["final"] and payloads[-1]["event"] == "ended"


async def test_sse_of_a_finished_call_gives_its_final_event(mock_clock, client, engine):
    headers = await auth(client)
    call_id = await create_call(client, headers, simple_body(source="0003*09"))
    await wait_until(lambda: engine.get_call(call_id).ended is not None)
    await trio.sleep(1)
    response = await client.get(f"{BASE}/{call_id}/events", headers=headers)
    payloads = [json.loads(f["data"]) for f in parse_sse(response.text)]
    assert [p["final"] for p in payloads] == [True]
    assert payloads[0]["event"] == "ended"


async def test_sse_replay_gives_the_final_event_its_own_seq(mock_clock, client, engine):
    """A finished call's final event keeps the seq it was sent with (the record counts its
    events), so a client that has it (Last-Event-ID) gets nothing more."""
    headers = await auth(client)
    call_id = await create_call(client, headers, simple_body(source="0003*09"))
    await wait_until(lambda: engine.get_call(call_id).ended is not None)
    await trio.sleep(1)
    final_seq = engine.get_call(call_id).events
    response = await client.get(f"{BASE}/{call_id}/events", headers=headers)
    [frame] = parse_sse(response.text)
    assert json.loads(frame["data"])["seq"] == final_seq > 1
    response = await client.get(
        f"{BASE}/{call_id}/events", headers={**headers, "Last-Event-ID": str(final_seq)}
    )
    assert parse_sse(response.text) == []


async def test_a_final_event_made_after_a_crash_still_reaches_a_client_that_saw_more(
    mock_clock, client, engine
):
    """After a crash the final event of a call without a statusCallback may be numbered below
    events a client saw (those were not on disk yet): it is sent, numbered past the client's."""
    headers = await auth(client)
    call_id = await create_call(client, headers, simple_body(source="0003*09"))
    await wait_until(lambda: engine.get_call(call_id).ended is not None)
    await trio.sleep(1)
    call = engine.get_call(call_id)
    call.events = 6  # what recover() gave it; the client had seen up to 7
    engine.store.save_call(call)
    response = await client.get(
        f"{BASE}/{call_id}/events", headers={**headers, "Last-Event-ID": "7"}
    )
    [frame] = parse_sse(response.text)
    payload = json.loads(frame["data"])
    assert payload["final"] and payload["event"] == "ended" and payload["seq"] == 8


async def test_sse_scope_and_not_found(mock_clock, client):
    headers = await auth(client)
    missing = await client.get(f"{BASE}/0123456789abcdef0123/events", headers=headers)
    assert_error(missing, 404, "pc_not_found")
    assert_error(await client.get(f"{BASE}/0123456789abcdef0123/events"), 401, "access_denied")


# ----------------------------------------------------------------- status callbacks


class Receiver:
    """A tiny HTTP/1.1 server on 127.0.0.1 (h11) that records POSTed JSON; answers the given
    statuses in turn, then 200; ``close``: closes the connection after each answer."""

    def __init__(self, statuses: list[int] | None = None, *, close: bool = False) -> None:
        self.statuses = list(statuses or [])
        self.close = close
        self.requests: list[tuple[dict[str, str], Any]] = []
        self.attempts = 0
        self.port = 0

    async def serve(self, nursery: trio.Nursery) -> None:
        listeners = await nursery.start(trio.serve_tcp, self.handle, 0)
        self.port = listeners[0].socket.getsockname()[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/callback"

    async def handle(self, stream: trio.SocketStream) -> None:
        conn = h11.Connection(h11.SERVER)
        headers: dict[str, str] = {}
        body = b""
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                data = await stream.receive_some(65536)
                if not data:
                    return
                conn.receive_data(data)
            elif isinstance(event, h11.Request):
                headers = {k.decode().lower(): v.decode() for k, v in event.headers}
                body = b""
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                self.attempts += 1
                status = self.statuses.pop(0) if self.statuses else 200
                if status == 200:
                    self.requests.append((headers, json.loads(body)))
                headers_out = [("content-length", "0")]
                if self.close:
                    headers_out.append(("connection", "close"))
                await stream.send_all(
                    conn.send(h11.Response(status_code=status, headers=headers_out))
                )
                await stream.send_all(conn.send(h11.EndOfMessage()))
                if conn.our_state is h11.MUST_CLOSE:
                    return
                conn.start_next_cycle()
            else:
                return

    def finals(self) -> int:
        return sum(1 for _, payload in self.requests if payload["final"])


@pytest.fixture
def mock_clock() -> trio.testing.MockClock:
    # real loopback sockets: virtual time runs 10x real time instead of jumping
    return trio.testing.MockClock(rate=10)


@asynccontextmanager
async def callback_setup(engine, receiver: Receiver, **options: Any):
    """A running receiver and dispatcher, and a client of an app wired to that dispatcher."""
    async with trio.open_nursery() as nursery:
        await receiver.serve(nursery)
        async with open_callback_dispatcher(engine, **options) as dispatcher:
            app = create_app(engine, public_url=PUBLIC_URL, callbacks=dispatcher)
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                yield client, dispatcher
        nursery.cancel_scope.cancel()


async def test_status_callback_gets_every_event_once_ending_with_one_final(mock_clock, engine):
    receiver = Receiver()
    async with callback_setup(engine, receiver, backoff=0.5) as (client, _):
        headers = await auth(client)
        body = simple_body(statusCallback=receiver.url, nonce="cb-1")
        call_id = await create_call(client, headers, body, params={"callDuration": "5"})
        # a replay of the same nonce must not start a second delivery
        await create_call(client, headers, body, params={"callDuration": "5"})
        await wait_until(lambda: receiver.finals() >= 1, step=0.5, limit=120)
        await trio.sleep(2)
    payloads = [payload for _, payload in receiver.requests]
    assert receiver.finals() == 1 and payloads[-1]["final"] and payloads[-1]["event"] == "ended"
    assert [p["seq"] for p in payloads] == list(range(1, len(payloads) + 1))
    assert {p["phoneCallId"] for p in payloads} == {call_id}
    assert [h["x-event-id"] for h, _ in receiver.requests] == [
        f"{call_id}:{p['seq']}" for p in payloads
    ]
    assert payloads[0]["event"] == "created"
    assert "bridged" in [p["event"] for p in payloads]


async def test_status_callback_retries_server_errors_with_backoff(mock_clock, engine):
    receiver = Receiver(statuses=[500, 503])
    async with callback_setup(engine, receiver, backoff=0.5) as (client, dispatcher):
        headers = await auth(client)
        body = simple_body(source="0003*09", statusCallback=receiver.url)
        await create_call(client, headers, body)
        await wait_until(lambda: receiver.finals() >= 1, step=0.5, limit=120)
    first_headers, first = receiver.requests[0]
    assert first["seq"] == 1 and first_headers["x-attempt"] == "3"
    assert receiver.attempts == len(receiver.requests) + 2
    assert dispatcher.failed == 0


async def test_status_callback_gives_up_on_client_errors_and_dead_urls(mock_clock, engine):
    receiver = Receiver(statuses=[404])
    async with callback_setup(engine, receiver, backoff=0.1, max_attempts=3) as (
        client,
        dispatcher,
    ):
        headers = await auth(client)
        body = simple_body(source="0003*09", statusCallback=receiver.url)
        await create_call(client, headers, body)
        # nothing listens on port 9 of 127.0.0.1 (discard): every attempt fails
        dead = simple_body(source="0003*09", statusCallback="http://127.0.0.1:9/x")
        await create_call(client, headers, dead)
        await wait_until(lambda: receiver.finals() >= 1, step=0.5, limit=120)
        await wait_until(lambda: dispatcher.failed >= 3, step=0.5, limit=120)
    # the 404 was not retried: event 1 was dropped, the rest (with the final) arrived
    assert receiver.requests[0][1]["seq"] == 2
    assert receiver.attempts == len(receiver.requests) + 1


async def test_dispatcher_drain_waits_for_the_final_delivery(mock_clock, engine):
    receiver = Receiver()
    async with callback_setup(engine, receiver, backoff=0.5) as (client, dispatcher):
        assert await dispatcher.drain(0)  # nothing watched yet
        headers = await auth(client)
        body = simple_body(source="0003*08", statusCallback=receiver.url)
        await create_call(client, headers, body, params={"waitForPickup": "100"})
        assert dispatcher.active == 1
        assert not await dispatcher.drain(1)  # the call still rings
        await engine.drain(5)  # shutdown: the engine hangs up live calls
        assert await dispatcher.drain(30)
        assert receiver.finals() == 1
