"""The relay forwarding real UDP packets between fake phones on 127.0.0.1.

Waiting here is I/O on real sockets with short timeouts (the relay runs in its own thread);
time-dependent latching logic uses an injected clock instead of sleeping.
"""

from __future__ import annotations

import random
import socket
import struct
import time
from collections.abc import Callable, Iterator

import pytest
from media_ports import free_range

from engine.media import MediaEndpoint, MediaError, PortRangeExhausted, Relay

HOST = "127.0.0.1"
QUIET = 0.15  # how long a phone listens to conclude that nothing comes


class Phone:
    """A plain UDP socket playing a phone's RTP (or RTCP) port."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((HOST, 0))
        self.sock.settimeout(1.0)
        self.port: int = self.sock.getsockname()[1]
        self.ssrc = random.getrandbits(32)

    def rtp(self, seq: int, ts: int | None = None, payload: bytes = b"\xff" * 160) -> bytes:
        ts = seq * 160 if ts is None else ts
        return struct.pack("!BBHII", 0x80, 0, seq & 0xFFFF, ts & 0xFFFFFFFF, self.ssrc) + payload

    def send_rtp(self, port: int, seq: int, payload: bytes = b"\xff" * 160) -> bytes:
        packet = self.rtp(seq, payload=payload)
        self.sock.sendto(packet, (HOST, port))
        return packet

    def recv(self) -> tuple[bytes, tuple[str, int]]:
        data, addr = self.sock.recvfrom(65536)
        return data, addr

    def silent(self, wait: float = QUIET) -> bool:
        self.sock.settimeout(wait)
        try:
            self.sock.recvfrom(65536)
        except TimeoutError:
            return True
        finally:
            self.sock.settimeout(1.0)
        return False

    def close(self) -> None:
        self.sock.close()


def rtcp_sr(ssrc: int) -> bytes:
    """A minimal RTCP sender report (RFC 3550 6.4.1) without report blocks."""
    return struct.pack("!BBHIIIIII", 0x80, 200, 6, ssrc, 1, 2, 3, 4, 5)


def eventually(check: Callable[[], bool], timeout: float = 1.0) -> bool:
    """Poll a condition set by the relay thread (counters follow the packets by microseconds)."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.001)
    return True


@pytest.fixture
def relay() -> Iterator[Relay]:
    r = Relay(HOST, free_range(200))
    r.start()
    yield r
    r.close()


@pytest.fixture
def phones() -> Iterator[Callable[[], Phone]]:
    made: list[Phone] = []

    def make() -> Phone:
        phone = Phone()
        made.append(phone)
        return phone

    yield make
    for phone in made:
        phone.close()


def bridged_pair(
    relay: Relay, phones: Callable[[], Phone]
) -> tuple[MediaEndpoint, MediaEndpoint, Phone, Phone]:
    a, b = relay.allocate(), relay.allocate()
    pa, pb = phones(), phones()
    relay.set_remote(a, HOST, pa.port)
    relay.set_remote(b, HOST, pb.port)
    relay.bridge(a, b)
    return a, b, pa, pb


def test_allocate_gives_even_rtp_and_next_odd_rtcp_port(relay: Relay) -> None:
    ep = relay.allocate()
    assert ep.rtp_port % 2 == 0
    assert ep.rtcp_port == ep.rtp_port + 1
    assert ep.address == HOST
    assert ep.kind == "audio"


def test_bridged_phones_exchange_rtp_both_ways_from_their_side_port(
    relay: Relay, phones: Callable[[], Phone]
) -> None:
    a, b, pa, pb = bridged_pair(relay, phones)
    sent = pa.send_rtp(a.rtp_port, 1)
    data, source = pb.recv()
    assert data == sent
    assert source == (HOST, b.rtp_port)
    sent = pb.send_rtp(b.rtp_port, 7)
    data, source = pa.recv()
    assert data == sent
    assert source == (HOST, a.rtp_port)


def test_phone_sending_from_another_port_than_sdp_gets_answers_there(
    relay: Relay, phones: Callable[[], Phone]
) -> None:
    a, b, pa, pb = bridged_pair(relay, phones)
    sdp_b = pb  # what B's SDP promised
    real_b = phones()  # where B really sends from (e.g. behind NAT)
    # before B sends anything, A's media goes to the SDP address
    pa.send_rtp(a.rtp_port, 1)
    assert sdp_b.recv()[1] == (HOST, b.rtp_port)
    # B sends from elsewhere: the relay latches and answers there
    real_b.send_rtp(b.rtp_port, 1)
    assert pa.recv()[1] == (HOST, a.rtp_port)
    sent = pa.send_rtp(a.rtp_port, 2)
    assert real_b.recv()[0] == sent
    assert sdp_b.silent()
    assert relay.stats(b).rtp.latched == (HOST, real_b.port)


def test_foreign_source_with_same_ssrc_is_dropped_but_new_ssrc_relatches(
    relay: Relay, phones: Callable[[], Phone]
) -> None:
    a, b, pa, pb = bridged_pair(relay, phones)
    pb.send_rtp(b.rtp_port, 1)
    pa.recv()
    intruder = phones()
    intruder.ssrc = pb.ssrc
    intruder.send_rtp(b.rtp_port, 2)
    assert pa.silent()
    assert eventually(lambda: relay.stats(b).rtp.packets_foreign == 1)
    pa.send_rtp(a.rtp_port, 1)
    assert pb.recv()  # still latched on the real phone
    assert intruder.silent()
    # a new stream (new SSRC, e.g. after a transfer) takes over at once
    newcomer = phones()
    newcomer.send_rtp(b.rtp_port, 500)
    assert pa.recv()
    pa.send_rtp(a.rtp_port, 2)
    assert newcomer.recv()
    assert pb.silent()


def test_same_ssrc_from_new_address_relatches_after_silence(phones: Callable[[], Phone]) -> None:
    now = [100.0]
    with Relay(HOST, free_range(20), relatch_after=2.0, clock=lambda: now[0]) as relay:
        relay.start()
        a, b, pa, pb = bridged_pair(relay, phones)
        pb.send_rtp(b.rtp_port, 1)
        pa.recv()
        moved = phones()  # the same phone after a NAT rebinding
        moved.ssrc = pb.ssrc
        now[0] += 1.0
        moved.send_rtp(b.rtp_port, 2)
        assert pa.silent()
        now[0] += 2.5  # the old address has been silent for longer than relatch_after
        moved.send_rtp(b.rtp_port, 3)
        assert pa.recv()
        pa.send_rtp(a.rtp_port, 1)
        assert moved.recv()


def test_rtcp_goes_through_the_odd_ports(relay: Relay, phones: Callable[[], Phone]) -> None:
    a, b = relay.allocate(), relay.allocate()
    pa, pb = phones(), phones()
    relay.set_remote(a, HOST, 40000, pa.port)  # RTP ports do not matter here
    relay.set_remote(b, HOST, 40002, pb.port)
    relay.bridge(a, b)
    report = rtcp_sr(pa.ssrc)
    pa.sock.sendto(report, (HOST, a.rtcp_port))
    data, source = pb.recv()
    assert data == report
    assert source == (HOST, b.rtcp_port)
    pb.sock.sendto(rtcp_sr(pb.ssrc), (HOST, b.rtcp_port))
    assert pa.recv()[1] == (HOST, a.rtcp_port)
    assert eventually(lambda: relay.stats(a).rtcp.packets_sent == 1)
    stats = relay.stats(a)
    assert stats.rtcp.packets_received == 1
    assert stats.rtcp.bytes_received == len(report)
    assert stats.rtp.packets_received == 0


def test_counters_and_loss_from_sequence_numbers(relay: Relay, phones: Callable[[], Phone]) -> None:
    a, b, pa, pb = bridged_pair(relay, phones)
    sent = [seq for seq in range(1, 21) if seq not in (5, 6, 13)]
    for seq in sent:
        pa.send_rtp(a.rtp_port, seq)
    for _ in sent:
        pb.recv()
    assert eventually(lambda: relay.stats(b).rtp.packets_sent == len(sent))
    stats = relay.stats(a)
    assert stats.ssrc == pa.ssrc
    assert stats.expected == 20
    assert stats.lost == 3
    assert stats.fraction_lost == pytest.approx(3 / 20)
    assert stats.rtp.packets_received == 17
    assert stats.rtp.bytes_received == 17 * 172
    assert stats.rtp.packets_dropped == 0
    b_stats = relay.stats(b)
    assert b_stats.rtp.bytes_sent == 17 * 172
    assert b_stats.expected == 0
    assert b_stats.ssrc is None


def test_loss_counts_across_sequence_wrap(relay: Relay, phones: Callable[[], Phone]) -> None:
    a, _b, pa, pb = bridged_pair(relay, phones)
    seqs = [65530, 65531, 65532, 65534, 65535, 0, 1, 3, 4, 5]  # 65533 and 2 lost
    for seq in seqs:
        pa.send_rtp(a.rtp_port, seq)
    for _ in seqs:
        pb.recv()
    assert eventually(lambda: relay.stats(a).rtp.packets_received == len(seqs))
    stats = relay.stats(a)
    assert stats.expected == 12
    assert stats.lost == 2


def test_a_restarted_stream_is_counted_anew(relay: Relay, phones: Callable[[], Phone]) -> None:
    a, _b, pa, pb = bridged_pair(relay, phones)
    for seq in (1, 2, 3, 30000, 30001, 30002):  # a big jump that persists: a restart
        pa.send_rtp(a.rtp_port, seq)
    for _ in range(6):
        pb.recv()
    assert eventually(lambda: relay.stats(a).rtp.packets_received == 6)
    stats = relay.stats(a)
    assert stats.expected == 2  # counting restarted at 30001 (A.3: two in sequence)
    assert stats.lost == 0


def test_a_new_ssrc_from_the_same_address_restarts_the_loss_count(
    relay: Relay, phones: Callable[[], Phone]
) -> None:
    """A tone echoed back, then the phone's own stream on the same port: its sequence numbers
    continue nowhere near the tone's (once counted as 1577 lost for 250 packets)."""
    a, _b, pa, pb = bridged_pair(relay, phones)
    first = [1000 + i for i in range(100) if i not in (10, 11)]  # 2 lost in the first stream
    for seq in first:
        pa.send_rtp(a.rtp_port, seq)
    pa.ssrc = (pa.ssrc + 1) & 0xFFFFFFFF  # same socket, a new source
    # 1477 ahead of the old stream's last (under MAX_DROPOUT: once taken for 1477 losses)
    second = [2577 + i for i in range(150) if i != 50]  # 1 lost in the second stream
    for seq in second:
        pa.send_rtp(a.rtp_port, seq)
    for _ in range(len(first) + len(second)):
        pb.recv()
    assert eventually(lambda: relay.stats(a).rtp.packets_received == len(first) + len(second))
    stats = relay.stats(a)
    assert stats.ssrc == pa.ssrc
    assert stats.rtp.packets_received == 98 + 149  # every packet counted as received
    assert (stats.expected, stats.lost) == (150, 1)  # the new stream's alone


def test_a_new_ssrc_behind_the_old_sequence_is_not_taken_for_late_packets(
    relay: Relay, phones: Callable[[], Phone]
) -> None:
    a, _b, pa, pb = bridged_pair(relay, phones)
    for seq in range(5000, 5050):
        pa.send_rtp(a.rtp_port, seq)
    pa.ssrc = (pa.ssrc + 7) & 0xFFFFFFFF
    sent = [seq for seq in range(4990, 5030) if seq != 5000]  # behind the old max: 1 lost
    for seq in sent:
        pa.send_rtp(a.rtp_port, seq)
    for _ in range(50 + len(sent)):
        pb.recv()
    assert eventually(lambda: relay.stats(a).rtp.packets_received == 50 + len(sent))
    stats = relay.stats(a)
    assert (stats.expected, stats.lost) == (40, 1)


def test_packets_before_bridging_are_counted_and_dropped(
    relay: Relay, phones: Callable[[], Phone]
) -> None:
    a, b = relay.allocate(), relay.allocate()
    pa, pb = phones(), phones()
    relay.set_remote(a, HOST, pa.port)
    relay.set_remote(b, HOST, pb.port)
    for seq in range(3):
        pa.send_rtp(a.rtp_port, seq)
    assert pb.silent()
    stats = relay.stats(a)
    assert stats.rtp.packets_received == 3
    assert stats.rtp.packets_dropped == 3
    relay.bridge(a, b)
    pa.send_rtp(a.rtp_port, 3)
    assert pb.recv()
    relay.unbridge(a, b)
    pa.send_rtp(a.rtp_port, 4)
    assert pb.silent()
    assert relay.stats(a).rtp.packets_dropped == 4


def test_hold_stops_media_towards_the_held_side_only(
    relay: Relay, phones: Callable[[], Phone]
) -> None:
    a, b, pa, pb = bridged_pair(relay, phones)
    relay.set_direction(a, send=False)  # A sent a=sendonly: A holds, B still hears A's music
    pb.send_rtp(b.rtp_port, 1)
    assert pa.silent()
    pa.send_rtp(a.rtp_port, 1)
    assert pb.recv()
    assert relay.stats(b).rtp.packets_dropped == 1
    relay.set_direction(a, send=True)  # resume
    pb.send_rtp(b.rtp_port, 2)
    assert pa.recv()
    relay.set_direction(b, send=False, receive=False)  # inactive
    pa.send_rtp(a.rtp_port, 2)
    pb.send_rtp(b.rtp_port, 3)
    assert pa.silent()
    assert pb.silent()


def test_rtcp_keeps_flowing_on_hold(relay: Relay, phones: Callable[[], Phone]) -> None:
    a, b = relay.allocate(), relay.allocate()
    pa, pb = phones(), phones()
    relay.set_remote(a, HOST, 40000, pa.port)
    relay.set_remote(b, HOST, 40002, pb.port)
    relay.bridge(a, b)
    relay.set_direction(a, send=False, receive=False)
    pb.sock.sendto(rtcp_sr(pb.ssrc), (HOST, b.rtcp_port))
    assert pa.recv()[1] == (HOST, a.rtcp_port)


def test_echo_mode_returns_packets_to_the_sender(relay: Relay, phones: Callable[[], Phone]) -> None:
    ep = relay.allocate()
    phone = phones()
    relay.set_echo(ep)
    sent = phone.send_rtp(ep.rtp_port, 9)
    data, source = phone.recv()
    assert data == sent
    assert source == (HOST, ep.rtp_port)


def test_released_endpoint_stops_forwarding_and_rejects_calls(
    relay: Relay, phones: Callable[[], Phone]
) -> None:
    a, b, pa, pb = bridged_pair(relay, phones)
    relay.release(b)
    pa.send_rtp(a.rtp_port, 1)
    assert pb.silent()
    with pytest.raises(MediaError, match="unknown or released"):
        relay.stats(b)
    relay.bridge(a, relay.allocate())  # a is free to bridge again


def test_port_range_exhaustion_is_a_clear_error_and_release_frees() -> None:
    lo, hi = free_range(4)  # two RTP/RTCP pairs
    with Relay(HOST, (lo, hi)) as relay:
        first = relay.allocate()
        relay.allocate()
        with pytest.raises(PortRangeExhausted, match=f"{lo}-{hi}"):
            relay.allocate()
        relay.release(first)
        assert relay.allocate().rtp_port == first.rtp_port


def test_busy_ports_are_skipped() -> None:
    lo, hi = free_range(6)
    blocker = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        blocker.bind((HOST, lo + 1))  # the first pair's RTCP port is taken by someone else
        with Relay(HOST, (lo, hi)) as relay:
            assert relay.allocate().rtp_port == lo + 2
    finally:
        blocker.close()


def test_close_frees_every_port_and_is_idempotent() -> None:
    relay = Relay(HOST, free_range(10))
    relay.start()
    endpoints = [relay.allocate() for _ in range(3)]
    relay.close()
    relay.close()
    for ep in endpoints:
        for port in (ep.rtp_port, ep.rtcp_port):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind((HOST, port))
            s.close()
    with pytest.raises(MediaError, match="closed"):
        relay.allocate()


@pytest.mark.parametrize(
    ("address", "port_range", "message"),
    [
        ("not-an-ip", (20000, 20010), "IP address"),
        ("127.0.0.1", (20010, 20000), "low <= high"),
        ("127.0.0.1", (20001, 20002), "no even RTP port"),
        ("127.0.0.1", (0, 10), "low <= high"),
        ("127.0.0.1", "20000-20010", "low, high"),
    ],
)
def test_bad_configuration_is_a_clear_error(
    address: str, port_range: tuple[int, int], message: str
) -> None:
    with pytest.raises(MediaError, match=message):
        Relay(address, port_range)


def test_bad_control_calls_are_clear_errors(relay: Relay) -> None:
    a, b = relay.allocate(), relay.allocate()
    with pytest.raises(MediaError, match="IP address"):
        relay.set_remote(a, "phone.example.com", 4000)
    with pytest.raises(MediaError, match="1-65535"):
        relay.set_remote(a, HOST, 70000)
    with pytest.raises(MediaError, match="itself"):
        relay.bridge(a, a)
    relay.bridge(a, b)
    with pytest.raises(MediaError, match="already bridged"):
        relay.bridge(a, relay.allocate())
    with pytest.raises(MediaError, match="not bridged together"):
        relay.unbridge(a, relay.allocate())
    with pytest.raises(MediaError, match="not a media endpoint"):
        relay.stats("a")  # type: ignore[arg-type]
    with pytest.raises(MediaError, match="unknown"):
        relay.stats(MediaEndpoint(999, HOST, 1, 2))


def test_control_before_start_applies_once_running(phones: Callable[[], Phone]) -> None:
    with Relay(HOST, free_range(10)) as relay:
        a, _b, pa, pb = bridged_pair(relay, phones)
        relay.start()
        sent = pa.send_rtp(a.rtp_port, 1)
        assert pb.recv()[0] == sent


def test_new_sdp_address_drops_the_latch_and_same_address_keeps_it(
    relay: Relay, phones: Callable[[], Phone]
) -> None:
    a, b, pa, pb = bridged_pair(relay, phones)
    real_b = phones()
    real_b.send_rtp(b.rtp_port, 1)  # latched on real_b, not on the SDP address pb
    pa.recv()
    relay.set_remote(b, HOST, pb.port)  # a re-INVITE with the same SDP (e.g. hold/resume)
    pa.send_rtp(a.rtp_port, 1)
    assert real_b.recv()
    moved = phones()
    relay.set_remote(b, HOST, moved.port)  # a re-INVITE to a new phone (e.g. transfer)
    pa.send_rtp(a.rtp_port, 2)
    assert moved.recv()[1] == (HOST, b.rtp_port)
    assert real_b.silent()


def test_a_failure_in_the_loop_does_not_stop_forwarding(
    relay: Relay, phones: Callable[[], Phone], monkeypatch: pytest.MonkeyPatch
) -> None:
    from engine.media.leg import Leg

    a, _b, pa, pb = bridged_pair(relay, phones)
    original = Leg.accept_source
    calls = []

    def broken_once(self: Leg, *args: object) -> bool:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("bug")
        return original(self, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(Leg, "accept_source", broken_once)
    pa.send_rtp(a.rtp_port, 1)  # lost to the "bug"
    assert pb.silent()
    sent = pa.send_rtp(a.rtp_port, 2)
    assert pb.recv()[0] == sent


def _has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _has_ipv6_loopback(), reason="no IPv6 loopback")
def test_ipv6_relay_forwards_between_ipv6_phones() -> None:
    with Relay("::1", free_range(10)) as relay:
        relay.start()
        a, b = relay.allocate(), relay.allocate()
        socks = [socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) for _ in range(2)]
        try:
            for s in socks:
                s.bind(("::1", 0))
                s.settimeout(1.0)
            relay.set_remote(a, "::1", socks[0].getsockname()[1])
            relay.set_remote(b, "::1", socks[1].getsockname()[1])
            with pytest.raises(MediaError, match="address family"):
                relay.set_remote(a, HOST, 4000)
            relay.bridge(a, b)
            packet = struct.pack("!BBHII", 0x80, 0, 1, 160, 7) + bytes(160)
            socks[0].sendto(packet, ("::1", a.rtp_port))
            data, source = socks[1].recvfrom(2048)
            assert data == packet
            assert source[:2] == ("::1", b.rtp_port)
            assert relay.stats(a).rtp.latched == ("::1", socks[0].getsockname()[1])
        finally:
            for s in socks:
                s.close()


def test_statistics_count_what_the_relay_holds(relay: Relay) -> None:
    lo_hi = relay.statistics().free_port_pairs
    a, b, c = relay.allocate(), relay.allocate(), relay.allocate()
    relay.bridge(a, b)
    relay.set_remote(c, HOST, 9)
    relay.play_tone(c)
    assert eventually(lambda: relay.statistics().tones == 1)
    stats = relay.statistics()
    assert (stats.endpoints, stats.bridges, stats.recordings) == (3, 1, 0)
    assert stats.free_port_pairs == lo_hi - 3
    assert stats.running
    relay.stop_tone(c)
    assert eventually(lambda: relay.statistics().tones == 0)


def test_garbage_datagrams_are_counted_and_do_not_disturb_forwarding(
    relay: Relay, phones: Callable[[], Phone]
) -> None:
    a, _b, pa, pb = bridged_pair(relay, phones)
    junk = [b"", b"\x00", b"\x80" * 11, b"\x40" + bytes(30), bytes(range(256)) * 4]
    stranger = phones()
    for data in junk:  # before latching, from a stranger: nothing valid to latch on
        stranger.sock.sendto(data, (HOST, a.rtp_port))
        stranger.sock.sendto(data, (HOST, a.rtcp_port))
    assert pb.silent()
    assert eventually(lambda: relay.stats(a).rtp.packets_foreign == len(junk))
    sent = pa.send_rtp(a.rtp_port, 1)
    assert pb.recv()[0] == sent
    pa.sock.sendto(b"keepalive", (HOST, a.rtp_port))  # non-RTP from the latched phone passes
    assert pb.recv()[0] == b"keepalive"
    stats = relay.stats(a)
    assert stats.expected == 1
    assert stats.rtp.packets_received == len(junk) + 2
    assert stats.rtcp.packets_dropped == len(junk)


def test_close_right_after_release_still_frees_the_ports() -> None:
    relay = Relay(HOST, free_range(10))
    relay.start()
    for _ in range(20):
        ep = relay.allocate()
        relay.release(ep)
    relay.close()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((HOST, ep.rtp_port))
