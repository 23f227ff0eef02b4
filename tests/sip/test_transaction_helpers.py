"""Builders and drivers shared by the transaction tests (no tests in here)."""

from __future__ import annotations

import itertools
from collections.abc import Callable

from sip.message import Message, Request, Response, parse_message
from sip.transaction import (
    Event,
    Peer,
    SendMessage,
    TransactionLayer,
)

UAC = Peer("udp", "10.0.0.2", 5060)
UAS = Peer("udp", "10.0.0.1", 5060)
UAC_TCP = Peer("tcp", "10.0.0.2", 40000)
UAS_TCP = Peer("tcp", "10.0.0.1", 5060)


def fixed_tags(prefix: str = "layertag") -> Callable[[], str]:
    """A layer's To tags, known in advance: ``layertag1``, ``layertag2``..."""
    numbers = itertools.count(1)
    return lambda: f"{prefix}{next(numbers)}"


def request(
    method: str = "INVITE",
    *,
    branch: str | None = "z9hG4bKbranch1",
    cseq: int = 1,
    cseq_method: str | None = None,
    sent_by: str = "10.0.0.2:5060",
    transport: str = "UDP",
    uri: str = "sip:bob@10.0.0.1",
    call_id: str = "call-1@10.0.0.2",
    from_tag: str = "fromtag1",
    to_tag: str | None = None,
    routes: tuple[str, ...] = (),
) -> Request:
    """Parse a request from wire text, as the shell would hand it over."""
    via = f"SIP/2.0/{transport} {sent_by}" + (f";branch={branch}" if branch else "")
    lines = [
        f"{method} {uri} SIP/2.0",
        f"Via: {via}",
        "Via: SIP/2.0/UDP 192.0.2.9:5060;branch=z9hG4bKproxy",
        "Max-Forwards: 70",
        *(f"Route: {route}" for route in routes),
        f'From: "Alice" <sip:alice@10.0.0.2>;tag={from_tag}',
        "To: <sip:bob@10.0.0.1>" + (f";tag={to_tag}" if to_tag else ""),
        f"Call-ID: {call_id}",
        f"CSeq: {cseq} {cseq_method or method}",
        "Contact: <sip:alice@10.0.0.2:5060>",
        "Content-Length: 0",
        "",
        "",
    ]
    message = parse_message("\r\n".join(lines).encode())
    assert isinstance(message, Request)
    return message


def reply(req: Request, status: int, to_tag: str | None = "totag1") -> Response:
    """A response the far end would send (tag added unless 100)."""
    return req.response(status, to_tag=None if status == 100 else to_tag)


def sent(events: list[Event]) -> list[Message]:
    return [e.message for e in events if isinstance(e, SendMessage)]


def others(events: list[Event]) -> list[Event]:
    return [e for e in events if not isinstance(e, SendMessage)]


def run_timers(layer: TransactionLayer, until: float) -> list[tuple[float, Event]]:
    """Fire timers exactly at their deadlines up to ``until``; return (time, event) pairs."""
    assert layer.events() == [], "undrained events before run_timers"
    out: list[tuple[float, Event]] = []
    while (deadline := layer.get_timer()) is not None and deadline <= until:
        layer.handle_timer(deadline)
        out.extend((deadline, event) for event in layer.events())
        nxt = layer.get_timer()
        assert nxt is None or nxt > deadline, "a timer is due in the past after handle_timer"
    return out


def send_times(timeline: list[tuple[float, Event]]) -> list[float]:
    return [t for t, e in timeline if isinstance(e, SendMessage)]
