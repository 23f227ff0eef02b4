"""Per-call SIP traces (engine.trace) and their pcap form (engine.pcap)."""

from __future__ import annotations

import gc
import json

import pytest

from engine.pcap import trace_pcap
from engine.trace import CallTraces, TraceRecord
from sip.message import Message, parse_message, serialize
from sip.transaction_types import Peer
from tests.pcap_reader import read_pcap

PHONE = Peer("udp", "127.0.0.1", 5062)


def sip(first_line: str, call_id: str, cseq: str = "1 INVITE", body: str = "") -> Message:
    text = (
        f"{first_line}\r\n"
        "Via: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bK1\r\n"
        "From: <sip:a@127.0.0.1>;tag=1\r\n"
        "To: <sip:b@127.0.0.1>\r\n"
        f"Call-ID: {call_id}\r\n"
        f"CSeq: {cseq}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n{body}"
    )
    return parse_message(text.encode())


def observe(t: CallTraces, direction: str, message: Message, peer: Peer) -> None:
    """What the transport does: the message with its wire bytes."""
    t.message(direction, message, peer, serialize(message))  # type: ignore[arg-type]


def invite(call_id: str) -> Message:
    return sip("INVITE sip:b@127.0.0.1 SIP/2.0", call_id)


def ok(call_id: str) -> Message:
    return sip("SIP/2.0 200 OK", call_id)


class Clocks:
    def __init__(self) -> None:
        self.now = 1000.0

    def wall(self) -> float:
        return 1_800_000_000.0 + self.now

    def mono(self) -> float:
        return self.now


def traces(clocks: Clocks, **kw: object) -> CallTraces:
    return CallTraces(wall_clock=clocks.wall, clock=clocks.mono, **kw)  # type: ignore[arg-type]


def test_messages_are_filed_under_their_call_by_call_id_in_order() -> None:
    clocks = Clocks()
    t = traces(clocks)
    t.bind("leg-a", "pc1", "0003*210")
    t.bind("leg-b", "pc1", "0003*00")
    observe(t, "out", invite("leg-a"), PHONE)
    clocks.now += 0.25
    observe(t, "in", ok("leg-a"), PHONE)
    observe(t, "out", invite("leg-b"), Peer("udp", "127.0.0.1", 5080))
    observe(t, "out", invite("someone-else"), PHONE)
    records = t.trace("pc1")
    assert records is not None
    assert [(r.direction, r.party, r.message.split("\r\n", 1)[0]) for r in records] == [
        ("out", "0003*210", "INVITE sip:b@127.0.0.1 SIP/2.0"),
        ("in", "0003*210", "SIP/2.0 200 OK"),
        ("out", "0003*00", "INVITE sip:b@127.0.0.1 SIP/2.0"),
    ]
    assert records[1].ts - records[0].ts == pytest.approx(0.25)
    assert records[0].peer == "127.0.0.1:5062"
    assert "Call-ID: leg-a" in records[0].message
    assert t.trace("unknown") is None


def test_messages_before_the_bind_join_the_trace() -> None:
    # an inbound INVITE and its digest challenge come before the PhoneCall exists
    t = traces(Clocks())
    observe(t, "in", invite("in-1"), PHONE)
    observe(t, "out", sip("SIP/2.0 407 Proxy Authentication Required", "in-1"), PHONE)
    observe(t, "in", invite("in-1"), PHONE)
    t.bind("in-1", "pc2", "0003*211")
    observe(t, "out", ok("in-1"), PHONE)
    records = t.trace("pc2")
    assert records is not None
    assert [r.message.split(" ", 2)[1] for r in records] == [
        "sip:b@127.0.0.1",
        "407",
        "sip:b@127.0.0.1",
        "200",
    ]
    assert {r.party for r in records} == {"0003*211"}


def test_the_unbound_buffer_is_bounded() -> None:
    t = traces(Clocks(), pending_calls=4)
    for n in range(10):
        for _ in range(40):
            observe(t, "in", sip("OPTIONS sip:b@127.0.0.1 SIP/2.0", f"opt-{n}", "1 OPTIONS"), PHONE)
    stats = t.statistics()
    assert stats["pending_call_ids"] == 4
    t.bind("opt-9", "pc", "x")
    records = t.trace("pc")
    assert records is not None and len(records) == 16  # per Call-ID cap
    t.bind("opt-0", "pc0", "x")  # pushed out long ago
    assert t.trace("pc0") == []


def test_a_live_call_keeps_its_last_messages_only() -> None:
    t = traces(Clocks(), per_call=5)
    t.bind("c", "pc", "p")
    for n in range(12):
        observe(t, "out", sip("INFO sip:b@127.0.0.1 SIP/2.0", "c", f"{n + 1} INFO"), PHONE)
    records = t.trace("pc")
    assert records is not None
    assert [r.message.split("CSeq: ")[1].split(" ")[0] for r in records] == [
        "8",
        "9",
        "10",
        "11",
        "12",
    ]


def test_a_finished_trace_takes_late_messages_then_is_frozen_and_kept() -> None:
    clocks = Clocks()
    t = traces(clocks, linger=32.0)
    t.bind("c", "pc", "p")
    observe(t, "out", invite("c"), PHONE)
    t.call_ended("pc")
    clocks.now += 10
    observe(t, "in", ok("c"), PHONE)  # the BYE's answer, after the call's final event
    clocks.now += 30
    observe(t, "in", ok("other"), PHONE)  # any activity sweeps
    assert t.statistics()["frozen_traces"] == 1
    observe(t, "in", ok("c"), PHONE)  # the Call-ID is forgotten once frozen
    clocks.now += 3600 * 5  # hours later, within the byte budget: still there
    records = t.trace("pc")
    assert records is not None and len(records) == 2
    assert records[1].message.startswith("SIP/2.0 200 OK")


def test_frozen_traces_are_evicted_oldest_first_beyond_the_byte_budget() -> None:
    clocks = Clocks()
    t = traces(clocks, linger=0.0, max_bytes=2000)
    for n in range(20):
        t.bind(f"c{n}", f"pc{n}", "p")
        observe(t, "out", sip("INVITE sip:b@127.0.0.1 SIP/2.0", f"c{n}", body="x" * n), PHONE)
        t.call_ended(f"pc{n}")
    stats = t.statistics()
    assert stats["frozen_bytes"] <= 2000
    assert stats["evicted"] > 0
    assert t.trace("pc0") is None
    assert t.trace("pc19") is not None


def test_on_event_ends_a_trace_on_the_final_event_only() -> None:
    clocks = Clocks()
    t = traces(clocks, linger=0.0)
    t.bind("c", "pc", "p")

    class Call:
        id = "pc"

    class Event:
        def __init__(self, final: bool) -> None:
            self.final = final

    t.on_event(Call(), Event(False))
    assert t.statistics()["live_traces"] == 1
    t.on_event(Call(), Event(True))
    assert t.statistics()["frozen_traces"] == 1


def test_pcap_holds_every_message_with_addresses_by_direction() -> None:
    records = [
        TraceRecord(1_800_000_000.5, "out", "0003*210", "udp", "127.0.0.2", 5062, "INVITE x"),
        TraceRecord(1_800_000_000.75, "in", "0003*210", "tcp", "127.0.0.2", 5062, "SIP/2.0 180"),
        TraceRecord(1_800_000_001.0, "in", "gw", "udp", "::1", 5080, "SIP/2.0 200 OK é"),
    ]
    frames = read_pcap(trace_pcap(records, ("127.0.0.1", 5060)))
    assert [(f[1], f[2], f[3], f[4]) for f in frames] == [
        ("127.0.0.1", 5060, "127.0.0.2", 5062),
        ("127.0.0.2", 5062, "127.0.0.1", 5060),
        ("::1", 5080, "::ffff:7f00:1", 5060),
    ]
    assert [f[5].decode() for f in frames] == [r.message for r in records]
    assert [f[0] for f in frames] == pytest.approx([r.ts for r in records])


def test_trace_rows_survive_freezing_unchanged() -> None:
    clocks = Clocks()
    t = traces(clocks, linger=0.0)
    t.bind("c", "pc", "p")
    observe(t, "in", sip("BYE sip:b@127.0.0.1 SIP/2.0", "c", "2 BYE", body="ü"), PHONE)
    live = t.trace("pc")
    t.call_ended("pc")
    assert t.trace("pc") == live
    assert json.dumps([r.message for r in live or []])


def test_a_live_trace_holds_few_objects_for_the_garbage_collector() -> None:
    """A live trace keeps each message as its bytes, not the parsed message's dozens of
    objects: those would survive young collections for the call's life plus the linger, and
    every older collection would walk them (pauses grow with the calls traced)."""
    clocks = Clocks()
    t = traces(clocks)
    t.bind("leg-a", "pc1", "0003*210")
    gc.collect()
    before = len(gc.get_objects())
    for _ in range(100):
        observe(t, "out", invite("leg-a"), PHONE)
        observe(t, "in", ok("leg-a"), PHONE)
    gc.collect()
    assert len(gc.get_objects()) - before < 2 * 200  # the entries themselves, not their messages
    assert len(t.trace("pc1") or []) == 200
