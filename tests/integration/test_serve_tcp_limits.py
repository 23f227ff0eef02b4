"""``b2bua serve`` against TCP abuse: more connections than allowed, CRLF keep-alives alone.

Small ``[sip]`` limits in the server's config, raw sockets from 127.0.0.1, and a SIPp phone
over TCP to show that a normal client is still served afterwards.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import time
from collections.abc import Callable

import pytest

from .harness import B2buaServer, Sipp
from .uapi import Uapi

pytestmark = pytest.mark.integration


def options(conn: socket.socket) -> bytes:
    host, port = conn.getsockname()[:2]
    branch = "z9hG4bK" + os.urandom(6).hex()
    return (
        "OPTIONS sip:voip.example.com SIP/2.0\r\n"
        f"Via: SIP/2.0/TCP {host}:{port};branch={branch}\r\n"
        "From: <sip:tester@127.0.0.1>;tag=t1\r\n"
        "To: <sip:service@voip.example.com>\r\n"
        f"Call-ID: {os.urandom(8).hex()}@127.0.0.1\r\n"
        "CSeq: 1 OPTIONS\r\n"
        "Max-Forwards: 70\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()


def closed_by_server(conn: socket.socket, wait: float) -> bool:
    """True when the server closed ``conn`` (end of stream or reset) within ``wait`` s."""
    conn.settimeout(wait)
    try:
        return conn.recv(65535) == b""
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True


def test_idle_connections_over_the_limit_are_closed_and_a_tcp_phone_still_works(
    b2bua_factory: Callable[..., B2buaServer], gateway: Callable[..., Sipp]
) -> None:
    limit = 5
    server = b2bua_factory(
        config={
            "sip": {
                "max_connections": limit,
                "max_connections_per_source": limit,
                "tcp_idle_timeout": 60,
            }
        }
    )
    assert server.sip_tcp is not None
    conns: list[socket.socket] = []
    refused_at_connect = 0
    for _ in range(limit + 3):  # idle: they never send a byte
        try:
            conns.append(socket.create_connection(server.sip_tcp, timeout=3))
        except ConnectionResetError:  # the reset can come while connecting
            refused_at_connect += 1
    try:
        closed = [c for c in conns if closed_by_server(c, 2.0)]
        still_open = [c for c in conns if c not in closed]
        assert len(closed) + refused_at_connect == 3
        assert len(still_open) == limit
        assert not any(closed_by_server(c, 0.2) for c in still_open)  # kept, within the limit
        line = (
            "tcp connection from 127.0.0.1 refused: 5 open with that address already"
            " (max_connections_per_source 5)"
        )
        server.wait_for_output(re.escape(line), timeout=5)
        assert server.output().count("refused") == 1  # one warning, not one per connection
    finally:
        for conn in conns:
            conn.close()

    # their places are free again: a phone registers over TCP and is called over that connection
    phone = gateway(
        "phone_register.xml",
        remote=server.sip_tcp_address,
        transport="t1",
        service="0003*210",
        auth=("0003*210", "secret210"),
        ooc_scenario="phone_answer.xml",
        rtp_echo=True,
        pause_ms=10000,
    )
    ok = phone.wait_for_message(200, timeout=10)
    # asked for 300 s: a TCP binding lasts no longer than the idle timeout, so the phone's
    # refresh comes before its connection could be closed for idleness
    assert "expires=60" in (ok.header("Contact") or ""), ok
    api = Uapi(server.api_url, "test-user-app", "test-user-secret")
    call_id = api.call_id(api.create(["0003*210"], ["0003*00"], query={"callDuration": 2}))
    record = api.wait_ended(call_id, timeout=20)
    api.close()
    assert record["disposition"] == 0, record
    invites = phone.received("INVITE")
    assert invites and invites[0].transport == "TCP"
    assert phone.received("BYE")


def test_crlf_keepalives_alone_do_not_keep_a_tcp_connection_open(
    b2bua_factory: Callable[..., B2buaServer],
) -> None:
    server = b2bua_factory(config={"sip": {"tcp_idle_timeout": 2}})
    assert server.sip_tcp is not None
    with contextlib.ExitStack() as stack:
        talker = stack.enter_context(socket.create_connection(server.sip_tcp, timeout=3))
        talker.sendall(options(talker))
        assert talker.recv(65535).startswith(b"SIP/2.0 200 ")
        pinger = stack.enter_context(socket.create_connection(server.sip_tcp, timeout=3))
        start = time.monotonic()  # the talker's last message and the pinger's opening
        closed_after: dict[str, float] = {}
        pongs = {"talker": 0, "pinger": 0}
        conns = {"talker": talker, "pinger": pinger}
        while len(closed_after) < 2 and time.monotonic() - start < 15:
            for name, conn in conns.items():
                if name in closed_after:
                    continue
                try:  # RFC 5626 §4.4.1: a double-CRLF ping, answered with a CRLF pong
                    conn.sendall(b"\r\n\r\n")
                    conn.settimeout(1.0)
                    data = conn.recv(65535)
                except (BrokenPipeError, ConnectionResetError):
                    data = b""
                except TimeoutError:
                    data = b"?"  # no pong: counted as none below
                if not data:
                    closed_after[name] = time.monotonic() - start
                elif data == b"\r\n":
                    pongs[name] += 1
            time.sleep(0.3)
        # the talker's idle timeout runs from its last message, the pinger never sent one
        # (its first deadline is min(30 s, tcp_idle_timeout)); pings moved neither
        assert set(closed_after) == {"talker", "pinger"}, closed_after
        assert all(1.9 <= t <= 8 for t in closed_after.values()), closed_after
        assert pongs["talker"] >= 2 and pongs["pinger"] >= 2, pongs

    # a client that talks SIP is served as before
    with socket.create_connection(server.sip_tcp, timeout=3) as conn:
        conn.sendall(options(conn))
        assert conn.recv(65535).startswith(b"SIP/2.0 200 ")
