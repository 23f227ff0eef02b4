"""A sine tone as a G.711 RTP stream (RFC 3550 5.1 header, RFC 3551 PCMU/PCMA at 8 kHz, 20 ms).

One second of encoded audio is computed once per tone (the frequency is rounded to whole hertz so
that the second repeats seamlessly); each packet is then a header packed into a preallocated
buffer plus a 160-byte slice of that second. The relay's loop calls :meth:`ToneSource.next_packet`
when the tone is due, so any number of tones share the forwarding thread.
"""

from __future__ import annotations

import array
import math
import random
import sys
import wave

from engine.media import g711, rtp

SAMPLE_RATE = 8000
PACKET_TIME = 0.02
SAMPLES_PER_PACKET = 160
_MAX_LAG = 0.2  # a loop this late restarts the schedule instead of sending a burst


def check_tone(frequency: float, payload_type: int, level_dbfs: float) -> None:
    """Raise ValueError naming the first parameter :func:`encode_tone` cannot use."""
    if payload_type not in (g711.PT_PCMU, g711.PT_PCMA):
        raise ValueError(f"tone payload type must be 0 (PCMU) or 8 (PCMA), not {payload_type!r}")
    if not 0 < frequency < SAMPLE_RATE / 2:
        raise ValueError(f"tone frequency must be between 0 and 4000 Hz, not {frequency!r}")
    if not -60.0 <= level_dbfs <= 0.0:
        raise ValueError(f"tone level must be between -60 and 0 dBFS, not {level_dbfs!r}")


def encode_tone(frequency: float, payload_type: int, level_dbfs: float) -> bytes:
    """One second of a sine at ``frequency`` (rounded to whole Hz) encoded as PCMU or PCMA."""
    check_tone(frequency, payload_type, level_dbfs)
    encode = g711.linear_to_ulaw if payload_type == g711.PT_PCMU else g711.linear_to_alaw
    hertz = round(frequency)
    amplitude = 32767 * 10 ** (level_dbfs / 20)
    step = 2 * math.pi * hertz / SAMPLE_RATE
    return bytes(encode(round(amplitude * math.sin(step * i))) for i in range(SAMPLE_RATE))


MAX_AUDIO_SECONDS = 600  # the longest audio file played (music on hold), looped


def read_wav(path: str) -> array.array[int]:
    """The samples of an 8 kHz mono 16-bit PCM WAV file; ValueError says what is wrong."""
    try:
        with wave.open(path, "rb") as wav:
            params = wav.getparams()
            if (params.nchannels, params.sampwidth, params.framerate) != (1, 2, SAMPLE_RATE):
                raise ValueError(
                    f"{path}: expected 8000 Hz mono 16-bit PCM, got {params.framerate} Hz, "
                    f"{params.nchannels} channel(s), {8 * params.sampwidth}-bit"
                )
            if params.nframes < SAMPLES_PER_PACKET:
                raise ValueError(f"{path}: shorter than 20 ms")
            if params.nframes > MAX_AUDIO_SECONDS * SAMPLE_RATE:
                raise ValueError(f"{path}: longer than {MAX_AUDIO_SECONDS} s")
            frames = wav.readframes(params.nframes)
    except (OSError, EOFError, wave.Error) as exc:
        raise ValueError(f"{path}: not a readable WAV file: {exc}") from None
    samples = array.array("h", frames)
    if sys.byteorder == "big":
        samples.byteswap()
    return samples


def encode_samples(samples: array.array[int], payload_type: int) -> bytes:
    """16-bit samples as PCMU or PCMA, cut to whole 20 ms packets (for ``ToneSource``)."""
    check_tone(440.0, payload_type, 0.0)
    encode = g711.linear_to_ulaw if payload_type == g711.PT_PCMU else g711.linear_to_alaw
    usable = len(samples) - len(samples) % SAMPLES_PER_PACKET
    table: dict[int, int] = {}
    out = bytearray(usable)
    for i in range(usable):
        sample = samples[i]
        code = table.get(sample)
        if code is None:
            code = table[sample] = encode(sample)
        out[i] = code
    return bytes(out)


class ToneSource:
    """The state of one tone stream: sequence number, timestamp, SSRC and schedule."""

    __slots__ = (
        "_audio",
        "_packet",
        "_packets",
        "count",
        "due",
        "end",
        "payload_type",
        "seq",
        "ssrc",
        "ts",
    )

    def __init__(
        self,
        audio: bytes,
        payload_type: int,
        start: float,
        duration: float | None,
        rng: random.Random,
    ) -> None:
        """``audio``: one second from :func:`encode_tone` for ``payload_type``, or any whole
        number of 20 ms packets (:func:`encode_samples`); it is played in a loop."""
        self._audio = memoryview(audio)
        self._packets = max(1, len(audio) // SAMPLES_PER_PACKET)
        self._packet = bytearray(rtp.RTP_HEADER_SIZE + SAMPLES_PER_PACKET)
        self.payload_type = payload_type
        self.ssrc = rng.getrandbits(32)
        self.seq = rng.getrandbits(16)
        self.ts = rng.getrandbits(32)
        self.count = 0
        self.due = start
        self.end = None if duration is None else start + duration

    def next_packet(self) -> bytearray:
        """The next packet (the returned buffer is reused by the following call)."""
        packet = self._packet
        rtp.pack_header(packet, self.payload_type, self.seq, self.ts, self.ssrc, self.count == 0)
        offset = (self.count % self._packets) * SAMPLES_PER_PACKET
        packet[rtp.RTP_HEADER_SIZE :] = self._audio[offset : offset + SAMPLES_PER_PACKET]
        self.seq = (self.seq + 1) & 0xFFFF
        self.ts = (self.ts + SAMPLES_PER_PACKET) & 0xFFFFFFFF
        self.count += 1
        self.due += PACKET_TIME
        return packet

    def catch_up(self, now: float) -> None:
        """After a stall longer than ``_MAX_LAG`` carry on from now rather than bursting."""
        lag = now - self.due
        if lag > _MAX_LAG:
            skipped = int(lag / PACKET_TIME)
            self.due += skipped * PACKET_TIME
            self.ts = (self.ts + skipped * SAMPLES_PER_PACKET) & 0xFFFFFFFF

    def finished(self, now: float) -> bool:
        return self.end is not None and now >= self.end
