"""Audio of the relay: G.711 tables, the tone source and stereo WAV recording."""

from __future__ import annotations

import itertools
import math
import random
import socket
import struct
import time
import wave
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from media_ports import free_range

from engine.media import MediaError, Relay, g711, rtp, tone

HOST = "127.0.0.1"


def goertzel(samples: list[int], frequency: float, rate: int = 8000) -> float:
    """Relative power of ``frequency`` in ``samples``."""
    coeff = 2 * math.cos(2 * math.pi * frequency / rate)
    s1 = s2 = 0.0
    for x in samples:
        s1, s2 = x + coeff * s1 - s2, s1
    return s1 * s1 + s2 * s2 - coeff * s1 * s2


def dominant(samples: list[int], candidates: tuple[float, ...]) -> float:
    return max(candidates, key=lambda f: goertzel(samples, f))


CANDIDATES = (300.0, 440.0, 697.0, 1000.0, 1600.0)


@pytest.fixture
def relay() -> Iterator[Relay]:
    r = Relay(HOST, free_range(40))
    r.start()
    yield r
    r.close()


@pytest.fixture
def phone() -> Iterator[socket.socket]:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((HOST, 0))
    s.settimeout(1.0)
    yield s
    s.close()


# ----------------------------------------------------------------------------- G.711 / RTP


def test_g711_reference_points() -> None:
    assert g711.ulaw_to_linear(0xFF) == 0
    assert g711.ulaw_to_linear(0x80) == 32124
    assert g711.ulaw_to_linear(0x00) == -32124
    assert g711.alaw_to_linear(0xD5) == 8
    assert g711.alaw_to_linear(0xAA) == 32256
    assert g711.alaw_to_linear(0x2A) == -32256


@pytest.mark.parametrize(
    ("encode", "decode"),
    [
        (g711.linear_to_ulaw, g711.ulaw_to_linear),
        (g711.linear_to_alaw, g711.alaw_to_linear),
    ],
)
def test_g711_round_trip_error_stays_within_a_step(encode: object, decode: object) -> None:
    assert callable(encode) and callable(decode)
    for sample in range(-32768, 32768, 13):
        back = decode(encode(sample))
        assert abs(back - sample) <= max(16, abs(sample) // 16), sample


def test_vectorised_decode_matches_the_tables() -> None:
    payload = bytes(range(256))
    ulaw = g711.decode_ulaw(payload)
    alaw = g711.decode_alaw(payload)
    assert list(struct.unpack("<256h", ulaw)) == list(g711.ULAW_DECODE)
    assert list(struct.unpack("<256h", alaw)) == list(g711.ALAW_DECODE)


def test_rtp_parse_skips_csrcs_extension_and_padding() -> None:
    header = struct.pack("!BBHII", 0x80 | 0x20 | 0x10 | 2, 8 | 0x80, 7, 1234, 0xDEADBEEF)
    csrcs = b"\x00\x00\x00\x01\x00\x00\x00\x02"
    extension = struct.pack("!HH", 0xBEDE, 1) + b"\x01\x02\x03\x04"
    packet = header + csrcs + extension + b"audio" + b"\x00\x00\x03"
    assert rtp.parse(packet) == (8, 7, 1234, 0xDEADBEEF, b"audio")
    assert rtp.parse(b"\x80\x00") is None
    assert rtp.parse(b"\x40" + bytes(20)) is None  # version 1


# ----------------------------------------------------------------------------- tone


def receive_packets(sock: socket.socket, count: int) -> list[tuple[float, bytes]]:
    got = []
    for _ in range(count):
        data = sock.recv(2048)
        got.append((time.monotonic(), data))
    return got


@pytest.mark.parametrize(("payload_type", "table"), [(0, g711.ULAW_DECODE), (8, g711.ALAW_DECODE)])
def test_tone_packets_have_the_rate_format_and_frequency(
    relay: Relay, phone: socket.socket, payload_type: int, table: tuple[int, ...]
) -> None:
    ep = relay.allocate()
    relay.set_remote(ep, HOST, phone.getsockname()[1])
    relay.play_tone(ep, 1000.0, payload_type)
    packets = receive_packets(phone, 26)
    # the counter follows each send by microseconds
    assert _eventually(lambda: relay.stats(ep).rtp.packets_sent >= 26)
    relay.stop_tone(ep)
    elapsed = packets[-1][0] - packets[0][0]
    assert 0.4 < elapsed < 0.7  # 25 intervals of 20 ms
    parsed = [rtp.parse(data) for _, data in packets]
    assert all(p is not None for p in parsed)
    pts, seqs, stamps, ssrcs, payloads = zip(*[p for p in parsed if p is not None], strict=True)
    assert set(pts) == {payload_type}
    assert all(len(p) == 160 for p in payloads)
    assert len(set(ssrcs)) == 1
    assert all((b - a) & 0xFFFF == 1 for a, b in itertools.pairwise(seqs))
    assert all((b - a) & 0xFFFFFFFF == 160 for a, b in itertools.pairwise(stamps))
    samples = [table[byte] for payload in payloads for byte in payload]
    assert dominant(samples, CANDIDATES) == 1000.0
    assert packets[0][1][1] & 0x80  # marker on the first packet


def test_stop_tone_and_duration_end_the_stream(relay: Relay, phone: socket.socket) -> None:
    ep = relay.allocate()
    relay.set_remote(ep, HOST, phone.getsockname()[1])
    relay.play_tone(ep, 440.0, duration=0.1)
    count = 0
    phone.settimeout(0.3)
    with pytest.raises(TimeoutError):
        while True:
            phone.recv(2048)
            count += 1
    assert 4 <= count <= 7  # 100 ms of 20 ms packets
    relay.play_tone(ep, 440.0)
    phone.settimeout(1.0)
    phone.recv(2048)
    relay.stop_tone(ep)
    phone.settimeout(0.1)
    with pytest.raises(TimeoutError):
        while True:  # at most what was in flight, then silence
            phone.recv(2048)


def test_tone_goes_to_the_latched_address(relay: Relay, phone: socket.socket) -> None:
    ep = relay.allocate()
    relay.set_remote(ep, HOST, 9)  # SDP says discard port; the phone really sends from `phone`
    relay.set_echo(ep)
    phone.sendto(struct.pack("!BBHII", 0x80, 0, 1, 160, 42) + bytes(160), (HOST, ep.rtp_port))
    phone.recv(2048)  # the echo
    relay.set_echo(ep, False)
    relay.play_tone(ep)
    data, source = phone.recvfrom(2048)
    assert source == (HOST, ep.rtp_port)
    assert len(data) == 172


def test_bad_tone_requests_are_clear_errors(relay: Relay) -> None:
    ep = relay.allocate()
    with pytest.raises(MediaError, match="payload type"):
        relay.play_tone(ep, payload_type=18)
    with pytest.raises(MediaError, match="frequency"):
        relay.play_tone(ep, frequency=5000)
    with pytest.raises(MediaError, match="duration"):
        relay.play_tone(ep, duration=0)


def test_encoded_tone_repeats_seamlessly_each_second() -> None:
    audio = tone.encode_tone(440.0, 0, -10.0)
    assert len(audio) == 8000
    samples = [g711.ULAW_DECODE[b] for b in audio + audio[:160]]
    # the wrap from the last sample to the first continues the sine: no jump bigger than a step
    steps = [abs(b - a) for a, b in itertools.pairwise(samples)]
    assert max(steps[7990:8010]) <= max(steps[:8000]) + 200


# ----------------------------------------------------------------------------- recording


def stream(
    sock: socket.socket,
    port: int,
    frequency: float,
    payload_type: int,
    seqs: range | list[int],
) -> None:
    audio = tone.encode_tone(frequency, payload_type, -6.0)
    ssrc = random.getrandbits(32)
    for seq in seqs:
        offset = (seq % 50) * 160
        header = struct.pack("!BBHII", 0x80, payload_type, seq, 1000 + seq * 160, ssrc)
        sock.sendto(header + audio[offset : offset + 160], (HOST, port))


def read_wav(path: Path) -> tuple[wave._wave_params, list[int], list[int]]:
    with wave.open(str(path), "rb") as w:
        params = w.getparams()
        frames = w.readframes(params.nframes)
    samples = struct.unpack(f"<{len(frames) // 2}h", frames)
    return params, list(samples[0::2]), list(samples[1::2])


def test_recording_puts_each_party_on_its_own_channel(relay: Relay, tmp_path: Path) -> None:
    a, b = relay.allocate(), relay.allocate()
    with (
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as pa,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as pb,
    ):
        pa.bind((HOST, 0))
        pb.bind((HOST, 0))
        relay.set_remote(a, HOST, pa.getsockname()[1])
        relay.set_remote(b, HOST, pb.getsockname()[1])
        relay.bridge(a, b)
        path = tmp_path / "call.wav"
        relay.start_recording(a, b, str(path))
        stream(pa, a.rtp_port, 440.0, 0, range(25))  # party a: 440 Hz in µ-law
        stream(pb, b.rtp_port, 1000.0, 8, range(25))  # party b: 1000 Hz in A-law
        pb.settimeout(1.0)
        pa.settimeout(1.0)
        for _ in range(25):  # both got through the relay, so the relay saw them all
            pa.recv(2048)
            pb.recv(2048)
        info = relay.stop_recording(a, b)
    assert info.packets == (25, 25)
    assert info.error is None
    params, left, right = read_wav(path)
    assert (params.nchannels, params.sampwidth, params.framerate) == (2, 2, 8000)
    assert params.nframes == info.frames >= 4000
    assert dominant(left, CANDIDATES) == 440.0
    assert dominant(right, CANDIDATES) == 1000.0
    assert goertzel(left, 1000.0) < goertzel(left, 440.0) / 100  # no cross-talk


def test_recording_fills_lost_packets_with_silence(relay: Relay, tmp_path: Path) -> None:
    a, b = relay.allocate(), relay.allocate()
    path = tmp_path / "gap.wav"
    relay.start_recording(a, b, str(path))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as pa:
        seqs = [*range(10), *range(20, 30)]  # packets 10-19 lost: 200 ms
        stream(pa, a.rtp_port, 440.0, 0, seqs)
        assert _eventually(lambda: relay.stats(a).rtp.packets_received == 20)
    info = relay.stop_recording(a)
    _params, left, right = read_wav(path)
    start = next(i for i, x in enumerate(left) if x != 0)
    end = max(i for i, x in enumerate(left) if x != 0)
    assert end - start == pytest.approx(30 * 160, abs=40)
    gap = left[start + 10 * 160 + 20 : start + 20 * 160 - 20]
    assert set(gap) == {0}
    assert set(right) == {0}  # party b said nothing
    assert info.packets == (20, 0)


def test_recording_requests_are_checked(relay: Relay, tmp_path: Path) -> None:
    a, b = relay.allocate(), relay.allocate()
    with pytest.raises(MediaError, match="cannot record"):
        relay.start_recording(a, b, str(tmp_path / "missing-dir" / "x.wav"))
    with pytest.raises(MediaError, match="not being recorded"):
        relay.stop_recording(a)
    relay.start_recording(a, b, str(tmp_path / "x.wav"))
    with pytest.raises(MediaError, match="already being recorded"):
        relay.start_recording(a, relay.allocate(), str(tmp_path / "y.wav"))
    relay.stop_recording(b)
    assert (tmp_path / "x.wav").exists()


def _eventually(check: object, timeout: float = 1.0) -> bool:
    assert callable(check)
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.001)
    return True


@given(st.binary(max_size=400))
def test_rtp_parse_never_raises_on_arbitrary_bytes(data: bytes) -> None:
    parsed = rtp.parse(data)
    if parsed is not None:
        pt, seq, _ts, _ssrc, payload = parsed
        assert 0 <= pt < 128 and 0 <= seq < 65536
        assert len(payload) <= len(data) - 12


def test_a_tone_played_to_a_party_is_recorded_as_the_other_party(
    relay: Relay, phone: socket.socket, tmp_path: Path
) -> None:
    a, sandbox = relay.allocate(), relay.allocate()  # the sandbox side has no phone
    relay.set_remote(a, HOST, phone.getsockname()[1])
    relay.bridge(a, sandbox)
    path = tmp_path / "sandbox.wav"
    relay.start_recording(a, sandbox, str(path))
    relay.play_tone(a, 1000.0)
    receive_packets(phone, 15)
    stream(phone, a.rtp_port, 440.0, 0, range(15))  # and the caller speaks
    assert _eventually(lambda: relay.stats(a).rtp.packets_received == 15)
    relay.stop_tone(a)
    info = relay.stop_recording(a, sandbox)
    assert info.packets[0] == 15
    assert info.packets[1] >= 15
    _params, left, right = read_wav(path)
    assert dominant(left, CANDIDATES) == 440.0
    assert dominant(right, CANDIDATES) == 1000.0


def test_a_generated_party_sends_its_tone_through_the_bridge_and_counts_both_ways(
    relay: Relay, phone: socket.socket
) -> None:
    """A sandbox side: its tone is what its phone sends (received on its side, forwarded to
    the partner's phone from the partner's port), and what the partner sends reaches it."""
    a, sandbox = relay.allocate(), relay.allocate()
    relay.set_remote(a, HOST, phone.getsockname()[1])
    relay.bridge(a, sandbox)
    relay.generate(sandbox, 1000.0)
    got = receive_packets(phone, 10)
    assert all(len(packet) == 172 for _at, packet in got)
    samples = [g711.ULAW_DECODE[byte] for _at, packet in got for byte in packet[12:]]
    assert dominant(samples, CANDIDATES) == 1000.0
    stream(phone, a.rtp_port, 440.0, 0, range(12))  # the caller speaks to the sandbox
    assert _eventually(lambda: relay.stats(sandbox).rtp.packets_sent == 12)
    relay.stop_generating(sandbox)
    time.sleep(0.1)
    gen, caller = relay.stats(sandbox), relay.stats(a)
    assert gen.rtp.packets_received >= 10  # what the sandbox sent
    assert gen.rtp.packets_received == caller.rtp.packets_sent  # all of it reached the phone
    assert (gen.expected, gen.lost) == (gen.rtp.packets_received, 0)
    assert gen.rtp.packets_dropped == 0 and caller.rtp.packets_dropped == 0
    assert caller.rtp.packets_received == 12 and (caller.expected, caller.lost) == (12, 0)


def test_two_generated_parties_bridged_hear_each_other(relay: Relay) -> None:
    """Sandbox to sandbox: nothing leaves the relay, yet each side counts what it sent and
    what it received, and stops counting when it stops sending."""
    x, y = relay.allocate(), relay.allocate()
    relay.bridge(x, y)
    relay.generate(x, 440.0)
    relay.generate(y, 1000.0)
    assert _eventually(lambda: relay.stats(y).rtp.packets_sent >= 10, timeout=3.0)
    relay.stop_generating(x)
    relay.stop_generating(y)
    # both generators have stopped once two readings (each of both sides at one instant)
    # 50 ms apart agree; a loaded machine may take a while to get there
    readings = [relay.stats_many([x, y])]

    def settled() -> bool:
        time.sleep(0.05)
        readings.append(relay.stats_many([x, y]))
        return readings[-1] == readings[-2]

    assert _eventually(settled, timeout=5.0)
    sx, sy = readings[-1]
    assert sx.rtp.packets_received > 0 and sy.rtp.packets_received > 0
    assert sx.rtp.packets_received == sy.rtp.packets_sent
    assert sy.rtp.packets_received == sx.rtp.packets_sent
    assert sx.lost == 0 and sy.lost == 0
    time.sleep(0.1)
    assert relay.stats(x).rtp.packets_received == sx.rtp.packets_received  # stopped


def test_a_generated_party_is_recorded_on_its_own_channel(relay: Relay, tmp_path: Path) -> None:
    caller, sandbox = relay.allocate(), relay.allocate()
    relay.bridge(caller, sandbox)
    path = tmp_path / "sandbox.wav"
    relay.start_recording(caller, sandbox, str(path))
    relay.generate(sandbox, 1000.0)
    assert _eventually(lambda: relay.stats(sandbox).rtp.packets_received >= 15, timeout=3.0)
    relay.stop_generating(sandbox)
    info = relay.stop_recording(caller, sandbox)
    assert info.packets[1] >= 15
    _params, _left, right = read_wav(path)
    assert dominant(right, CANDIDATES) == 1000.0
