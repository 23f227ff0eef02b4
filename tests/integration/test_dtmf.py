"""DTMF through the real ``b2bua serve``: what the other party receives, and the call's events.

A SIPp gateway presses digits in SIP INFO and in RTP (SIPp's own RFC 4733 capture); the other
party's SDP names a UDP socket of the test and telephone-event payload type 96 (the first party
uses 101): that socket must see every digit as telephone-events of payload type 96, and the
call's Server-Sent Events one ``dtmf`` event per digit, naming the party that pressed it. With
pjsua2 softphones, digits dialled as RFC 2833 by one phone reach the other phone.
"""

from __future__ import annotations

import json
import socket
import struct
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx

from .harness import DEFAULT_DIRECTORY, B2buaServer, Sipp
from .sipp_pcaps import sipp_pcap
from .test_calls_sipp import routes
from .uapi import Uapi


class EventFollower:
    """Reads a call's Server-Sent Events in a thread of its own until the final one."""

    def __init__(self, api: Uapi, call_id: str) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []
        self._url = f"{api.client.base_url}/uapi/phoneCalls/@me/210/{call_id}/events"
        self._headers = dict(api.headers)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        name = ""
        with (
            httpx.Client(timeout=60) as client,
            client.stream("GET", self._url, headers=self._headers) as reply,
        ):
            for line in reply.iter_lines():
                if line.startswith("event: "):
                    name = line.removeprefix("event: ")
                elif line.startswith("data: "):
                    self.events.append((name, json.loads(line.removeprefix("data: "))))

    def join(self, timeout: float = 15.0) -> list[tuple[str, dict[str, Any]]]:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "the event stream did not end with the call"
        return self.events

    def digits(self) -> list[tuple[str, str]]:
        return [
            (data["data"]["digit"], data["data"]["party"])
            for name, data in self.events
            if name == "dtmf"
        ]


class RtpCounter:
    """A UDP socket standing for a phone's RTP port: keeps every packet it gets."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.packets: list[bytes] = []
        self._stop = False
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop:
            try:
                self.packets.append(self.sock.recv(2048))
            except TimeoutError:
                continue
            except OSError:
                return

    def close(self) -> None:
        self._stop = True
        self._thread.join(2)
        self.sock.close()

    def telephone_events(self, payload_type: int) -> list[tuple[int, bool, int]]:
        """(event, end bit, RTP timestamp) of each RTP packet of ``payload_type``."""
        found = []
        for packet in self.packets:
            if len(packet) >= 16 and packet[0] & 0xC0 == 0x80 and packet[1] & 0x7F == payload_type:
                timestamp = struct.unpack_from("!I", packet, 4)[0]
                found.append((packet[12], bool(packet[13] & 0x80), timestamp))
        return found

    def payload_types(self) -> set[int]:
        return {p[1] & 0x7F for p in self.packets if len(p) >= 12 and p[0] & 0xC0 == 0x80}


def test_info_and_rtp_digits_reach_the_other_party_with_its_payload_type_and_the_events(
    gateway: Callable[..., Sipp], b2bua_factory: Callable[..., B2buaServer]
) -> None:
    pcap = sipp_pcap("dtmf_2833_1.pcap")  # the digit 1, payload type 101, three ends
    receiver = RtpCounter()
    try:
        dest = gateway(
            "gateway_answer_media_at.xml",
            variables={"rtp_port": str(receiver.port), "te_pt": "96"},
        )
        source = gateway(
            "gateway_answer_dtmf.xml", variables={"wait_ms": "1000"}, files={"dtmf.pcap": pcap}
        )
        server = b2bua_factory(
            directory=DEFAULT_DIRECTORY + routes(p5354353=source, p3235742879=dest)
        )
        api = Uapi(server.api_url, "test-user-app", "test-user-secret")
        call_id = api.call_id(api.create(["5354353"], ["3235742879"], query={"callDuration": 5}))
        follower = EventFollower(api, call_id)
        record = api.wait_ended(call_id, timeout=30)
        events = follower.join()
        source.wait(timeout=15)
        dest.wait(timeout=15)
        time.sleep(0.1)
    finally:
        receiver.close()
    assert record["disposition"] == 0, record
    # both INFOs got 200 (the scenario waits for each)
    assert [e.status for e in source.received(200) if e.cseq_method == "INFO"] == [200, 200]
    # each digit once on the event stream, for the party that pressed it, in order
    assert follower.digits() == [("5", "5354353"), ("#", "5354353"), ("1", "5354353")], events
    # the other party got every digit as telephone-events of ITS payload type (96), none as 101
    assert 101 not in receiver.payload_types()
    packets = receiver.telephone_events(96)
    digits_heard = []
    for event, end, timestamp in packets:
        if end and (event, timestamp) not in digits_heard:
            digits_heard.append((event, timestamp))
    heard = [event for event, _ts in digits_heard]
    assert sorted(heard) == [1, 5, 11], heard
    # the INFO digits were played one after the other, in order (the RTP one, forwarded as it
    # came, may fall between them)
    assert heard.index(5) < heard.index(11)
    for event, timestamp in digits_heard:
        ends = [p for p in packets if p == (event, True, timestamp)]
        assert len(ends) == 3, f"event {event}: {len(ends)} end packets"
        updates = [p for p in packets if p == (event, False, timestamp)]
        assert updates, f"event {event} had no packet before its ends"
    api.close()


def test_digits_dialled_on_one_softphone_reach_the_other_and_the_event_stream(
    softphone_factory: Callable[..., Any],
    b2bua_factory: Callable[..., B2buaServer],
) -> None:
    server = b2bua_factory()
    alice = softphone_factory(name="alice", auto_answer=0.2)
    bob = softphone_factory(name="bob", auto_answer=0.2)
    domain = "voip.example.com"
    assert alice.register(server.sip_address, "0003*210", "secret210", domain=domain) == 200
    assert bob.register(server.sip_address, "0003*211", "secret211", domain=domain) == 200
    api = Uapi(server.api_url, "test-user-app", "test-user-secret")
    call_id = api.call_id(api.create(["0003*210"], ["0003*211"], query={"callDuration": 8}))
    follower = EventFollower(api, call_id)
    api.wait(call_id, lambda r: r.get("state") == "bridged", timeout=20)
    alice_call = int(alice.wait_incoming()["call"])
    bob_call = int(bob.wait_incoming()["call"])
    alice.wait_call_state(alice_call, "CONFIRMED")
    bob.wait_call_state(bob_call, "CONFIRMED")
    bob.wait_event("media_state", call=bob_call, active=True)
    alice.wait_event("media_state", call=alice_call, active=True)
    time.sleep(0.5)  # both phones latched on the relay

    alice.dial_dtmf(alice_call, "159#")
    for index in range(4):
        bob.wait_event("dtmf", timeout=10, predicate=lambda e, n=index: len(bob.events("dtmf")) > n)
    bob.dial_dtmf(bob_call, "7")
    alice.wait_event("dtmf", timeout=10, digit="7")

    assert [e["digit"] for e in bob.events("dtmf")] == list("159#")
    assert {e["method"] for e in bob.events("dtmf")} == {"rfc2833"}
    # a phone reports a digit when it starts, the relay when it ends: wait for the last end
    deadline = time.monotonic() + 10
    while len(follower.digits()) < 5 and time.monotonic() < deadline:
        time.sleep(0.05)
    api.hangup(call_id)
    api.wait_ended(call_id, timeout=20)
    events = follower.join()
    assert follower.digits() == [
        ("1", "0003*210"),
        ("5", "0003*210"),
        ("9", "0003*210"),
        ("#", "0003*210"),
        ("7", "0003*211"),
    ], events
    api.close()
