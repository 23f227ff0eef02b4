"""Authentication hardening of the real ``b2bua serve``: digest replays, password guessing on
SIP and at the token endpoint, and bytes that are not UTF-8 in digest parameters.

The clients here are raw UDP sockets (and httpx for the API) so that a test controls every
byte; the credentials are computed with the project's own client code (``sip.digest``), as a
phone would compute them. Other source addresses are other loopback addresses (127.0.0.2...),
which Linux routes to ``lo`` like 127.0.0.1.
"""

from __future__ import annotations

import math
import os
import re
import socket
import time
from collections.abc import Callable

import httpx

from sip.digest import authorize, choose_challenge
from tests.sip.fixed_random import CNONCE

from .harness import DEFAULT_DIRECTORY, B2buaServer

CRLF = "\r\n"
DOMAIN = "voip.example.com"
GATEWAY_NUMBER = "5354353"


class Phone:
    """A SIP user agent on a raw UDP socket: it sends what it is told, byte for byte."""

    def __init__(self, server: tuple[str, int], host: str = "127.0.0.1") -> None:
        self.server = server
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, 0))
        self.sock.settimeout(5.0)
        self.host, self.port = self.sock.getsockname()
        self.cseq = 0

    def close(self) -> None:
        self.sock.close()

    def request(
        self,
        method: str,
        uri: str,
        *,
        to_user: str,
        from_user: str = "0003*210",
        call_id: str | None = None,
        headers: tuple[str, ...] = (),
        contact: str | None = None,
    ) -> bytes:
        self.cseq += 1
        lines = [
            f"{method} {uri} SIP/2.0",
            f"Via: SIP/2.0/UDP {self.host}:{self.port};branch=z9hG4bK{os.urandom(6).hex()};rport",
            f"From: <sip:{from_user}@{DOMAIN}>;tag={os.urandom(4).hex()}",
            f"To: <sip:{to_user}@{DOMAIN}>",
            f"Call-ID: {call_id or os.urandom(8).hex()}@{self.host}",
            f"CSeq: {self.cseq} {method}",
            "Max-Forwards: 70",
            f"Contact: <{contact or f'sip:phone@{self.host}:{self.port}'}>",
            *headers,
            "Content-Length: 0",
            "",
            "",
        ]
        return CRLF.join(lines).encode()

    def ask(self, data: bytes) -> str:
        """Send ``data``; the first final response (provisional ones are skipped)."""
        self.sock.sendto(data, self.server)
        while True:
            reply = self.sock.recv(65535).decode("utf-8", "replace")
            if status_of(reply) >= 200:
                return reply

    def register(self, headers: tuple[str, ...] = (), contact: str | None = None) -> str:
        data = self.request(
            "REGISTER", f"sip:{DOMAIN}", to_user="0003*210", headers=headers, contact=contact
        )
        return self.ask(data)


def status_of(reply: str) -> int:
    return int(reply.split(" ", 2)[1])


def reason_of(reply: str) -> str:
    return reply.split(CRLF, 1)[0].split(" ", 2)[2]


def headers_of(reply: str, name: str) -> list[str]:
    head = reply.split(CRLF * 2, 1)[0]
    return [
        line.split(":", 1)[1].strip()
        for line in head.split(CRLF)
        if line.lower().startswith(name.lower() + ":")
    ]


def credentials(reply: str, method: str, uri: str, password: str, nc: int = 1) -> str:
    """Answer the challenge of a 401/407 ``reply`` as a phone would."""
    name = "WWW-Authenticate" if status_of(reply) == 401 else "Proxy-Authenticate"
    challenge = choose_challenge(headers_of(reply, name))
    return authorize(method, uri, challenge, "0003*210", password, nc=nc, cnonce=CNONCE)


def contacts_of(reply: str) -> list[str]:
    return re.findall(r"<([^>]+)>", " ".join(headers_of(reply, "Contact")))


def test_a_replayed_register_from_another_address_is_refused_and_binds_nothing(
    b2bua: B2buaServer,
) -> None:
    assert b2bua.sip_udp is not None
    phone, attacker = Phone(b2bua.sip_udp), Phone(b2bua.sip_udp, host="127.0.0.2")
    try:
        challenge = phone.register()
        assert status_of(challenge) == 401
        captured = credentials(challenge, "REGISTER", f"sip:{DOMAIN}", "secret210")
        reply = phone.register((f"Authorization: {captured}",))
        assert status_of(reply) == 200
        assert contacts_of(reply) == [f"sip:phone@127.0.0.1:{phone.port}"]
        # the captured Authorization, replayed with the attacker's Contact
        evil = f"sip:evil@127.0.0.2:{attacker.port}"
        replay = attacker.register((f"Authorization: {captured}",), contact=evil)
        assert status_of(replay) == 401, replay
        assert all("stale=true" in v for v in headers_of(replay, "WWW-Authenticate"))
        # and from the phone's own address too
        assert status_of(phone.register((f"Authorization: {captured}",), contact=evil)) == 401
        # the phone refreshes with the next count: its binding is the only one
        again = credentials(challenge, "REGISTER", f"sip:{DOMAIN}", "secret210", nc=2)
        reply = phone.register((f"Authorization: {again}",))
        assert status_of(reply) == 200
        assert contacts_of(reply) == [f"sip:phone@127.0.0.1:{phone.port}"]
    finally:
        phone.close()
        attacker.close()


def test_a_replayed_invite_never_reaches_the_gateway(
    b2bua_factory: Callable[..., B2buaServer],
) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as gateway:
        gateway.bind(("127.0.0.1", 0))
        route = (
            f'\n[[routes]]\nprefix = "{GATEWAY_NUMBER}"\n'
            f'gateway = "udp:127.0.0.1:{gateway.getsockname()[1]}"\n'
        )
        server = b2bua_factory(directory=DEFAULT_DIRECTORY + route, config={"calls": {"drain": 1}})
        assert server.sip_udp is not None
        phone, attacker = Phone(server.sip_udp), Phone(server.sip_udp, host="127.0.0.2")
        uri = f"sip:{GATEWAY_NUMBER}@{DOMAIN}"
        try:
            call_id = "genuine"
            challenge = phone.ask(
                phone.request("INVITE", uri, to_user=GATEWAY_NUMBER, call_id=call_id)
            )
            assert status_of(challenge) == 407
            captured = credentials(challenge, "INVITE", uri, "secret210")
            header = f"Proxy-Authorization: {captured}"
            invite = phone.request(
                "INVITE", uri, to_user=GATEWAY_NUMBER, call_id=call_id, headers=(header,)
            )
            phone.sock.sendto(invite, server.sip_udp)
            gateway.settimeout(5.0)
            first, _ = gateway.recvfrom(65535)  # the genuine call reaches the gateway
            assert first.startswith(f"INVITE sip:{GATEWAY_NUMBER}@".encode())
            genuine_call_id = headers_of(first.decode(), "Call-ID")
            # the same Proxy-Authorization in a new INVITE, from elsewhere and from the phone
            for sender in (attacker, phone):
                replay = sender.request("INVITE", uri, to_user=GATEWAY_NUMBER, headers=(header,))
                reply = sender.ask(replay)
                assert status_of(reply) == 407, reply
                assert "stale=true" in " ".join(headers_of(reply, "Proxy-Authenticate"))
            # whatever reaches the gateway now belongs to the genuine call (retransmissions)
            gateway.settimeout(1.5)
            deadline = time.monotonic() + 1.5
            while time.monotonic() < deadline:
                try:
                    data, _ = gateway.recvfrom(65535)
                except TimeoutError:
                    break
                if data.startswith(b"INVITE "):
                    assert headers_of(data.decode(), "Call-ID") == genuine_call_id
        finally:
            phone.close()
            attacker.close()


def test_guessing_sip_passwords_is_refused_and_logged_while_the_phone_registers(
    b2bua: B2buaServer,
) -> None:
    assert b2bua.sip_udp is not None
    phone, attacker = Phone(b2bua.sip_udp), Phone(b2bua.sip_udp, host="127.0.0.2")
    try:
        challenge = phone.register()
        good = credentials(challenge, "REGISTER", f"sip:{DOMAIN}", "secret210")
        assert status_of(phone.register((f"Authorization: {good}",))) == 200
        challenge = attacker.register()
        replies = []
        started = time.monotonic()
        for i in range(300):
            guess = credentials(challenge, "REGISTER", f"sip:{DOMAIN}", f"guess{i}", nc=i + 1)
            replies.append(attacker.register((f"Authorization: {guess}",)))
        elapsed = time.monotonic() - started
        assert all(status_of(r) == 403 for r in replies)
        refused = [r for r in replies if reason_of(r) == "Forbidden (too many failed attempts)"]
        checked = len(replies) - len(refused)
        # 5 guesses, then 1 more per block as blocks of 1, 2, 4... s run out
        assert checked <= 5 + 1 + math.ceil(math.log2(elapsed + 1)), (checked, elapsed)
        assert all(int(headers_of(r, "Retry-After")[0]) >= 1 for r in refused)
        line = b2bua.wait_for_output(r"WARNING .*blocking source 127\.0\.0\.2 ")
        assert "sip digest" in line and "'0003*210'" in line
        # meanwhile the phone, from its own address, refreshes as usual
        challenge = phone.register()
        good = credentials(challenge, "REGISTER", f"sip:{DOMAIN}", "secret210")
        assert status_of(phone.register((f"Authorization: {good}",))) == 200
    finally:
        phone.close()
        attacker.close()


def test_guessing_client_secrets_gets_429_while_the_real_client_gets_its_token(
    b2bua: B2buaServer,
) -> None:
    url = f"{b2bua.api_url}/oauth/token.php"

    def form(client_id: str, secret: str) -> dict[str, str]:
        return {"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret}

    def client_from(host: str) -> httpx.Client:
        return httpx.Client(transport=httpx.HTTPTransport(local_address=host), timeout=10)

    with (
        client_from("127.0.0.1") as real,
        client_from("127.0.0.2") as attacker,
        client_from("127.0.0.3") as other,
    ):
        assert real.post(url, data=form("test-user-app", "test-user-secret")).status_code == 200
        statuses = []
        for i in range(500):
            response = attacker.post(url, data=form("test-user-app", f"guess{i}"))
            statuses.append(response.status_code)
            if response.status_code == 429:
                assert response.json()["error"] == "slow_down"
                assert int(response.headers["Retry-After"]) >= 1
        assert set(statuses) == {401, 429}
        assert statuses.count(429) >= 450, statuses.count(401)
        assert real.post(url, data=form("test-user-app", "test-user-secret")).status_code == 200
        assert other.post(url, data=form("test-org-app", "test-org-secret")).status_code == 200
    line = b2bua.wait_for_output(r"WARNING .*blocking source 127\.0\.0\.2 ")
    assert "api token" in line and "'test-user-app'" in line


def test_register_with_bytes_that_are_not_utf8_gets_4xx_and_no_traceback(
    b2bua: B2buaServer,
) -> None:
    assert b2bua.sip_udp is not None
    phone = Phone(b2bua.sip_udp)
    try:
        challenge = phone.register()
        good = credentials(challenge, "REGISTER", f"sip:{DOMAIN}", "secret210")
        bad = good.replace('cnonce="', 'cnonce="BAD', 1)
        statuses = set()
        for _ in range(1000):
            data = phone.request(
                "REGISTER", f"sip:{DOMAIN}", to_user="0003*210", headers=(f"Authorization: {bad}",)
            ).replace(b'cnonce="BAD', b'cnonce="\xff\xfe', 1)
            reply = phone.ask(data)
            statuses.add(status_of(reply))
        assert statuses == {400}
        assert "not UTF-8" in reason_of(reply)
        assert status_of(phone.register((f"Authorization: {good}",))) == 200
        assert b2bua.running
        assert "Traceback" not in b2bua.output()
    finally:
        phone.close()


def test_digest_algorithms_set_the_challenges_and_their_order(
    b2bua_factory: Callable[..., B2buaServer],
) -> None:
    for algorithms in (["MD5"], ["SHA-256", "MD5"]):
        server = b2bua_factory(config={"sip": {"digest_algorithms": algorithms}})
        assert server.sip_udp is not None
        phone = Phone(server.sip_udp)
        try:
            reply = phone.register()
            assert status_of(reply) == 401
            offered = [
                re.search(r"algorithm=([\w-]+)", v).group(1)  # type: ignore[union-attr]
                for v in headers_of(reply, "WWW-Authenticate")
            ]
            assert offered == algorithms
            invite = phone.request("INVITE", f"sip:0003*211@{DOMAIN}", to_user="0003*211")
            reply = phone.ask(invite)
            assert status_of(reply) == 407
            offered = [
                re.search(r"algorithm=([\w-]+)", v).group(1)  # type: ignore[union-attr]
                for v in headers_of(reply, "Proxy-Authenticate")
            ]
            assert offered == algorithms
            # and the preferred one works end to end
            good = credentials(phone.register(), "REGISTER", f"sip:{DOMAIN}", "secret210")
            assert f"algorithm={algorithms[0]}" in good
            assert status_of(phone.register((f"Authorization: {good}",))) == 200
        finally:
            phone.close()
