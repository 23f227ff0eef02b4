"""``b2bua serve`` as a SIP element: what it answers to odd and bad requests, over real UDP/TCP.

RFC 3261 §8.2 in practice: OPTIONS 200 with Allow/Accept/Supported, unknown methods 501 with
Allow, unknown users 404, malformed requests 400 with the reason, a wrong SIP version 505,
Max-Forwards 0 483, an unsupported Require 420, an unsupported URI scheme 416, never a response
to a response, and the server survives any bytes and drains on SIGTERM.
"""

from __future__ import annotations

import os
import signal
import socket
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from .harness import B2buaServer

CRLF = "\r\n"


def request(
    method: str = "OPTIONS",
    uri: str = "sip:voip.example.com",
    *,
    version: str = "SIP/2.0",
    extra: tuple[str, ...] = (),
    max_forwards: int | None = 70,
    port: int = 0,
) -> bytes:
    branch = "z9hG4bK" + os.urandom(6).hex()
    lines = [
        f"{method} {uri} {version}",
        f"Via: SIP/2.0/UDP 127.0.0.1:{port};branch={branch};rport",
        "From: <sip:tester@127.0.0.1>;tag=t1",
        "To: <sip:service@voip.example.com>",
        f"Call-ID: {os.urandom(8).hex()}@127.0.0.1",
        f"CSeq: 1 {method if method != 'ACK' else 'ACK'}",
    ]
    if max_forwards is not None:
        lines.append(f"Max-Forwards: {max_forwards}")
    lines += [*extra, "Content-Length: 0", "", ""]
    return CRLF.join(lines).encode()


class UdpClient:
    def __init__(self, server: tuple[str, int]) -> None:
        self.server = server
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(3.0)
        self.port = self.sock.getsockname()[1]

    def ask(self, data: bytes) -> str:
        self.sock.sendto(data, self.server)
        while True:
            reply = self.sock.recv(65535).decode(errors="replace")
            if not reply.startswith("SIP/2.0 100"):
                return reply

    def silent(self, data: bytes, wait: float = 0.7) -> bool:
        """Send; True when nothing comes back within ``wait`` seconds."""
        self.sock.sendto(data, self.server)
        self.sock.settimeout(wait)
        try:
            self.sock.recv(65535)
        except TimeoutError:
            return True
        finally:
            self.sock.settimeout(3.0)
        return False


def trusted_udp(b2bua_factory: Callable[..., B2buaServer]) -> UdpClient:
    """A UDP client of a server that trusts 127.0.0.1 as a peer (no digest for INVITEs)."""
    from .harness import DEFAULT_DIRECTORY

    trusted = DEFAULT_DIRECTORY + '\n[[peers]]\naddress = "127.0.0.1"\norganization = 3\n'
    server = b2bua_factory(directory=trusted)
    assert server.sip_udp is not None
    return UdpClient(server.sip_udp)


@pytest.fixture
def udp(b2bua: B2buaServer) -> UdpClient:
    assert b2bua.sip_udp is not None
    return UdpClient(b2bua.sip_udp)


def status_of(reply: str) -> int:
    return int(reply.split(" ", 2)[1])


def header(reply: str, name: str) -> str | None:
    for line in reply.split(CRLF):
        if line.lower().startswith(name.lower() + ":"):
            return line.split(":", 1)[1].strip()
    return None


def test_options_is_answered_with_capabilities(udp: UdpClient) -> None:
    reply = udp.ask(request("OPTIONS", port=udp.port))
    assert status_of(reply) == 200
    allow = header(reply, "Allow") or ""
    for method in ("INVITE", "ACK", "CANCEL", "BYE", "OPTIONS", "REGISTER"):
        assert method in allow
    assert "application/sdp" in (header(reply, "Accept") or "")


def test_unknown_method_gets_501_with_allow(udp: UdpClient) -> None:
    reply = udp.ask(request("FROBNICATE", port=udp.port))
    assert status_of(reply) == 501
    assert "INVITE" in (header(reply, "Allow") or "")


def test_unknown_user_gets_404(udp: UdpClient) -> None:
    assert (
        status_of(udp.ask(request("OPTIONS", "sip:nobody@voip.example.com", port=udp.port))) == 404
    )
    register = request(
        "REGISTER", "sip:voip.example.com", port=udp.port, extra=("Contact: <sip:x@127.0.0.1>",)
    ).replace(b"To: <sip:service@", b"To: <sip:0003*999@")
    assert status_of(udp.ask(register)) == 404


def test_wrong_version_gets_505(udp: UdpClient) -> None:
    assert status_of(udp.ask(request(version="SIP/7.0", port=udp.port))) == 505


def test_max_forwards_zero_gets_483(udp: UdpClient) -> None:
    invite = request("INVITE", "sip:0003*00@voip.example.com", max_forwards=0, port=udp.port)
    assert status_of(udp.ask(invite)) == 483


def test_unsupported_require_gets_420(udp: UdpClient) -> None:
    reply = udp.ask(request("OPTIONS", port=udp.port, extra=("Require: teleportation",)))
    assert status_of(reply) == 420
    assert header(reply, "Unsupported") == "teleportation"


def test_unsupported_uri_scheme_gets_416(udp: UdpClient) -> None:
    assert (
        status_of(udp.ask(request("OPTIONS", "mailto:someone@example.com", port=udp.port))) == 416
    )


def test_malformed_request_gets_400_with_a_reason(udp: UdpClient) -> None:
    broken = request("OPTIONS", port=udp.port).replace(b"CSeq: 1 OPTIONS", b"CSeq: one OPTIONS")
    reply = udp.ask(broken)
    assert status_of(reply) == 400
    reason = reply.split(CRLF, 1)[0].split(" ", 2)[2]
    assert reason and reason != "Bad Request", f"the reason should say what is wrong: {reason!r}"


def test_responses_and_junk_get_no_answer_and_the_server_survives(
    udp: UdpClient, b2bua: B2buaServer
) -> None:
    response = (
        b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5;branch=z9hG4bKx\r\n"
        b"From: <sip:a@b>;tag=1\r\nTo: <sip:c@d>;tag=2\r\nCall-ID: x\r\nCSeq: 1 OPTIONS\r\n"
        b"Content-Length: 0\r\n\r\n"
    )
    assert udp.silent(response)
    for junk in (b"", b"\x00\xff" * 100, os.urandom(1400), b"INVITE\r\n\r\n", b"SIP/2.0\r\n"):
        udp.sock.sendto(junk, udp.server)
    time.sleep(0.3)
    assert b2bua.running
    assert status_of(udp.ask(request("OPTIONS", port=udp.port))) == 200


def test_options_over_tcp(b2bua: B2buaServer) -> None:
    assert b2bua.sip_tcp is not None
    with socket.create_connection(b2bua.sip_tcp, timeout=3) as conn:
        data = request("OPTIONS", port=conn.getsockname()[1]).replace(b"/UDP", b"/TCP")
        conn.sendall(data)
        reply = conn.recv(65535).decode()
    assert status_of(reply) == 200


def test_sigterm_drains_and_exits_0(b2bua_factory: Callable[..., B2buaServer]) -> None:
    server = b2bua_factory()
    import signal

    assert server.stop(signal.SIGTERM) == 0


def test_invite_content_negotiation_415_and_406(b2bua_factory: Callable[..., B2buaServer]) -> None:
    udp = trusted_udp(b2bua_factory)
    invite = request("INVITE", "sip:0003*00@voip.example.com", port=udp.port)
    unknown_body = invite.replace(
        b"Content-Length: 0\r\n",
        b"Content-Type: application/unknownformat\r\nContent-Length: 3\r\n",
    )
    reply = udp.ask(unknown_body + b"abc")
    assert status_of(reply) == 415
    assert header(reply, "Accept") == "application/sdp"
    no_sdp_wanted = request(
        "INVITE", "sip:0003*00@voip.example.com", port=udp.port, extra=("Accept: text/plain",)
    )
    assert status_of(udp.ask(no_sdp_wanted)) == 406


def test_inbound_bad_sdp_gets_400_and_no_common_codec_gets_488(
    b2bua_factory: Callable[..., B2buaServer],
) -> None:
    udp = trusted_udp(b2bua_factory)

    def invite_with(body: bytes) -> bytes:
        head = request("INVITE", "sip:0003*00@voip.example.com", port=udp.port)
        head = head.replace(
            b"Content-Length: 0\r\n",
            b"Content-Type: application/sdp\r\nContent-Length: %d\r\n" % len(body),
        )
        return head + body

    reply = udp.ask(invite_with(b"this is not SDP\r\n"))
    assert status_of(reply) == 400
    assert "Bad SDP" in reply.split(CRLF, 1)[0]
    gsm_only = (
        b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
        b"m=audio 4000 RTP/AVP 3\r\na=rtpmap:3 GSM/8000\r\n"
    )
    reply = udp.ask(invite_with(gsm_only))
    assert status_of(reply) == 488
    assert (header(reply, "Warning") or "").startswith("304 ")


def test_a_dead_relay_process_stops_the_server_with_exit_1(
    b2bua_factory: Callable[..., B2buaServer],
) -> None:
    server = b2bua_factory()
    children = Path(f"/proc/{server.pid}/task/{server.pid}/children").read_text().split()
    assert len(children) == 1, children  # the relay process
    os.kill(int(children[0]), signal.SIGKILL)
    deadline = time.monotonic() + 20
    while server.running and time.monotonic() < deadline:
        time.sleep(0.05)  # waiting for another process to exit, not for logic
    assert server.stop() == 1, server.describe()
    assert "the relay process exited" in server.output()


@pytest.mark.parametrize("media", ["relay", "rtpengine"], indirect=True)
def test_a_late_offer_caller_gets_our_offer_in_the_200_and_hears_the_sandbox(
    media: dict[str, object],
    b2bua_factory: Callable[..., B2buaServer],
) -> None:
    """RFC 3261 §13.2.1: an INVITE without SDP; the offer goes in our 200, the answer in the ACK."""
    udp = trusted_udp(b2bua_factory)
    udp.sock.settimeout(5.0)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rtp:
        rtp.bind(("127.0.0.1", 0))
        rtp.settimeout(3.0)
        invite = request(
            "INVITE",
            "sip:0003*00@voip.example.com",  # a sandbox: answers after 1 s, then plays a tone
            port=udp.port,
            extra=(f"Contact: <sip:tester@127.0.0.1:{udp.port}>",),
        )
        udp.sock.sendto(invite, udp.server)
        statuses = []
        while True:
            reply = udp.sock.recv(65535).decode()
            statuses.append(status_of(reply))
            if statuses[-1] >= 200:
                break
        assert statuses[-1] == 200 and 180 in statuses and 183 not in statuses
        head, _, offer = reply.partition(CRLF * 2)
        assert header(head, "Content-Type") == "application/sdp"
        assert "m=audio " in offer and "a=sendrecv" in offer
        to = header(head, "To")
        call_id = header(head, "Call-ID")
        contact = (header(head, "Contact") or "").strip("<>").split(">")[0]
        answer = (
            "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
            f"m=audio {rtp.getsockname()[1]} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
            "a=sendrecv\r\n"
        )
        ack = CRLF.join(
            [
                f"ACK {contact} SIP/2.0",
                f"Via: SIP/2.0/UDP 127.0.0.1:{udp.port};branch=z9hG4bK{os.urandom(6).hex()}",
                "From: <sip:tester@127.0.0.1>;tag=t1",
                f"To: {to}",
                f"Call-ID: {call_id}",
                "CSeq: 1 ACK",
                "Max-Forwards: 70",
                "Content-Type: application/sdp",
                f"Content-Length: {len(answer)}",
                "",
                answer,
            ]
        ).encode()
        udp.sock.sendto(ack, udp.server)
        packet, source = rtp.recvfrom(2048)  # the sandbox's tone, relayed to where the ACK said
        assert len(packet) == 172 and packet[1] & 0x7F == 0  # 20 ms of PCMU
        assert source[1] == int(offer.split("m=audio ", 1)[1].split(" ", 1)[0])
        bye = ack.split(CRLF.encode() * 2)[0].replace(b"ACK ", b"BYE ", 1)
        bye = bye.replace(b"CSeq: 1 ACK", b"CSeq: 2 BYE").replace(
            b"Content-Type: application/sdp\r\n", b""
        )
        bye = bye.split(b"Content-Length:")[0] + b"Content-Length: 0\r\n\r\n"
        bye = bye.replace(b";branch=z9hG4bK", b";branch=z9hG4bKbye", 1)  # its own transaction
        assert status_of(udp.ask(bye)) == 200
