"""Loss accounting (RFC 3550 A.3) as a property, through real sockets."""

from __future__ import annotations

import random
import socket
import struct
import time
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from media_ports import free_range

from engine.media import Relay

HOST = "127.0.0.1"


@pytest.fixture(scope="module")
def relay() -> Iterator[Relay]:
    r = Relay(HOST, free_range(100))
    r.start()
    yield r
    r.close()


@pytest.fixture(scope="module")
def phone() -> Iterator[socket.socket]:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((HOST, 0))
    yield s
    s.close()


@settings(max_examples=30)
@given(
    start=st.integers(0, 65535),
    steps=st.lists(st.integers(1, 40), min_size=1, max_size=60),
)
def test_lost_is_the_number_of_missing_sequence_numbers(
    relay: Relay, phone: socket.socket, start: int, steps: list[int]
) -> None:
    ep = relay.allocate()
    try:
        seqs = [start]
        for step in steps:
            seqs.append((seqs[-1] + step) & 0xFFFF)
        ssrc = random.getrandbits(32)
        for seq in seqs:
            header = struct.pack("!BBHII", 0x80, 0, seq, seq * 160 & 0xFFFFFFFF, ssrc)
            phone.sendto(header + bytes(20), (HOST, ep.rtp_port))
        deadline = time.monotonic() + 2
        while relay.stats(ep).rtp.packets_received < len(seqs):
            assert time.monotonic() < deadline, "the relay did not see every packet"
            time.sleep(0.001)  # waiting for the relay thread's I/O
        stats = relay.stats(ep)
        expected = sum(steps) + 1  # wraps included
        assert stats.expected == expected
        assert stats.lost == expected - len(seqs)
        assert stats.ssrc == ssrc
    finally:
        relay.release(ep)
