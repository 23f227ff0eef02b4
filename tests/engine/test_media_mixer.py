"""The relay's mixer: the maths (decode, sum, clip, encode, minus-self), mixes on real sockets."""

from __future__ import annotations

import random
import socket
import time
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st
from media_ports import free_range
from test_media_audio import goertzel

from engine.media import MediaError, Relay, g711, mixer, rtp, tone
from engine.media.process import RelayProcess

HOST = "127.0.0.1"
PCMU, PCMA = g711.PT_PCMU, g711.PT_PCMA


def _decode_linear(payload: bytes, pt: int) -> list[int]:
    table = g711.ULAW_DECODE if pt == PCMU else g711.ALAW_DECODE
    return [table[b] for b in payload]


# ----------------------------------------------------------------------------- the maths


def _mixed(frames: list[bytes], pt: int) -> bytes:
    """What a listener hearing ``frames`` (all in ``pt``) gets, through the mixer's own path."""
    return mixer.encode_sum(sum(mixer.pack(f, pt) for f in frames), len(frames), pt)


@pytest.mark.parametrize("pt", [PCMU, PCMA])
def test_every_code_survives_pack_and_encode(pt: int) -> None:
    codes = bytes(range(256))[:160]
    rest = bytes(range(256))[160:] + bytes(64)
    for frame in (codes, rest):
        back = _mixed([frame], pt)
        # µ-law has two codes for zero (0x7F and 0xFF): either may come back
        assert _decode_linear(back, pt) == _decode_linear(frame, pt)


@given(
    st.lists(st.lists(st.integers(0, 255), min_size=160, max_size=160), min_size=2, max_size=7),
    st.sampled_from([PCMU, PCMA]),
)
def test_the_sum_is_the_sum_of_the_samples_clipped_then_encoded(
    frames: list[list[int]], pt: int
) -> None:
    payloads = [bytes(f) for f in frames]
    encode = g711.linear_to_ulaw if pt == PCMU else g711.linear_to_alaw
    linear = [_decode_linear(p, pt) for p in payloads]
    expected = bytes(
        encode(max(-32768, min(32767, sum(column)))) for column in zip(*linear, strict=True)
    )
    assert _mixed(payloads, pt) == expected


def test_loud_sums_clip_at_full_scale_instead_of_wrapping() -> None:
    loud = bytes([0x80]) * 160  # µ-law +32124
    loud_negative = bytes([0x00]) * 160  # µ-law -32124
    for frame, sign in ((loud, 1), (loud_negative, -1)):
        out = _decode_linear(_mixed([frame] * 3, PCMU), PCMU)
        assert all(v == sign * 32124 for v in out)  # the largest µ-law value, same sign


def test_seven_full_scale_speakers_still_clip() -> None:
    frames = [bytes([0xAA]) * 160] * (mixer.MAX_MEMBERS - 1)  # A-law +32256
    assert set(_decode_linear(_mixed(frames, PCMA), PCMA)) == {32256}


def _packet(pt: int, payload: bytes, seq: int = 1) -> bytes:
    buf = bytearray(12 + len(payload))
    rtp.pack_header(buf, pt, seq, seq * 160, 0x1234)
    buf[12:] = payload
    return bytes(buf)


def _tone_frame(hz: float, pt: int) -> bytes:
    return tone.encode_tone(hz, pt, -12.0)[:160]


def test_tick_gives_each_listener_what_it_hears_minus_itself() -> None:
    # members: 0 (PCMU), 1 (PCMA), 2 (PCMU); 0 and 1 hear each other, 2 hears both,
    # nobody hears 2 (a Monitor)
    mix = mixer.Mix([PCMU, PCMA, PCMU], [(0, 1), (1, 0), (2, 0), (2, 1)], 0.0, random.Random(1))
    frames = {0: _tone_frame(700, PCMU), 1: _tone_frame(1100, PCMA), 2: _tone_frame(1500, PCMU)}
    pts = {0: PCMU, 1: PCMA, 2: PCMU}
    for i, m in enumerate(mix.inputs):
        m.sendto(_packet(pts[i], frames[i]), ("x", 1))
    packets = mix.tick()
    heard = {}
    for i, packet in enumerate(packets):
        parsed = rtp.parse(bytes(packet))
        assert parsed is not None and parsed[0] == pts[i]  # each in its own codec
        samples = _decode_linear(parsed[4], pts[i])
        heard[i] = {hz for hz in (700, 1100, 1500) if _power(samples, hz) > 0.05}
    assert heard == {0: {1100}, 1: {700}, 2: {700, 1100}}


def _power(samples: list[int], hz: float) -> float:
    total = sum(x * x for x in samples) * len(samples) / 2 or 1
    return goertzel(samples, hz) / total


def test_a_source_without_a_frame_this_tick_is_silence_and_the_last_frame_wins() -> None:
    mix = mixer.Mix([PCMU, PCMU], [(0, 1), (1, 0)], 0.0, random.Random(1))
    first = mix.tick()
    assert rtp.parse(bytes(first[0]))[4] == mixer.silence(PCMU)  # type: ignore[index]
    mix.inputs[1].sendto(_packet(PCMU, bytes([0x10]) * 160, 1), ("x", 1))
    mix.inputs[1].sendto(_packet(PCMU, bytes([0x20]) * 160, 2), ("x", 1))
    second = mix.tick()
    assert rtp.parse(bytes(second[0]))[4] == bytes([0x20]) * 160  # type: ignore[index]
    third = mix.tick()  # nothing new: silence, not the old frame again
    assert rtp.parse(bytes(third[0]))[4] == mixer.silence(PCMU)  # type: ignore[index]


def test_frames_that_are_not_g711_count_as_silence() -> None:
    mix = mixer.Mix([PCMU, PCMU], [(0, 1), (1, 0)], 0.0, random.Random(1))
    mix.inputs[1].sendto(_packet(101, b"\x01\x0a\x00\xa0"), ("x", 1))  # a DTMF event
    assert rtp.parse(bytes(mix.tick()[0]))[4] == mixer.silence(PCMU)  # type: ignore[index]


def test_output_streams_advance_sequence_and_timestamp_per_tick() -> None:
    mix = mixer.Mix([PCMU, PCMA], [(0, 1)], 0.0, random.Random(1))
    a = [rtp.parse(bytes(mix.tick()[1])) for _ in range(3)]
    assert all(p is not None for p in a)
    seqs = [p[1] for p in a if p]
    stamps = [p[2] for p in a if p]
    assert [(s - seqs[0]) & 0xFFFF for s in seqs] == [0, 1, 2]
    assert [(t - stamps[0]) & 0xFFFFFFFF for t in stamps] == [0, 160, 320]
    assert mix.due == pytest.approx(0.06)


@pytest.mark.parametrize(
    ("pts", "hears", "message"),
    [
        ([PCMU], [], "2 to 8"),
        ([PCMU, 9], [], "G.711 only"),
        ([PCMU, PCMA], [(0, 2)], "names no member"),
        ([PCMU, PCMA], [(1, 1)], "nobody hears itself"),
    ],
)
def test_bad_mixes_are_refused_saying_why(
    pts: list[int], hears: list[tuple[int, int]], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        mixer.check_mix(pts, hears)


# ----------------------------------------------------------------------------- on real sockets


class Phone:
    """A UDP phone sending a G.711 tone in 20 ms packets and collecting what it gets."""

    def __init__(self, pt: int, hz: float) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((HOST, 0))
        self.sock.setblocking(False)
        self.pt = pt
        self.frame = _tone_frame(hz, pt)
        self.received: list[bytes] = []

    @property
    def port(self) -> int:
        return int(self.sock.getsockname()[1])

    def send(self, port: int, seq: int) -> None:
        self.sock.sendto(_packet(self.pt, self.frame, seq), (HOST, port))

    def drain(self) -> None:
        while True:
            try:
                self.received.append(self.sock.recv(2048))
            except BlockingIOError:
                return

    def heard(self) -> set[int]:
        samples: list[int] = []
        for packet in self.received[-20:]:
            parsed = rtp.parse(packet)
            if parsed is not None and parsed[0] in (PCMU, PCMA):
                samples += _decode_linear(parsed[4], parsed[0])
        return {hz for hz in (700, 1100, 1500) if samples and _power(samples, hz) > 0.05}


def _talk(
    relay: Relay | RelayProcess, phones: list[Phone], ports: list[int], seconds: float
) -> None:
    time.sleep(0.1)  # what the relay sent before (the last change included) is in: left out
    for p in phones:
        p.drain()
        p.received.clear()
    start = time.monotonic()
    seq = 0
    while time.monotonic() - start < seconds:
        seq += 1
        for phone, port in zip(phones, ports, strict=True):
            phone.send(port, seq)
        time.sleep(0.02)
        for p in phones:
            p.drain()


@pytest.fixture(params=["thread", "process"])
def relay(request: pytest.FixtureRequest) -> Iterator[Relay | RelayProcess]:
    r: Relay | RelayProcess
    if request.param == "thread":
        r = Relay(HOST, free_range(20))
    else:
        r = RelayProcess(HOST, free_range(20))
    r.start()
    yield r
    r.close()


def test_a_mix_on_the_relay_follows_the_matrix_and_ends_back_in_the_bridge(
    relay: Relay | RelayProcess,
) -> None:
    phones = [Phone(PCMU, 700), Phone(PCMA, 1100), Phone(PCMU, 1500)]
    eps = [relay.allocate() for _ in phones]
    for ep, phone in zip(eps, phones, strict=True):
        relay.set_remote(ep, HOST, phone.port)
    relay.bridge(eps[0], eps[1])
    ports = [ep.rtp_port for ep in eps]
    # a Whisper: 2 is heard by 0 only and hears both
    relay.start_mix(eps, [PCMU, PCMA, PCMU], [(0, 1), (1, 0), (0, 2), (2, 0), (2, 1)])
    if isinstance(relay, RelayProcess):
        relay.sync()
    _talk(relay, phones, ports, 0.8)
    assert [p.heard() for p in phones] == [{1100, 1500}, {700}, {700, 1100}]
    assert all(rtp.parse(p)[0] == PCMA for p in phones[1].received)  # type: ignore[index]
    relay.stop_mix(eps[2])
    if isinstance(relay, RelayProcess):
        relay.sync()  # the one-way stop_mix has been taken
    _talk(relay, phones, ports, 0.5)
    # the plain bridge again: 0 and 1 hear each other, the third hears nothing
    assert [p.heard() for p in phones] == [{1100}, {700}, set()]
    for p in phones:
        p.sock.close()


def test_a_sandbox_phone_inside_the_relay_is_mixed_like_a_phone() -> None:
    relay = Relay(HOST, free_range(20))
    relay.start()
    try:
        phones = [Phone(PCMU, 700), Phone(PCMA, 1100)]
        sandbox, a, b = relay.allocate(), relay.allocate(), relay.allocate()
        for ep, phone in ((a, phones[0]), (b, phones[1])):
            relay.set_remote(ep, HOST, phone.port)
        relay.bridge(sandbox, a)
        relay.generate(sandbox, 1500.0)
        # a BargeIn: the sandbox (member 0), its caller a (1), a supervisor b (2)
        everyone = [(i, j) for i in range(3) for j in range(3) if i != j]
        relay.start_mix([sandbox, a, b], [PCMU, PCMU, PCMA], everyone)
        _talk(relay, phones, [a.rtp_port, b.rtp_port], 0.8)
        assert [p.heard() for p in phones] == [{1100, 1500}, {700, 1500}]
        assert relay.stats(sandbox).rtp.packets_sent > 20  # the mix reached the sandbox too
        for p in phones:
            p.sock.close()
    finally:
        relay.close()


def test_releasing_a_member_ends_the_mix_for_all() -> None:
    relay = Relay(HOST, free_range(20))
    relay.start()
    try:
        phones = [Phone(PCMU, 700), Phone(PCMU, 1100), Phone(PCMU, 1500)]
        eps = [relay.allocate() for _ in phones]
        for ep, phone in zip(eps, phones, strict=True):
            relay.set_remote(ep, HOST, phone.port)
        relay.bridge(eps[0], eps[1])
        relay.start_mix(eps, [PCMU] * 3, [(i, j) for i in range(3) for j in range(3) if i != j])
        relay.release(eps[2])
        _talk(relay, phones[:2], [eps[0].rtp_port, eps[1].rtp_port], 0.5)
        assert [p.heard() for p in phones[:2]] == [{1100}, {700}]
        for p in phones:
            p.sock.close()
    finally:
        relay.close()


def test_bad_mix_requests_are_clear_errors(relay: Relay | RelayProcess) -> None:
    a, b = relay.allocate(), relay.allocate()
    with pytest.raises(MediaError, match=r"G\.711 only"):
        relay.start_mix([a, b], [PCMU, 9], [(0, 1)])
    with pytest.raises(MediaError, match="twice"):
        relay.start_mix([a, a], [PCMU, PCMU], [(0, 1)])
    with pytest.raises(MediaError, match="2 endpoints but 1"):
        relay.start_mix([a, b], [PCMU], [(0, 1)])
