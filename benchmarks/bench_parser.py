"""Parser and serialiser throughput on a realistic call's worth of messages.

The mix is one basic call as a B2BUA sees it: INVITE with SDP, 100, 180, 200 with SDP, ACK, BYE
and its 200.  "parse" includes reading what a transaction layer reads from every message (top Via
branch, Call-ID, CSeq, From tag, To tag); "serialize" writes the same messages back to bytes.

Run: ``python benchmarks/bench_parser.py [--seconds N] [--profile parse|serialize]``
Prints messages per CPU-second for each direction (one core, process time).
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import time
from collections.abc import Callable

from sip.message import Message, parse_message, serialize

SDP_A = (
    b"v=0\r\n"
    b"o=alice 2890844526 2890844526 IN IP4 198.51.100.10\r\n"
    b"s=-\r\n"
    b"c=IN IP4 198.51.100.10\r\n"
    b"t=0 0\r\n"
    b"m=audio 49170 RTP/AVP 0 8 101\r\n"
    b"a=rtpmap:0 PCMU/8000\r\n"
    b"a=rtpmap:8 PCMA/8000\r\n"
    b"a=rtpmap:101 telephone-event/8000\r\n"
    b"a=fmtp:101 0-15\r\n"
    b"a=sendrecv\r\n"
)
SDP_B = SDP_A.replace(b"alice", b"bob").replace(b"198.51.100.10", b"203.0.113.20")

CALL_ID = b"a84b4c76e66710@pc33.atlanta.example.com"
VIA = b"Via: SIP/2.0/UDP pc33.atlanta.example.com:5060;branch=z9hG4bK776asdhds;rport\r\n"
VIA_ACK = b"Via: SIP/2.0/UDP pc33.atlanta.example.com:5060;branch=z9hG4bK776asdhdt;rport\r\n"
VIA_BYE = b"Via: SIP/2.0/UDP pc33.atlanta.example.com:5060;branch=z9hG4bK776asdhdu;rport\r\n"
FROM = b'From: "Alice" <sip:alice@atlanta.example.com>;tag=1928301774\r\n'
TO = b"To: <sip:bob@biloxi.example.com>\r\n"
TO_TAG = b"To: <sip:bob@biloxi.example.com>;tag=a6c85cf\r\n"


def _msg(start: bytes, headers: list[bytes], body: bytes = b"") -> bytes:
    content_type = b"Content-Type: application/sdp\r\n" if body else b""
    return (
        start
        + b"\r\n"
        + b"".join(headers)
        + content_type
        + b"Content-Length: "
        + str(len(body)).encode()
        + b"\r\n\r\n"
        + body
    )


def call_messages() -> list[bytes]:
    common_uas = [VIA, FROM, TO_TAG, b"Call-ID: " + CALL_ID + b"\r\n"]
    return [
        _msg(
            b"INVITE sip:bob@biloxi.example.com SIP/2.0",
            [
                VIA,
                b"Max-Forwards: 70\r\n",
                FROM,
                TO,
                b"Call-ID: " + CALL_ID + b"\r\n",
                b"CSeq: 314159 INVITE\r\n",
                b"Contact: <sip:alice@pc33.atlanta.example.com:5060;transport=udp>\r\n",
                b"Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, UPDATE, REFER, NOTIFY\r\n",
                b"Supported: replaces, timer\r\n",
                b"User-Agent: ExamplePhone/1.2.3\r\n",
            ],
            SDP_A,
        ),
        _msg(
            b"SIP/2.0 100 Trying",
            [VIA, FROM, TO, b"Call-ID: " + CALL_ID + b"\r\n", b"CSeq: 314159 INVITE\r\n"],
        ),
        _msg(
            b"SIP/2.0 180 Ringing",
            [
                *common_uas,
                b"CSeq: 314159 INVITE\r\n",
                b"Contact: <sip:bob@192.0.2.4:5060>\r\n",
            ],
        ),
        _msg(
            b"SIP/2.0 200 OK",
            [
                *common_uas,
                b"CSeq: 314159 INVITE\r\n",
                b"Contact: <sip:bob@192.0.2.4:5060>\r\n",
                b"Allow: INVITE, ACK, CANCEL, BYE, OPTIONS\r\n",
                b"Server: ExampleGateway/4.5\r\n",
            ],
            SDP_B,
        ),
        _msg(
            b"ACK sip:bob@192.0.2.4:5060 SIP/2.0",
            [
                VIA_ACK,
                b"Max-Forwards: 70\r\n",
                FROM,
                TO_TAG,
                b"Call-ID: " + CALL_ID + b"\r\n",
                b"CSeq: 314159 ACK\r\n",
            ],
        ),
        _msg(
            b"BYE sip:bob@192.0.2.4:5060 SIP/2.0",
            [
                VIA_BYE,
                b"Max-Forwards: 70\r\n",
                FROM,
                TO_TAG,
                b"Call-ID: " + CALL_ID + b"\r\n",
                b"CSeq: 314160 BYE\r\n",
            ],
        ),
        _msg(
            b"SIP/2.0 200 OK",
            [
                VIA_BYE,
                FROM,
                TO_TAG,
                b"Call-ID: " + CALL_ID + b"\r\n",
                b"CSeq: 314160 BYE\r\n",
            ],
        ),
    ]


def parse_and_read(data: bytes) -> object:
    """What a transaction layer does with every received message."""
    msg = parse_message(data)
    return (msg.top_via.branch, msg.call_id, msg.cseq, msg.from_.tag, msg.to.tag)


def rate(fn: Callable[[], int], seconds: float) -> float:
    """Messages per second of CPU time (the machine may be shared: wall time would lie)."""
    done = 0
    start = time.process_time()
    deadline = start + seconds
    while time.process_time() < deadline:
        for _ in range(50):
            done += fn()
    return done / (time.process_time() - start)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--profile", choices=["parse", "serialize"])
    args = parser.parse_args(argv)

    wire = call_messages()
    messages: list[Message] = [parse_message(data) for data in wire]
    for msg in messages:  # the mix round-trips
        assert parse_message(serialize(msg)) == msg

    def parse_batch() -> int:
        for data in wire:
            parse_and_read(data)
        return len(wire)

    def serialize_batch() -> int:
        for msg in messages:
            serialize(msg)
        return len(messages)

    if args.profile:
        target = parse_batch if args.profile == "parse" else serialize_batch
        profiler = cProfile.Profile()
        profiler.enable()
        rate(target, args.seconds)
        profiler.disable()
        pstats.Stats(profiler, stream=sys.stdout).sort_stats("tottime").print_stats(20)
        return 0

    rate(parse_batch, 0.2)  # warm-up
    parse_rate = rate(parse_batch, args.seconds)
    serialize_rate = rate(serialize_batch, args.seconds)
    size = sum(len(d) for d in wire) / len(wire)
    sys.stdout.write(
        f"mix: {len(wire)} messages, {size:.0f} bytes average"
        " (INVITE+SDP, 100, 180, 200+SDP, ACK, BYE, 200)\n"
        f"parse + read Via branch/Call-ID/CSeq/tags: {parse_rate:,.0f} messages/s\n"
        f"serialize:                                 {serialize_rate:,.0f} messages/s\n"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
