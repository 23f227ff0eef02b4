"""RFC 4733 telephone-events in the relay: payload-type mapping, digit ends, generated digits.

Theory of operation
-------------------
Each leg knows the payload type its phone uses for telephone-event (``Leg.te_pt``, -1 when
its SDP had none), set from the SDP the engine applies (``Relay.set_telephone_event``). The
forwarding loop compares one byte per RTP packet with it; a telephone-event packet takes the
slow path, :func:`on_event_packet`:

- **mapping**: when the leg it goes to has another telephone-event payload type (party A
  said 101, party B 96), the packet's PT is rewritten in the buffer before it is sent on (the
  marker bit is kept). A party without telephone-event gets the packet unchanged.
- **digit ends**: a packet with the E bit (RFC 4733 §2.5.1.4) ends an event; the usual three
  retransmitted ends share the event's RTP timestamp, so an end is reported once per
  timestamp (the leg keeps the last one). Events 0-15 are DTMF digits; others are not reported.

A report is one small datagram on the relay's event socket (:class:`EventSink`): a
``SOCK_SEQPACKET`` socketpair, written without blocking by the forwarding thread (a report
that does not fit is counted and dropped, never waited for), read by the engine when the
socket is readable (:func:`read_reports`). In ``RelayProcess`` the child writes, the parent
reads; the command socket stays what it is (round trips and their answers).

:class:`DtmfSource` plays a digit *to* a phone (a SIP INFO digit from the other party): one
packet every 20 ms from the start, its duration growing by 160 timestamp units each, then
three end packets, all with the event's one timestamp and the marker bit on the first packet
(RFC 4733 §2.5.1.2), from an SSRC of its own, with the phone's telephone-event payload type.
"""

from __future__ import annotations

import contextlib
import random
import socket
import struct
from dataclasses import dataclass

from engine.media import rtp
from engine.media.leg import Leg

__all__ = [
    "END_PACKETS",
    "DigitReport",
    "DtmfSource",
    "EventSink",
    "event_socketpair",
    "on_event_packet",
    "read_reports",
]

PACKET_TIME = 0.02
TICKS_PER_PACKET = 160  # 20 ms at 8 kHz
END_PACKETS = 3  # RFC 4733 §2.5.1.4: the end packet is sent three times
VOLUME = 10  # -10 dBm0
MIN_DURATION_MS = 40
MAX_DURATION_MS = 8000
_REPORT = struct.Struct("!IBH")  # endpoint id, event, duration (timestamp units, 16 bits)
_EVENT_PAYLOAD = struct.Struct("!BBH")  # event, E|R|volume, duration


@dataclass(frozen=True, slots=True)
class DigitReport:
    """The relay saw a telephone-event end from an endpoint's phone."""

    endpoint_id: int
    event: int  # 0-15: 0-9 * # A-D
    duration: int  # in timestamp units (8 kHz: 8 per ms)


class EventSink:
    """The writing end of the event socket (forwarding thread); drops what does not fit."""

    __slots__ = ("_sock", "dropped")

    def __init__(self, sock: socket.socket | None) -> None:
        self._sock = sock
        if sock is not None:
            sock.setblocking(False)
        self.dropped = 0

    def report(self, endpoint_id: int, event: int, duration: int) -> None:
        sock = self._sock
        if sock is None:
            return
        try:
            sock.send(_REPORT.pack(endpoint_id & 0xFFFFFFFF, event & 0xFF, duration & 0xFFFF))
        except OSError:  # full (the engine is not reading), or the reader is gone
            self.dropped += 1

    def close(self) -> None:
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.close()
            self._sock = None


def event_socketpair() -> tuple[socket.socket, socket.socket]:
    """(reader, writer): message boundaries kept, end of file when the writer is gone."""
    reader, writer = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    reader.setblocking(False)
    writer.setblocking(False)
    return reader, writer


def read_reports(sock: socket.socket) -> list[DigitReport] | None:
    """Every report waiting on ``sock`` (non-blocking); None once the writer is gone."""
    reports: list[DigitReport] = []
    while True:
        try:
            data = sock.recv(64)
        except (BlockingIOError, InterruptedError):
            return reports
        except OSError:
            return reports or None
        if not data:
            return reports or None
        if len(data) == _REPORT.size:
            reports.append(DigitReport(*_REPORT.unpack(data)))


def on_event_packet(leg: Leg, buf: bytearray, size: int, sink: EventSink) -> None:
    """A telephone-event packet from ``leg``'s phone, whose ``te_pt`` matched the packet's
    payload type (see the module docstring)."""
    out = leg.target
    out_pt = out.te_pt if isinstance(out, Leg) else -1
    if out_pt >= 0 and out_pt != leg.te_pt:
        buf[1] = (buf[1] & 0x80) | out_pt
    if size < rtp.RTP_HEADER_SIZE + 4 or buf[0] & 0x3F:  # no CSRC/extension/padding assumed
        return
    if not buf[13] & 0x80:  # not an end
        return
    timestamp = int.from_bytes(buf[4:8], "big")
    if timestamp == leg.te_end_ts:
        return  # a retransmitted end of the digit already reported
    leg.te_end_ts = timestamp
    event = buf[12]
    if event < 16:
        sink.report(leg.endpoint_id, event, (buf[14] << 8) | buf[15])


class DtmfSource:
    """One digit played to a phone as RFC 4733 packets (see the module docstring)."""

    __slots__ = ("_packet", "_sent", "_total", "due", "event", "payload_type", "seq", "ssrc", "ts")

    def __init__(
        self, event: int, duration_ms: int, payload_type: int, start: float, rng: random.Random
    ) -> None:
        if not 0 <= event <= 255:
            raise ValueError(f"telephone-event must be 0-255, not {event!r}")
        if not 0 <= payload_type <= 127:
            raise ValueError(f"payload type must be 0-127, not {payload_type!r}")
        duration_ms = min(max(duration_ms, MIN_DURATION_MS), MAX_DURATION_MS)
        self.event = event
        self.payload_type = payload_type
        self.ssrc = rng.getrandbits(32)
        self.seq = rng.getrandbits(16)
        self.ts = rng.getrandbits(32)
        # whole packets: the last update carries the full duration
        self._total = -(-duration_ms * 8 // TICKS_PER_PACKET) * TICKS_PER_PACKET
        self._sent = 0
        self._packet = bytearray(rtp.RTP_HEADER_SIZE + 4)
        self.due = start

    @property
    def updates(self) -> int:
        """Packets before the ends: one per 20 ms of the digit."""
        return self._total // TICKS_PER_PACKET

    @property
    def length(self) -> float:
        """Seconds from its first packet to the one after its last end."""
        return (self.updates + END_PACKETS) * PACKET_TIME

    @property
    def finished(self) -> bool:
        return self._sent >= self.updates + END_PACKETS

    def next_packet(self) -> bytearray:
        """The next packet (the buffer is reused by the following call)."""
        index = self._sent
        end = index >= self.updates
        duration = self._total if end else (index + 1) * TICKS_PER_PACKET
        packet = self._packet
        rtp.pack_header(packet, self.payload_type, self.seq, self.ts, self.ssrc, index == 0)
        _EVENT_PAYLOAD.pack_into(
            packet, rtp.RTP_HEADER_SIZE, self.event, (0x80 if end else 0) | VOLUME, duration
        )
        self.seq = (self.seq + 1) & 0xFFFF
        self._sent += 1
        self.due += PACKET_TIME
        return packet
