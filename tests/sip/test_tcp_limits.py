"""SIP over TCP under abuse: connection limits, idle and first-message deadlines, keep-alives.

Real sockets on 127.0.0.x (the loopback answers for all of 127/8, so a test has several
source addresses); timers on trio's MockClock.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio
import trio.testing

from sip.endpoint import SipEndpoint
from sip.endpoint_incoming import IncomingRequest
from sip.headers import Headers
from sip.message import Request, Response, parse_message
from sip.transaction import Peer
from sip.uas import options_response
from sip.uri import parse_uri


async def answer_options(incoming: IncomingRequest) -> None:
    await incoming.respond(options_response(incoming.request, ["OPTIONS"]))


@asynccontextmanager
async def tcp_endpoint(**options: Any) -> AsyncIterator[tuple[SipEndpoint, tuple[str, int]]]:
    ep = SipEndpoint(**options)
    address = await ep.listen("tcp", "127.0.0.1", 0)
    async with trio.open_nursery() as nursery:
        await nursery.start(ep.run, answer_options)
        yield ep, address
        await ep.aclose()


def options(port: int, branch: str) -> bytes:
    return (
        "OPTIONS sip:ep@127.0.0.1 SIP/2.0\r\n"
        f"Via: SIP/2.0/TCP 127.0.0.1:{port};branch=z9hG4bK{branch}\r\n"
        "Max-Forwards: 70\r\n"
        "To: <sip:ep@127.0.0.1>\r\n"
        "From: <sip:tester@127.0.0.1>;tag=abc\r\n"
        f"Call-ID: {branch}\r\n"
        "CSeq: 1 OPTIONS\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()


async def connect(address: tuple[str, int], source: str = "127.0.0.1") -> trio.SocketStream:
    return await trio.open_tcp_stream(*address, local_address=source)


async def served(stream: trio.SocketStream, branch: str) -> bool:
    """Does an OPTIONS on ``stream`` get its 200?"""
    port = stream.socket.getsockname()[1]
    try:
        await stream.send_all(options(port, branch))
        with trio.fail_after(5):
            data = await stream.receive_some(65535)
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        return False
    if not data:
        return False
    response = parse_message(data)
    return isinstance(response, Response) and response.status == 200


async def closed_by_peer(stream: trio.SocketStream) -> bool:
    """True once the other side closed ``stream`` (end of stream or reset); False if data came."""
    try:
        data = await stream.receive_some(65535)
    except trio.BrokenResourceError:
        return True
    return data == b""


async def refused(address: tuple[str, int], source: str = "127.0.0.1") -> bool:
    """Connect from ``source``: is the connection closed at once, without a word? (The
    reset can reach the client while it still completes its connect.)"""
    try:
        stream = await connect(address, source)
    except OSError:
        return True
    try:
        with trio.fail_after(5):
            return await closed_by_peer(stream)
    finally:
        await stream.aclose()


async def test_connections_over_the_limits_are_closed_on_accept_and_warned_once_per_source(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="sip.transport")
    async with tcp_endpoint(max_connections=3, max_connections_per_source=2) as (ep, address):
        first = [await connect(address) for _ in range(2)]
        for i, stream in enumerate(first):
            assert await served(stream, f"a{i}")
        for _ in range(4):
            assert await refused(address)
        other = await connect(address, "127.0.0.2")
        assert await served(other, "b")
        assert await refused(address, "127.0.0.3")
        stats = ep.transport.statistics()
        assert (stats["tcp_connections"], stats["tcp_connections_refused"]) == (3, 5)
        # one line per source (and one for the total), not one per connection
        assert [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING] == [
            "tcp connection from 127.0.0.1 refused: 2 open with that address already"
            " (max_connections_per_source 2)",
            "tcp connection from 127.0.0.3 refused: 3 open already (max_connections 3)",
        ]
        # a connection that ends gives its place back
        await first[0].aclose()
        with trio.fail_after(5):
            while ep.transport.statistics()["tcp_connections"] != 2:
                await trio.sleep(0.01)
        again = await connect(address)
        assert await served(again, "a2")
        assert await served(first[1], "a3")  # those within the limits were never disturbed
        for stream in (first[1], other, again):
            await stream.aclose()


def request_to(ep: SipEndpoint, peer: Peer) -> Request:
    return Request(
        "OPTIONS",
        parse_uri(f"sip:x@{peer.host}:{peer.port};transport=tcp"),
        Headers(
            [
                ("Via", str(ep.make_via("tcp"))),
                ("Max-Forwards", "70"),
                ("To", f"<sip:x@{peer.host}>"),
                ("From", "<sip:me@127.0.0.1>;tag=1"),
                ("Call-ID", ep.new_call_id()),
                ("CSeq", "1 OPTIONS"),
            ]
        ),
    )


async def test_connections_we_open_are_counted_but_not_refused_by_the_limits() -> None:
    async with (
        tcp_endpoint(max_connections=1, max_connections_per_source=1) as (a, a_address),
        tcp_endpoint() as (b, b_address),
        tcp_endpoint() as (_, c_address),
    ):
        a_peer = Peer("tcp", *a_address)
        # b fills a's one incoming slot...
        assert [r.status async for r in b.request(request_to(b, a_peer), a_peer)] == [200]
        # ...and a still reaches two peers on that same address (its gateways, say)
        for address in (b_address, c_address):
            peer = Peer("tcp", *address)
            assert [r.status async for r in a.request(request_to(a, peer), peer)] == [200]
        stats = a.transport.statistics()
        # b is reached over the connection it opened (an alias); c over a new one of ours
        assert (stats["tcp_connections"], stats["tcp_connections_incoming"]) == (2, 1)


async def test_crlf_pings_get_pongs_but_do_not_keep_a_connection_open(
    mock_clock: trio.testing.MockClock,
) -> None:
    mock_clock.autojump_threshold = 0.01
    async with tcp_endpoint(idle_timeout=60) as (ep, address):
        stream = await connect(address)
        assert await served(stream, "p")
        last_message = trio.current_time()
        pongs = 0
        with trio.fail_after(300):
            while True:
                await trio.sleep(5)
                try:
                    await stream.send_all(b"\r\n\r\n")
                    data = await stream.receive_some(65535)
                except trio.BrokenResourceError:
                    break
                if not data:
                    break
                assert data == b"\r\n"  # RFC 5626 §4.4.1: a single CRLF
                pongs += 1
        closed_after = trio.current_time() - last_message
        assert pongs >= 11
        assert 60 <= closed_after <= 66  # the idle timeout counts from the last message
        with trio.fail_after(1):  # and its place is given back once its socket is closed
            while ep.transport.statistics()["tcp_connections"] != 0:
                await trio.sleep(0.01)
        await stream.aclose()


async def test_a_connection_without_a_complete_message_is_closed_after_the_first_deadline(
    mock_clock: trio.testing.MockClock,
) -> None:
    mock_clock.autojump_threshold = 0.01
    closed_at: dict[str, float] = {}
    async with tcp_endpoint(idle_timeout=300) as (ep, address):
        assert ep.transport.statistics()["first_message_timeout"] == 30  # min(30 s, idle)
        opened = trio.current_time()

        async def silent() -> None:
            stream = await connect(address)
            assert await closed_by_peer(stream)
            closed_at["silent"] = trio.current_time() - opened

        async def pinging() -> None:
            stream = await connect(address)
            try:
                while True:
                    await stream.send_all(b"\r\n\r\n")
                    if await closed_by_peer(stream):
                        break
                    await trio.sleep(1)
            except trio.BrokenResourceError:
                pass
            closed_at["pinging"] = trio.current_time() - opened

        async def trickling() -> None:  # slowloris: a byte a second, never a whole message
            stream = await connect(address)
            try:
                for byte in options(9, "slow"):
                    await stream.send_all(bytes([byte]))
                    with trio.move_on_after(1):
                        if await closed_by_peer(stream):
                            break
            except trio.BrokenResourceError:
                pass
            closed_at["trickling"] = trio.current_time() - opened

        with trio.fail_after(200):
            async with trio.open_nursery() as nursery:
                for fn in (silent, pinging, trickling):
                    nursery.start_soon(fn)
        assert set(closed_at) == {"silent", "pinging", "trickling"}
        assert all(30 <= t <= 32 for t in closed_at.values()), closed_at
        # one that sends a message in time is served and stays
        stream = await connect(address)
        await trio.sleep(29)
        assert await served(stream, "in-time")
        await trio.sleep(100)
        assert ep.transport.statistics()["tcp_connections"] == 1
        await stream.aclose()
