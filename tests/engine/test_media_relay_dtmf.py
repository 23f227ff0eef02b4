"""RFC 4733 through the relay with real sockets: the payload type mapped per direction, one
report per digit end read from the relay's event socket, digits played to a phone; in the
relay thread and in the relay process alike."""

from __future__ import annotations

import select
import socket
import struct
import time
from collections.abc import Iterator

import pytest
from media_ports import free_range

from engine.media import Relay
from engine.media.control import RelayControl
from engine.media.process import RelayProcess
from engine.media.telephone_event import DigitReport

HOST = "127.0.0.1"


def event_packet(pt: int, seq: int, ts: int, event: int, end: bool, duration: int) -> bytes:
    marker = 0x80 if seq == 0 else 0
    header = struct.pack("!BBHII", 0x80, marker | pt, seq, ts, 0xABCD)
    return header + struct.pack("!BBH", event, (0x80 if end else 0) | 10, duration)


def press(sock: socket.socket, port: int, pt: int, ts: int, event: int, seq0: int = 0) -> None:
    """A digit as a phone sends it: three updates, then the end three times."""
    for i in range(3):
        sock.sendto(event_packet(pt, seq0 + i, ts, event, False, 160 * (i + 1)), (HOST, port))
    for i in range(3):
        sock.sendto(event_packet(pt, seq0 + 3 + i, ts, event, True, 480), (HOST, port))


def settled(relay: RelayControl) -> None:
    """The relay process's one-way commands taken (the thread's run before they return)."""
    if isinstance(relay, RelayProcess):
        relay.sync()


def receive(sock: socket.socket, count: int, timeout: float = 2.0) -> list[bytes]:
    sock.settimeout(timeout)
    return [sock.recv(2048) for _ in range(count)]


def reports(relay: RelayControl, count: int, timeout: float = 2.0) -> list[DigitReport]:
    found: list[DigitReport] = []
    deadline = time.monotonic() + timeout
    while len(found) < count and time.monotonic() < deadline:
        select.select([relay.event_fileno()], [], [], 0.05)
        found += relay.read_events() or []
    time.sleep(0.1)  # and nothing more comes
    return found + (relay.read_events() or [])


@pytest.fixture(params=["thread", "process"])
def relay(request: pytest.FixtureRequest) -> Iterator[RelayControl]:
    r: RelayControl = (
        Relay(HOST, free_range(40))
        if request.param == "thread"
        else RelayProcess(HOST, free_range(40))
    )
    r.start()
    yield r
    r.close()


@pytest.fixture
def phones() -> Iterator[tuple[socket.socket, socket.socket]]:
    socks = []
    for _ in range(2):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind((HOST, 0))
        socks.append(sock)
    yield socks[0], socks[1]
    for sock in socks:
        sock.close()


def test_digits_cross_with_each_sides_payload_type_and_each_end_is_reported_once(
    relay: RelayControl, phones: tuple[socket.socket, socket.socket]
) -> None:
    pa, pb = phones
    a, b = relay.allocate(), relay.allocate()
    relay.set_remote(a, HOST, pa.getsockname()[1])
    relay.set_remote(b, HOST, pb.getsockname()[1])
    relay.set_telephone_event(a, 101)
    relay.set_telephone_event(b, 96)
    relay.bridge(a, b)
    settled(relay)
    press(pa, a.rtp_port, 101, ts=1000, event=5)
    got = receive(pb, 6)
    assert [p[1] & 0x7F for p in got] == [96] * 6
    assert got[0][1] & 0x80  # the marker bit kept
    assert [p[12] for p in got] == [5] * 6
    press(pb, b.rtp_port, 96, ts=7000, event=11)
    back = receive(pa, 6)
    assert [p[1] & 0x7F for p in back] == [101] * 6
    # one report per digit, though each end came three times
    assert reports(relay, 2) == [DigitReport(a.id, 5, 480), DigitReport(b.id, 11, 480)]


def test_a_phone_without_telephone_event_gets_the_packets_as_sent_and_audio_is_untouched(
    relay: RelayControl, phones: tuple[socket.socket, socket.socket]
) -> None:
    pa, pb = phones
    a, b = relay.allocate(), relay.allocate()
    relay.set_remote(a, HOST, pa.getsockname()[1])
    relay.set_remote(b, HOST, pb.getsockname()[1])
    relay.set_telephone_event(a, 101)
    relay.bridge(a, b)
    settled(relay)
    audio = struct.pack("!BBHII", 0x80, 0, 1, 160, 0xABCD) + b"\xff" * 160
    pa.sendto(audio, (HOST, a.rtp_port))
    assert receive(pb, 1) == [audio]
    press(pa, a.rtp_port, 101, ts=1000, event=9, seq0=2)
    assert [p[1] & 0x7F for p in receive(pb, 6)] == [101] * 6
    assert reports(relay, 1) == [DigitReport(a.id, 9, 480)]


def test_a_digit_played_to_a_phone_uses_its_payload_type(
    relay: RelayControl, phones: tuple[socket.socket, socket.socket]
) -> None:
    _pa, pb = phones
    b = relay.allocate()
    relay.set_remote(b, HOST, pb.getsockname()[1])
    relay.set_telephone_event(b, 96)
    relay.send_dtmf(b, 11, 100)  # "#" for 100 ms: 5 updates, 3 ends
    got = receive(pb, 8)
    parsed = [struct.unpack("!BBHIIBBH", p) for p in got]
    assert [p[1] for p in parsed] == [0x80 | 96] + [96] * 7
    assert {p[3] for p in parsed} == {parsed[0][3]}
    assert [p[5] for p in parsed] == [11] * 8
    assert [bool(p[6] & 0x80) for p in parsed] == [False] * 5 + [True] * 3
    assert [p[7] for p in parsed] == [160, 320, 480, 640, 800, 800, 800, 800]
    # the relay reports what phones send, not what it plays
    assert reports(relay, 0, timeout=0.2) == []


def test_digits_played_in_a_row_follow_one_another(
    relay: RelayControl, phones: tuple[socket.socket, socket.socket]
) -> None:
    _pa, pb = phones
    b = relay.allocate()
    relay.set_remote(b, HOST, pb.getsockname()[1])
    relay.set_telephone_event(b, 101)
    relay.send_dtmf(b, 5, 60)
    relay.send_dtmf(b, 11, 60)
    got = receive(pb, 12)  # 3 updates and 3 ends each
    assert [p[12] for p in got] == [5] * 6 + [11] * 6
    timestamps = [struct.unpack_from("!I", p, 4)[0] for p in got]
    assert len(set(timestamps[:6])) == 1 and len(set(timestamps[6:])) == 1
    assert timestamps[0] != timestamps[6]


def test_a_phone_without_telephone_event_is_played_nothing(
    relay: RelayControl, phones: tuple[socket.socket, socket.socket]
) -> None:
    _pa, pb = phones
    b = relay.allocate()
    relay.set_remote(b, HOST, pb.getsockname()[1])
    relay.set_telephone_event(b, None)
    relay.send_dtmf(b, 1, 100)
    pb.settimeout(0.3)
    with pytest.raises(TimeoutError):
        pb.recv(2048)
