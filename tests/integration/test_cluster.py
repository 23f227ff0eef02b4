"""A cluster with the real parts: two ``b2bua serve`` nodes on one PostgreSQL database, the
project's reference Kamailio config in front of them, SIPp phones registered through Kamailio.

One PostgreSQL server (the session's), one Kamailio and one pair of nodes serve the whole
module (``cluster``); the kill -9 test, which needs a node to lose, comes last and uses nodes
of its own (on a database of their own) behind a Kamailio of its own.
"""

from __future__ import annotations

import signal
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from sip.digest import authorize, choose_challenge
from sip.message import Response, parse_message
from tests.pg import PgServer

from .harness import B2buaServer, Sipp
from .kamailio import Kamailio
from .test_restart_callbacks import _Receiver
from .uapi import Uapi

SECRET = "a long shared cluster secret for the tests"
HEARTBEAT = 1
FAILOVER = 3


@dataclass
class Cluster:
    kamailio: Kamailio
    nodes: list[B2buaServer]
    store_url: str

    def api(self, index: int) -> Uapi:
        return Uapi(self.nodes[index].api_url, "test-user-app", "test-user-secret")


def start_nodes(workdir: Path, names: list[str], store_url: str) -> list[B2buaServer]:
    nodes = []
    for name in names:
        config = {
            "store": {"url": store_url},
            "cluster": {
                "node": name,
                "secret": SECRET,
                "heartbeat": HEARTBEAT,
                "failover": FAILOVER,
            },
        }
        nodes.append(B2buaServer(workdir / name, config=config).start())
    return nodes


def start_cluster(workdir: Path, names: list[str], store_url: str) -> Cluster:
    nodes = start_nodes(workdir, names, store_url)
    try:
        kamailio = Kamailio(workdir, [node.sip_address for node in nodes]).start()
    except BaseException:
        for node in nodes:
            node.stop()
        raise
    return Cluster(kamailio, nodes, store_url)


def stop_cluster(cluster: Cluster) -> None:
    cluster.kamailio.stop()
    for node in cluster.nodes:
        if node.returncode is None and node.running:
            node.stop()


@pytest.fixture(scope="module")
def cluster(
    tmp_path_factory: pytest.TempPathFactory, postgres_server: PgServer
) -> Iterator[Cluster]:
    database = postgres_server.new_database()
    try:
        started = start_cluster(
            tmp_path_factory.mktemp("cluster"), ["node-a", "node-b"], postgres_server.url(database)
        )
        yield started
        stop_cluster(started)
    finally:
        postgres_server.drop_database(database)


def phone_through(
    gateway: Callable[..., Sipp], kamailio: Kamailio, extended: str, password: str
) -> Sipp:
    """A SIPp phone registered through Kamailio that answers every call, echoing RTP."""
    phone = gateway(
        "phone_register.xml",
        remote=kamailio.address,
        service=extended,
        auth=(extended, password),
        ooc_scenario="phone_answer_proxied.xml",
        rtp_echo=True,
        pause_ms=60000,
        timeout=90,
    )
    phone.wait_for_message(200, timeout=10)
    # the node that took the REGISTER has the binding at once, the others reload it from the
    # database every second (the store's copy of the contacts)
    time.sleep(1.5)
    return phone


def media(record: dict[str, Any], index: int) -> dict[str, int]:
    return dict(record["phoneCallView"][index].get("media", {}).get("audio", {}))


def test_phones_registered_through_kamailio_ring_for_calls_created_on_either_node(
    cluster: Cluster, gateway: Callable[..., Sipp]
) -> None:
    phone = phone_through(gateway, cluster.kamailio, "0003*210", "secret210")
    # Kamailio gave the REGISTER to one node; a call is created on each, so one of them
    # rings a phone registered on the other
    for index in (0, 1):
        api = cluster.api(index)
        call_id = api.call_id(api.create(["0003*210"], ["0003*00"], query={"callDuration": 3}))
        record = api.wait_ended(call_id, timeout=20)
        assert record["disposition"] == 0, (record, cluster.kamailio.describe())
        # the sandbox's tone reached the phone and its echo came back, through the relay of
        # the node that created the call
        assert media(record, 0)["rtp_packets_sent"] > 50
        assert media(record, 0)["rtp_packets_received"] > 50
    invites = phone.received("INVITE")
    assert len(invites) == 2
    kamailio_port = cluster.kamailio.port
    for invite in invites:
        # through Kamailio (the Path it added at REGISTER), which stays in the dialog
        assert str(kamailio_port) in (invite.header("Record-Route") or ""), invite
        assert (invite.header("Via") or "").count("127.0.0.1") >= 1
    assert len(phone.received("BYE")) == 2
    # the legs ended normally: no dialog state is left behind for a failover to BYE
    assert stored_dialogs(cluster.store_url) == 0


def stored_dialogs(url: str) -> int:
    import psycopg

    with psycopg.connect(url, autocommit=True) as db:
        row = db.execute("SELECT count(*) FROM dialogs").fetchone()
    assert row is not None
    return int(row[0])


def test_token_digest_challenge_and_nonce_work_across_nodes(cluster: Cluster) -> None:
    a, b = cluster.nodes
    # a token of node A is accepted by node B
    token_a = cluster.api(0).headers
    reply = httpx.get(f"{b.api_url}/uapi/phoneCalls/@me/210", headers=token_a, timeout=10)
    assert reply.status_code in (200, 204), reply.text
    # an idempotent create's nonce sent to A then to B reaches the same call
    nonce = uuid.uuid4().hex
    body = {
        "extension": "210",
        "phoneCallView": [{"source": ["0003*00"], "destination": ["0003*01"], "nonce": nonce}],
    }
    first = httpx.post(
        f"{a.api_url}/uapi/phoneCalls/@me/simple", json=body, headers=token_a, timeout=10
    )
    again = httpx.post(
        f"{b.api_url}/uapi/phoneCalls/@me/simple", json=body, headers=token_a, timeout=10
    )
    assert first.status_code == 202 and again.status_code == 202, again.text
    assert again.json()[0]["id"] == first.json()[0]["id"]
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert cluster.api(1).hangup(first.json()[0]["id"]).status_code == 200
    # a digest challenge of node A answered to node B registers the phone; the same
    # credentials replayed to A are a replay there (the counts are shared)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(5)
        challenge = sip_exchange(sock, a, register_message(sock, 1))
        assert challenge.status == 401
        chosen = choose_challenge(challenge.headers.get_all("WWW-Authenticate"))
        creds = authorize(
            "REGISTER", "sip:voip.example.com", chosen, "0003*211", "secret211", cnonce="c0ffee"
        )
        ok = sip_exchange(sock, b, register_message(sock, 2, creds))
        assert ok.status == 200, ok
        replayed = sip_exchange(sock, a, register_message(sock, 3, creds))
        assert replayed.status == 401
        assert "stale=true" in (replayed.headers.get("WWW-Authenticate") or "")


def register_message(
    sock: socket.socket, cseq: int, creds: str | None = None, *, call_id: str = ""
) -> bytes:
    port = sock.getsockname()[1]
    lines = [
        "REGISTER sip:voip.example.com SIP/2.0",
        f"Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK{uuid.uuid4().hex[:12]};rport",
        "From: <sip:0003*211@voip.example.com>;tag=crossnode",
        "To: <sip:0003*211@voip.example.com>",
        f"Call-ID: {call_id or 'crossnode'}-{port}@127.0.0.1",
        f"CSeq: {cseq} REGISTER",
        "Max-Forwards: 70",
        f"Contact: <sip:0003*211@127.0.0.1:{port}>;expires=60",
    ]
    if creds:
        lines.append(f"Authorization: {creds}")
    return ("\r\n".join([*lines, "Content-Length: 0", "", ""])).encode()


def sip_exchange(sock: socket.socket, node: B2buaServer, data: bytes) -> Response:
    host, port = node.sip_udp or ("", 0)
    sock.sendto(data, (host, port))
    return sip_response(sock)


def sip_response(sock: socket.socket) -> Response:
    while True:
        raw, _ = sock.recvfrom(65535)
        message = parse_message(raw)
        if isinstance(message, Response) and message.status >= 200:
            return message


def test_get_put_events_and_delete_on_the_node_that_does_not_own_the_call(
    cluster: Cluster,
) -> None:
    owner, other = cluster.api(0), cluster.api(1)
    call_id = owner.call_id(owner.create(["0003*00"], ["0003*01"], query={"callDuration": 60}))
    record = other.wait(call_id, lambda r: r.get("state") == "bridged", timeout=15)
    assert record["id"] == call_id
    base = f"{cluster.nodes[1].api_url}/uapi/phoneCalls/@me/210/{call_id}"
    # the live event stream, from the node that does not run the call
    seen: list[str] = []
    with httpx.stream("GET", base + "/events", headers=other.headers, timeout=10) as stream:
        assert stream.status_code == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
        for line in stream.iter_lines():
            if line.startswith("event: "):
                seen.append(line.removeprefix("event: "))
            if "bridged" in seen:
                break
    assert seen[0] == "created" and "bridged" in seen
    # an action carried out by the owner
    held = other.act(call_id, {"action": "OnHold", "phoneCallViewId": "1"})
    assert held.status_code == 200, held.text
    assert held.json()["entry"][0]["id"] == call_id
    on_hold = owner.wait(call_id, lambda r: r["phoneCallView"][1].get("onHold") is not None)
    assert on_hold["state"] == "bridged"
    # hang-up carried out by the owner, answered as if local
    gone = other.hangup(call_id)
    assert gone.status_code == 200, gone.text
    assert gone.json() == {"entry": [{"id": call_id}]}
    ended = other.wait_ended(call_id, timeout=10)
    assert ended["hangupCause"] == "hung up via the API"
    # and a call that is over is answered from the store, by any node
    assert other.hangup(call_id).status_code == 204


def test_a_delete_of_all_calls_on_one_node_hangs_up_those_of_every_node(cluster: Cluster) -> None:
    a, b = cluster.api(0), cluster.api(1)
    ids = [
        api.call_id(api.create(["0003*00"], ["0003*01"], query={"callDuration": 60}))
        for api in (a, b)
    ]
    for call_id in ids:
        a.wait(call_id, lambda r: r.get("state") == "bridged", timeout=15)
    reply = httpx.delete(
        f"{cluster.nodes[1].api_url}/uapi/phoneCalls/@me/210", headers=b.headers, timeout=10
    )
    assert reply.status_code == 200, reply.text
    hung_up = [entry["id"] for entry in reply.json()["entry"]]
    assert set(ids) <= set(hung_up) and len(hung_up) == len(set(hung_up))  # each once
    for call_id in ids:
        assert b.wait_ended(call_id, timeout=10)["hangupCause"] == "hung up via the API"


@pytest.fixture
def receiver() -> Iterator[_Receiver]:
    server = _Receiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_kill_9_of_a_node_with_live_calls_the_survivor_byes_every_answered_leg(
    tmp_path: Path, gateway: Callable[..., Sipp], receiver: _Receiver, pg_url: str
) -> None:
    calls = 20
    own = start_cluster(tmp_path, ["node-c", "node-d"], pg_url)
    try:
        caller = phone_through(gateway, own.kamailio, "0003*210", "secret210")
        callee = phone_through(gateway, own.kamailio, "0003*211", "secret211")
        victim, survivor = own.api(1), own.api(0)
        ids = [
            victim.call_id(victim.create(["0003*210"], ["0003*211"], query={"callDuration": 120}))
            for _ in range(calls)
        ]
        for call_id in ids:
            victim.wait(call_id, lambda r: r.get("state") == "bridged", timeout=30)
        # and a phone calling through the node that dies (the inbound side: we answered it)
        inbound = gateway(
            "caller_invite.xml",
            remote=own.nodes[1].sip_address,
            service="211",
            keywords={"caller": "0003*210"},
            auth=("0003*210", "secret210"),
            rtp_echo=True,
            pause_ms=60000,
            timeout=90,
        )
        inbound.wait_for_message(200, timeout=15)
        # and an App following one call by statusCallback
        followed = victim.call_id(
            victim.client.post(
                "/uapi/phoneCalls/@me/simple",
                params={"callDuration": 120},
                json={
                    "extension": "210",
                    "statusCallback": receiver.url,
                    "phoneCallView": [{"source": ["0003*00"], "destination": ["0003*01"]}],
                },
                headers=victim.headers,
            )
        )
        victim.wait(followed, lambda r: r.get("state") == "bridged", timeout=15)
        time.sleep(HEARTBEAT + 0.5)  # a beat after the last answer
        # every answered leg's dialog is stored: 2 per call between phones (the phone calling
        # through the node and its callee too)
        assert stored_dialogs(pg_url) == 2 * (calls + 1)
        killed_at = time.monotonic()
        own.nodes[1].stop(signal.SIGKILL)
        deadline = killed_at + FAILOVER + 5
        inbound_call = inbound.sent("INVITE")[0].call_id
        while not [e for e in inbound.received("BYE") if e.call_id == inbound_call]:
            assert time.monotonic() < deadline, "the inbound caller got no BYE"
            time.sleep(0.1)
        for phone, legs in ((caller, calls), (callee, calls + 1)):
            invites = {entry.call_id for entry in phone.received("INVITE")}
            assert len(invites) == legs
            while {entry.call_id for entry in phone.received("BYE")} != invites:
                assert time.monotonic() < deadline, (
                    f"{len(invites - {e.call_id for e in phone.received('BYE')})} legs of "
                    f"{phone.name} without BYE {FAILOVER + 5} s after the kill"
                )
                time.sleep(0.1)
        for call_id in [*ids, followed]:
            record = survivor.get(call_id)
            assert record["state"] == "ended", record
            assert "node-d failed" in record["hangupCause"]
            assert record["disposition"] == 0
        # the App following one of them got its final event once, from the survivor
        while not any(p["final"] for _, p in receiver.events()):
            assert time.monotonic() < deadline + 5, receiver.events()
            time.sleep(0.1)
        time.sleep(1)  # a second final event would come now
        finals = [p for _, p in receiver.events() if p["final"]]
        assert len(finals) == 1 and finals[0]["phoneCallId"] == followed
        assert "node-d failed" in finals[0]["data"]["cause"]
        # new requests through Kamailio still get answers: those its Call-ID hash gives to
        # the dead node go to the next one when it does not answer within 2 s
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind(("127.0.0.1", 0))
            sock.settimeout(8)
            host, port = own.kamailio.address.split(":")
            for _ in range(8):
                sock.sendto(register_message(sock, 1, call_id=uuid.uuid4().hex), (host, int(port)))
                reply = sip_response(sock)
                assert reply.status == 401, reply
        # (without the failure route, one sent to the dead node would get 408 from Kamailio;
        # with 8 Call-IDs, all 8 hash to the live node once in 256 runs)
    finally:
        stop_cluster(own)
