"""The pieces behind ``/metrics`` and the JSON log lines, without sockets (MockClock for time)."""

from __future__ import annotations

import gc
import json
import logging
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
import trio
import trio.testing
from prometheus_client.parser import text_string_to_metric_families

from b2bua.logs import JsonFormatter
from b2bua.metrics import (
    CallCounts,
    CountingStore,
    ServerMetrics,
    SipMessageCounts,
    watch_loop_lag,
)
from engine.config import default_config
from engine.directory import demo_directory
from engine.engine import CallEvent, Engine, open_engine
from engine.limiter import FailureLimiter
from engine.logctx import CALL_ID
from engine.model import Disposition, Party, PhoneCall
from engine.store import StoreError, open_store
from sip.endpoint import SipEndpoint
from sip.message import parse_message
from sip.transaction_types import Peer

PEER = Peer("udp", "192.0.2.1", 5060)


def sip(first_line: str) -> object:
    method = "INVITE" if first_line.startswith("SIP/") else first_line.split()[0]
    return parse_message(
        (
            f"{first_line}\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKx\r\n"
            "From: <sip:a@b>;tag=1\r\nTo: <sip:c@d>\r\nCall-ID: x\r\n"
            f"CSeq: 1 {method}\r\nContent-Length: 0\r\n\r\n"
        ).encode()
    )


def test_sip_messages_are_counted_by_method_and_status_class() -> None:
    counts = SipMessageCounts()
    for line, direction in [
        ("INVITE sip:x@y SIP/2.0", "in"),
        ("INVITE sip:x@y SIP/2.0", "in"),
        ("FOO sip:x@y SIP/2.0", "in"),  # an unknown method: "other", not a label of its own
        ("SIP/2.0 180 Ringing", "out"),
        ("SIP/2.0 486 Busy Here", "out"),
        ("SIP/2.0 403 Forbidden", "out"),
        ("BYE sip:x@y SIP/2.0", "out"),
    ]:
        counts.message(direction, sip(line), PEER, b"")  # type: ignore[arg-type]
    assert counts.requests_in == {"INVITE": 2, "other": 1}
    assert counts.requests_out == {"BYE": 1}
    assert counts.responses_out[1] == 1 and counts.responses_out[4] == 2
    assert sum(counts.responses_in) == 0


def ended_call(disposition: Disposition, received: int, sent: int, lost: int) -> PhoneCall:
    call = PhoneCall(
        id="c1",
        user_id=12,
        organization_id=3,
        extension="0003*210",
        sources=["0003*00"],
        destinations=["0003*01"],
    )
    call.disposition = disposition
    for role in ("source", "destination"):
        party = Party("0003*00", role, "sandbox")
        party.media = {
            "audio": {"rtp_packets_received": received, "rtp_packets_sent": sent, "rtp_lost": lost}
        }
        call.parties.append(party)
    return call


def event(name: str) -> CallEvent:
    return CallEvent("c1", 1, name, "ended", datetime(2026, 1, 1, tzinfo=UTC), {}, name == "ended")


def test_calls_are_counted_by_origin_and_disposition_with_their_relay_counters() -> None:
    counts = CallCounts()
    call = ended_call(Disposition.BUSY, 0, 0, 0)
    counts(call, event("created"))
    counts(call, event("ringing"))
    counts(call, event("ended"))
    answered = ended_call(Disposition.ANSWERED, 100, 90, 3)
    counts(answered, event("ended"))
    assert counts.created == {"api": 1}
    assert counts.ended["BUSY"] == 1 and counts.ended["ANSWERED"] == 1
    assert (counts.rtp_received, counts.rtp_sent, counts.rtp_lost) == (200, 180, 6)


class BrokenStore:
    def get_call(self, call_id: str) -> None:
        raise StoreError("disk full")

    def setting(self, name: str) -> str:
        return "value"


def test_the_counting_store_counts_what_raises_and_passes_the_rest() -> None:
    store = CountingStore(BrokenStore())
    assert store.setting("x") == "value"
    for _ in range(2):
        with pytest.raises(StoreError, match="disk full"):
            store.get_call("c1")
    assert store.errors == 2


@pytest.fixture
def mock_clock() -> trio.testing.MockClock:
    return trio.testing.MockClock(autojump_threshold=0)


@pytest.fixture
async def engine() -> AsyncIterator[Engine]:
    async with open_engine(
        default_config(), demo_directory(), open_store("sqlite:///:memory:")
    ) as running:
        yield running


def server_metrics(engine: Engine) -> ServerMetrics:
    return ServerMetrics(
        engine=engine,
        endpoint=SipEndpoint(),
        directory=engine.directory,
        store=engine.store,
        backend=CountingStore(engine.store.backend),
        sip_limiter=FailureLimiter("sip digest"),
        media_alive=lambda: True,
    )


def families(metrics: ServerMetrics) -> dict[str, list[object]]:
    body, content_type = metrics.render()
    assert content_type.startswith("text/plain")
    return {f.name: f.samples for f in text_string_to_metric_families(body.decode())}


async def test_two_servers_in_one_process_keep_their_metrics_apart(
    mock_clock: trio.testing.MockClock, engine: Engine
) -> None:
    one, two = server_metrics(engine), server_metrics(engine)
    one.request_done("GET", "/health", 200, 0.001)
    one.sip.message("in", sip("OPTIONS sip:x@y SIP/2.0"), PEER, b"")  # type: ignore[arg-type]
    first, second = families(one), families(two)
    assert len(first["b2bua_api_requests"]) > 0 and len(second["b2bua_api_requests"]) == 0
    assert {"b2bua_calls_live", "b2bua_sip_requests", "b2bua_registrations"} <= first.keys()
    options = [s for s in first["b2bua_sip_requests"] if s.labels["method"] == "OPTIONS"]  # type: ignore[attr-defined]
    assert [s.value for s in options] == [1]  # type: ignore[attr-defined]


class Callbacks:
    delivered, failed, refused = 7, 2, 1


async def test_status_callbacks_are_read_from_the_dispatcher(
    mock_clock: trio.testing.MockClock, engine: Engine
) -> None:
    metrics = server_metrics(engine)

    def callbacks() -> dict[str, float]:
        samples = families(metrics)["b2bua_status_callbacks"]
        return {s.labels["result"]: s.value for s in samples if s.name.endswith("_total")}  # type: ignore[attr-defined]

    assert callbacks() == {"delivered": 0, "failed": 0, "refused": 0}
    metrics = ServerMetrics(
        engine=engine,
        endpoint=SipEndpoint(),
        directory=engine.directory,
        store=engine.store,
        backend=CountingStore(engine.store.backend),
        sip_limiter=FailureLimiter("sip digest"),
        callbacks=Callbacks(),
        media_alive=lambda: True,
    )
    assert callbacks() == {"delivered": 7, "failed": 2, "refused": 1}


async def test_gc_pauses_are_observed_while_watched_only(
    mock_clock: trio.testing.MockClock, engine: Engine
) -> None:
    metrics = server_metrics(engine)
    count = metrics.gc_pauses.labels("2")
    metrics.watch_gc()
    try:
        gc.collect()
    finally:
        metrics.unwatch_gc()
    seen = count._sum.get()  # type: ignore[attr-defined]
    assert seen > 0
    gc.collect()
    assert count._sum.get() == seen  # type: ignore[attr-defined]
    assert metrics._on_gc not in gc.callbacks


async def test_event_loop_lag_is_how_late_a_sleep_woke(
    mock_clock: trio.testing.MockClock,
) -> None:
    lags: list[float] = []
    async with trio.open_nursery() as nursery:
        await nursery.start(watch_loop_lag, lags.append, 0.5)
        await trio.sleep(1.25)  # two on-time probes (0.5, 1.0 s)
        mock_clock.jump(0.75)  # the loop "blocked" from 1.25 s to 2.0 s: the 1.5 s probe
        await trio.sleep(0)  # wakes at 2.0 s
        await trio.sleep(0.01)
        nursery.cancel_scope.cancel()
    assert lags[:2] == [0.0, 0.0]
    assert lags[2] == pytest.approx(0.5)


def test_json_lines_carry_the_call_from_extra_or_from_the_task_context() -> None:
    formatter = JsonFormatter()

    def line(msg: str, **extra: object) -> dict[str, object]:
        record = logging.LogRecord("engine.engine", logging.INFO, "f.py", 1, msg, None, None)
        record.__dict__.update(extra)
        return dict(json.loads(formatter.format(record)))

    plain = line("started")
    assert plain.keys() == {"ts", "level", "logger", "msg"}
    assert plain["level"] == "INFO" and plain["logger"] == "engine.engine"
    assert datetime.fromisoformat(str(plain["ts"])).tzinfo is not None
    assert line("ended", call="c9")["call"] == "c9"
    token = CALL_ID.set("c7")
    try:
        assert line("inside the call's task")["call"] == "c7"
    finally:
        CALL_ID.reset(token)
    access = line("GET /health", route="/health", status=200)
    assert (access["route"], access["status"]) == ("/health", 200)
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.LogRecord("x", logging.ERROR, "f.py", 1, "failed", None, sys.exc_info())
    failed = json.loads(formatter.format(record))
    assert "ValueError: boom" in failed["exc"]
