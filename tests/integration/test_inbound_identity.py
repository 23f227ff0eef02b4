"""Callers that are not numbers, through the real ``b2bua serve``: a trusted peer's call from
the anonymous caller of RFC 3323 or from ``alice`` reaches a SIPp gateway showing that very
identity in its From (never an extension of the peer's organization), and completes with
200/ACK/BYE, also on a server whose SIP domain and listeners are IPv6 (``::1``).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable

import pytest

from .harness import DEFAULT_DIRECTORY, B2buaServer, Sipp

CRLF = "\r\n"

# organization 5 has no extension at all: its peer's calls once went out as "sip:@domain"
NO_PHONES_ORG = """
[[organizations]]
id = 5
code = "0005"
name = "No Phones Org"
"""


def directory(gateway: Sipp, peer_host: str, organization: int) -> str:
    return (
        DEFAULT_DIRECTORY
        + NO_PHONES_ORG
        + f'\n[[routes]]\nprefix = "5354"\ngateway = "udp:{gateway.address}"\nrate = 0.02\n'
        + f'\n[[peers]]\naddress = "{peer_host}"\norganization = {organization}\n'
    )


def _header(message: str, name: str) -> str | None:
    for line in message.split(CRLF):
        if line.lower().startswith(name.lower() + ":"):
            return line.split(":", 1)[1].strip()
    return None


def _status(message: str) -> int:
    return int(message.split(" ", 2)[1])


class TrustedCaller:
    """A trusted peer as raw UDP: one INVITE with an offer, the ACK of its 200, then BYE."""

    def __init__(self, server: tuple[str, int]) -> None:
        host = server[0].strip("[]")
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.server = (host, server[1])
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        self.sock.bind(("::1" if family == socket.AF_INET6 else "127.0.0.1", 0))
        self.sock.settimeout(10.0)
        local = self.sock.getsockname()
        self.local = (
            f"[{local[0]}]:{local[1]}" if family == socket.AF_INET6 else f"{local[0]}:{local[1]}"
        )
        self.ip6 = family == socket.AF_INET6
        self.call_id = f"{os.urandom(8).hex()}@test"

    def _send(self, lines: list[str], body: str = "") -> None:
        head = [*lines, f"Content-Length: {len(body.encode())}", "", ""]
        self.sock.sendto((CRLF.join(head) + body).encode(), self.server)

    def _final(self) -> str:
        while True:
            reply = self.sock.recv(65535).decode()
            if reply.startswith("SIP/2.0 ") and _status(reply) >= 200:
                return reply

    def call(self, from_header: str, dialled: str) -> list[int]:
        """Place the call, talk a moment, hang up; the final statuses of INVITE and BYE."""
        server_host = f"[{self.server[0]}]" if self.ip6 else self.server[0]
        ip = "IP6" if self.ip6 else "IP4"
        media_host = self.server[0] if not self.ip6 else "::1"
        offer = (
            f"v=0\r\no=- 1 1 IN {ip} {media_host}\r\ns=-\r\nc=IN {ip} {media_host}\r\nt=0 0\r\n"
            "m=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n"
        )
        uri = f"sip:{dialled}@{server_host}:{self.server[1]}"
        common = [
            f"From: {from_header};tag=caller1",
            f"Call-ID: {self.call_id}",
            "Max-Forwards: 70",
        ]
        self._send(
            [
                f"INVITE {uri} SIP/2.0",
                f"Via: SIP/2.0/UDP {self.local};branch=z9hG4bK{os.urandom(6).hex()};rport",
                f"To: <{uri}>",
                *common,
                "CSeq: 1 INVITE",
                f"Contact: <sip:caller@{self.local}>",
                "Content-Type: application/sdp",
            ],
            offer,
        )
        answer = self._final()
        statuses = [_status(answer)]
        if statuses[0] != 200:
            return statuses
        contact = (_header(answer, "Contact") or "").split("<", 1)[-1].split(">", 1)[0]
        to = _header(answer, "To") or ""
        in_dialog = [f"To: {to}", *common]
        self._send(
            [
                f"ACK {contact} SIP/2.0",
                f"Via: SIP/2.0/UDP {self.local};branch=z9hG4bK{os.urandom(6).hex()}",
                *in_dialog,
                "CSeq: 1 ACK",
            ]
        )
        self._send(
            [
                f"BYE {contact} SIP/2.0",
                f"Via: SIP/2.0/UDP {self.local};branch=z9hG4bK{os.urandom(6).hex()};rport",
                *in_dialog,
                "CSeq: 2 BYE",
            ]
        )
        statuses.append(_status(self._final()))
        return statuses

    def close(self) -> None:
        self.sock.close()


@pytest.mark.parametrize(
    ("from_header", "organization", "user", "host"),
    [
        # RFC 3323: anonymous stays anonymous, in an organization that has phones
        ('"Anonymous" <sip:anonymous@anonymous.invalid>', 3, "anonymous", "anonymous.invalid"),
        # a name, not a number, from a peer whose organization has no phone at all
        ('"Alice" <sip:alice@198.51.100.7>', 5, "alice", "voip.example.com"),
        ("<sip:alice@198.51.100.7>", 3, "alice", "voip.example.com"),
    ],
)
def test_a_trusted_peers_caller_that_is_not_a_number_reaches_the_gateway_as_itself(
    gateway: Callable[..., Sipp],
    b2bua_factory: Callable[..., B2buaServer],
    from_header: str,
    organization: int,
    user: str,
    host: str,
) -> None:
    gw = gateway("gateway_answer.xml", timeout=20)
    server = b2bua_factory(directory=directory(gw, "127.0.0.1", organization))
    assert server.sip_udp is not None
    caller = TrustedCaller(server.sip_udp)
    try:
        assert caller.call(from_header, "5354353") == [200, 200]
    finally:
        caller.close()
    assert gw.wait(timeout=15) == 0, gw.describe()
    invite = gw.received("INVITE")[0]
    shown = invite.header("From") or ""
    assert f"<sip:{user}@{host}>" in shown, shown
    assert "0003*210" not in shown and "sip:@" not in shown
    assert gw.received("ACK") and gw.received("BYE")  # the call completed end to end


@pytest.mark.parametrize("domain", ["::1", "[::1]"])
def test_a_server_on_ipv6_with_domain_1_completes_a_call(
    gateway: Callable[..., Sipp], b2bua_factory: Callable[..., B2buaServer], domain: str
) -> None:
    """``[sip] domain = "::1"`` (or ``"[::1]"``) on IPv6 listeners: the gateway's answers
    echo our From (once ``sip:x@::1``, which our parser refused, so the 200 was dropped)."""
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as probe:
            probe.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback here")
    gw = gateway("gateway_answer.xml", timeout=20, host="::1")
    server = b2bua_factory(
        directory=directory(gw, "[::1]", 3),
        config={
            "sip": {"listen": ["udp:[::1]:0", "tcp:[::1]:0"], "domain": domain},
            "media": {"address": "[::1]"},
        },
    )
    assert server.sip_udp is not None
    caller = TrustedCaller(server.sip_udp)
    try:
        assert caller.call("<sip:alice@[::1]>", "5354353") == [200, 200]
    finally:
        caller.close()
    assert gw.wait(timeout=15) == 0, gw.describe()
    shown = gw.received("INVITE")[0].header("From") or ""
    assert "<sip:alice@[::1]>" in shown, shown
    assert gw.received("ACK") and gw.received("BYE")
