"""The cost of ``/metrics`` per call: main-thread CPU with the metrics hooks and without.

Two measurements, both in one run, rounds with and without metrics alternating:

1. ``hooks``: what the metrics add to one click-to-call with two SIP phones, replayed
   without the server around it: the 14 SIP messages of its two legs (INVITE, 100, 180, 200,
   ACK, BYE, 200 each) through ``SipMessageCounts``, its 10 call events through ``CallCounts``,
   one API request through ``request_done`` and 6 store calls through ``CountingStore``
   (against the same store unwrapped). CPU µs per call = with - without.
2. ``sip``: real OPTIONS transactions between two ``SipEndpoint`` on 127.0.0.1 UDP in one trio
   run, with a ``SipMessageCounts`` on both transports or none: main-thread CPU per
   transaction (4 messages), the observer's cost in place. Noisy next to (1): the figure to
   trust is (1); (2) shows it disappears in the real path.

Plus the cost of one scrape (``render()``) of a server with the demo directory, and of one
INFO log line (a call's end, to a stream on /dev/null) in the text and the JSON format: a
click-to-call logs about 4 at INFO (its creation twice, the engine's and the API's, its end,
and the access log's line for the create).

    python benchmarks/bench_metrics.py [--calls 20000] [--transactions 2000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import trio
from common import machine_line

from b2bua.metrics import CountingStore, ServerMetrics, SipMessageCounts
from engine.config import default_config
from engine.directory import demo_directory
from engine.engine import CallEvent, open_engine
from engine.limiter import FailureLimiter
from engine.model import Disposition, Party, PhoneCall
from engine.store import SqlStore, open_store
from engine.store.service import StoreService
from sip.endpoint import SipEndpoint
from sip.endpoint_incoming import IncomingRequest
from sip.headers import Headers
from sip.message import Message, Request, parse_message
from sip.transaction_types import Peer
from sip.uas import options_response
from sip.uri import parse_uri

PEER = Peer("udp", "192.0.2.10", 5060)
EVENTS = [
    "created",
    "source_ringing",
    "source_answered",
    "destination_ringing",
    "destination_answered",
    "bridged",
    "media",
    "hangup",
    "destination_ended",
    "ended",
]


def message(first_line: str, method: str) -> Message:
    return parse_message(
        (
            f"{first_line}\r\nVia: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK776asdhds\r\n"
            "Max-Forwards: 70\r\nFrom: <sip:0003*210@voip.example.com>;tag=1928301774\r\n"
            "To: <sip:0003*00@voip.example.com>\r\nCall-ID: a84b4c76e66710@pc33\r\n"
            f"CSeq: 1 {method}\r\nContact: <sip:phone@192.0.2.10:5060>\r\nContent-Length: 0\r\n"
            "\r\n"
        ).encode()
    )


def call_messages() -> list[tuple[str, Message]]:
    """One leg's messages from our side (we call the phone), twice: both legs."""
    leg = [
        ("out", message("INVITE sip:phone@192.0.2.10 SIP/2.0", "INVITE")),
        ("in", message("SIP/2.0 100 Trying", "INVITE")),
        ("in", message("SIP/2.0 180 Ringing", "INVITE")),
        ("in", message("SIP/2.0 200 OK", "INVITE")),
        ("out", message("ACK sip:phone@192.0.2.10 SIP/2.0", "ACK")),
        ("out", message("BYE sip:phone@192.0.2.10 SIP/2.0", "BYE")),
        ("in", message("SIP/2.0 200 OK", "BYE")),
    ]
    return leg + leg


def ended_call() -> PhoneCall:
    call = PhoneCall(
        id="c1",
        user_id=12,
        organization_id=3,
        extension="0003*210",
        sources=["0003*210"],
        destinations=["0003*211"],
        disposition=Disposition.ANSWERED,
    )
    for role, number in (("source", "0003*210"), ("destination", "0003*211")):
        party = Party(number, role, "extension", number)
        counters = {"rtp_packets_received": 500, "rtp_packets_sent": 500, "rtp_lost": 0}
        party.media = {"audio": counters}
        call.parties.append(party)
    return call


class TinyStore:
    """Store calls that cost next to nothing, so the wrapper's own cost shows."""

    def get_call(self, call_id: str) -> None:
        return None

    def save_call(self, call: object, *, durable: bool = False) -> None:
        return None


def hooks_round(calls: int, metrics: ServerMetrics | None) -> float:
    """Main-thread CPU µs per call of ``calls`` replayed calls (with or without metrics)."""
    messages = call_messages()
    call = ended_call()
    at = datetime(2026, 1, 1, tzinfo=UTC)
    events = [
        CallEvent("c1", n, name, "x", at, {}, name == "ended") for n, name in enumerate(EVENTS)
    ]
    raw = TinyStore()
    sip: Callable[..., None]
    calls_seen: Callable[..., None]
    if metrics is None:
        store: Any = raw

        def sip(direction: str, m: Message, peer: Peer) -> None:
            return None

        def calls_seen(c: PhoneCall, e: CallEvent) -> None:
            return None

        def request_done(method: str, route: str, status: int, seconds: float) -> None:
            return None

    else:
        store = CountingStore(raw)
        sip = metrics.sip.message
        calls_seen = metrics.calls
        request_done = metrics.request_done
    route = "/uapi/phoneCalls/{userId}/simple"
    start = time.thread_time()
    for _ in range(calls):
        for direction, m in messages:
            sip(direction, m, PEER)
        for e in events:
            calls_seen(call, e)
        request_done("POST", route, 202, 0.004)
        store.save_call(call)
        store.get_call("c1")
        for _ in range(4):
            store.save_call(call)
    return (time.thread_time() - start) / calls * 1e6


def part_costs(metrics: ServerMetrics, count: int) -> dict[str, float]:
    """CPU µs of each hook once (less an empty loop of the same length)."""
    invite = message("INVITE sip:phone@192.0.2.10 SIP/2.0", "INVITE")
    ok = message("SIP/2.0 200 OK", "INVITE")
    call = ended_call()
    at = datetime(2026, 1, 1, tzinfo=UTC)
    ringing = CallEvent("c1", 2, "source_ringing", "x", at, {}, False)
    ended = CallEvent("c1", 10, "ended", "ended", at, {}, True)
    store: Any = CountingStore(TinyStore())
    raw = TinyStore()
    route = "/uapi/phoneCalls/{userId}/simple"
    steps: dict[str, Callable[[], object]] = {
        "empty": lambda: None,
        "SIP request": lambda: metrics.sip.message("in", invite, PEER, b""),
        "SIP response": lambda: metrics.sip.message("in", ok, PEER, b""),
        "call event": lambda: metrics.calls(call, ringing),
        "call end (sums media)": lambda: metrics.calls(call, ended),
        "API request": lambda: metrics.request_done("POST", route, 202, 0.004),
        "store call, wrapped": lambda: store.get_call("c1"),
        "store call, direct": lambda: raw.get_call("c1"),
    }
    result: dict[str, float] = {}
    for name, step in steps.items():
        start = time.thread_time()
        for _ in range(count):
            step()
        result[name] = (time.thread_time() - start) / count * 1e6
    empty = result.pop("empty")
    return {name: value - empty for name, value in result.items()}


def options_to(ep: SipEndpoint, peer: Peer, n: int) -> Request:
    return Request(
        "OPTIONS",
        parse_uri(f"sip:x@{peer.host}:{peer.port}"),
        Headers(
            [
                ("Via", str(ep.make_via("udp"))),
                ("Max-Forwards", "70"),
                ("To", f"<sip:x@{peer.host}>"),
                ("From", "<sip:me@127.0.0.1>;tag=1"),
                ("Call-ID", ep.new_call_id()),
                ("CSeq", f"{n} OPTIONS"),
            ]
        ),
    )


async def answer(incoming: IncomingRequest) -> None:
    await incoming.respond(options_response(incoming.request, ["OPTIONS", "INVITE"]))


async def sip_rounds(transactions: int, repeat: int) -> tuple[list[float], list[float]]:
    """Main-thread CPU µs per OPTIONS transaction, rounds without and with observers."""
    a, b = SipEndpoint(), SipEndpoint()
    await a.listen("udp", "127.0.0.1", 0)
    b_address = await b.listen("udp", "127.0.0.1", 0)
    peer = Peer("udp", *b_address)
    off: list[float] = []
    on: list[float] = []
    async with trio.open_nursery() as nursery:
        await nursery.start(a.run, answer)
        await nursery.start(b.run, answer)
        for round_ in range(2 * repeat):
            observed = round_ % 2 == 1
            counts = SipMessageCounts()
            for ep in (a, b):
                ep.transport._observers[:] = [counts] if observed else []
            start = time.thread_time()
            for n in range(transactions):
                async for _ in a.request(options_to(a, peer, n + 1), peer):
                    pass
            per = (time.thread_time() - start) / transactions * 1e6
            (on if observed else off).append(per)
            if observed:
                assert sum(counts.requests_in.values()) >= transactions  # + retransmissions
        await a.aclose()
        await b.aclose()
        nursery.cancel_scope.cancel()
    return off, on


async def scrape_cost(count: int) -> float:
    """CPU µs of one ``/metrics`` body (demo directory, in-memory store)."""
    directory = demo_directory()
    backend = CountingStore(open_store("sqlite:///:memory:"))
    store = StoreService(cast(SqlStore, backend))
    async with open_engine(default_config(), directory, store) as engine:
        metrics = ServerMetrics(
            engine=engine,
            endpoint=SipEndpoint(),
            directory=directory,
            store=store,
            backend=backend,
            sip_limiter=FailureLimiter("sip digest"),
            media_alive=lambda: True,
        )
        for route in ("/oauth/token.php", "/uapi/phoneCalls/{userId}/simple", "/health"):
            metrics.request_done("GET", route, 200, 0.01)
        start = time.thread_time()
        for _ in range(count):
            metrics.render()
        return (time.thread_time() - start) / count * 1e6


async def build_metrics() -> ServerMetrics:
    async with open_engine(
        default_config(), demo_directory(), open_store("sqlite:///:memory:")
    ) as engine:
        return ServerMetrics(
            engine=engine,
            endpoint=SipEndpoint(),
            directory=engine.directory,
            store=engine.store,
            backend=CountingStore(engine.store.backend),
            sip_limiter=FailureLimiter("sip digest"),
            media_alive=lambda: True,
        )


def log_line_cost(log_format: str, count: int) -> float:
    """CPU µs of one INFO line as ``b2bua serve`` writes it (to /dev/null)."""
    import logging
    import os

    from b2bua.logs import TEXT_FORMAT, JsonFormatter

    logger = logging.getLogger("bench.metrics.log")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    with open(os.devnull, "w") as sink:
        handler = logging.StreamHandler(sink)
        handler.setFormatter(
            JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT)
        )
        logger.handlers[:] = [handler]
        start = time.thread_time()
        for _ in range(count):
            logger.info(
                "call %s ended: %s after %d s bridged (%s)",
                "dd62013d8e7b8d7b976c",
                "ANSWERED",
                8,
                "call duration reached",
                extra={"call": "dd62013d8e7b8d7b976c"},
            )
        cost = (time.thread_time() - start) / count * 1e6
        logger.handlers.clear()
    return cost


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--calls", type=int, default=20000)
    parser.add_argument("--transactions", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    random.seed(1)
    print(f"# {machine_line()}; shared machine: best of {args.repeat} rounds")
    metrics = trio.run(build_metrics)
    without, with_ = [], []
    for _ in range(args.repeat):
        without.append(hooks_round(args.calls, None))
        with_.append(hooks_round(args.calls, metrics))
    base, hooked = min(without), min(with_)
    print(
        f"hooks per call ({args.calls} calls/round): without {base:.2f} µs, "
        f"with {hooked:.2f} µs, metrics cost {hooked - base:.2f} µs per call "
        f"(14 SIP messages, 10 events, 1 API request, 6 store calls)"
    )
    best: dict[str, float] = {}
    for _ in range(args.repeat):
        for name, cost in part_costs(metrics, args.calls).items():
            best[name] = min(best.get(name, float("inf")), cost)
    print("each hook once: " + ", ".join(f"{name} {cost:.2f} µs" for name, cost in best.items()))
    off, on = trio.run(sip_rounds, args.transactions, args.repeat)
    print(
        f"sip OPTIONS transactions, 2 endpoints on 127.0.0.1 UDP ({args.transactions}/round): "
        f"without observers {min(off):.1f} µs, with {min(on):.1f} µs per transaction "
        f"(difference {min(on) - min(off):+.1f} µs for 4 messages, within the noise of a "
        f"shared machine; rounds without "
        f"{', '.join(f'{v:.0f}' for v in off)}; with {', '.join(f'{v:.0f}' for v in on)})"
    )
    print(f"one scrape of /metrics (demo directory): {trio.run(scrape_cost, 200):.0f} µs CPU")
    lines = {
        fmt: min(log_line_cost(fmt, args.calls // 4) for _ in range(args.repeat))
        for fmt in ("text", "json")
    }
    print(
        f"one INFO log line: text {lines['text']:.1f} µs, json {lines['json']:.1f} µs CPU "
        f"(about 4 per click-to-call)"
    )


if __name__ == "__main__":
    main()
