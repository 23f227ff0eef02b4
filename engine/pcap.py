"""A SIP trace as a pcap file (libpcap format) that Wireshark, tshark and sngrep open.

Each message becomes one Ethernet frame holding an IPv4 (or IPv6) packet with a UDP datagram
whose payload is the message's text, timestamped as traced. The headers are synthetic: the
server's side is ``local`` (its SIP listener), the other side the message's peer, and a
message that went over TCP is written as UDP too (one message per datagram is what SIP
dissectors expect; a TCP stream would need made-up sequence numbers and handshakes).
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Iterable

from engine.trace import TraceRecord

__all__ = ["trace_pcap"]

_MAGIC = 0xA1B2C3D4  # microsecond timestamps
_LINKTYPE_ETHERNET = 1
_SNAPLEN = 262144
_MAC_SERVER = bytes.fromhex("020000000001")  # locally administered, made up
_MAC_PEER = bytes.fromhex("020000000002")


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:  # a name, not an address: a documentation address stands in
        return ipaddress.ip_address("192.0.2.1")


def _packet(src: tuple[str, int], dst: tuple[str, int], payload: bytes, macs: bytes) -> bytes:
    """An Ethernet frame (``macs``: destination then source) with the UDP datagram."""
    s, d = _address(src[0]), _address(dst[0])
    if s.version != d.version:  # v4-mapped mix: write both as IPv6
        s = ipaddress.IPv6Address(f"::ffff:{s}") if s.version == 4 else s
        d = ipaddress.IPv6Address(f"::ffff:{d}") if d.version == 4 else d
    length = 8 + len(payload)
    udp = struct.pack("!HHHH", src[1], dst[1], length, 0) + payload
    if s.version == 4:
        pseudo = s.packed + d.packed + struct.pack("!BBH", 0, 17, length)
        udp = udp[:6] + struct.pack("!H", _checksum(pseudo + udp) or 0xFFFF) + udp[8:]
        header = struct.pack(
            "!BBHHHBBH4s4s", 0x45, 0, 20 + length, 0, 0x4000, 64, 17, 0, s.packed, d.packed
        )
        header = header[:10] + struct.pack("!H", _checksum(header)) + header[12:]
        return macs + b"\x08\x00" + header + udp
    pseudo = s.packed + d.packed + struct.pack("!I3xB", length, 17)
    udp = udp[:6] + struct.pack("!H", _checksum(pseudo + udp) or 0xFFFF) + udp[8:]
    header = struct.pack("!IHBB16s16s", 6 << 28, length, 17, 64, s.packed, d.packed)
    return macs + b"\x86\xdd" + header + udp


def trace_pcap(records: Iterable[TraceRecord], local: tuple[str, int]) -> bytes:
    """The pcap file of ``records``, the server being ``local`` (host, port)."""
    out = [struct.pack("<IHHiIII", _MAGIC, 2, 4, 0, 0, _SNAPLEN, _LINKTYPE_ETHERNET)]
    for record in records:
        peer = (record.host, record.port)
        payload = record.message.encode("utf-8")[:65000]
        if record.direction == "in":
            frame = _packet(peer, local, payload, _MAC_SERVER + _MAC_PEER)
        else:
            frame = _packet(local, peer, payload, _MAC_PEER + _MAC_SERVER)
        seconds = int(record.ts)
        micros = round((record.ts - seconds) * 1_000_000)
        if micros >= 1_000_000:
            seconds, micros = seconds + 1, micros - 1_000_000
        out.append(struct.pack("<IIII", seconds, micros, len(frame), len(frame)))
        out.append(frame)
    return b"".join(out)
