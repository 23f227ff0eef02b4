"""The ng client against a fake UDP peer on trio's MockClock: cookies, retries, timeouts and the
choice of instance."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import trio
import trio.testing

from engine.rtpengine.bencode import decode, encode
from engine.rtpengine.client import (
    Instance,
    NgClient,
    NgRefused,
    NgUnavailable,
    parse_instance,
)

A = Instance("127.0.0.1", 2223)
B = Instance("127.0.0.1", 2224)

# What a peer does with one request: a list of datagrams to send back (possibly none).
Behaviour = Callable[[bytes, dict[str, Any]], list[bytes]]


def pong(cookie: bytes, request: dict[str, Any]) -> list[bytes]:
    return [cookie + b" " + encode({"result": "pong"})]


def silent(cookie: bytes, request: dict[str, Any]) -> list[bytes]:
    return []


class FakeNet:
    """The client's socket; each instance answers as its behaviour says, at once."""

    def __init__(self, behaviours: dict[tuple[str, int], Behaviour]) -> None:
        self.behaviours = behaviours
        self.received: list[tuple[tuple[str, int], bytes, dict[str, Any]]] = []
        self._send, self._inbox = trio.open_memory_channel[tuple[bytes, Any]](100)

    async def sendto(self, data: bytes, address: tuple[str, int], /) -> int:
        cookie, _, body = data.partition(b" ")
        request = decode(body)
        self.received.append((address, cookie, request))
        for answer in self.behaviours[address](cookie, request):
            self._send.send_nowait((answer, address))
        return len(data)

    async def recvfrom(self, bufsize: int, /) -> tuple[bytes, Any]:
        return await self._inbox.receive()

    def close(self) -> None:
        return None


@pytest.fixture
def mock_clock() -> trio.testing.MockClock:
    return trio.testing.MockClock(autojump_threshold=0)


def make(net: FakeNet, *instances: Instance, **kwargs: Any) -> NgClient:
    return NgClient(list(instances) or [A], net, cookie_prefix="t", **kwargs)


async def test_request_sends_bencoded_fields_and_returns_the_answer(
    nursery: trio.Nursery, mock_clock: trio.testing.MockClock
) -> None:
    net = FakeNet({(A.host, A.port): pong})
    client = make(net)
    await nursery.start(client.run)
    assert await client.ping(A)
    await client.request(A, "offer", call_id="c1", from_tag="t1", sdp="v=0")
    (_addr, cookie, request) = net.received[-1]
    assert request == {"command": "offer", "call-id": "c1", "from-tag": "t1", "sdp": "v=0"}
    assert cookie != net.received[0][1]  # a fresh cookie per request


async def test_a_lost_request_is_retried_with_the_same_cookie(
    nursery: trio.Nursery, mock_clock: trio.testing.MockClock
) -> None:
    calls = 0

    def second_try(cookie: bytes, request: dict[str, Any]) -> list[bytes]:
        nonlocal calls
        calls += 1
        return pong(cookie, request) if calls == 2 else []

    net = FakeNet({(A.host, A.port): second_try})
    client = make(net, timeout=0.5, tries=3)
    await nursery.start(client.run)
    started = trio.current_time()
    assert await client.ping(A)
    assert trio.current_time() - started == pytest.approx(0.5)
    assert [cookie for _a, cookie, _r in net.received] == [net.received[0][1]] * 2


async def test_no_answer_fails_after_every_try_naming_the_instance(
    nursery: trio.Nursery, mock_clock: trio.testing.MockClock
) -> None:
    net = FakeNet({(A.host, A.port): silent})
    client = make(net, timeout=0.5, tries=3)
    await nursery.start(client.run)
    started = trio.current_time()
    with pytest.raises(NgUnavailable, match=r"rtpengine udp:127.0.0.1:2223 did not answer offer"):
        await client.request(A, "offer", call_id="c1")
    assert trio.current_time() - started == pytest.approx(1.5)
    assert len(net.received) == 3
    assert client.is_down(A)


async def test_answers_are_matched_by_cookie(
    nursery: trio.Nursery, mock_clock: trio.testing.MockClock
) -> None:
    """A stray answer (another cookie) is dropped; the right one is returned."""

    def stray_first(cookie: bytes, request: dict[str, Any]) -> list[bytes]:
        return [
            b"someone-else " + encode({"result": "ok", "sdp": "wrong"}),
            b"no-space-at-all",
            cookie + b" " + encode({"result": "ok", "sdp": "right"}),
            cookie + b" " + encode({"result": "ok", "sdp": "duplicate"}),
        ]

    net = FakeNet({(A.host, A.port): stray_first})
    client = make(net)
    await nursery.start(client.run)
    assert (await client.request(A, "offer"))["sdp"] == "right"
    assert (await client.request(A, "offer"))["sdp"] == "right"


async def test_concurrent_requests_get_their_own_answers(
    nursery: trio.Nursery, mock_clock: trio.testing.MockClock
) -> None:
    pending: list[bytes] = []

    def later(cookie: bytes, request: dict[str, Any]) -> list[bytes]:
        pending.append(cookie)
        if len(pending) < 2:
            return []
        # both in flight: answer them in reverse order
        return [
            c + b" " + encode({"result": "ok", "n": i})
            for i, c in reversed(list(enumerate(pending)))
        ]

    net = FakeNet({(A.host, A.port): later})
    client = make(net, timeout=5)
    results: dict[str, int] = {}

    async def one(name: str) -> None:
        results[name] = (await client.request(A, "query", call_id=name))["n"]

    await nursery.start(client.run)
    async with trio.open_nursery() as inner:
        inner.start_soon(one, "first")
        await trio.sleep(0.1)
        inner.start_soon(one, "second")
    assert results == {"first": 0, "second": 1}


async def test_an_error_result_is_refused_with_the_reason(
    nursery: trio.Nursery, mock_clock: trio.testing.MockClock
) -> None:
    def refuse(cookie: bytes, request: dict[str, Any]) -> list[bytes]:
        return [cookie + b" " + encode({"result": "error", "error-reason": "Unknown call-id"})]

    net = FakeNet({(A.host, A.port): refuse})
    client = make(net)
    await nursery.start(client.run)
    with pytest.raises(NgRefused, match="refused query: Unknown call-id"):
        await client.request(A, "query", call_id="nope")
    assert not client.is_down(A)  # it answered: it is up


async def test_an_unreadable_answer_is_an_error_not_a_crash(
    nursery: trio.Nursery, mock_clock: trio.testing.MockClock
) -> None:
    def garbage(cookie: bytes, request: dict[str, Any]) -> list[bytes]:
        return [cookie + b" d6:result"]

    net = FakeNet({(A.host, A.port): garbage})
    client = make(net)
    await nursery.start(client.run)
    with pytest.raises(NgUnavailable, match="unreadable answer to ping"):
        await client.ping(A)


async def test_new_calls_go_round_robin_and_avoid_an_instance_that_is_down(
    nursery: trio.Nursery, mock_clock: trio.testing.MockClock
) -> None:
    net = FakeNet({(A.host, A.port): silent, (B.host, B.port): pong})
    client = make(net, A, B, timeout=0.5, tries=1, retry_down=10)
    await nursery.start(client.run)
    assert [client.choose() for _ in range(4)] == [A, B, A, B]
    with pytest.raises(NgUnavailable):
        await client.ping(A)
    assert [client.choose() for _ in range(3)] == [B, B, B]
    await trio.sleep(10)  # its time out is over: A is tried again
    assert {client.choose() for _ in range(2)} == {A, B}


async def test_every_instance_down_tries_the_one_down_longest(
    nursery: trio.Nursery, mock_clock: trio.testing.MockClock
) -> None:
    net = FakeNet({(A.host, A.port): silent, (B.host, B.port): silent})
    client = make(net, A, B, timeout=0.5, tries=1)
    await nursery.start(client.run)
    for instance in (B, A):
        with pytest.raises(NgUnavailable):
            await client.ping(instance)
    assert client.choose() == B
    assert client.choose() == B


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("udp:127.0.0.1:2223", Instance("127.0.0.1", 2223)),
        ("udp:rtp.example.com:22222", Instance("rtp.example.com", 22222)),
        ("udp:[::1]:2223", Instance("::1", 2223)),
    ],
)
def test_instance_addresses(text: str, expected: Instance) -> None:
    assert parse_instance(text) == expected
    assert expected.label == text


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("tcp:127.0.0.1:2223", "expected 'udp:HOST:PORT'"),
        ("udp:127.0.0.1", "expected 'udp:HOST:PORT'"),
        ("udp:127.0.0.1:0", "port must be 1-65535"),
        ("udp:127.0.0.1:99999", "port must be 1-65535"),
        ("udp::2223", "with a host"),
        ("udp:::1:2223", "expected 'udp:HOST:PORT'"),
        ("udp:[::1]2223", "expected 'udp:\\[IPV6\\]:PORT'"),
    ],
)
def test_bad_instance_addresses_say_what_is_wrong(text: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        parse_instance(text)


async def test_the_monitor_tells_waiting_calls_when_an_instance_stops_answering(
    nursery: trio.Nursery, mock_clock: trio.testing.MockClock
) -> None:
    alive = True

    def until_killed(cookie: bytes, request: dict[str, Any]) -> list[bytes]:
        return pong(cookie, request) if alive else []

    net = FakeNet({(A.host, A.port): until_killed, (B.host, B.port): pong})
    client = make(net, A, B, timeout=0.5, tries=2)
    await nursery.start(client.run)
    nursery.start_soon(client.monitor, 1.0)
    told: dict[Instance, float] = {}

    async def watch(instance: Instance) -> None:
        await client.wait_down(instance)
        told[instance] = trio.current_time()

    nursery.start_soon(watch, A)
    nursery.start_soon(watch, B)
    await trio.sleep(5)
    assert told == {}  # both answer every ping
    alive = False
    killed_at = trio.current_time()
    await trio.sleep(5)
    assert list(told) == [A]
    # noticed at the next ping (within 1 s) after its two tries (1 s)
    assert told[A] - killed_at <= 2.0 + 1e-6
    assert client.choose() == B


async def test_a_request_timing_out_steers_new_calls_away_but_ends_no_call(
    nursery: trio.Nursery, mock_clock: trio.testing.MockClock
) -> None:
    """Under overload one answer may come too late: only the monitor's failed ping (all its
    tries) declares an instance dead."""
    net = FakeNet({(A.host, A.port): silent, (B.host, B.port): pong})
    client = make(net, A, B, timeout=0.5, tries=2)
    await nursery.start(client.run)
    told = trio.Event()

    async def watch() -> None:
        await client.wait_down(A)
        told.set()

    nursery.start_soon(watch)
    with pytest.raises(NgUnavailable):
        await client.request(A, "query", call_id="c1")
    await trio.sleep(5)
    assert not told.is_set()
    assert client.choose() == B
