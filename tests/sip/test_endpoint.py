"""The endpoint and its transports on real 127.0.0.1 sockets (MockClock for timers)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import pytest
import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st

from sip.endpoint import IncomingRequest, SipEndpoint
from sip.headers import Headers
from sip.message import Message, Request, Response, parse_message, serialize
from sip.transaction import Peer
from sip.transport import SipTransport
from sip.uas import options_response
from sip.uri import parse_uri


class Recorder:
    def __init__(self, *, crash: bool = False) -> None:
        self.requests: list[IncomingRequest] = []
        self.crash = crash

    async def __call__(self, incoming: IncomingRequest) -> None:
        self.requests.append(incoming)
        if self.crash:
            raise RuntimeError("handler bug")
        await incoming.respond(options_response(incoming.request, ["OPTIONS", "INVITE"]))


@asynccontextmanager
async def endpoint(
    handler: Recorder, transport: str = "udp"
) -> AsyncIterator[tuple[SipEndpoint, tuple[str, int]]]:
    ep = SipEndpoint()
    address = await ep.listen(transport, "127.0.0.1", 0)
    async with trio.open_nursery() as nursery:
        await nursery.start(ep.run, handler)
        yield ep, address
        await ep.aclose()


@asynccontextmanager
async def udp_socket() -> AsyncIterator[trio.socket.SocketType]:
    sock = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
    await sock.bind(("127.0.0.1", 0))
    try:
        yield sock
    finally:
        sock.close()


@contextmanager
def tcp_blackhole() -> Iterator[tuple[str, int]]:
    """The address of a TCP listener whose accept queue is full: connects to it hang (the
    kernel drops the SYNs)."""
    import socket as stdsocket

    blackhole = stdsocket.socket()
    blackhole.bind(("127.0.0.1", 0))
    blackhole.listen(0)
    fillers = []
    try:
        for _ in range(3):
            filler = stdsocket.socket()
            filler.setblocking(False)
            filler.connect_ex(blackhole.getsockname())
            fillers.append(filler)
        host, port = blackhole.getsockname()[:2]
        yield host, port
    finally:
        for sock in (*fillers, blackhole):
            sock.close()


def options(via: str, method: str = "OPTIONS", *, to_tag: str = "", call_id: str = "o1") -> bytes:
    to = "<sip:ep@127.0.0.1>" + (f";tag={to_tag}" if to_tag else "")
    return (
        f"{method} sip:ep@127.0.0.1 SIP/2.0\r\n"
        f"Via: {via}\r\n"
        "Max-Forwards: 70\r\n"
        f"To: {to}\r\n"
        "From: <sip:tester@127.0.0.1>;tag=abc\r\n"
        f"Call-ID: {call_id}\r\n"
        f"CSeq: 1 {method}\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()


async def receive_response(sock: trio.socket.SocketType) -> Response:
    with trio.fail_after(5):
        data, _ = await sock.recvfrom(65535)
    message = parse_message(data)
    assert isinstance(message, Response)
    return message


async def test_udp_stamps_received_and_rport_and_answers_to_the_source_port() -> None:
    recorder = Recorder()
    async with endpoint(recorder) as (_, address), udp_socket() as sock:
        port = sock.getsockname()[1]
        # Via names another host and port: with rport the answer still reaches the source
        await sock.sendto(options("SIP/2.0/UDP 192.0.2.9:9;branch=z9hG4bKa;rport"), address)
        response = await receive_response(sock)
        assert response.status == 200
        via = recorder.requests[0].request.top_via
        assert via.received == "127.0.0.1"
        assert via.rport == port
        assert response.top_via.rport == port
        assert "INVITE" in (response.headers.get("Allow") or "")


async def test_udp_listener_asks_for_a_large_receive_buffer() -> None:
    # What arrives while the event loop is busy (a GC pause, a burst) waits in this buffer;
    # the kernel caps the request at net.core.rmem_max unless we may force it (root).
    try:
        cap = int(Path("/proc/sys/net/core/rmem_max").read_text())
    except OSError:
        pytest.skip("no /proc/sys/net/core/rmem_max")
    async with endpoint(Recorder()) as (ep, _address):
        granted = ep.transport.statistics()["udp_receive_buffer"]
    assert granted >= 2 * min(cap, 16 << 20)  # Linux reports twice the size asked for


async def test_udp_sends_to_a_host_name_as_well_as_to_an_address() -> None:
    async with endpoint(Recorder()) as (ep, _address), udp_socket() as sock:
        port = sock.getsockname()[1]
        await ep.transport.send_raw(b"OPTIONS by name", Peer("udp", "localhost", port))
        await ep.transport.send_raw(b"OPTIONS by address", Peer("udp", "127.0.0.1", port))
        with trio.fail_after(5):
            assert (await sock.recvfrom(100))[0] == b"OPTIONS by name"
            assert (await sock.recvfrom(100))[0] == b"OPTIONS by address"


async def test_udp_without_rport_answers_the_via_port() -> None:
    recorder = Recorder()
    async with (
        endpoint(recorder) as (_, address),
        udp_socket() as sender,
        udp_socket() as listener,
    ):
        listen_port = listener.getsockname()[1]
        via = f"SIP/2.0/UDP 127.0.0.1:{listen_port};branch=z9hG4bKb"
        await sender.sendto(options(via), address)
        response = await receive_response(listener)  # §18.2.2: the sent-by port
        assert response.status == 200
        assert recorder.requests[0].request.top_via.received is None  # same host: not stamped


async def test_malformed_request_gets_400_and_garbage_is_dropped() -> None:
    recorder = Recorder()
    async with endpoint(recorder) as (_, address), udp_socket() as sock:
        await sock.sendto(b"\x00\xffnot sip at all\r\n\r\n", address)
        bad = options("SIP/2.0/UDP 127.0.0.1:1;branch=z9hG4bKc;rport").replace(
            b"Max-Forwards: 70", b"Max-Forwards: 70\r\nContent-Length: 99"
        )
        await sock.sendto(bad, address)
        response = await receive_response(sock)
        assert response.status == 400
        assert response.call_id == "o1"
        assert recorder.requests == []
        # the loop survived both
        await sock.sendto(options("SIP/2.0/UDP 127.0.0.1:1;branch=z9hG4bKd;rport"), address)
        assert (await receive_response(sock)).status == 200


async def test_crashing_handler_is_answered_500() -> None:
    recorder = Recorder(crash=True)
    async with endpoint(recorder) as (_, address), udp_socket() as sock:
        await sock.sendto(options("SIP/2.0/UDP 127.0.0.1:1;branch=z9hG4bKe;rport"), address)
        assert (await receive_response(sock)).status == 500
        await sock.sendto(options("SIP/2.0/UDP 127.0.0.1:1;branch=z9hG4bKf;rport"), address)
        assert (await receive_response(sock)).status == 500  # still serving


async def test_unknown_dialog_481_and_unknown_method_501() -> None:
    recorder = Recorder()
    async with endpoint(recorder) as (_, address), udp_socket() as sock:
        via = "SIP/2.0/UDP 127.0.0.1:1;branch=z9hG4bKg;rport"
        await sock.sendto(options(via, "BYE", to_tag="nope"), address)
        assert (await receive_response(sock)).status == 481
        await sock.sendto(options(via.replace("bKg", "bKh"), "FOO"), address)
        response = await receive_response(sock)
        assert response.status == 501
        assert "INVITE" in (response.headers.get("Allow") or "")
        assert recorder.requests == []


async def test_tcp_answers_on_the_same_connection_and_closes_idle(
    mock_clock: trio.testing.MockClock,
) -> None:
    mock_clock.autojump_threshold = 0.01
    recorder = Recorder()
    async with endpoint(recorder, "tcp") as (_, address):
        stream = await trio.open_tcp_stream(*address)
        # Via port 9 is not where we listen: the answer must come back on this connection
        await stream.send_all(options("SIP/2.0/TCP 127.0.0.1:9;branch=z9hG4bKi"))
        data = await stream.receive_some(65535)
        response = parse_message(data)
        assert isinstance(response, Response) and response.status == 200
        opened = trio.current_time()
        assert await stream.receive_some(65535) == b""  # the endpoint closed the idle connection
        assert trio.current_time() - opened >= 32
        await stream.aclose()


def request_to(ep: SipEndpoint, peer: Peer, method: str = "OPTIONS") -> Request:
    via = ep.make_via(peer.transport)
    return Request(
        method,
        parse_uri(f"sip:x@{peer.host}:{peer.port}"),
        Headers(
            [
                ("Via", str(via)),
                ("Max-Forwards", "70"),
                ("To", f"<sip:x@{peer.host}>"),
                ("From", "<sip:me@127.0.0.1>;tag=1"),
                ("Call-ID", ep.new_call_id()),
                ("CSeq", f"1 {method}"),
            ]
        ),
    )


async def test_request_between_endpoints_and_synthesised_failures(
    mock_clock: trio.testing.MockClock,
) -> None:
    mock_clock.autojump_threshold = 0.01
    async with (
        endpoint(Recorder()) as (a, _),
        endpoint(Recorder()) as (_, b_address),
        udp_socket() as silent,
    ):
        b = Peer("udp", *b_address)
        statuses = [r.status async for r in a.request(request_to(a, b), b)]
        assert statuses == [200]
        # nobody answers: Timer F -> 408 after 64*T1
        nobody = Peer("udp", "127.0.0.1", silent.getsockname()[1])
        start = trio.current_time()
        statuses = [r.status async for r in a.request(request_to(a, nobody), nobody)]
        assert statuses == [408]
        assert trio.current_time() - start >= 32


async def test_tcp_connection_refused_is_503() -> None:
    async with endpoint(Recorder(), "tcp") as (a, _):
        probe = trio.socket.socket()
        await probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
        probe.close()  # nothing listens there now
        nobody = Peer("tcp", "127.0.0.1", port)
        statuses = [r.status async for r in a.request(request_to(a, nobody), nobody)]
        assert statuses == [503]


async def test_tcp_request_between_endpoints() -> None:
    async with endpoint(Recorder(), "tcp") as (a, _), endpoint(Recorder(), "tcp") as (_, b_addr):
        b = Peer("tcp", *b_addr)
        for _ in range(2):  # the second one reuses the connection
            statuses = [r.status async for r in a.request(request_to(a, b), b)]
            assert statuses == [200]
        assert a.transport.statistics()["tcp_connections"] == 1


def test_serialize_roundtrip_of_options() -> None:
    message = parse_message(options("SIP/2.0/UDP 127.0.0.1:1;branch=z9hG4bKz"))
    assert parse_message(serialize(message)) == message


async def test_final_responses_get_a_to_tag() -> None:
    async def not_found(incoming: IncomingRequest) -> None:
        await incoming.respond(incoming.request.response(404, "No such user"))

    async with endpoint(Recorder()) as (ep, address), udp_socket() as sock:
        ep._handler = not_found  # swap the handler of the running endpoint
        await sock.sendto(options("SIP/2.0/UDP 127.0.0.1:1;branch=z9hG4bKt;rport"), address)
        response = await receive_response(sock)
        assert response.status == 404 and response.reason == "No such user"
        assert response.to.tag  # §8.2.6.2


async def test_wrong_sip_version_gets_505() -> None:
    async with endpoint(Recorder()) as (_, address), udp_socket() as sock:
        data = options("SIP/2.0/UDP 127.0.0.1:1;branch=z9hG4bKv;rport").replace(
            b"SIP/2.0\r\n", b"SIP/3.0\r\n", 1
        )
        await sock.sendto(data, address)
        response = await receive_response(sock)
        assert response.status == 505
        assert response.to.tag


async def test_tcp_stream_that_cannot_be_framed_is_closed() -> None:
    recorder = Recorder()
    async with endpoint(recorder, "tcp") as (_, address):
        stream = await trio.open_tcp_stream(*address)
        # no Content-Length on a stream: the framing is lost for good (§18.3)
        broken = options("SIP/2.0/TCP 127.0.0.1:9;branch=z9hG4bKw").replace(
            b"Content-Length: 0\r\n", b""
        )
        await stream.send_all(broken)
        with trio.fail_after(5):
            rest = b""
            while chunk := await stream.receive_some(65535):
                rest += chunk
        assert recorder.requests == []
        answer = parse_message(rest)  # told why before the close
        assert isinstance(answer, Response) and answer.status == 400
        await stream.aclose()
        # the listener still serves new connections
        stream = await trio.open_tcp_stream(*address)
        await stream.send_all(options("SIP/2.0/TCP 127.0.0.1:9;branch=z9hG4bKx"))
        with trio.fail_after(5):
            response = parse_message(await stream.receive_some(65535))
        assert isinstance(response, Response) and response.status == 200
        await stream.aclose()


VALID = options("SIP/2.0/UDP 127.0.0.1:1;branch=z9hG4bKfz;rport")


@settings(max_examples=200)
@given(
    st.one_of(
        st.binary(max_size=600),
        st.builds(
            lambda cut, junk: VALID[:cut] + junk + VALID[cut:],
            st.integers(0, len(VALID)),
            st.binary(max_size=20),
        ),
        st.builds(
            lambda start, stop: VALID[:start] + VALID[stop:],
            st.integers(0, len(VALID)),
            st.integers(0, len(VALID)),
        ),
    )
)
def test_any_datagram_is_delivered_parsed_answered_or_dropped(data: bytes) -> None:
    delivered: list[object] = []

    async def on_message(message: object, peer: Peer) -> None:
        delivered.append(message)

    async def feed() -> None:
        transport = SipTransport(on_message)  # no sockets: any answer fails quietly
        await transport._datagram(data, Peer("udp", "127.0.0.1", 5060))

    trio.run(feed)
    assert all(isinstance(m, (Request, Response)) for m in delivered)


async def test_a_hanging_tcp_connect_does_not_hold_up_other_traffic(
    mock_clock: trio.testing.MockClock,
) -> None:
    mock_clock.autojump_threshold = 0.05
    with tcp_blackhole() as hole:
        async with endpoint(Recorder()) as (a, _), endpoint(Recorder()) as (_, b_address):
            await a.listen("tcp", "127.0.0.1", 0)
            stuck = Peer("tcp", *hole)
            outcome: list[int] = []

            async def call_stuck() -> None:
                outcome.extend([r.status async for r in a.request(request_to(a, stuck), stuck)])

            async with trio.open_nursery() as nursery:
                nursery.start_soon(call_stuck)
                await trio.sleep(0)
                b = Peer("udp", *b_address)
                start = trio.current_time()
                statuses = [r.status async for r in a.request(request_to(a, b), b)]
                assert statuses == [200]
                # answered at once, not after the 10 s connect timeout
                assert trio.current_time() - start < 1
            assert outcome == [503]  # connect timeout -> transport failure


async def test_aclose_returns_with_the_sockets_closed() -> None:
    ep = SipEndpoint()
    host, port = await ep.listen("udp", "127.0.0.1", 0)
    async with trio.open_nursery() as nursery:
        await nursery.start(ep.run, Recorder())
        await ep.aclose()
        reuse = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
        await reuse.bind((host, port))  # free again: the endpoint let go of it
        reuse.close()


async def test_a_handler_may_close_its_endpoint() -> None:
    ep = SipEndpoint()
    address = await ep.listen("udp", "127.0.0.1", 0)

    async def shutdown(incoming: IncomingRequest) -> None:
        await incoming.respond(incoming.request.response(200, to_tag="bye"))
        await ep.aclose()

    with trio.fail_after(5):
        async with trio.open_nursery() as nursery, udp_socket() as sock:
            await nursery.start(ep.run, shutdown)
            await sock.sendto(options("SIP/2.0/UDP 127.0.0.1:1;branch=z9hG4bKq;rport"), address)
            assert (await receive_response(sock)).status == 200
    # the nursery exited: run() ended by itself


@asynccontextmanager
async def udp_and_tcp(
    handler: Callable[[IncomingRequest], Awaitable[None]],
) -> AsyncIterator[tuple[SipEndpoint, tuple[str, int], tuple[str, int]]]:
    ep = SipEndpoint()
    udp = await ep.listen("udp", "127.0.0.1", 0)
    tcp = await ep.listen("tcp", "127.0.0.1", 0)
    async with trio.open_nursery() as nursery:
        await nursery.start(ep.run, handler)
        yield ep, udp, tcp
        await ep.aclose()


async def udp_options_answered(udp: tuple[str, int]) -> bool:
    """Send an OPTIONS over UDP: answered within 1 s?"""
    async with udp_socket() as sock:
        port = sock.getsockname()[1]
        await sock.sendto(options(f"SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bKudp"), udp)
        with trio.move_on_after(1):
            data, _ = await sock.recvfrom(65535)
            response = parse_message(data)
            return isinstance(response, Response) and response.status == 200
    return False


async def test_a_tcp_peer_that_does_not_read_does_not_stall_udp(
    mock_clock: trio.testing.MockClock,
) -> None:
    mock_clock.autojump_threshold = 0.05
    pad = "p" * 60_000  # 600 answers: far more than any socket buffer holds

    async def handler(incoming: IncomingRequest) -> None:
        await incoming.respond(incoming.request.response(200, headers=[("X-Pad", pad)]))

    async with udp_and_tcp(handler) as (ep, udp, tcp):
        stream = await trio.open_tcp_stream(*tcp)
        port = stream.socket.getsockname()[1]
        flood = b"".join(
            options(f"SIP/2.0/TCP 127.0.0.1:{port};branch=z9hG4bKt{i}", call_id=f"t{i}")
            for i in range(600)
        )
        async with trio.open_nursery() as nursery:
            nursery.start_soon(stream.send_all, flood)  # and never read
            await trio.sleep(1)
            assert await udp_options_answered(udp)
            # We give up on it once a write has made no progress for the send timeout (10 s).
            # When the writer starts to block depends on real socket I/O, while this clock
            # jumps whenever the loop idles, so wait for it, within a bound far past 10 s.
            with trio.fail_after(60):
                while ep.transport.statistics()["tcp_connections"] != 0:
                    await trio.sleep(0.5)
            nursery.cancel_scope.cancel()
        await stream.aclose()


async def test_a_response_that_needs_a_new_connection_does_not_stall_udp(
    mock_clock: trio.testing.MockClock,
) -> None:
    mock_clock.autojump_threshold = 0.05
    release = trio.Event()

    async def handler(incoming: IncomingRequest) -> None:
        if incoming.peer.transport == "tcp":
            await release.wait()
        await incoming.respond(options_response(incoming.request, ["OPTIONS"]))

    with tcp_blackhole() as hole:
        async with udp_and_tcp(handler) as (_, udp, tcp):
            stream = await trio.open_tcp_stream(*tcp)
            # the caller's Via sent-by is the black hole, and it hangs up before the answer
            sent_by = hole[1]
            await stream.send_all(options(f"SIP/2.0/TCP 127.0.0.1:{sent_by};branch=z9hG4bKgone"))
            await trio.sleep(0.5)
            await stream.aclose()
            await trio.sleep(0.5)
            release.set()  # the answer must connect to the black hole (§18.2.2)
            await trio.sleep(0.1)
            assert await udp_options_answered(udp)


async def test_sends_the_kernel_cannot_take_at_once_go_out_in_order_whoever_is_cancelled(
    mock_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the clock stands still: nothing is retransmitted, a lost send stays lost
    async with endpoint(Recorder()) as (a, _), udp_socket() as far:
        far_peer = Peer("udp", *far.getsockname()[:2])
        clients = [a.request(request_to(a, far_peer), far_peer) for _ in range(3)]
        first, second, third = (c.request.call_id for c in clients)
        gates = {first: trio.Event(), second: trio.Event()}  # a full send buffer, for a while
        sent: list[str] = []
        real_send = a.transport.send
        real_send_nowait = a.transport.send_nowait

        def send_nowait(message: Message, peer: Peer) -> bool:
            if isinstance(message, Request) and message.call_id in gates:
                return False  # the kernel cannot take it now
            if isinstance(message, Request):
                sent.append(message.call_id)
            return real_send_nowait(message, peer)

        async def gated_send(message: Message, peer: Peer) -> None:
            if isinstance(message, Request):
                gate = gates.get(message.call_id)
                if gate is not None:
                    await gate.wait()
                sent.append(message.call_id)
            await real_send(message, peer)

        monkeypatch.setattr(a.transport, "send_nowait", send_nowait)
        monkeypatch.setattr(a.transport, "send", gated_send)
        scope = trio.CancelScope()

        async def start_first() -> None:
            with scope:
                await clients[0].start()
                await trio.sleep_forever()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(start_first)
            await trio.testing.wait_all_tasks_blocked()
            await clients[1].start()
            await clients[2].start()  # could go at once, but queues behind the first two
            await trio.testing.wait_all_tasks_blocked()
            assert sent == []
            scope.cancel()  # the task whose request waits is cancelled: its send is not
            gates[first].set()
            await trio.testing.wait_all_tasks_blocked()
            gates[second].set()
            await trio.testing.wait_all_tasks_blocked()
        assert sent == [first, second, third]
