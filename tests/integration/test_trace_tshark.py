"""The pcap export opened by Wireshark's own dissectors (``tshark``, Debian ``tshark``, which
``.ci/run`` installs): every frame is a SIP message with the method or status we wrote, between
the addresses we wrote. Without tshark the test skips, except in CI (``CI`` set) where it fails."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from engine.pcap import trace_pcap
from engine.trace import TraceRecord


def sip(first_line: str, cseq: str, body: str = "") -> str:
    return (
        f"{first_line}\r\n"
        "Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK74bf9\r\n"
        "From: <sip:0003*210@voip.example.com>;tag=9fxced76sl\r\n"
        "To: <sip:0003*00@voip.example.com>;tag=8321234356\r\n"
        "Call-ID: 3848276298220188511@127.0.0.1\r\n"
        f"CSeq: {cseq}\r\n"
        "Contact: <sip:127.0.0.1:5060>\r\n"
        f"Content-Length: {len(body.encode())}\r\n\r\n{body}"
    )


def test_tshark_reads_every_message_of_the_pcap(tmp_path: Path) -> None:
    tshark = shutil.which("tshark")
    if tshark is None:
        if os.environ.get("CI"):
            pytest.fail("CI: tshark is not installed (Debian tshark; .ci/run installs it)")
        pytest.skip("tshark is not installed")
    records = [
        TraceRecord(
            1_800_000_000.25,
            "out",
            "0003*210",
            "udp",
            "127.0.0.2",
            5062,
            sip("INVITE sip:0003*210@127.0.0.2:5062 SIP/2.0", "1 INVITE"),
        ),
        TraceRecord(
            1_800_000_000.50,
            "in",
            "0003*210",
            "udp",
            "127.0.0.2",
            5062,
            sip("SIP/2.0 180 Ringing", "1 INVITE"),
        ),
        TraceRecord(
            1_800_000_001.00,
            "in",
            "0003*210",
            "tcp",
            "127.0.0.2",
            5062,
            sip("SIP/2.0 200 OK", "1 INVITE"),
        ),
        TraceRecord(
            1_800_000_001.01,
            "out",
            "0003*210",
            "udp",
            "127.0.0.2",
            5062,
            sip("ACK sip:0003*210@127.0.0.2:5062 SIP/2.0", "1 ACK"),
        ),
        TraceRecord(
            1_800_000_003.00,
            "out",
            "gw",
            "udp",
            "::1",
            5080,
            sip("BYE sip:gw@[::1]:5080 SIP/2.0", "2 BYE"),
        ),
    ]
    path = tmp_path / "trace.pcap"
    path.write_bytes(trace_pcap(records, ("127.0.0.1", 5060)))
    fields = ["frame.time_epoch", "ip.src", "ipv6.src", "udp.srcport", "udp.dstport"]
    fields += ["sip.Method", "sip.Status-Code", "udp.checksum.status"]
    command = [tshark, "-n", "-r", str(path), "-o", "udp.check_checksum:TRUE"]
    command += ["-d", "udp.port==5060,sip", "-d", "udp.port==5080,sip", "-T", "fields"]
    command += [arg for name in fields for arg in ("-e", name)] + ["-E", "separator=|"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    lines = [line.split("|") for line in done.stdout.splitlines() if line.strip()]
    assert len(lines) == len(records), done.stdout
    methods = [line[5] or line[6] for line in lines]
    assert methods == ["INVITE", "180", "200", "ACK", "BYE"]
    sources = [line[1] or line[2] for line in lines]
    assert sources == ["127.0.0.1", "127.0.0.2", "127.0.0.2", "127.0.0.1", "::ffff:127.0.0.1"]
    assert [(line[3], line[4]) for line in lines][:2] == [("5060", "5062"), ("5062", "5060")]
    assert [round(float(line[0]), 2) for line in lines] == [round(r.ts, 2) for r in records]
    # Wireshark verified every UDP checksum (1 = good: PROTO_CHECKSUM_E_GOOD)
    assert {line[7] for line in lines} <= {"1", "Good"}, done.stdout
