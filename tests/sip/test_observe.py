"""The message hook (``sip.observe``) on real 127.0.0.1 sockets, and the transaction layer's
retransmission and timeout counts."""

from __future__ import annotations

import logging

import pytest
import trio
import trio.testing
from test_endpoint import Recorder, endpoint, options, receive_response, udp_socket
from test_session import Callee, make_ack, make_invite, raw_peer, running
from test_transaction_helpers import UAC, UAS, fixed_tags, reply, request

from sip.message import Message, Request, Response
from sip.transaction import TransactionLayer, TransactionTimeout
from sip.transaction_types import Peer


class Seen:
    def __init__(self) -> None:
        self.messages: list[tuple[str, str, Peer]] = []

    def message(self, direction: str, message: Message, peer: Peer, data: bytes) -> None:
        what = message.method if isinstance(message, Request) else str(message.status)
        self.messages.append((direction, what, peer))


class Broken:
    calls = 0

    def message(self, direction: str, message: Message, peer: Peer, data: bytes) -> None:
        self.calls += 1
        raise RuntimeError("observer bug")


async def test_observers_see_what_arrives_and_what_is_sent() -> None:
    seen = Seen()
    async with endpoint(Recorder()) as (ep, address), udp_socket() as sock:
        ep.transport.add_observer(seen)
        port = sock.getsockname()[1]
        await sock.sendto(options(f"SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bKo1;rport"), address)
        assert (await receive_response(sock)).status == 200
        await sock.sendto(b"garbage\r\n\r\n", address)  # not parsed: not observed
        await sock.sendto(options(f"SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bKo2"), address)
        assert (await receive_response(sock)).status == 200
    peer = Peer("udp", "127.0.0.1", port)
    assert [(d, w) for d, w, _ in seen.messages] == [
        ("in", "OPTIONS"),
        ("out", "200"),
        ("in", "OPTIONS"),
        ("out", "200"),
    ]
    assert {p for _, _, p in seen.messages} == {peer}


async def test_an_observer_that_raises_is_logged_once_and_traffic_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    broken, seen = Broken(), Seen()
    async with endpoint(Recorder()) as (ep, address), udp_socket() as sock:
        ep.transport.add_observer(broken)
        ep.transport.add_observer(seen)
        port = sock.getsockname()[1]
        with caplog.at_level(logging.ERROR, logger="sip.transport"):
            for n in range(3):
                via = f"SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bKb{n}"
                await sock.sendto(options(via, call_id=f"b{n}"), address)
                assert (await receive_response(sock)).status == 200
    assert broken.calls == 6 and len(seen.messages) == 6  # the others still see everything
    failures = [r for r in caplog.records if "observer" in r.getMessage()]
    assert len(failures) == 1


def test_retransmissions_and_timeouts_are_counted() -> None:
    layer = TransactionLayer(tag_factory=fixed_tags())
    invite = request(branch="z9hG4bKr1")
    layer.send_request(invite, UAS, 0.0)  # first send: not a retransmission
    assert layer.retransmissions == 0
    layer.handle_timer(0.5)  # Timer A: again after 0.5 s, 1 s, 2 s...
    layer.handle_timer(1.5)
    assert layer.retransmissions == 2
    while (deadline := layer.get_timer()) is not None:  # until Timer B gives up (32 s)
        layer.handle_timer(deadline)
    events = layer.events()
    assert sum(isinstance(e, TransactionTimeout) for e in events) == 1
    assert layer.timeouts == 1
    assert layer.retransmissions == 6  # 0.5, 1.5, 3.5, 7.5, 15.5, 31.5 s

    # a server transaction answers a retransmitted request with its last response again
    server = TransactionLayer(tag_factory=fixed_tags())
    incoming = request("OPTIONS", branch="z9hG4bKs1")
    server.receive(incoming, UAC, 0.0)
    key = next(e.key for e in server.events() if getattr(e, "key", None) is not None)
    server.send_response(key, reply(incoming, 200), 0.1)
    server.receive(incoming, UAC, 0.2)
    sent = [e for e in server.events() if type(e).__name__ == "SendMessage"]
    assert [m.message.status for m in sent] == [200, 200]  # type: ignore[union-attr]
    assert server.retransmissions == 1 and server.timeouts == 0
    assert isinstance(sent[0].message, Response)  # type: ignore[union-attr]


async def test_the_endpoint_counts_the_dialogs_2xx_retransmissions_too(
    mock_clock: trio.testing.MockClock,
) -> None:
    mock_clock.autojump_threshold = 0.01
    callee = Callee("answer")
    seen = Seen()
    async with raw_peer() as far, running(callee) as (b, b_peer):
        callee.endpoint = b
        b.transport.add_observer(seen)
        address = (b_peer.host, b_peer.port)
        await far.send(make_invite(far, b_peer), address)
        oks = 0
        while oks < 3:  # the 200, then again 0.5 s and 1.5 s later: no ACK came
            response, _ = await far.receive()
            assert isinstance(response, Response)
            if response.status == 200:
                oks += 1
                ok = response
        await far.send(make_ack(far, ok), address)
        await trio.sleep(5)
        assert b.statistics()["retransmissions"] == 2
    assert [w for d, w, _ in seen.messages if d == "out"].count("200") == 3
