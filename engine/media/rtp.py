"""RTP/RTCP header facts the relay needs (RFC 3550 sections 5.1, 6.4 and appendix A.3).

The forwarding loop reads the sequence number straight out of its receive buffer; this module
holds the constants, the header builder used by the tone source, the payload locator used by the
recorder and the loss arithmetic of appendix A.3 applied when counters are read.
"""

from __future__ import annotations

import struct

RTP_HEADER_SIZE = 12
RTP_VERSION_BITS = 0x80  # version 2 in the top two bits of the first byte
SEQ_MOD = 1 << 16
MAX_DROPOUT = 3000  # RFC 3550 A.3: a jump this large (forward) is not a loss but a restart
MAX_MISORDER = 100  # ... and this far backwards is a late/duplicate packet

_HEADER = struct.Struct("!BBHII")


def pack_header(
    buffer: bytearray, payload_type: int, seq: int, timestamp: int, ssrc: int, marker: bool = False
) -> None:
    """Write a 12-byte RTP header (no CSRC, no extension) at the start of ``buffer``."""
    _HEADER.pack_into(
        buffer,
        0,
        RTP_VERSION_BITS,
        (0x80 if marker else 0) | (payload_type & 0x7F),
        seq & 0xFFFF,
        timestamp & 0xFFFFFFFF,
        ssrc & 0xFFFFFFFF,
    )


def is_rtp(packet: bytes | bytearray | memoryview) -> bool:
    """True when the packet is at least a fixed header with version 2."""
    return len(packet) >= RTP_HEADER_SIZE and packet[0] & 0xC0 == RTP_VERSION_BITS


def parse(packet: bytes) -> tuple[int, int, int, int, bytes] | None:
    """(payload_type, seq, timestamp, ssrc, payload) of an RTP packet, or None if malformed.

    CSRCs, the header extension and padding are skipped as RFC 3550 5.1/5.3.1 describe.
    """
    if not is_rtp(packet):
        return None
    first, second, seq, timestamp, ssrc = _HEADER.unpack_from(packet)
    offset = RTP_HEADER_SIZE + 4 * (first & 0x0F)
    end = len(packet)
    if first & 0x10:  # extension: 16-bit profile, 16-bit length in 32-bit words
        if end < offset + 4:
            return None
        offset += 4 + 4 * ((packet[offset + 2] << 8) | packet[offset + 3])
    if first & 0x20:  # padding: the last byte counts the padding bytes
        end -= packet[-1]
    if offset > end:
        return None
    return second & 0x7F, seq, timestamp, ssrc, packet[offset:end]


def expected_packets(base_seq: int, max_seq: int, cycles: int) -> int:
    """RFC 3550 A.3 ``expected``: extended highest sequence number minus the base, plus one."""
    return cycles + max_seq - base_seq + 1
