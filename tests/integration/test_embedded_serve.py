"""``b2bua.server.serve`` embedded in a trio run of one's own, as README's Embedding section says.

Real listeners on free ports, the real relay process and store; the test is the embedder. What
it checks is what an embedder relies on: once ``nursery.start`` returns the ``Running``, SIP and
the API already answer with the whole server behind them (the API's first request reaches the
UAPI app, a call created over HTTP is the engine's ``Running.engine``), and setting
``Running.shutdown`` drains and returns.
"""

from __future__ import annotations

import functools
import os
import socket
from pathlib import Path

import httpx
import pytest
import trio

from b2bua.server import serve
from engine.config import load_config
from engine.model import CallState
from engine.store import open_store

from .harness import LOCALHOST, free_port_range

pytestmark = pytest.mark.integration


def _options(host: str, port: int) -> bytes:
    return (
        "OPTIONS sip:voip.example.com SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {host}:{port};branch=z9hG4bK{os.urandom(6).hex()}\r\n"
        "From: <sip:embedder@127.0.0.1>;tag=e1\r\n"
        "To: <sip:voip.example.com>\r\n"
        f"Call-ID: {os.urandom(8).hex()}@127.0.0.1\r\n"
        "CSeq: 1 OPTIONS\r\n"
        "Max-Forwards: 70\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()


async def test_an_embedded_server_answers_sip_and_the_api_once_started(tmp_path: Path) -> None:
    low, high = free_port_range(20)
    path = tmp_path / "embedded.toml"
    path.write_text(
        f'[sip]\nlisten = ["udp:{LOCALHOST}:0"]\n[api]\nlisten = "{LOCALHOST}:0"\n'
        f"[media]\nports = [{low}, {high}]\n"
        f'[store]\nurl = "sqlite:///{tmp_path / "b2bua.sqlite"}"\n[calls]\ndrain = 2\n'
    )
    lines: list[str] = []
    with trio.fail_after(60):  # a bound for a broken build, not a timing assumption
        async with trio.open_nursery() as nursery:
            running = await nursery.start(
                functools.partial(
                    serve,
                    load_config(path),
                    announce=lines.append,
                    handle_signals=False,
                    freeze_gc=False,
                )
            )
            assert f"listening api {running.api_url}" in lines
            async with httpx.AsyncClient(base_url=running.api_url) as client:
                # the API's first request: an App's token, from the UAPI app itself
                token = await client.post(
                    "/oauth/token.php",
                    data={
                        "grant_type": "client_credentials",
                        "client_id": "demo-user-app",
                        "client_secret": "demo-user-secret",
                    },
                )
                assert token.status_code == 200, token.text
                created = await client.post(
                    "/uapi/phoneCalls/@me/simple",
                    headers={"Authorization": f"Bearer {token.json()['access_token']}"},
                    json={
                        "extension": "210",
                        "phoneCallView": [{"source": ["0003*08"], "destination": ["0003*01"]}],
                    },
                )
                assert created.status_code == 202, created.text
            call_id = created.json()[0]["id"]
            # the app's engine is the embedder's engine
            call = running.engine.get_call(call_id)
            assert call is not None and running.engine.live_count == 1

            (transport, host, port), *_ = running.sip
            assert transport == "udp"
            with trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as phone:
                await phone.bind((LOCALHOST, 0))
                await phone.sendto(_options(*phone.getsockname()[:2]), (host, port))
                answer = await phone.recv(65535)
            assert answer.startswith(b"SIP/2.0 200 "), answer[:80]

            running.shutdown.set()  # drains (hangs the ringing call up) and returns
    assert running.engine.live_count == 0
    store = open_store(f"sqlite:///{tmp_path / 'b2bua.sqlite'}")
    try:
        ended = store.get_call(call_id)
    finally:
        store.close()
    assert ended is not None and ended.state == CallState.ENDED
