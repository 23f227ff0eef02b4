"""Two-party call recording to a stereo WAV file (16-bit PCM, 8 kHz; left = party a, right = b).

The forwarding thread only appends ``(channel, arrival time, packet bytes)`` to a deque (one
tuple and one copy per recorded packet); a writer thread owned by the recording wakes a few times
a second, decodes G.711 (RFC 3551 PCMU/PCMA; other payload types such as telephone-event or
comfort noise are skipped), places samples on a common timeline and writes the part that can no
longer change.

Timeline: each channel is anchored by arrival time on its first packet (and again after an SSRC
or payload-type change, or when the RTP timestamp strays more than a second from the arrival
clock); between anchors, RTP timestamps (RFC 3550 5.1) place the samples, so lost packets become
silence of the right length. Whatever is still missing ``delay`` seconds behind real time is
written as silence; packets later than that are dropped and counted.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
import wave
from collections.abc import Callable
from dataclasses import dataclass

from engine.media import g711, rtp

logger = logging.getLogger(__name__)

SAMPLE_RATE = 8000
_RESYNC_SAMPLES = SAMPLE_RATE  # timestamp vs arrival disagreement that forces a new anchor

Chunk = tuple[int, float, bytes]


@dataclass(frozen=True, slots=True)
class RecordingInfo:
    """What a finished recording holds."""

    path: str
    frames: int  # samples per channel
    packets: tuple[int, int]  # decoded packets of party a and party b
    late_packets: int  # arrived after their place had been written
    skipped_packets: int  # not G.711 (or malformed)
    error: str | None  # why writing stopped early, if it did

    @property
    def duration(self) -> float:
        return self.frames / SAMPLE_RATE


class _Channel:
    __slots__ = ("packets", "pcm", "pos_base", "pt", "ssrc", "ts_base")

    def __init__(self) -> None:
        self.pcm = bytearray()  # 16-bit LE samples from the writer's ``emitted`` position on
        self.ssrc = -1
        self.pt = -1
        self.pos_base = 0
        self.ts_base = 0
        self.packets = 0


class WavRecorder:
    """Owns the WAV file and the writer thread of one recording."""

    def __init__(
        self,
        path: str,
        *,
        clock: Callable[[], float] = time.monotonic,
        flush_interval: float = 0.25,
        delay: float = 0.3,
    ) -> None:
        self.path = path
        self._clock = clock
        self._flush_interval = flush_interval
        self._delay = delay
        self._file = open(path, "wb")  # noqa: SIM115 - closed by close()
        writer = wave.open(self._file, "wb")  # noqa: SIM115
        writer.setnchannels(2)
        writer.setsampwidth(2)
        writer.setframerate(SAMPLE_RATE)
        self._wav: wave.Wave_write = writer
        self._queue: collections.deque[Chunk] = collections.deque()
        self.push: Callable[[Chunk], None] = self._queue.append  # the hot-path entry point
        self._channels = (_Channel(), _Channel())
        self._start = clock()
        self._emitted = 0
        self._late = 0
        self._skipped = 0
        self._error: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"wav-writer {path}", daemon=True)
        self._thread.start()

    def close(self) -> RecordingInfo:
        """Write everything received, finish the file's header and return its description."""
        if not self._stop.is_set():
            self._stop.set()
            self._thread.join()
            self._drain()
            end = max(len(ch.pcm) for ch in self._channels) // 2 + self._emitted
            self._write_until(end)
            try:
                self._wav.close()  # patches the header's sizes
                self._file.close()
            except OSError as exc:
                self._fail(exc)
                self._file.close()
        return RecordingInfo(
            path=self.path,
            frames=self._emitted,
            packets=(self._channels[0].packets, self._channels[1].packets),
            late_packets=self._late,
            skipped_packets=self._skipped,
            error=self._error,
        )

    def _run(self) -> None:
        while not self._stop.wait(self._flush_interval):
            self._drain()
            now = self._clock() - self._start - self._delay
            self._write_until(int(now * SAMPLE_RATE))

    def _drain(self) -> None:
        queue = self._queue
        while queue:
            channel, arrival, packet = queue.popleft()
            self._place(self._channels[channel], arrival, packet)

    def _place(self, ch: _Channel, arrival: float, packet: bytes) -> None:
        parsed = rtp.parse(packet)
        tables = None if parsed is None else g711.decoder_for(parsed[0])
        if parsed is None or tables is None:
            self._skipped += 1
            return
        pt, _seq, ts, ssrc, payload = parsed
        count = len(payload)
        by_arrival = int((arrival - self._start) * SAMPLE_RATE) - count
        delta = (ts - ch.ts_base) & 0xFFFFFFFF
        if delta >= 1 << 31:
            delta -= 1 << 32
        position = ch.pos_base + delta
        if ssrc != ch.ssrc or pt != ch.pt or abs(position - by_arrival) > _RESYNC_SAMPLES:
            ch.ssrc, ch.pt, ch.ts_base = ssrc, pt, ts
            ch.pos_base = position = max(by_arrival, 0)
        pcm = g711.decode(payload, tables)
        offset = 2 * (position - self._emitted)
        if offset < 0:
            if offset + len(pcm) <= 0:
                self._late += 1
                return
            pcm = pcm[-offset:]
            offset = 0
        buffer = ch.pcm
        if offset > len(buffer):
            buffer.extend(bytes(offset - len(buffer)))
        buffer[offset : offset + len(pcm)] = pcm
        ch.packets += 1

    def _write_until(self, end: int) -> None:
        count = end - self._emitted
        if count <= 0:
            return
        size = 2 * count
        left, right = (self._take(ch.pcm, size) for ch in self._channels)
        frames = bytearray(2 * size)
        frames[0::4] = left[0::2]
        frames[1::4] = left[1::2]
        frames[2::4] = right[0::2]
        frames[3::4] = right[1::2]
        self._emitted = end
        if self._error is None:
            try:
                self._wav.writeframesraw(frames)
            except OSError as exc:
                self._fail(exc)

    @staticmethod
    def _take(buffer: bytearray, size: int) -> bytes:
        if len(buffer) < size:
            buffer.extend(bytes(size - len(buffer)))
        chunk = bytes(buffer[:size])
        del buffer[:size]
        return chunk

    def _fail(self, exc: OSError) -> None:
        logger.error("recording %s stopped: %s", self.path, exc)
        self._error = str(exc)
