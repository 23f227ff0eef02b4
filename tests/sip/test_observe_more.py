"""The transport's message hook (sip.observe) as the per-call traces use it: every message in
and out, retransmissions included, a failing observer fenced off."""

from __future__ import annotations

import logging

import pytest
import trio

from sip.endpoint import SipEndpoint
from sip.message import Message, Request, Response, parse_message, serialize
from sip.transaction import Peer
from tests.sip.test_endpoint import (
    Recorder,
    endpoint,
    options,
    receive_response,
    request_to,
    udp_socket,
)


class Seen:
    def __init__(self) -> None:
        self.messages: list[tuple[str, Message, Peer]] = []
        self.data: list[bytes] = []

    def message(self, direction: str, message: Message, peer: Peer, data: bytes) -> None:
        self.messages.append((direction, message, peer))
        self.data.append(data)


class Broken:
    calls = 0

    def message(self, direction: str, message: Message, peer: Peer, data: bytes) -> None:
        self.calls += 1
        raise RuntimeError("observer bug")


async def test_observer_sees_the_request_as_received_and_the_response_sent() -> None:
    seen = Seen()
    async with endpoint(Recorder()) as (ep, address), udp_socket() as sock:
        ep.transport.add_observer(seen)
        port = sock.getsockname()[1]
        sent = options("SIP/2.0/UDP 192.0.2.9:9;branch=z9hG4bKa;rport")
        await sock.sendto(sent, address)
        answer = await receive_response(sock)
        assert answer.status == 200
    directions = [(d, type(m).__name__, p.port) for d, m, p in seen.messages]
    assert directions == [("in", "Request", port), ("out", "Response", port)]
    request = seen.messages[0][1]
    assert isinstance(request, Request)
    # as the server handles it: with the received/rport the transport stamps on the top Via
    assert request.top_via.received == "127.0.0.1"
    assert request.top_via.rport == port
    response = seen.messages[1][1]
    assert isinstance(response, Response) and response.status == 200
    # and the bytes that passed on the wire: the datagram as it came, the response as it went
    assert seen.data[0] == sent
    assert seen.data[1] == serialize(response)


async def test_observers_see_retransmissions_of_a_request(
    mock_clock: trio.testing.MockClock,
) -> None:
    mock_clock.autojump_threshold = 0.01
    seen = Seen()
    ep = SipEndpoint()
    await ep.listen("udp", "127.0.0.1", 0)
    async with trio.open_nursery() as nursery, udp_socket() as silent:
        await nursery.start(ep.run, Recorder())
        ep.transport.add_observer(seen)
        peer = Peer("udp", *silent.getsockname()[:2])
        statuses = [r.status async for r in ep.request(request_to(ep, peer), peer)]
        assert statuses == [408]  # Timer F: nobody answered
        await ep.aclose()
    sent = [m for d, m, _ in seen.messages if d == "out"]
    assert len(sent) > 3  # the request and its Timer E retransmissions
    assert len({m.call_id for m in sent}) == 1


async def test_a_failing_observer_is_logged_once_and_others_still_see_everything(
    caplog: pytest.LogCaptureFixture,
) -> None:
    broken, seen = Broken(), Seen()
    async with endpoint(Recorder()) as (ep, address), udp_socket() as sock:
        ep.transport.add_observer(broken)
        ep.transport.add_observer(seen)
        with caplog.at_level(logging.ERROR, logger="sip.transport"):
            for n in range(2):
                via = f"SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKb{n};rport"
                await sock.sendto(options(via, call_id=f"c{n}"), address)
                assert (await receive_response(sock)).status == 200
    assert broken.calls == 4
    assert len(seen.messages) == 4
    failures = [r for r in caplog.records if "observer" in r.getMessage()]
    assert len(failures) == 1


async def test_a_message_received_over_tcp_reaches_observers_as_its_wire_bytes() -> None:
    seen = Seen()
    async with endpoint(Recorder(), "tcp") as (ep, address):
        ep.transport.add_observer(seen)
        stream = await trio.open_tcp_stream(*address)
        sent = options("SIP/2.0/TCP 127.0.0.1:9;branch=z9hG4bKt")
        await stream.send_all(sent)
        answer = parse_message(await stream.receive_some(65535))
        assert isinstance(answer, Response) and answer.status == 200
        await stream.aclose()
    assert [d for d, _, _ in seen.messages] == ["in", "out"]
    assert seen.data[0] == sent  # before the transport stamped received/rport on the Via
    assert seen.data[1] == serialize(seen.messages[1][1])
