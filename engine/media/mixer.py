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
comfort noise) counts as silence. The maths runs in C, without a Python-level loop per sample:
every G.711 value is a multiple of 4, so a frame is decoded (two ``bytes.translate``) into the
32-bit little-endian lanes of one big int, each lane holding ``sample / 4 + 8192`` (always
positive); adding the ints of k frames adds every lane at once (a lane stays below 2**17 for
the 7 speakers a mix of 8 can give one listener, so no carry crosses lanes); the sum's lanes
are read back as an ``array`` and encoded by one table per (codec, k), indexed by the lane
value, that has the clipping to 16 bits built in. A listener that hears one speaker talking
its own codec gets that speaker's payload unchanged.

Standard library only, like the rest of the relay.
"""

from __future__ import annotations

import array
import functools
import random
import sys
from collections.abc import Callable, Sequence

from engine.media import g711, rtp

PACKET_TIME = 0.02
SAMPLES_PER_FRAME = 160
MAX_MEMBERS = 8
MIXABLE = (g711.PT_PCMU, g711.PT_PCMA)
_CODEC_NAMES = {g711.PT_PCMU: "PCMU", g711.PT_PCMA: "PCMA"}
_MAX_LAG = 0.2  # a loop this late skips ticks instead of sending a burst
_BIAS = 8192  # |sample / 4| of a full-scale 16-bit sample: lanes hold sample / 4 + _BIAS
_LANES_BYTES = 4 * SAMPLES_PER_FRAME
_SILENCE = {g711.PT_PCMU: 0xFF, g711.PT_PCMA: 0xD5}

Hears = Sequence[tuple[int, int]]
_LANE_TYPE = next(code for code in "IL" if array.array(code).itemsize == 4)
_SWAP = sys.byteorder != "little"


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


def _decoder(payload_type: int) -> Callable[[int], int]:
    return g711.ulaw_to_linear if payload_type == g711.PT_PCMU else g711.alaw_to_linear


def _encoder(payload_type: int) -> Callable[[int], int]:
    return g711.linear_to_ulaw if payload_type == g711.PT_PCMU else g711.linear_to_alaw


@functools.cache
def _lane_tables(payload_type: int) -> tuple[bytes, bytes]:
    """The low and high byte of each code's lane value (``sample / 4 + _BIAS``)."""
    decode = _decoder(payload_type)
    values = [(decode(code) >> 2) + _BIAS for code in range(256)]
    return bytes(v & 0xFF for v in values), bytes(v >> 8 for v in values)


@functools.cache
def _base_codes(payload_type: int) -> bytes:
    """The code of each ``s = sample / 4`` in ``[-_BIAS, _BIAS)``, at index ``s + _BIAS``."""
    encode = _encoder(payload_type)
    return bytes(encode(max(-32768, min(32767, 4 * s))) for s in range(-_BIAS, _BIAS))


@functools.cache
def sum_table(payload_type: int, count: int) -> bytes:
    """The code of each lane value of a sum of ``count`` frames (``s + count * _BIAS``),
    clipped to 16 bits."""
    base = _base_codes(payload_type)
    below = bytes([base[0]]) * ((count - 1) * _BIAS)
    above = bytes([base[-1]]) * ((count - 1) * _BIAS + 1)
    return below + base + above


def pack(payload: bytes, payload_type: int) -> int:
    """A 160-byte G.711 frame as an int of 160 32-bit lanes (see the module docstring)."""
    low, high = _lane_tables(payload_type)
    lanes = bytearray(_LANES_BYTES)
    lanes[0::4] = payload.translate(low)
    lanes[1::4] = payload.translate(high)
    return int.from_bytes(lanes, "little")


def encode_sum(total: int, count: int, payload_type: int) -> bytes:
    """The sum of ``count`` packed frames as a G.711 frame, clipped to the 16-bit range."""
    lanes = array.array(_LANE_TYPE, total.to_bytes(_LANES_BYTES, "little"))
    if _SWAP:
        lanes.byteswap()
    return bytes(map(sum_table(payload_type, count).__getitem__, lanes))


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

    def frames(self) -> list[tuple[bytes, int] | None]:
        """Take each member's frame of this tick: (160-byte payload, payload type), or None
        when nothing usable arrived."""
        frames: list[tuple[bytes, int] | None] = []
        for member in self.inputs:
            packet, member.frame = member.frame, None
            parsed = None if packet is None else rtp.parse(packet)
            if parsed is None or parsed[0] not in MIXABLE:
                frames.append(None)
                continue
            pt, payload = parsed[0], parsed[4]
            if len(payload) != SAMPLES_PER_FRAME:  # a short frame ends in silence
                payload = (payload + silence(pt))[:SAMPLES_PER_FRAME]
            frames.append((payload, pt))
        return frames

    def tick(self) -> list[bytearray]:
        """One packet per member (index order): the sum of what it hears; silence if none."""
        frames = self.frames()
        packed: dict[int, int] = {}
        packets: list[bytearray] = []
        for output, speakers in zip(self._outputs, self._speakers, strict=True):
            pt = output.payload_type
            heard = [s for s in speakers if frames[s] is not None]
            if not heard:
                payload = silence(pt)
            elif len(heard) == 1 and (only := frames[heard[0]]) is not None and only[1] == pt:
                payload = only[0]  # one speaker in the listener's own codec: as it came
            else:
                total = 0
                for s in heard:
                    lanes = packed.get(s)
                    if lanes is None:
                        frame = frames[s]
                        assert frame is not None
                        lanes = packed[s] = pack(*frame)
                    total += lanes
                payload = encode_sum(total, len(heard), pt)
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
