"""INVITE sessions between two real endpoints on 127.0.0.1 (UDP and TCP), MockClock timers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Protocol

import pytest
import trio
import trio.testing

from sip.auth import DigestServer
from sip.endpoint import IncomingRequest, SipEndpoint
from sip.headers import Headers
from sip.leg_events import LegAnswered, LegFailed, LegHungUp, LegRinging
from sip.message import Message, Request, Response, parse_message
from sip.transaction import Peer
from sip.uac_driver import InviteClient
from sip.uac_session import ReinviteFailed
from sip.uas_driver import InviteServer
from sip.uri import NameAddr, SipUri
from tests.sip.fixed_random import counting_bytes

OFFER = (
    b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    b"m=audio 4000 RTP/AVP 0\r\n"
)
ANSWER = OFFER.replace(b"4000", b"5000")

Handler = Callable[[IncomingRequest], Awaitable[None]]


@asynccontextmanager
async def running(
    handler: Handler, transport: str = "udp", **kwargs: object
) -> AsyncIterator[tuple[SipEndpoint, Peer]]:
    endpoint = SipEndpoint(**kwargs)  # type: ignore[arg-type]
    host, port = await endpoint.listen(transport, "127.0.0.1", 0)
    async with trio.open_nursery() as nursery:
        await nursery.start(endpoint.run, handler)
        yield endpoint, Peer(transport, host, port)
        await endpoint.aclose()


async def refuse(incoming: IncomingRequest) -> None:
    await incoming.respond(incoming.request.response(603, to_tag="x"))


def client_for(endpoint: SipEndpoint, peer: Peer, **kwargs: object) -> InviteClient:
    return InviteClient(
        endpoint,
        peer=peer,
        request_uri=SipUri("sip", "bob", None, peer.host, peer.port),
        from_addr=NameAddr(SipUri("sip", "alice", None, "127.0.0.1", None), "Alice"),
        to_addr=NameAddr(SipUri("sip", "bob", None, peer.host, peer.port)),
        **kwargs,  # type: ignore[arg-type]
    )


class Callee:
    """A scripted UAS: collects InviteServers, answers per ``script``."""

    def __init__(self, script: str = "answer") -> None:
        self.script = script
        self.servers: list[InviteServer] = []
        self.events: list[object] = []
        self.endpoint: SipEndpoint | None = None
        self.got_server = trio.Event()
        self._event_seen = trio.Event()

    async def first_event(self) -> object:
        """The first session event the callee saw (waits for it)."""
        with trio.fail_after(5):
            await self._event_seen.wait()
        return self.events[0]

    async def __call__(self, incoming: IncomingRequest) -> None:
        request = incoming.request
        if request.method != "INVITE":
            await incoming.respond(request.response(200, to_tag="t"))
            return
        assert self.endpoint is not None
        server = InviteServer(self.endpoint, incoming)
        self.servers.append(server)
        self.got_server.set()
        if self.script == "answer":
            await server.progress(180)
            await server.answer(ANSWER)
        elif self.script == "ring":
            await server.progress(180)
        elif self.script == "busy":
            await server.reject(486)
        self.events.append(await server.next_event())
        self._event_seen.set()


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_call_answer_and_bye_from_caller(
    transport: str, mock_clock: trio.testing.MockClock
) -> None:
    mock_clock.autojump_threshold = 0.01
    callee = Callee("answer")
    async with (
        running(callee, transport) as (b, b_peer),
        running(refuse, transport) as (a, _),
    ):
        callee.endpoint = b
        call = client_for(a, b_peer)
        await call.start(OFFER)
        assert await call.next_event() == LegRinging(180, None)
        assert await call.next_event() == LegAnswered(ANSWER)
        server = callee.servers[0]
        assert server.request.body == OFFER
        assert server.request.from_.display_name == "Alice"
        await call.bye()
        assert await callee.first_event() == LegHungUp("caller hung up")


async def test_busy_is_rejected(mock_clock: trio.testing.MockClock) -> None:
    mock_clock.autojump_threshold = 0.01
    callee = Callee("busy")
    async with running(callee) as (b, b_peer), running(refuse) as (a, _):
        callee.endpoint = b
        call = client_for(a, b_peer)
        await call.start(OFFER)
        assert await call.next_event() == LegFailed(486, "Busy Here")


async def test_callee_hangs_up(mock_clock: trio.testing.MockClock) -> None:
    mock_clock.autojump_threshold = 0.01
    callee = Callee("ring")
    async with running(callee) as (b, b_peer), running(refuse) as (a, _):
        callee.endpoint = b
        call = client_for(a, b_peer)
        await call.start(OFFER)
        assert isinstance(await call.next_event(), LegRinging)
        server = callee.servers[0]
        await server.answer(ANSWER)
        assert await call.next_event() == LegAnswered(ANSWER)
        await server.bye()
        assert await call.next_event() == LegHungUp("BYE")


async def test_cancel_after_ringing(mock_clock: trio.testing.MockClock) -> None:
    mock_clock.autojump_threshold = 0.01
    callee = Callee("ring")
    async with running(callee) as (b, b_peer), running(refuse) as (a, _):
        callee.endpoint = b
        call = client_for(a, b_peer)
        await call.start(OFFER)
        assert isinstance(await call.next_event(), LegRinging)
        await call.cancel()
        assert await call.next_event() == LegFailed(487, "Request Terminated")
        assert await callee.first_event() == LegHungUp("caller cancelled")


async def test_reinvite_both_ways(mock_clock: trio.testing.MockClock) -> None:
    mock_clock.autojump_threshold = 0.01
    callee = Callee("answer")
    held = OFFER.replace(b"RTP/AVP 0\r\n", b"RTP/AVP 0\r\na=sendonly\r\n")
    async with running(callee) as (b, b_peer), running(refuse) as (a, _):
        callee.endpoint = b
        seen: list[bytes | None] = []

        def on_offer(offer: bytes | None) -> bytes | None:
            seen.append(offer)
            return ANSWER

        call = client_for(a, b_peer, on_offer=on_offer)
        await call.start(OFFER)
        await call.next_event()
        assert await call.next_event() == LegAnswered(ANSWER)
        # caller re-INVITEs: the callee answers with its last SDP
        assert await call.reinvite(held) == ANSWER
        # callee re-INVITEs: the caller answers through on_offer
        assert await callee.servers[0].reinvite(held) == ANSWER
        assert seen == [held]
        await call.bye()


async def test_digest_407_round_trip(mock_clock: trio.testing.MockClock) -> None:
    mock_clock.autojump_threshold = 0.01
    digest = DigestServer("example.com", b"secret", proxy=True, random_bytes=counting_bytes())
    challenged: list[Request] = []

    async def handler(incoming: IncomingRequest) -> None:
        request = incoming.request
        creds = request.headers.get("Proxy-Authorization")
        if creds is None:
            challenged.append(request)
            values = digest.challenge_values(trio.current_time())
            await incoming.respond(
                request.response(
                    407, to_tag="c", headers=[("Proxy-Authenticate", v) for v in values]
                )
            )
            return
        result = digest.verify("INVITE", creds, {"alice": "pw"}.get, trio.current_time())
        assert result.ok, result.reason
        server = InviteServer(b, incoming)
        await server.answer(ANSWER)
        await server.next_event()

    async with running(handler) as (b, b_peer), running(refuse) as (a, _):
        call = client_for(a, b_peer, credentials=("alice", "pw"))
        await call.start(OFFER)
        assert await call.next_event() == LegAnswered(ANSWER)
        assert len(challenged) == 1
        assert call.invite is not None and call.invite.cseq.seq == 2
        await call.bye()


async def test_wrong_password_gives_the_second_challenge(
    mock_clock: trio.testing.MockClock,
) -> None:
    mock_clock.autojump_threshold = 0.01
    digest = DigestServer("example.com", b"secret", random_bytes=counting_bytes())
    attempts: list[Request] = []

    async def handler(incoming: IncomingRequest) -> None:
        attempts.append(incoming.request)
        values = digest.challenge_values(trio.current_time())
        await incoming.respond(
            incoming.request.response(
                401, to_tag="c", headers=[("WWW-Authenticate", v) for v in values]
            )
        )

    async with running(handler) as (_b, b_peer), running(refuse) as (a, _):
        call = client_for(a, b_peer, credentials=("alice", "bad"))
        await call.start(OFFER)
        assert await call.next_event() == LegFailed(401, "Unauthorized")
        assert len(attempts) == 2
        assert "Authorization" in attempts[1].headers


# -- a raw UDP peer to script losses --------------------------------------------------------


class RawPeer:
    """A UDP socket that plays the far end by hand (to drop or delay messages)."""

    def __init__(self, sock: trio.socket.SocketType) -> None:
        self.sock = sock
        self.peer = Peer("udp", *sock.getsockname()[:2])

    async def receive(self) -> tuple[Message, tuple[str, int]]:
        data, address = await self.sock.recvfrom(65535)
        return parse_message(data), address

    async def send(self, message: Message, address: tuple[str, int]) -> None:
        from sip.message import serialize

        await self.sock.sendto(serialize(message), address)


@asynccontextmanager
async def raw_peer() -> AsyncIterator[RawPeer]:
    sock = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
    await sock.bind(("127.0.0.1", 0))
    try:
        yield RawPeer(sock)
    finally:
        sock.close()


class HasPeer(Protocol):
    @property
    def peer(self) -> Peer: ...


@dataclass(frozen=True, slots=True)
class TcpCaller:
    peer: Peer


def contact_header(peer: HasPeer) -> tuple[str, str]:
    return ("Contact", f"<sip:raw@127.0.0.1:{peer.peer.port}>")


async def test_uac_reacks_a_retransmitted_2xx(mock_clock: trio.testing.MockClock) -> None:
    mock_clock.autojump_threshold = 0.01
    async with raw_peer() as far, running(refuse) as (a, _):
        call = client_for(a, far.peer)
        await call.start(OFFER)
        invite, source = await far.receive()
        assert isinstance(invite, Request)
        ok = invite.response(200, to_tag="far", headers=[contact_header(far)], body=ANSWER)
        ok = ok.with_headers(ok.headers.append("Content-Type", "application/sdp"))
        await far.send(ok, source)
        assert await call.next_event() == LegAnswered(ANSWER)
        ack1, _ = await far.receive()
        assert isinstance(ack1, Request) and ack1.method == "ACK"
        assert ack1.cseq.seq == invite.cseq.seq
        # our 2xx "crossed" the ACK: retransmit it; the UAC must ACK again
        await far.send(ok, source)
        ack2, _ = await far.receive()
        assert isinstance(ack2, Request) and ack2.method == "ACK"
        assert ack2 == ack1  # the same ACK again (§13.2.2.4)
        await call.bye()


async def test_uas_retransmits_2xx_until_ack(mock_clock: trio.testing.MockClock) -> None:
    mock_clock.autojump_threshold = 0.01
    callee = Callee("answer")
    async with raw_peer() as far, running(callee) as (b, b_peer):
        callee.endpoint = b
        invite = make_invite(far, b_peer)
        address = (b_peer.host, b_peer.port)
        await far.send(invite, address)
        statuses: list[int] = []
        start = trio.current_time()
        times: list[float] = []
        while statuses.count(200) < 3:
            response, _ = await far.receive()
            assert isinstance(response, Response)
            statuses.append(response.status)
            if response.status == 200:
                times.append(trio.current_time() - start)
                ok = response
        # T1 = 0.5 s: retransmissions 0.5 s and 1.0 s after each other
        assert times[1] - times[0] == pytest.approx(0.5, abs=0.05)
        assert times[2] - times[1] == pytest.approx(1.0, abs=0.05)
        ack = make_ack(far, ok)
        await far.send(ack, address)
        with trio.move_on_after(10) as scope:  # no more retransmissions after the ACK
            await far.receive()
        assert scope.cancelled_caught


async def test_uas_without_ack_sends_bye(mock_clock: trio.testing.MockClock) -> None:
    mock_clock.autojump_threshold = 0.01
    callee = Callee("answer")
    async with raw_peer() as far, running(callee) as (b, b_peer):
        callee.endpoint = b
        await far.send(make_invite(far, b_peer), (b_peer.host, b_peer.port))
        with trio.fail_after(60):
            while True:
                message, source = await far.receive()
                if isinstance(message, Request) and message.method == "BYE":
                    await far.send(message.response(200), source)
                    break
        assert await callee.first_event() == LegHungUp("no ACK")


async def test_late_2xx_after_cancel_gets_ack_and_bye(mock_clock: trio.testing.MockClock) -> None:
    mock_clock.autojump_threshold = 0.01
    async with raw_peer() as far, running(refuse) as (a, _):
        call = client_for(a, far.peer)
        await call.start(OFFER)
        invite, source = await far.receive()
        assert isinstance(invite, Request)
        await far.send(invite.response(180, to_tag="far"), source)
        assert isinstance(await call.next_event(), LegRinging)
        await call.cancel()
        cancel, _ = await far.receive()
        assert isinstance(cancel, Request) and cancel.method == "CANCEL"
        await far.send(cancel.response(200), source)
        # the callee answered before it saw the CANCEL
        ok = invite.response(200, to_tag="far", headers=[contact_header(far)])
        await far.send(ok, source)
        methods = []
        while "BYE" not in methods:
            message, _ = await far.receive()
            assert isinstance(message, Request)
            methods.append(message.method)
            if message.method == "BYE":
                await far.send(message.response(200), source)
        assert methods == ["ACK", "BYE"]
        assert await call.next_event() == LegFailed(487, "Request Terminated")


async def test_cancel_before_provisional_waits_for_one(
    mock_clock: trio.testing.MockClock,
) -> None:
    mock_clock.autojump_threshold = 0.01
    async with raw_peer() as far, running(refuse) as (a, _):
        call = client_for(a, far.peer)
        await call.start(OFFER)
        invite, source = await far.receive()
        assert isinstance(invite, Request)
        await call.cancel()
        with trio.move_on_after(0.2) as scope:  # INVITE retransmissions only, no CANCEL yet
            while True:
                message, _ = await far.receive()
                assert isinstance(message, Request) and message.method == "INVITE"
        assert scope.cancelled_caught
        await far.send(invite.response(180, to_tag="far"), source)
        while True:
            message, _ = await far.receive()
            assert isinstance(message, Request)
            if message.method == "CANCEL":
                break
        await far.send(message.response(200), source)
        await far.send(invite.response(487, to_tag="far"), source)
        assert await call.next_event() == LegFailed(487, "Request Terminated")


async def test_no_answer_times_out_with_408(mock_clock: trio.testing.MockClock) -> None:
    mock_clock.autojump_threshold = 0.01
    invites: list[float] = []

    async def count(far: RawPeer) -> None:
        while True:
            message, _ = await far.receive()
            assert isinstance(message, Request) and message.method == "INVITE"
            invites.append(trio.current_time())

    async with raw_peer() as far, running(refuse) as (a, _), trio.open_nursery() as nursery:
        nursery.start_soon(count, far)
        call = client_for(a, far.peer)
        started = trio.current_time()
        await call.start(OFFER)
        assert await call.next_event() == LegFailed(408, "Request Timeout")
        assert trio.current_time() - started == pytest.approx(32, abs=0.1)  # Timer B = 64*T1
        nursery.cancel_scope.cancel()
    # Timer A: sent at 0, 0.5, 1.5, 3.5, 7.5, 15.5 and 31.5 s
    assert [round(t - invites[0], 1) for t in invites] == [0, 0.5, 1.5, 3.5, 7.5, 15.5, 31.5]


async def test_second_fork_2xx_is_acked_and_byed(mock_clock: trio.testing.MockClock) -> None:
    mock_clock.autojump_threshold = 0.01
    async with raw_peer() as far, running(refuse) as (a, _):
        call = client_for(a, far.peer)
        await call.start(OFFER)
        invite, source = await far.receive()
        assert isinstance(invite, Request)
        first = invite.response(200, to_tag="fork1", headers=[contact_header(far)])
        second = invite.response(200, to_tag="fork2", headers=[contact_header(far)])
        await far.send(first, source)
        assert await call.next_event() == LegAnswered(None)
        ack, _ = await far.receive()
        assert isinstance(ack, Request) and ack.method == "ACK" and ack.to.tag == "fork1"
        await far.send(second, source)
        seen: list[tuple[str, str | None]] = []
        while len(seen) < 2:
            message, _ = await far.receive()
            assert isinstance(message, Request)
            seen.append((message.method, message.to.tag))
            if message.method == "BYE":
                await far.send(message.response(200), source)
        assert seen == [("ACK", "fork2"), ("BYE", "fork2")]
        await call.bye()


async def test_reinvite_rejected_raises(mock_clock: trio.testing.MockClock) -> None:
    mock_clock.autojump_threshold = 0.01
    async with raw_peer() as far, running(refuse) as (a, _):
        call = client_for(a, far.peer)
        await call.start(OFFER)
        invite, source = await far.receive()
        assert isinstance(invite, Request)
        await far.send(invite.response(200, to_tag="far", headers=[contact_header(far)]), source)
        assert await call.next_event() == LegAnswered(None)
        await far.receive()  # ACK

        async def refuse_reinvite() -> None:
            reinvite, _ = await far.receive()
            assert isinstance(reinvite, Request) and reinvite.method == "INVITE"
            assert reinvite.cseq.seq == invite.cseq.seq + 1
            assert reinvite.to.tag == "far"
            assert str(reinvite.uri) == f"sip:raw@127.0.0.1:{far.peer.port}"
            await far.send(reinvite.response(488), source)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(refuse_reinvite)
            with pytest.raises(ReinviteFailed) as info:
                await call.reinvite(OFFER)
        assert info.value.status == 488


async def test_cancelled_invite_gets_487_with_the_ringing_tag(
    mock_clock: trio.testing.MockClock,
) -> None:
    mock_clock.autojump_threshold = 0.01
    callee = Callee("ring")
    async with raw_peer() as far, running(callee) as (b, b_peer):
        callee.endpoint = b
        invite = make_invite(far, b_peer)
        address = (b_peer.host, b_peer.port)
        await far.send(invite, address)
        ringing, _ = await far.receive()
        assert isinstance(ringing, Response) and ringing.status == 180
        cancel = Request(
            "CANCEL",
            invite.uri,
            Headers(
                [
                    (name, value.replace("INVITE", "CANCEL") if name == "CSeq" else value)
                    for name, value in invite.headers
                    if name in ("Via", "From", "To", "Call-ID", "CSeq", "Max-Forwards")
                ]
            ),
        )
        await far.send(cancel, address)
        answers: dict[str, Response] = {}
        while len(answers) < 2:
            response, _ = await far.receive()
            assert isinstance(response, Response)
            answers[response.cseq.method] = response
        assert answers["CANCEL"].status == 200
        assert answers["INVITE"].status == 487
        assert answers["INVITE"].to.tag == ringing.to.tag
        await far.send(make_ack(far, answers["INVITE"]).replace(uri=invite.uri), address)
        assert await callee.first_event() == LegHungUp("caller cancelled")


def make_invite(far: HasPeer, to: Peer) -> Request:
    from sip.uri import parse_uri

    return Request(
        "INVITE",
        parse_uri(f"sip:bob@{to.host}:{to.port}"),
        Headers(
            [
                ("Via", f"SIP/2.0/UDP 127.0.0.1:{far.peer.port};branch=z9hG4bKraw1;rport"),
                ("Max-Forwards", "70"),
                ("From", "<sip:raw@127.0.0.1>;tag=raw"),
                ("To", f"<sip:bob@{to.host}:{to.port}>"),
                ("Call-ID", "raw-call@127.0.0.1"),
                ("CSeq", "7 INVITE"),
                contact_header(far),
                ("Content-Type", "application/sdp"),
            ]
        ),
        OFFER,
    )


def make_ack(far: HasPeer, ok: Response) -> Request:
    from sip.uri import parse_uri

    return Request(
        "ACK",
        ok.contacts[0].uri if ok.contacts else parse_uri("sip:bob@127.0.0.1"),
        Headers(
            [
                ("Via", f"SIP/2.0/UDP 127.0.0.1:{far.peer.port};branch=z9hG4bKraw2;rport"),
                ("Max-Forwards", "70"),
                ("From", ok.headers.get("From") or ""),
                ("To", ok.headers.get("To") or ""),
                ("Call-ID", ok.call_id),
                ("CSeq", f"{ok.cseq.seq} ACK"),
            ]
        ),
    )


async def test_unroutable_2xx_is_rejected_and_the_endpoint_survives(
    mock_clock: trio.testing.MockClock,
) -> None:
    mock_clock.autojump_threshold = 0.01
    async with raw_peer() as far, running(refuse) as (a, _):
        call = client_for(a, far.peer)
        await call.start(OFFER)
        invite, source = await far.receive()
        assert isinstance(invite, Request)
        ok = invite.response(200, to_tag="far", headers=[("Contact", "<tel:+15551234567>")])
        await far.send(ok, source)
        assert await call.next_event() == LegFailed(502, "Bad Gateway")
        # the endpoint still places calls
        again = client_for(a, far.peer)
        await again.start(OFFER)
        message, _ = await far.receive()
        while not (isinstance(message, Request) and message.call_id == again.call_id):
            message, _ = await far.receive()
        assert message.method == "INVITE"


async def test_uas_copies_record_route_and_routes_its_bye_through_it(
    mock_clock: trio.testing.MockClock,
) -> None:
    mock_clock.autojump_threshold = 0.01
    callee = Callee("answer")
    async with raw_peer() as far, running(callee) as (b, b_peer):
        callee.endpoint = b
        proxy = f"<sip:127.0.0.1:{far.peer.port};lr>"
        invite = make_invite(far, b_peer)
        invite = invite.with_headers(
            invite.headers.replace("Contact", "<sip:raw@127.0.0.1:9>").append("Record-Route", proxy)
        )
        address = (b_peer.host, b_peer.port)
        await far.send(invite, address)
        while True:
            response, _ = await far.receive()
            assert isinstance(response, Response)
            assert response.headers.get_all("Record-Route") == [proxy]
            if response.status == 200:
                break
        await far.send(make_ack(far, response), address)
        await callee.servers[0].bye()
        bye, _ = await far.receive()  # the "proxy" gets the BYE
        assert isinstance(bye, Request) and bye.method == "BYE"
        assert str(bye.uri) == "sip:raw@127.0.0.1:9"  # the remote target stays the R-URI
        assert [str(r) for r in bye.routes] == [proxy]


async def test_tcp_connection_lives_as_long_as_the_call(
    mock_clock: trio.testing.MockClock,
) -> None:
    mock_clock.autojump_threshold = 0.01
    callee = Callee("answer")
    async with running(callee, "tcp") as (b, b_peer), running(refuse, "tcp") as (a, _):
        callee.endpoint = b
        call = client_for(a, b_peer)
        await call.start(OFFER)
        await call.next_event()
        assert await call.next_event() == LegAnswered(ANSWER)
        await trio.sleep(600)  # a silent call, far beyond the 32 s idle timeout
        assert a.transport.statistics()["tcp_connections"] == 1
        await call.bye()
        # the BYE went over the kept connection
        assert await callee.first_event() == LegHungUp("caller hung up")
        await trio.sleep(40)  # the call is over: now the idle timeout closes it
        assert a.transport.statistics()["tcp_connections"] == 0
        assert b.transport.statistics()["tcp_connections"] == 0


async def test_late_offer_answer_arrives_in_the_ack(mock_clock: trio.testing.MockClock) -> None:
    mock_clock.autojump_threshold = 0.01
    callee = Callee("answer")
    async with raw_peer() as far, running(callee) as (b, b_peer):
        callee.endpoint = b
        invite = make_invite(far, b_peer)
        invite = Request(invite.method, invite.uri, invite.headers.remove("Content-Type"))
        address = (b_peer.host, b_peer.port)
        await far.send(invite, address)
        while True:
            response, _ = await far.receive()
            assert isinstance(response, Response)
            if response.status == 200:
                break
        assert response.body == ANSWER  # our "answer" is the offer now
        ack = make_ack(far, response)
        ack = Request("ACK", ack.uri, ack.headers.append("Content-Type", "application/sdp"), OFFER)
        await far.send(ack, address)
        server = callee.servers[0]
        with trio.fail_after(5):
            await server.acked.wait()
        assert server.ack_sdp == OFFER


async def test_bye_in_the_early_dialog_ends_the_invite_with_487(
    mock_clock: trio.testing.MockClock,
) -> None:
    mock_clock.autojump_threshold = 0.01
    callee = Callee("ring")
    async with raw_peer() as far, running(callee) as (b, b_peer):
        callee.endpoint = b
        invite = make_invite(far, b_peer)
        address = (b_peer.host, b_peer.port)
        await far.send(invite, address)
        ringing, _ = await far.receive()
        assert isinstance(ringing, Response) and ringing.status == 180
        bye = Request(
            "BYE",
            ringing.contacts[0].uri,
            Headers(
                [
                    ("Via", f"SIP/2.0/UDP 127.0.0.1:{far.peer.port};branch=z9hG4bKbye;rport"),
                    ("Max-Forwards", "70"),
                    ("From", invite.headers.get("From") or ""),
                    ("To", ringing.headers.get("To") or ""),
                    ("Call-ID", invite.call_id),
                    ("CSeq", "8 BYE"),
                ]
            ),
        )
        await far.send(bye, address)
        answers: dict[str, int] = {}
        while len(answers) < 2:
            response, _ = await far.receive()
            assert isinstance(response, Response)
            answers[response.cseq.method] = response.status
        assert answers == {"BYE": 200, "INVITE": 487}
        assert await callee.first_event() == LegHungUp("caller cancelled")


async def test_a_call_cancelled_during_start_can_still_be_cancelled(
    mock_clock: trio.testing.MockClock,
) -> None:
    mock_clock.autojump_threshold = 0.01
    async with raw_peer() as far, running(refuse) as (a, _):
        call = client_for(a, far.peer)
        with trio.CancelScope() as scope:
            scope.cancel()  # e.g. the API deletes the call as it is being placed
            await call.start(OFFER)
        with trio.fail_after(5):
            invite, source = await far.receive()
        assert isinstance(invite, Request) and invite.method == "INVITE"
        await call.cancel()
        await far.send(invite.response(180, to_tag="far"), source)
        with trio.fail_after(5):
            message, _ = await far.receive()
            while not (isinstance(message, Request) and message.method == "CANCEL"):
                message, _ = await far.receive()
        await far.send(message.response(200), source)
        await far.send(invite.response(487, to_tag="far"), source)
        with trio.fail_after(5):
            assert await call.next_event() == LegFailed(487, "Request Terminated")


# -- in-dialog requests follow the flow (a phone behind NAT: its Contact is unreachable) ------

NAT_CONTACT = ("Contact", "<sip:phone@127.0.0.1:9>")  # nobody listens there


async def test_uac_acks_and_byes_where_it_sent_the_invite(
    mock_clock: trio.testing.MockClock,
) -> None:
    mock_clock.autojump_threshold = 0.01
    async with raw_peer() as far, running(refuse) as (a, _):
        call = client_for(a, far.peer)
        await call.start(OFFER)
        invite, source = await far.receive()
        assert isinstance(invite, Request)
        await far.send(invite.response(200, to_tag="far", headers=[NAT_CONTACT]), source)
        assert await call.next_event() == LegAnswered(None)
        with trio.fail_after(1):  # before any retransmission of the 2xx would be needed
            ack, _ = await far.receive()
        assert isinstance(ack, Request) and ack.method == "ACK"
        assert str(ack.uri) == "sip:phone@127.0.0.1:9"  # the Contact stays the R-URI
        async with trio.open_nursery() as nursery:
            nursery.start_soon(call.bye)
            with trio.fail_after(1):
                bye, _ = await far.receive()
            assert isinstance(bye, Request) and bye.method == "BYE"
            await far.send(bye.response(200), source)


async def test_uas_byes_where_the_invite_came_from(mock_clock: trio.testing.MockClock) -> None:
    mock_clock.autojump_threshold = 0.01
    callee = Callee("answer")
    async with raw_peer() as far, running(callee) as (b, b_peer):
        callee.endpoint = b
        invite = make_invite(far, b_peer)
        invite = invite.with_headers(invite.headers.replace("Contact", NAT_CONTACT[1]))
        address = (b_peer.host, b_peer.port)
        await far.send(invite, address)
        while True:
            response, _ = await far.receive()
            assert isinstance(response, Response)
            if response.status == 200:
                break
        await far.send(make_ack(far, response), address)
        await callee.servers[0].acked.wait()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(callee.servers[0].bye)
            with trio.fail_after(1):
                bye, _ = await far.receive()
            assert isinstance(bye, Request) and bye.method == "BYE"
            assert str(bye.uri) == "sip:phone@127.0.0.1:9"
            await far.send(bye.response(200), address)


async def test_uas_over_tcp_byes_on_the_callers_connection(
    mock_clock: trio.testing.MockClock,
) -> None:
    from sip.message import StreamParser, serialize

    mock_clock.autojump_threshold = 0.01
    callee = Callee("answer")
    async with running(callee, "tcp") as (b, b_peer):
        callee.endpoint = b
        stream = await trio.open_tcp_stream(b_peer.host, b_peer.port)
        parser = StreamParser()
        pending: list[Message] = []

        async def receive() -> Message:
            while not pending:
                with trio.fail_after(1):
                    data = await stream.receive_some(65536)
                assert data, "the connection closed"
                pending.extend(parser.feed(data))
            return pending.pop(0)

        port = stream.socket.getsockname()[1]
        far = TcpCaller(Peer("tcp", "127.0.0.1", port))
        invite = make_invite(far, b_peer)
        via = f"SIP/2.0/TCP 127.0.0.1:{port};branch=z9hG4bKtcp1"
        invite = invite.with_headers(
            invite.headers.replace("Via", via).replace("Contact", NAT_CONTACT[1])
        )
        await stream.send_all(serialize(invite))
        response = await receive()
        while not (isinstance(response, Response) and response.status == 200):
            response = await receive()
        ack = make_ack(far, response)
        ack = ack.with_headers(
            ack.headers.replace("Via", f"SIP/2.0/TCP 127.0.0.1:{port};branch=z9hG4bKtcp2")
        )
        await stream.send_all(serialize(ack))
        await callee.servers[0].acked.wait()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(callee.servers[0].bye)
            bye = await receive()
            assert isinstance(bye, Request) and bye.method == "BYE"
            await stream.send_all(serialize(bye.response(200)))
        await stream.aclose()


async def test_callee_on_offer_set_after_construction_answers_a_reinvite(
    mock_clock: trio.testing.MockClock,
) -> None:
    mock_clock.autojump_threshold = 0.01
    callee = Callee("answer")
    held = OFFER.replace(b"RTP/AVP 0\r\n", b"RTP/AVP 0\r\na=sendonly\r\n")
    fresh = ANSWER.replace(b"RTP/AVP 0\r\n", b"RTP/AVP 0\r\na=recvonly\r\n")
    async with running(callee) as (b, b_peer), running(refuse) as (a, _):
        callee.endpoint = b
        call = client_for(a, b_peer)
        await call.start(OFFER)
        await call.next_event()
        assert await call.next_event() == LegAnswered(ANSWER)
        seen: list[bytes | None] = []

        def on_offer(offer: bytes | None) -> bytes | None:
            seen.append(offer)
            return fresh

        callee.servers[0].on_offer = on_offer  # the engine knows its media side only now
        assert await call.reinvite(held) == fresh
        assert seen == [held]
        await call.bye()


async def test_second_fork_behind_nat_is_acked_and_byed_along_the_flow(
    mock_clock: trio.testing.MockClock,
) -> None:
    mock_clock.autojump_threshold = 0.01
    async with raw_peer() as far, running(refuse) as (a, _):
        call = client_for(a, far.peer)
        await call.start(OFFER)
        invite, source = await far.receive()
        assert isinstance(invite, Request)
        await far.send(invite.response(200, to_tag="fork1", headers=[NAT_CONTACT]), source)
        assert await call.next_event() == LegAnswered(None)
        await far.receive()  # the ACK for fork1
        await far.send(invite.response(200, to_tag="fork2", headers=[NAT_CONTACT]), source)
        seen: list[tuple[str, str | None]] = []
        with trio.fail_after(1):
            while len(seen) < 2:
                message, _ = await far.receive()
                assert isinstance(message, Request)
                seen.append((message.method, message.to.tag))
                if message.method == "BYE":
                    await far.send(message.response(200), source)
        assert seen == [("ACK", "fork2"), ("BYE", "fork2")]


async def test_in_dialog_requests_read_in_one_batch_are_answered_in_order(
    mock_clock: trio.testing.MockClock,
) -> None:
    """Eight INFOs of the callee waiting together in our socket: each gets 200, in the order
    sent (handled out of order, a lower CSeq would get 500 CSeq Out Of Order, §12.2.2)."""
    import socket

    from sip.message import serialize

    mock_clock.autojump_threshold = 0.01
    async with raw_peer() as far, running(refuse) as (a, a_peer):
        call = client_for(a, far.peer)
        await call.start(OFFER)
        invite, source = await far.receive()
        assert isinstance(invite, Request)
        ok = invite.response(200, to_tag="far", headers=[contact_header(far)], body=ANSWER)
        await far.send(ok, source)
        assert await call.next_event() == LegAnswered(ANSWER)
        ack, _ = await far.receive()
        assert isinstance(ack, Request) and ack.method == "ACK"
        infos = [
            Request(
                "INFO",
                invite.contacts[0].uri,
                Headers(
                    [  # no rport: the responses go to the Via, the raw peer's socket
                        ("Via", f"SIP/2.0/UDP 127.0.0.1:{far.peer.port};branch=z9hG4bKinfo{seq}"),
                        ("Max-Forwards", "70"),
                        ("From", ok.headers.get("To") or ""),
                        ("To", invite.headers.get("From") or ""),
                        ("Call-ID", invite.call_id),
                        ("CSeq", f"{seq} INFO"),
                    ]
                ),
            )
            for seq in range(1, 9)
        ]
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as burst:
            for info in infos:  # no checkpoint in between: one batch in our socket
                burst.sendto(serialize(info), (a_peer.host, a_peer.port))
            answers = []
            with trio.fail_after(5):
                while len(answers) < len(infos):
                    message, _ = await far.receive()
                    if isinstance(message, Response):
                        answers.append(message)
        assert [(r.status, r.cseq.seq) for r in answers] == [(200, seq) for seq in range(1, 9)]
        await call.bye()


async def test_the_callee_answers_requests_read_in_one_batch_in_order(
    mock_clock: trio.testing.MockClock,
) -> None:
    """The same on the callee's side: the caller's eight INFOs after its ACK get 200, in order."""
    import socket

    from sip.message import serialize

    mock_clock.autojump_threshold = 0.01
    callee = Callee("answer")
    async with raw_peer() as far, running(callee) as (b, b_peer):
        callee.endpoint = b
        address = (b_peer.host, b_peer.port)
        await far.send(make_invite(far, b_peer), address)
        while True:
            ok, _ = await far.receive()
            assert isinstance(ok, Response)
            if ok.status == 200:
                break
        await far.send(make_ack(far, ok), address)
        infos = [
            Request(
                "INFO",
                ok.contacts[0].uri,
                Headers(
                    [  # no rport: the responses go to the Via, the raw peer's socket
                        ("Via", f"SIP/2.0/UDP 127.0.0.1:{far.peer.port};branch=z9hG4bKi{seq}"),
                        ("Max-Forwards", "70"),
                        ("From", ok.headers.get("From") or ""),
                        ("To", ok.headers.get("To") or ""),
                        ("Call-ID", ok.call_id),
                        ("CSeq", f"{seq} INFO"),
                    ]
                ),
            )
            for seq in range(8, 16)
        ]
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as burst:
            for info in infos:  # no checkpoint in between: one batch in the callee's socket
                burst.sendto(serialize(info), address)
            answers = []
            with trio.fail_after(5):
                while len(answers) < len(infos):
                    message, _ = await far.receive()
                    if isinstance(message, Response) and message.cseq.method == "INFO":
                        answers.append(message)
        assert [(r.status, r.cseq.seq) for r in answers] == [(200, seq) for seq in range(8, 16)]


def _endpoint_tasks(endpoint: SipEndpoint) -> int:
    """Tasks in the endpoint's nursery (its receive loops, its timer task, and any work)."""
    nursery = endpoint._nursery
    assert nursery is not None
    return len(nursery.child_tasks)


async def test_a_session_holds_no_task_of_its_own(mock_clock: trio.testing.MockClock) -> None:
    """Few objects per live call, and no scheduling per message: a session is stepped by
    whoever hands it something (the receive path, the call's command, the timer task), so the
    caller's endpoint runs no more tasks ringing, answered or hung up than before the call."""
    mock_clock.autojump_threshold = 0.01
    callee = Callee("answer")
    async with running(callee) as (b, b_peer), running(refuse) as (a, _):
        callee.endpoint = b
        before = _endpoint_tasks(a)
        call = client_for(a, b_peer)
        await call.start(OFFER)
        await call.next_event()
        assert _endpoint_tasks(a) == before  # ringing: the session waits for the answer
        assert await call.next_event() == LegAnswered(ANSWER)
        with trio.fail_after(5):
            await callee.servers[0].acked.wait()
        await trio.sleep(1)
        assert _endpoint_tasks(a) == before
        await call.bye()
        assert await callee.first_event() == LegHungUp("caller hung up")
        await trio.sleep(1)
        assert _endpoint_tasks(a) == before


async def test_forwarded_events_reach_the_sink_in_order_and_the_sink_is_dropped_at_the_end(
    mock_clock: trio.testing.MockClock,
) -> None:
    mock_clock.autojump_threshold = 0.01
    callee = Callee("answer")
    async with running(callee) as (b, b_peer), running(refuse) as (a, _):
        callee.endpoint = b
        call = client_for(a, b_peer)
        await call.start(OFFER)
        with trio.fail_after(5):
            while call._events.statistics().current_buffer_used == 0:
                await trio.sleep(0.01)  # the ringing waits in the channel
        seen: list[object] = []
        call.forward_events(lambda event: seen.append(event) is None)
        with trio.fail_after(5):
            while len(seen) < 2:
                await trio.sleep(0.01)
        assert seen == [LegRinging(180, None), LegAnswered(ANSWER)]  # the waiting one first
        await call.bye()
        with trio.fail_after(5):
            while call._event_sink is not None:  # the session ended: no call<->leg cycle
                await trio.sleep(0.1)
        assert seen == [LegRinging(180, None), LegAnswered(ANSWER)]
