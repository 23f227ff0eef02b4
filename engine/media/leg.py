"""Per-socket state of the relay: counters, latching and RTP sequence tracking.

Theory of operation
-------------------
A leg is one bound UDP socket (the RTP or the RTCP socket of an endpoint). Its ``dest`` is where
packets for the endpoint's phone go, sent *from this socket*; its ``target`` is the leg (of the
bridged partner, or itself in echo mode) whose socket sends on what arrives here.

Symmetric latching (the "comedia" practice, RFC 4961 symmetric RTP): before anything arrives,
``dest`` is the address the phone's SDP gave. The first valid packet (RTP version 2 with a full
header; RTCP version 2 with a packet type of 192-223 and a consistent length) latches: ``dest``
becomes its source address. After that a packet from another address re-latches only when it
carries a different SSRC (a new stream, e.g. after a transfer) or when the latched address has
been silent for ``relatch_after`` seconds (a NAT rebinding); otherwise it is counted as foreign
and dropped, so a stray or spoofed sender cannot steal the stream. Packets that are not valid
RTP/RTCP are forwarded only from the latched address (keep-alives).

Loss (RFC 3550 appendix A.3): the hot loop keeps ``max_seq`` and ``cycles`` (wraps times 65536)
and ``received``; a jump of ``MAX_DROPOUT`` or more is not counted until a second packet follows
it in sequence, which restarts the count. A packet with another SSRC (a new source on the same
address: the phone after a transfer, a tone then a real stream) restarts it at once, whatever
its sequence number. ``expected`` is ``cycles + max_seq - base_seq + 1`` and ``lost`` is
``expected - received``.

The counters are plain ints updated only by the forwarding thread; readers take snapshots
without locking (each int read is atomic, the set of them is not, which is fine for statistics).
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable
from typing import TYPE_CHECKING

from engine.media import rtp
from engine.media.stats import ChannelStats

logger = logging.getLogger(__name__)

if TYPE_CHECKING:
    from engine.media.mixer import MixInput

Address = tuple[str, int]


class Leg:
    """One socket of an endpoint (see the module docstring)."""

    __slots__ = (
        "bad_seq",
        "base_seq",
        "bytes_received",
        "bytes_sent",
        "cycles",
        "dest",
        "dropped",
        "endpoint_id",
        "fd",
        "foreign",
        "is_rtp",
        "last_rx",
        "max_seq",
        "name",
        "packets_received",
        "packets_sent",
        "rec_channel",
        "received",
        "recorder",
        "recvfrom_into",
        "relatch_after",
        "sdp_dest",
        "send_errors",
        "sendto",
        "sink",
        "sock",
        "src",
        "ssrc",
        "target",
        "te_end_ts",
        "te_pt",
    )

    def __init__(
        self,
        sock: socket.socket,
        is_rtp: bool,
        name: str,
        relatch_after: float,
        endpoint_id: int = 0,
    ) -> None:
        self.sock = sock
        self.endpoint_id = endpoint_id
        self.fd = sock.fileno()
        self.recvfrom_into = sock.recvfrom_into
        self.sendto = sock.sendto
        self.is_rtp = is_rtp
        self.name = name
        self.relatch_after = relatch_after
        self.target: Leg | MixInput | None = None  # a mix's input while mixed
        self.dest: Address | None = None
        self.sdp_dest: Address | None = None
        self.src: Address | None = None
        self.last_rx = 0.0
        self.packets_received = 0
        self.bytes_received = 0
        self.packets_sent = 0
        self.bytes_sent = 0
        self.dropped = 0
        self.foreign = 0
        self.send_errors = 0
        self.ssrc = -1
        self.base_seq = 0
        self.max_seq = 0
        self.bad_seq = -1
        self.cycles = 0
        self.received = 0
        self.recorder: Callable[[tuple[int, float, bytes]], None] | None = None
        self.rec_channel = 0
        # the phone is inside the relay (a sandbox): what is forwarded to it arrives there
        self.sink = False
        # RFC 4733: the phone's telephone-event payload type (-1: none agreed), and the RTP
        # timestamp of the last event end reported (see ``engine.media.telephone_event``)
        self.te_pt = -1
        self.te_end_ts = -1

    def accept_source(self, addr: Address, buf: bytearray, size: int, now: float) -> bool:
        """Slow path for a packet whose source is not the latched one: latch, or reject it."""
        ssrc = self._packet_ssrc(buf, size)
        if ssrc < 0:  # not RTP/RTCP version 2: only the latched source may send such packets
            self.foreign += 1
            return False
        if self.src is not None and ssrc == self.ssrc and now - self.last_rx < self.relatch_after:
            self.foreign += 1
            return False
        logger.debug("%s latched to %s:%d (ssrc %08x)", self.name, addr[0], addr[1], ssrc)
        self.src = addr
        self.dest = addr
        if ssrc != self.ssrc:
            self.ssrc = ssrc
            if self.is_rtp:
                self.init_seq((buf[2] << 8) | buf[3])
        return True

    def _packet_ssrc(self, buf: bytearray, size: int) -> int:
        if self.is_rtp:
            if size < rtp.RTP_HEADER_SIZE or buf[0] & 0xC0 != rtp.RTP_VERSION_BITS:
                return -1
            return int.from_bytes(buf[8:12], "big")
        # RTCP (RFC 3550 6.4, A.2): version 2, a packet type of 192-223 (RFC 5761 4), and a
        # first packet that fits in the datagram
        if size < 8 or buf[0] & 0xC0 != rtp.RTP_VERSION_BITS or not 192 <= buf[1] <= 223:
            return -1
        if 4 * (((buf[2] << 8) | buf[3]) + 1) > size:
            return -1
        return int.from_bytes(buf[4:8], "big")

    def init_seq(self, seq: int) -> None:
        self.base_seq = seq
        self.max_seq = seq
        self.bad_seq = -1
        self.cycles = 0
        self.received = 0

    def seq_jump(self, seq: int) -> None:
        """A.3's large-jump case (same SSRC): count from here if the next packet follows it."""
        if seq == self.bad_seq:
            self.init_seq(seq)
            self.received = 1
        else:
            self.bad_seq = (seq + 1) & 0xFFFF

    def note_rtp(self, ssrc: int, seq: int) -> None:
        """Count one RTP packet of the stream (A.3); the forwarding loop inlines the same."""
        if ssrc != self.ssrc:
            self.new_stream(ssrc, seq)
            return
        udelta = (seq - self.max_seq) & 0xFFFF
        if udelta < rtp.MAX_DROPOUT:
            if seq < self.max_seq:
                self.cycles += rtp.SEQ_MOD
            self.max_seq = seq
            self.received += 1
        elif udelta > rtp.SEQ_MOD - rtp.MAX_MISORDER:  # late or duplicate
            self.received += 1
        else:
            self.seq_jump(seq)

    def new_stream(self, ssrc: int, seq: int) -> None:
        """An RTP packet with another SSRC than the stream's: a new source (A.3), whose
        sequence numbers have nothing to do with the old one's, so loss is counted anew."""
        self.ssrc = ssrc
        self.init_seq(seq)
        self.received = 1

    def reset_latch(self) -> None:
        self.src = None
        self.dest = self.sdp_dest

    def expected(self) -> int:
        if self.ssrc < 0:
            return 0
        return rtp.expected_packets(self.base_seq, self.max_seq, self.cycles)

    def snapshot(self) -> ChannelStats:
        return ChannelStats(
            packets_received=self.packets_received,
            bytes_received=self.bytes_received,
            packets_sent=self.packets_sent,
            bytes_sent=self.bytes_sent,
            packets_dropped=self.dropped,
            packets_foreign=self.foreign,
            send_errors=self.send_errors,
            latched=None if self.src is None else (self.src[0], self.src[1]),
        )
