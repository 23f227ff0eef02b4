"""``GET /metrics``: the server's Prometheus metrics, one ``CollectorRegistry`` per server.

Cheap by construction: what happens per SIP message or per call event only adds one to a plain
int (``SipMessageCounts``, ``CallCounts``, the transaction layer's and the limiters' own
counts); those are turned into metric families only when ``/metrics`` is scraped
(``_ServerCollector``). prometheus_client's own Counter/Histogram (with their locks) are used
only per HTTP request, per garbage collection and per event-loop probe. No global registry:
two servers in one process (the tests) keep apart. Every name is in docs/OPERATIONS.md.
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any, Literal, Protocol

import trio
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from engine.directory import Directory
from engine.engine import CallEvent, Engine
from engine.limiter import FailureLimiter
from engine.model import Disposition, PhoneCall
from engine.store.service import StoreService
from sip.endpoint import SipEndpoint
from sip.message import Message, Request
from sip.transaction_types import Peer

__all__ = [
    "CallCounts",
    "CountingStore",
    "ServerMetrics",
    "SipMessageCounts",
    "watch_loop_lag",
]

logger = logging.getLogger(__name__)

# Methods counted under their own name; anything else a peer sends is "other" (bounded labels).
KNOWN_METHODS = frozenset(
    {
        "ACK",
        "BYE",
        "CANCEL",
        "INFO",
        "INVITE",
        "MESSAGE",
        "NOTIFY",
        "OPTIONS",
        "PRACK",
        "PUBLISH",
        "REFER",
        "REGISTER",
        "SUBSCRIBE",
        "UPDATE",
    }
)
STATUS_CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx", "6xx")
DISPOSITIONS = tuple(d.name for d in Disposition)
API_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 60.0)
PAUSE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class CallbackCounts(Protocol):
    """What ``api.events.CallbackDispatcher`` counts of its statusCallback POSTs."""

    delivered: int
    failed: int  # given up, the egress policy's refusals included
    refused: int


class SipMessageCounts:
    """A ``sip.observe.MessageObserver``: requests by method, responses by status class."""

    __slots__ = ("requests_in", "requests_out", "responses_in", "responses_out")

    def __init__(self) -> None:
        self.requests_in: dict[str, int] = {}
        self.requests_out: dict[str, int] = {}
        self.responses_in = [0] * 7  # index: status // 100 (1-6)
        self.responses_out = [0] * 7

    def message(
        self, direction: Literal["in", "out"], message: Message, peer: Peer, data: bytes
    ) -> None:
        if isinstance(message, Request):
            counts = self.requests_in if direction == "in" else self.requests_out
            method = message.method if message.method in KNOWN_METHODS else "other"
            counts[method] = counts.get(method, 0) + 1
        else:
            classes = self.responses_in if direction == "in" else self.responses_out
            classes[min(message.status // 100, 6)] += 1


class CallCounts:
    """An engine listener: calls created (by origin) and ended (by disposition), and the
    relay's counters of every ended call's parties summed (packets relayed and lost)."""

    __slots__ = ("created", "ended", "rtp_lost", "rtp_received", "rtp_sent")

    def __init__(self) -> None:
        self.created: dict[str, int] = {}
        self.ended = dict.fromkeys(DISPOSITIONS, 0)
        self.rtp_received = 0  # what the parties sent to the relay
        self.rtp_sent = 0  # what the relay sent to the parties
        self.rtp_lost = 0

    def __call__(self, call: PhoneCall, event: CallEvent) -> None:
        name = event.event
        if name == "created":
            self.created[call.origin] = self.created.get(call.origin, 0) + 1
        elif name == "ended":
            key = "UNKNOWN" if call.disposition is None else call.disposition.name
            self.ended[key] = self.ended.get(key, 0) + 1
            for party in call.parties:
                for stream in party.media.values():
                    self.rtp_received += stream.get("rtp_packets_received", 0)
                    self.rtp_sent += stream.get("rtp_packets_sent", 0)
                    self.rtp_lost += stream.get("rtp_lost", 0)


class CountingStore:
    """A store backend (``engine.store.SqlStore``) with every exception its methods raise
    counted, then raised as before: the server's ``StoreService`` is built on it, so every
    statement, on the trio thread or in the write-behind queue's worker, passes the count.

    Each method is wrapped once, on first use, so a store call costs one more function call
    and no allocation."""

    def __init__(self, store: object) -> None:
        self._store = store
        self.errors = 0

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._store, name)
        if not callable(attribute) or name.startswith("_"):
            return attribute

        def counted(*args: Any, **kwargs: Any) -> Any:
            try:
                return attribute(*args, **kwargs)
            except Exception:
                self.errors += 1
                raise

        self.__dict__[name] = counted  # found before __getattr__ from now on
        return counted


class ServerMetrics:
    """Everything ``/metrics`` shows for one server; ``render()`` is the exposition."""

    def __init__(
        self,
        *,
        engine: Engine,
        endpoint: SipEndpoint,
        directory: Directory,
        store: StoreService,
        backend: CountingStore,
        sip_limiter: FailureLimiter,
        api_limiter: FailureLimiter | None = None,
        callbacks: CallbackCounts | None = None,
        media_alive: Callable[[], bool],
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.engine = engine
        self.endpoint = endpoint
        self.directory = directory
        self.store = store
        self.backend = backend
        self.sip_limiter = sip_limiter
        self.api_limiter = api_limiter  # the token endpoint's
        self.callbacks = callbacks  # the statusCallback dispatcher's counts
        self.media_alive = media_alive
        self.wall_clock = wall_clock
        self.sip = SipMessageCounts()
        self.calls = CallCounts()
        endpoint.transport.add_observer(self.sip)
        engine.listeners.append(self.calls)
        self.registry = CollectorRegistry(auto_describe=False)
        self.api_requests = Counter(
            "b2bua_api_requests",
            "HTTP requests answered, by method, route template and status",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.api_latency = Histogram(
            "b2bua_api_request_duration_seconds",
            "Time from an HTTP request's arrival to its last byte, by route template",
            ["route"],
            buckets=API_BUCKETS,
            registry=self.registry,
        )
        self.gc_pauses = Histogram(
            "b2bua_gc_pause_seconds",
            "Garbage collector pauses (the whole process stops), by generation",
            ["generation"],
            buckets=PAUSE_BUCKETS,
            registry=self.registry,
        )
        self.loop_lag = Histogram(
            "b2bua_event_loop_lag_seconds",
            "How late a periodic sleep on the trio event loop woke up (loop busy or blocked)",
            buckets=PAUSE_BUCKETS,
            registry=self.registry,
        )
        self._gc_by_generation = [self.gc_pauses.labels(str(n)) for n in range(3)]
        self._gc_started = 0.0
        ProcessCollector(registry=self.registry)  # process_cpu_seconds_total, memory, fds
        self.registry.register(_ServerCollector(self))

    # -- what the API's Operations calls --------------------------------------------------------

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST

    def request_done(self, method: str, route: str, status: int, seconds: float) -> None:
        self.api_requests.labels(method, route, str(status)).inc()
        self.api_latency.labels(route).observe(seconds)

    # -- garbage collector pauses ---------------------------------------------------------------

    def watch_gc(self) -> None:
        gc.callbacks.append(self._on_gc)

    def unwatch_gc(self) -> None:
        if self._on_gc in gc.callbacks:
            gc.callbacks.remove(self._on_gc)

    def _on_gc(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._gc_started = time.perf_counter()
        else:
            generation = min(max(info.get("generation", 2), 0), 2)
            self._gc_by_generation[generation].observe(time.perf_counter() - self._gc_started)

    # -- scrape-time values ---------------------------------------------------------------------

    def registrations(self) -> int:
        """Live bindings of every extension with a SIP password (one store read each on
        SQLite; PostgreSQL's are read from the store service's copy in memory)."""
        now = self.wall_clock()
        return sum(
            len(self.store.contacts(extension.extended, now))
            for extension in self.directory.extensions
            if extension.password is not None
        )


async def watch_loop_lag(
    record: Callable[[float], None],
    interval: float = 0.5,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Sleep ``interval`` again and again, and ``record`` how much later than asked each sleep
    ended: the time the event loop was busy elsewhere (or blocked) when it should have woken."""
    task_status.started()
    while True:
        asked = trio.current_time() + interval
        await trio.sleep_until(asked)
        record(max(0.0, trio.current_time() - asked))


class _ServerCollector(Collector):
    """Turns the plain counts into metric families when ``/metrics`` is scraped."""

    def __init__(self, metrics: ServerMetrics) -> None:
        self.m = metrics

    def collect(self) -> Iterator[Metric]:
        m = self.m
        yield from self._calls()
        yield from self._sip()
        failures = CounterMetricFamily(
            "b2bua_auth_failures",
            "Failed authentications (a wrong SIP digest answer, a wrong App secret)",
            labels=["service"],
        )
        blocks = CounterMetricFamily(
            "b2bua_blocked_sources",
            "Sources blocked by the password-guessing limiter (each block or extension)",
            labels=["service"],
        )
        for service, limiter in (("sip", m.sip_limiter), ("api", m.api_limiter)):
            failures.add_metric([service], limiter.failures if limiter else 0)
            blocks.add_metric([service], limiter.blocks if limiter else 0)
        yield failures
        yield blocks
        try:
            registrations: int | None = m.registrations()
        except Exception:  # counted as a store error by the store itself
            logger.warning("metrics: cannot count the registrations", exc_info=True)
            registrations = None
        if registrations is not None:
            yield GaugeMetricFamily(
                "b2bua_registrations", "Live registration bindings (devices)", registrations
            )
        callbacks = CounterMetricFamily(
            "b2bua_status_callbacks",
            "statusCallback POSTs delivered (2xx) and given up (failed; refused included)",
            labels=["result"],
        )
        counts = m.callbacks
        for result in ("delivered", "failed", "refused"):
            callbacks.add_metric([result], getattr(counts, result) if counts else 0)
        yield callbacks
        yield CounterMetricFamily(
            "b2bua_store_errors",
            "Store statements that failed: raised on the trio thread or in the write queue's "
            "worker, or logged by SQLite's writer thread",
            m.backend.errors + m.backend.write_errors,
        )
        yield GaugeMetricFamily(
            "b2bua_store_up", "1 while the store is reachable", int(m.store.available)
        )
        yield CounterMetricFamily(
            "b2bua_store_retried_batches",
            "Write batches retried after the store was unreachable (PostgreSQL's queue)",
            m.store.retried,
        )
        yield GaugeMetricFamily(
            "b2bua_relay_up", "1 when the media relay process is running", int(m.media_alive())
        )
        packets = CounterMetricFamily(
            "b2bua_relay_packets",
            "RTP packets the relay received from / sent to the parties of ended calls",
            labels=["direction"],
        )
        packets.add_metric(["received"], m.calls.rtp_received)
        packets.add_metric(["sent"], m.calls.rtp_sent)
        yield packets
        yield CounterMetricFamily(
            "b2bua_relay_lost_packets",
            "RTP packets missing in the parties' streams (sequence gaps) of ended calls",
            m.calls.rtp_lost,
        )

    def _calls(self) -> Iterator[Metric]:
        m = self.m
        created = CounterMetricFamily(
            "b2bua_calls_created", "PhoneCalls created, by origin (api, sip)", labels=["origin"]
        )
        for origin in sorted({"api", "sip", *m.calls.created}):
            created.add_metric([origin], m.calls.created.get(origin, 0))
        yield created
        ended = CounterMetricFamily(
            "b2bua_calls_ended", "PhoneCalls ended, by disposition", labels=["disposition"]
        )
        for disposition, count in m.calls.ended.items():
            ended.add_metric([disposition], count)
        yield ended
        yield GaugeMetricFamily("b2bua_calls_live", "PhoneCalls live now", m.engine.live_count)
        yield GaugeMetricFamily(
            "b2bua_legs_live", "Parties of live calls being rung or talking", m.engine.live_legs
        )

    def _sip(self) -> Iterator[Metric]:
        sip = self.m.sip
        requests = CounterMetricFamily(
            "b2bua_sip_requests",
            "SIP requests received (in) and sent (out), by method; retransmissions included",
            labels=["direction", "method"],
        )
        responses = CounterMetricFamily(
            "b2bua_sip_responses",
            "SIP responses received (in) and sent (out), by status class",
            labels=["direction", "status_class"],
        )
        for direction, by_method, by_class in (
            ("in", sip.requests_in, sip.responses_in),
            ("out", sip.requests_out, sip.responses_out),
        ):
            for method in sorted({"INVITE", "REGISTER", *by_method}):
                requests.add_metric([direction, method], by_method.get(method, 0))
            for index, name in enumerate(STATUS_CLASSES, start=1):
                responses.add_metric([direction, name], by_class[index])
        yield requests
        yield responses
        stats = self.m.endpoint.statistics()
        yield CounterMetricFamily(
            "b2bua_sip_retransmissions",
            "SIP messages sent again (transaction timers, repeated requests, 2xx until the ACK)",
            stats["retransmissions"],
        )
        yield CounterMetricFamily(
            "b2bua_sip_transaction_timeouts",
            "SIP transactions that timed out (no final response, or no ACK)",
            stats["transaction_timeouts"],
        )
        yield GaugeMetricFamily(
            "b2bua_sip_transactions", "SIP transactions live now", stats["transactions"]
        )
        yield GaugeMetricFamily("b2bua_sip_dialogs", "SIP dialogs live now", stats["dialogs"])
        transport = self.m.endpoint.transport.statistics()
        yield GaugeMetricFamily(
            "b2bua_sip_tcp_connections", "SIP TCP connections open", transport["tcp_connections"]
        )
