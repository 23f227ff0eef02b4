"""Music on hold from a WAV file: reading and checking the file, and the relay playing it."""

from __future__ import annotations

import math
import socket
import wave
from collections.abc import Iterator
from pathlib import Path

import pytest
from media_ports import free_range

from engine.media import Relay, g711, rtp, tone

HOST = "127.0.0.1"


def write_wav(
    path: Path, samples: list[int], *, rate: int = 8000, channels: int = 1, width: int = 2
) -> Path:
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(channels)
        wav.setsampwidth(width)
        wav.setframerate(rate)
        data = b"".join(
            int(s).to_bytes(width, "little", signed=width > 1) * channels for s in samples
        )
        wav.writeframes(data)
    return path


def sweep(count: int) -> list[int]:
    """Samples that differ from packet to packet, so the loop's order can be checked."""
    return [round(8000 * math.sin(i * i / 5000)) for i in range(count)]


@pytest.fixture
def relay() -> Iterator[Relay]:
    r = Relay(HOST, free_range(20))
    r.start()
    yield r
    r.close()


def test_read_wav_gives_the_samples(tmp_path: Path) -> None:
    samples = sweep(500)
    assert list(tone.read_wav(str(write_wav(tmp_path / "m.wav", samples)))) == samples


@pytest.mark.parametrize(
    ("options", "count", "message"),
    [
        ({"rate": 16000}, 800, "expected 8000 Hz mono 16-bit PCM, got 16000 Hz, 1 channel"),
        ({"channels": 2}, 800, "got 8000 Hz, 2 channel\\(s\\), 16-bit"),
        ({"width": 1}, 800, "8-bit"),
        ({}, 100, "shorter than 20 ms"),
    ],
)
def test_read_wav_refuses_what_it_cannot_play(
    tmp_path: Path, options: dict[str, int], count: int, message: str
) -> None:
    path = write_wav(tmp_path / "bad.wav", [0] * count, **options)
    with pytest.raises(ValueError, match=message):
        tone.read_wav(str(path))


def test_read_wav_refuses_a_file_that_is_not_wav(tmp_path: Path) -> None:
    (tmp_path / "m.wav").write_bytes(b"ID3 not a wave file at all")
    with pytest.raises(ValueError, match="not a readable WAV file"):
        tone.read_wav(str(tmp_path / "m.wav"))
    with pytest.raises(ValueError, match="not a readable WAV file"):
        tone.read_wav(str(tmp_path / "missing.wav"))


def test_the_relay_plays_the_file_in_a_loop(relay: Relay, tmp_path: Path) -> None:
    samples = sweep(3 * 160 + 40)  # three whole packets; the last 5 ms are left out
    path = write_wav(tmp_path / "music.wav", samples)
    phone = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    phone.bind((HOST, 0))
    phone.settimeout(1.0)
    try:
        ep = relay.allocate()
        relay.set_remote(ep, HOST, phone.getsockname()[1])
        relay.play_audio(ep, str(path), g711.PT_PCMA)
        packets = [rtp.parse(phone.recv(2048)) for _ in range(7)]
        relay.stop_tone(ep)
    finally:
        phone.close()
    expected = [
        bytes(g711.linear_to_alaw(s) for s in samples[i * 160 : (i + 1) * 160]) for i in range(3)
    ]
    parsed = [p for p in packets if p is not None]
    assert [payload for *_, payload in parsed] == (expected * 3)[:7]
    assert {payload_type for payload_type, *_ in parsed} == {g711.PT_PCMA}
