"""Park, UnPark and PickUp through the real server, with SIPp phones and RTP counted at a phone.

Alice (0003*210) answers with an SDP pointing at an ``RtpEndpoint`` of the test, so what the
relay sends her is counted where she listens; Bob (0003*211), Carol (0003*212) and Dave's two
devices (0003*213) are SIPp phones registered through the server.
"""

from __future__ import annotations

import math
import socket
import threading
import time
import wave
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from engine.media import g711, rtp

from .harness import (
    DEFAULT_DIRECTORY,
    LOCALHOST,
    SCENARIO_DIR,
    B2buaServer,
    Direction,
    RtpEndpoint,
    Sipp,
    sdp_media_port,
)
from .test_calls_sipp import first, registered_phone
from .uapi import Uapi

MORE_PHONES = """
[[extensions]]
number = "212"
organization = 3
user = 12
type = "phone_terminal"
password = "secret212"
allow_caller_id = true

[[extensions]]
number = "213"
organization = 3
user = 13
type = "phone_terminal"
password = "secret213"
allow_caller_id = true
"""

STAY_MS = 40000  # how long each phone stays registered (longer than any test here)


def alice_phone(
    gateway: Callable[..., Sipp],
    server: B2buaServer,
    tmp_path: Path,
    media: RtpEndpoint | PayloadSink,
) -> Sipp:
    """0003*210 answering with ``media``'s port in its SDP: the relay sends her media there."""
    scenario = tmp_path / "phone_answer_rtp_port.xml"
    text = (SCENARIO_DIR / "phone_answer.xml").read_text()
    scenario.write_text(text.replace("m=audio [media_port] ", "m=audio [rtp_port] "))
    return registered_phone(
        gateway,
        server,
        "0003*210",
        "secret210",
        stay_ms=STAY_MS,
        ooc_scenario=str(scenario),
        keywords={"rtp_port": str(media.port)},
    )


class PayloadSink:
    """A phone's RTP port that keeps the payload of every packet it receives."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((LOCALHOST, 0))
        self.sock.settimeout(0.1)
        self.port: int = self.sock.getsockname()[1]
        self.payloads: list[bytes] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                parsed = rtp.parse(self.sock.recv(2048))
            except TimeoutError:
                continue
            except OSError:
                return
            if parsed is not None:
                self.payloads.append(parsed[-1])

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


@pytest.fixture
def sink() -> Iterator[PayloadSink]:
    receiver = PayloadSink()
    yield receiver
    receiver.close()


def bridged_call(api: Uapi, source: str, destination: str) -> str:
    call_id = api.call_id(api.create([source], [destination], query={"callDuration": 120}))
    api.wait(call_id, lambda r: r.get("state") == "bridged", timeout=15)
    return call_id


def view(record: dict[str, Any], index: int) -> dict[str, Any]:
    views: list[dict[str, Any]] = record["phoneCallView"]
    return views[index]


def test_park_plays_music_byes_the_parker_and_rings_it_back(
    gateway: Callable[..., Sipp],
    b2bua_factory: Callable[..., B2buaServer],
    rtp_factory: Callable[..., RtpEndpoint],
    tmp_path: Path,
) -> None:
    server = b2bua_factory(directory=DEFAULT_DIRECTORY)
    alice_rtp = rtp_factory()
    alice = alice_phone(gateway, server, tmp_path, alice_rtp)
    bob = registered_phone(gateway, server, "0003*211", "secret211", stay_ms=STAY_MS)
    api = Uapi(server.api_url, "test-user-app", "test-user-secret")
    call_id = bridged_call(api, "0003*210", "0003*211")
    time.sleep(0.5)  # Bob echoes what Alice sends, and she sends nothing: silence from here
    before = alice_rtp.counts().received

    reply = api.act(call_id, {"action": "Park", "phoneCallViewId": "01", "maxInParking": 10})
    assert reply.status_code == 200, reply.text
    bye = bob.wait_for_message("BYE", timeout=5)  # the parker is released
    assert bye.direction is Direction.RECEIVED
    record = api.wait(call_id, lambda r: view(r, 0).get("parked") is not None, timeout=5)
    assert view(record, 0)["parkedPos"] == 1
    assert view(record, 0)["parkedBy"] == "0003*211"
    assert "parked" not in view(record, 1) and view(record, 1)["hangupCause"] == "parked the call"
    # the music on hold reaches Alice's phone: 50 packets a second
    counts = alice_rtp.wait_received(before + 100, timeout=5)
    assert counts.received >= before + 100
    assert not alice.received("BYE")

    # maxInParking passes: Bob is rung back, answers, and is bridged with Alice again
    invites = bob.received("INVITE")
    deadline = time.monotonic() + 20
    while len(invites) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
        invites = bob.received("INVITE")
    assert len(invites) == 2, "Bob was not rung back"
    assert 9.0 <= invites[1].timestamp - bye.timestamp <= 12.0  # maxInParking after the Park
    record = api.wait(call_id, lambda r: len(r["phoneCallView"]) == 3 and view(r, 2)["status"] == 5)
    assert "parked" not in view(record, 0)
    assert view(record, 2)["destination"] == ["0003*211"]
    assert api.hangup(call_id).status_code == 200
    record = api.wait_ended(call_id)
    assert record["disposition"] == 0
    alice.wait_for_message("BYE", timeout=5)
    assert len(bob.received("BYE")) == 2


def test_unpark_rings_send_call_to_with_the_caller_id_and_bridges_it(
    gateway: Callable[..., Sipp],
    b2bua_factory: Callable[..., B2buaServer],
    rtp_factory: Callable[..., RtpEndpoint],
    tmp_path: Path,
) -> None:
    server = b2bua_factory(directory=DEFAULT_DIRECTORY + MORE_PHONES)
    alice_rtp = rtp_factory()
    alice = alice_phone(gateway, server, tmp_path, alice_rtp)
    bob = registered_phone(gateway, server, "0003*211", "secret211", stay_ms=STAY_MS)
    carol = registered_phone(gateway, server, "0003*212", "secret212", stay_ms=STAY_MS)
    api = Uapi(server.api_url, "test-user-app", "test-user-secret")
    call_id = bridged_call(api, "0003*210", "0003*211")
    not_parked = api.act(call_id, {"action": "UnPark", "sendCallTo": "212"})
    assert not_parked.status_code == 409
    assert not_parked.json()["error"]["code"] == "pc_not_parked"
    assert api.act(call_id, {"action": "Park", "phoneCallViewId": "01"}).status_code == 200
    bob.wait_for_message("BYE", timeout=5)
    api.wait(call_id, lambda r: view(r, 0).get("parkedPos") == 1, timeout=5)

    unpark = {"action": "UnPark", "sendCallTo": "212", "callerId": "Lobby <4242499>"}
    reply = api.act(call_id, {**unpark, "waitForPickup": 10})
    assert reply.status_code == 200, reply.text
    invite = carol.wait_for_message("INVITE", timeout=10)
    assert invite.from_display_name == "Lobby"
    record = api.wait(call_id, lambda r: len(r["phoneCallView"]) == 3 and view(r, 2)["status"] == 5)
    assert "parked" not in view(record, 0) and "parkedPos" not in view(record, 0)
    # Alice talks to Carol through the relay: Carol's phone echoes, the echo comes back
    relay_port = sdp_media_port(first(alice.received("INVITE")).body)
    assert relay_port is not None
    time.sleep(0.3)  # the music stopped at the bridge
    before = alice_rtp.counts()
    alice_rtp.send((LOCALHOST, relay_port), count=50, interval=0.01)
    after = alice_rtp.wait_received(before.received + 45, timeout=5)
    assert after.received >= before.received + 45
    assert alice_rtp.ssrc in after.ssrcs
    assert api.hangup(call_id).status_code == 200
    api.wait_ended(call_id)
    for phone in (alice, carol):
        phone.wait_for_message("BYE", timeout=5)


def test_pickup_cancels_every_ringing_device_and_bridges_the_caller(
    gateway: Callable[..., Sipp],
    b2bua_factory: Callable[..., B2buaServer],
    rtp_factory: Callable[..., RtpEndpoint],
    tmp_path: Path,
) -> None:
    server = b2bua_factory(directory=DEFAULT_DIRECTORY + MORE_PHONES)
    alice_rtp = rtp_factory()
    alice = alice_phone(gateway, server, tmp_path, alice_rtp)
    dave = [
        registered_phone(
            gateway,
            server,
            "0003*213",
            "secret213",
            stay_ms=STAY_MS,
            ooc_scenario="phone_noanswer.xml",
        )
        for _ in range(2)
    ]
    carol = registered_phone(gateway, server, "0003*212", "secret212", stay_ms=STAY_MS)
    api = Uapi(server.api_url, "test-user-app", "test-user-secret")
    call_id = api.call_id(api.create(["0003*210"], ["0003*213"], query={"callDuration": 60}))
    for device in dave:
        device.wait_for_message("INVITE", timeout=10)
    api.wait(call_id, lambda r: view(r, 1)["status"] == 3, timeout=5)  # ringing

    reply = api.act(call_id, {"action": "PickUp", "sendCallTo": "212", "phoneCallViewId": "01"})
    assert reply.status_code == 200, reply.text
    carol.wait_for_message("INVITE", timeout=10)
    for device in dave:
        device.wait_for_message("CANCEL", timeout=10)
        assert device.sent(487), "the ringing device did not end its INVITE"
    record = api.wait(call_id, lambda r: r.get("state") == "bridged", timeout=10)
    assert view(record, 2)["destination"] == ["0003*212"] and view(record, 2)["status"] == 5
    assert view(record, 1)["hangupCause"] == "answered elsewhere"
    # bridged with RTP both ways: Alice's packets reach Carol, whose echo reaches Alice
    relay_port = sdp_media_port(first(alice.received("INVITE")).body)
    assert relay_port is not None
    time.sleep(0.3)  # the ringback Alice heard stopped at the bridge
    before = alice_rtp.counts()
    alice_rtp.send((LOCALHOST, relay_port), count=50, interval=0.01)
    after = alice_rtp.wait_received(before.received + 45, timeout=5)
    assert after.received >= before.received + 45
    assert alice_rtp.ssrc in after.ssrcs
    # a call no longer ringing cannot be picked up
    late = api.act(call_id, {"action": "PickUp", "sendCallTo": "211"})
    assert late.status_code == 409 and late.json()["error"]["code"] == "pc_not_ringing"
    assert api.hangup(call_id).status_code == 200
    record = api.wait_ended(call_id)
    assert record["disposition"] == 0
    for phone in (alice, carol):
        phone.wait_for_message("BYE", timeout=5)


def test_the_parked_party_hears_the_music_on_hold_file(
    gateway: Callable[..., Sipp],
    b2bua_factory: Callable[..., B2buaServer],
    sink: PayloadSink,
    tmp_path: Path,
) -> None:
    music = tmp_path / "hold.wav"
    samples = [round(6000 * math.sin(i * i / 9000)) for i in range(8000)]  # 1 s, 50 packets
    with wave.open(str(music), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(8000)
        wav.writeframes(b"".join(s.to_bytes(2, "little", signed=True) for s in samples))
    packets = [
        bytes(g711.linear_to_ulaw(s) for s in samples[i : i + 160]) for i in range(0, 8000, 160)
    ]
    server = b2bua_factory(
        directory=DEFAULT_DIRECTORY, config={"calls": {"music_on_hold": str(music)}}
    )
    alice_phone(gateway, server, tmp_path, sink)
    bob = registered_phone(gateway, server, "0003*211", "secret211", stay_ms=STAY_MS)
    api = Uapi(server.api_url, "test-user-app", "test-user-secret")
    call_id = bridged_call(api, "0003*210", "0003*211")
    time.sleep(0.3)
    sink.payloads.clear()  # the ringback before the bridge
    assert api.act(call_id, {"action": "Park", "phoneCallViewId": "01"}).status_code == 200
    bob.wait_for_message("BYE", timeout=5)
    deadline = time.monotonic() + 5
    while len(sink.payloads) < 75 and time.monotonic() < deadline:
        time.sleep(0.05)
    heard = list(sink.payloads)
    assert len(heard) >= 75
    assert set(heard) <= set(packets)  # every packet is the file's, as PCMU
    start = packets.index(heard[0])
    assert heard[:75] == [packets[(start + i) % 50] for i in range(75)]  # in order, looped
    assert api.hangup(call_id).status_code == 200
    api.wait_ended(call_id)
