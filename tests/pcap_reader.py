"""A small pcap reader for the tests, written apart from ``engine.pcap``: it checks the file
header, each frame's IPv4 header checksum and UDP checksum, and gives the frames back."""

from __future__ import annotations

import ipaddress
import struct


def read_pcap(data: bytes) -> list[tuple[float, str, int, str, int, bytes]]:
    """A small independent pcap reader: (ts, src, sport, dst, dport, payload) per frame,
    checking the IP and UDP checksums."""
    magic, major, minor, _, _, _, linktype = struct.unpack("<IHHiIII", data[:24])
    assert (magic, major, minor, linktype) == (0xA1B2C3D4, 2, 4, 1)
    offset, frames = 24, []
    while offset < len(data):
        sec, usec, caplen, origlen = struct.unpack("<IIII", data[offset : offset + 16])
        assert caplen == origlen
        frame = data[offset + 16 : offset + 16 + caplen]
        offset += 16 + caplen
        ethertype = struct.unpack("!H", frame[12:14])[0]
        packet = frame[14:]
        if ethertype == 0x0800:
            ihl = (packet[0] & 0x0F) * 4
            assert packet[9] == 17
            assert _sum(packet[:ihl]) == 0xFFFF  # header checksum verifies
            src, dst = packet[12:16], packet[16:20]
            udp = packet[ihl:]
            pseudo = src + dst + struct.pack("!BBH", 0, 17, len(udp))
        else:
            assert ethertype == 0x86DD and packet[6] == 17
            src, dst = packet[8:24], packet[24:40]
            udp = packet[40:]
            pseudo = src + dst + struct.pack("!I3xB", len(udp), 17)
        sport, dport, length, _ = struct.unpack("!HHHH", udp[:8])
        assert length == len(udp)
        assert _sum(pseudo + udp) == 0xFFFF  # UDP checksum verifies
        frames.append(
            (
                sec + usec / 1e6,
                str(ipaddress.ip_address(src)),
                sport,
                str(ipaddress.ip_address(dst)),
                dport,
                udp[8:],
            )
        )
    return frames


def _sum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total
