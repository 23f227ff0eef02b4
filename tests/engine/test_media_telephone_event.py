"""RFC 4733 in the relay's own terms: the payload type mapped per direction, each digit's end
reported once despite its retransmissions, and digits generated to a phone."""

from __future__ import annotations

import random
import socket
import struct
from collections.abc import Iterator

import pytest

from engine.media.leg import Leg
from engine.media.telephone_event import (
    END_PACKETS,
    DigitReport,
    DtmfSource,
    EventSink,
    event_socketpair,
    on_event_packet,
    read_reports,
)


def event_packet(pt: int, event: int, end: bool, duration: int, ts: int, seq: int = 1) -> bytearray:
    header = struct.pack("!BBHII", 0x80, pt, seq, ts, 0x1234)
    return bytearray(header + struct.pack("!BBH", event, (0x80 if end else 0) | 10, duration))


@pytest.fixture
def legs() -> Iterator[tuple[Leg, Leg]]:
    socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(2)]
    a = Leg(socks[0], True, "a rtp", 2.0, endpoint_id=7)
    b = Leg(socks[1], True, "b rtp", 2.0, endpoint_id=8)
    a.target, b.target = b, a
    a.te_pt, b.te_pt = 101, 96
    yield a, b
    for sock in socks:
        sock.close()


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, EventSink]]:
    reader, writer = event_socketpair()
    sink = EventSink(writer)
    yield reader, sink
    sink.close()
    reader.close()


def test_the_payload_type_is_rewritten_to_the_receivers_keeping_the_marker(legs, pair) -> None:
    a, b = legs
    _reader, sink = pair
    packet = event_packet(0x80 | 101, 5, False, 160, 1000)
    on_event_packet(a, packet, len(packet), sink)
    assert packet[1] == 0x80 | 96
    back = event_packet(96, 5, False, 160, 1000)
    on_event_packet(b, back, len(back), sink)
    assert back[1] == 101


def test_a_receiver_without_telephone_event_gets_the_packet_unchanged(legs, pair) -> None:
    a, b = legs
    b.te_pt = -1
    packet = event_packet(101, 5, False, 160, 1000)
    on_event_packet(a, packet, len(packet), pair[1])
    assert packet[1] == 101


def test_an_end_is_reported_once_despite_three_retransmissions(legs, pair) -> None:
    a, _b = legs
    reader, sink = pair
    for ts, event in ((1000, 5), (2000, 11)):
        for duration in (160, 320, 480):
            packet = event_packet(101, event, False, duration, ts)
            on_event_packet(a, packet, len(packet), sink)
        for _ in range(3):
            packet = event_packet(101, event, True, 800, ts)
            on_event_packet(a, packet, len(packet), sink)
    assert read_reports(reader) == [DigitReport(7, 5, 800), DigitReport(7, 11, 800)]
    assert read_reports(reader) == []


def test_the_same_digit_twice_is_two_digits(legs, pair) -> None:
    a, _b = legs
    reader, sink = pair
    for ts in (1000, 3000):
        for _ in range(3):
            packet = event_packet(101, 1, True, 400, ts)
            on_event_packet(a, packet, len(packet), sink)
    assert [r.event for r in read_reports(reader) or []] == [1, 1]


def test_events_beyond_the_dtmf_digits_are_not_reported(legs, pair) -> None:
    a, _b = legs
    reader, sink = pair
    packet = event_packet(101, 70, True, 400, 1000)  # not a digit (RFC 4734 tones)
    on_event_packet(a, packet, len(packet), sink)
    assert read_reports(reader) == []


def test_the_reader_sees_the_writer_go(pair) -> None:
    reader, sink = pair
    sink.report(3, 1, 160)
    sink.close()
    assert read_reports(reader) == [DigitReport(3, 1, 160)]
    assert read_reports(reader) is None


def test_a_generated_digit_is_begin_updates_and_three_ends_on_one_timestamp() -> None:
    source = DtmfSource(5, 100, 96, start=10.0, rng=random.Random(1))
    packets = []
    while not source.finished:
        assert source.due == pytest.approx(10.0 + 0.02 * len(packets))
        packets.append(bytes(source.next_packet()))
    parsed = [struct.unpack("!BBHIIBBH", p) for p in packets]
    # 100 ms -> 5 updates of 20 ms, then the three ends
    assert len(parsed) == 5 + END_PACKETS
    assert {p[3] for p in parsed} == {source.ts}  # one timestamp
    assert [p[1] for p in parsed] == [0x80 | 96] + [96] * 7  # marker on the first only
    seqs = [p[2] for p in parsed]
    assert [(s - seqs[0]) & 0xFFFF for s in seqs] == list(range(8))
    assert [p[5] for p in parsed] == [5] * 8
    assert [bool(p[6] & 0x80) for p in parsed] == [False] * 5 + [True] * 3
    assert [p[7] for p in parsed] == [160, 320, 480, 640, 800, 800, 800, 800]


def test_a_generated_digit_is_at_least_two_packets_long_and_checks_its_arguments() -> None:
    assert DtmfSource(1, 1, 101, 0.0, random.Random(2)).updates == 2
    with pytest.raises(ValueError):
        DtmfSource(1, 100, 128, 0.0, random.Random(2))
