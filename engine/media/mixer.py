"""Audio mixing inside the relay: each listener hears the sum of what it may hear, minus itself.

Theory of operation
-------------------
A mix joins a few relay endpoints (the parties of one call and a supervisor) with a matrix of
who hears whom: ``hears`` holds (listener, speaker) index pairs. While an endpoint is in a mix,
the forwarding loop hands what its phone sends to a :class:`MixInput` instead of a bridged
partner's leg (the input stands in for that leg, so the loop's per-packet path is unchanged);
the input keeps the *last* frame that arrived (a jitter-tolerant slot: two frames in one tick
keep the later one, none leaves silence). Every 20 ms the relay's timer (the one that paces
tones) calls :meth:`Mix.tick`: each slot's frame is decoded once, each listener gets the sum of
the frames of the speakers it hears (never its own), clipped to 16 bits and encoded in its own
codec, as one RTP packet with the listener's own SSRC, sequence number and timestamp.

Codecs: G.711 µ-law (PT 0) and A-law (PT 8) only; a frame of another payload type (DTMF events,
comfort noise) counts as silence. Every G.711 value is a multiple of 4, so frames are decoded to
samples divided by 4 (exact) and summed as Python ints; the encode table is indexed by the sum
itself, negative sums through Python's negative indexing, with the clipping built into it, so a
frame is decoded, summed and encoded by ``map`` without a Python-level loop per sample.

Standard library only, like the rest of the relay.
"""

from __future__ import annotations

import functools
import operator
import random
from collections.abc import Callable, Sequence

from engine.media import g711, rtp

PACKET_TIME = 0.02
SAMPLES_PER_FRAME = 160
MAX_MEMBERS = 8
MIXABLE = (g711.PT_PCMU, g711.PT_PCMA)
_CODEC_NAMES = {g711.PT_PCMU: "PCMU", g711.PT_PCMA: "PCMA"}
_MAX_LAG = 0.2  # a loop this late skips ticks instead of sending a burst
_LIMIT = 8192  # |sample / 4| of a full-scale 16-bit sample
_HALF = _LIMIT * (MAX_MEMBERS - 1)  # the largest |sum| a listener can get
_SILENCE = {g711.PT_PCMU: 0xFF, g711.PT_PCMA: 0xD5}

Hears = Sequence[tuple[int, int]]


def check_mix(payload_types: Sequence[int], hears: Hears) -> None:
    """Raise ValueError naming the first thing a mix of these members cannot do."""
    count = len(payload_types)
    if not 2 <= count <= MAX_MEMBERS:
        raise ValueError(f"a mix joins 2 to {MAX_MEMBERS} endpoints, not {count}")
    for pt in payload_types:
        if pt not in MIXABLE:
            raise ValueError(
                f"the mixer takes G.711 only (PCMU 0, PCMA 8), not payload type {pt!r}"
            )
    for pair in hears:
        listener, speaker = pair
        if not (0 <= listener < count and 0 <= speaker < count):
            raise ValueError(f"hears pair {pair!r} names no member of a mix of {count}")
        if listener == speaker:
            raise ValueError(f"hears pair {pair!r}: nobody hears itself")


def codec_name(payload_type: int) -> str:
    return _CODEC_NAMES.get(payload_type, f"payload type {payload_type}")


@functools.cache
def decode_table(payload_type: int) -> tuple[int, ...]:
    """Each G.711 byte's sample divided by 4 (exact: every G.711 value is a multiple of 4)."""
    table = g711.ULAW_DECODE if payload_type == g711.PT_PCMU else g711.ALAW_DECODE
    return tuple(v >> 2 for v in table)


@functools.cache
def encode_table(payload_type: int) -> bytes:
    """The code of each sum (in samples / 4), clipped to 16 bits: index ``s`` for ``s >= 0``,
    ``len - |s|`` for a negative one, so ``table[s]`` works for every ``|s| <= _HALF``."""
    encode = g711.linear_to_ulaw if payload_type == g711.PT_PCMU else g711.linear_to_alaw
    positive = [encode(4 * v) for v in range(_LIMIT)]
    positive += [encode(32767)] * (_HALF - _LIMIT)
    negative = [encode(-32768)] * (_HALF - _LIMIT)
    negative += [encode(-4 * v) for v in range(_LIMIT, 0, -1)]
    return bytes(positive + negative)


def decode(payload: bytes, payload_type: int) -> list[int]:
    """A G.711 frame as samples / 4."""
    return list(map(decode_table(payload_type).__getitem__, payload))


def mix(frames: Sequence[list[int]]) -> list[int]:
    """The sample-wise sum of frames (the shortest decides the length); unclipped."""
    total = frames[0]
    for frame in frames[1:]:
        total = list(map(operator.add, total, frame))
    return total


def encode(samples: list[int], payload_type: int) -> bytes:
    """Sums (samples / 4) as G.711, clipped to the 16-bit range."""
    return bytes(map(encode_table(payload_type).__getitem__, samples))


def silence(payload_type: int) -> bytes:
    return bytes([_SILENCE[payload_type]]) * SAMPLES_PER_FRAME


class MixInput:
    """Stands in for the bridged partner's RTP leg in the forwarding loop: what the loop
    "sends" to it is the source's latest frame (see the module docstring)."""

    __slots__ = ("bytes_sent", "dest", "frame", "packets_sent", "send_errors", "sendto", "sink")

    def __init__(self) -> None:
        self.dest: tuple[str, int] | None = ("mix", 0)  # never None: the loop "sends"
        self.sink = False
        self.frame: bytes | None = None
        self.packets_sent = 0
        self.bytes_sent = 0
        self.send_errors = 0
        self.sendto: Callable[[bytes | bytearray | memoryview, tuple[str, int]], int] = self._take

    def _take(self, data: bytes | bytearray | memoryview, dest: tuple[str, int]) -> int:
        self.frame = bytes(data)  # the loop's buffer is reused for the next packet
        return len(data)


class _Output:
    """One listener's RTP stream out of the mix."""

    __slots__ = ("marker", "packet", "payload_type", "seq", "ssrc", "ts")

    def __init__(self, payload_type: int, rng: random.Random) -> None:
        self.payload_type = payload_type
        self.ssrc = rng.getrandbits(32)
        self.seq = rng.getrandbits(16)
        self.ts = rng.getrandbits(32)
        self.marker = True
        self.packet = bytearray(rtp.RTP_HEADER_SIZE + SAMPLES_PER_FRAME)

    def packet_for(self, payload: bytes) -> bytearray:
        packet = self.packet
        rtp.pack_header(packet, self.payload_type, self.seq, self.ts, self.ssrc, self.marker)
        packet[rtp.RTP_HEADER_SIZE :] = payload
        self.marker = False
        self.seq = (self.seq + 1) & 0xFFFF
        self.ts = (self.ts + SAMPLES_PER_FRAME) & 0xFFFFFFFF
        return packet


class Mix:
    """A mix's members, matrix and schedule; :meth:`tick` makes one round of packets.

    ``payload_types[i]`` is what member ``i``'s phone talks (it is sent that);
    ``hears`` holds (listener, speaker) index pairs.
    """

    def __init__(
        self, payload_types: Sequence[int], hears: Hears, start: float, rng: random.Random
    ) -> None:
        check_mix(payload_types, hears)
        self.inputs = [MixInput() for _ in payload_types]
        self._outputs = [_Output(pt, rng) for pt in payload_types]
        speakers: list[list[int]] = [[] for _ in payload_types]
        for listener, speaker in sorted(set(hears)):
            speakers[listener].append(speaker)
        self._speakers = speakers
        self.due = start
        self.active = True

    def frames(self) -> list[list[int] | None]:
        """Take each member's frame of this tick, decoded (None: nothing usable arrived)."""
        frames: list[list[int] | None] = []
        for member in self.inputs:
            packet, member.frame = member.frame, None
            parsed = None if packet is None else rtp.parse(packet)
            if parsed is None or parsed[0] not in MIXABLE:
                frames.append(None)
                continue
            samples = decode(parsed[4][:SAMPLES_PER_FRAME], parsed[0])
            if len(samples) < SAMPLES_PER_FRAME:  # a short frame: the rest is silence
                samples += [0] * (SAMPLES_PER_FRAME - len(samples))
            frames.append(samples)
        return frames

    def tick(self) -> list[bytearray]:
        """One packet per member (index order): the sum of what it hears; silence if none."""
        frames = self.frames()
        packets: list[bytearray] = []
        for output, speakers in zip(self._outputs, self._speakers, strict=True):
            heard = [frame for s in speakers if (frame := frames[s]) is not None]
            if heard:
                payload = encode(mix(heard), output.payload_type)
            else:
                payload = silence(output.payload_type)
            packets.append(output.packet_for(payload))
        self.due += PACKET_TIME
        return packets

    def catch_up(self, now: float) -> None:
        """After a stall longer than ``_MAX_LAG`` carry on from now rather than bursting."""
        lag = now - self.due
        if lag > _MAX_LAG:
            skipped = int(lag / PACKET_TIME)
            self.due += skipped * PACKET_TIME
            for output in self._outputs:
                output.ts = (output.ts + skipped * SAMPLES_PER_FRAME) & 0xFFFFFFFF
