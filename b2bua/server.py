"""``b2bua serve``: one trio run with SIP signalling, the RTP relay and the HTTP API.

Wiring only: every piece is built here from the config and handed to the others (no globals).
Shutdown (SIGINT/SIGTERM or ``shutdown`` set): the engine drains first, while SIP and HTTP are
still up, so live calls get their BYE/CANCEL and the API answers 503 to new calls; then the
listeners close and ``serve`` returns.
"""

from __future__ import annotations

import gc
import logging
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import cast

import trio

from b2bua.health import HealthCheck
from b2bua.listen import bind_api, hostport, listen_sip
from b2bua.media import open_media
from b2bua.metrics import CountingStore, ServerMetrics, watch_loop_lag
from b2bua.operations import ServerOperations
from engine.cluster import ClusterMonitor, bye_stored_legs, live_peers, owner_api
from engine.config_model import Config
from engine.directory import Directory, demo_directory, load_directory
from engine.engine import Engine, open_engine, recordings_dir
from engine.heartbeat import heartbeat
from engine.keys import derive_key
from engine.limiter import FailureLimiter
from engine.media.process import RelayProcess
from engine.model import PhoneCall
from engine.sipservice import SipLegs, SipService, make_endpoint
from engine.store import open_store
from engine.store.service import StoreService
from engine.store.sql import SqlStore
from engine.store.url import redact
from engine.trace import CallTraces
from sip.sdp import ParseCache

logger = logging.getLogger(__name__)

# Generation 0/1/2 thresholds once the server is up (CPython's default is 700, 10, 10);
# measured with benchmarks/bench_click_to_call.py and bench_signalling.py (see their README).
GC_THRESHOLDS = (20000, 20, 20)


@dataclass(slots=True)
class Running:
    """What a started server exposes to its caller (the CLI, ``b2bua demo``, embedders)."""

    engine: Engine
    sip: list[tuple[str, str, int]] = field(default_factory=list)  # (transport, host, port)
    api_url: str = ""
    shutdown: trio.Event = field(default_factory=trio.Event)
    failure: str | None = None  # why the server stopped by itself, if it did


class ServerFailed(RuntimeError):
    """The server stopped because a part of it failed (``serve`` raises it after draining)."""


def load_directory_for(config: Config) -> Directory:
    if config.directory.file is None:
        return demo_directory()
    return load_directory(config.directory.file)


async def serve(
    config: Config,
    *,
    announce: Callable[[str], None] = logger.info,
    handle_signals: bool = True,
    freeze_gc: bool = True,
    task_status: trio.TaskStatus[Running] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run the server until a signal or ``Running.shutdown``; announce lines via ``announce``.

    Once everything is up, ``freeze_gc`` moves the start-up heap (modules, the app, the
    directory: tens of thousands of objects that live as long as the process) out of the cyclic
    collector's reach (``gc.freeze``), so a full collection under load scans only what calls
    created, and raises the collection thresholds (``GC_THRESHOLDS``): with a young generation
    of 20,000 objects most of a call's short-lived objects die before they are promoted, so
    full collections (each a stall of up to a few hundred ms at 100+ calls/s) come far less
    often. An embedder that manages its own heap can pass ``False``."""
    # Imported here, not at the top: ``b2bua check-config`` imports this module for
    # ``load_directory_for`` and has no use for the HTTP stack.
    from api.app import create_app
    from api.events import CallbackDispatcher
    from api.forward import HOP_KEY_PURPOSE, OwnerRouting
    from b2bua.http import serve_http

    directory = load_directory_for(config)
    # Listeners first: a taken port is reported before anything else starts.
    endpoint = make_endpoint(config)
    bound = await listen_sip(endpoint, config)
    api_socket = bind_api(config)
    api_port = api_socket.getsockname()[1]
    # the backend's failures are counted for /metrics (every call to it passes the counter)
    counting_store = CountingStore(open_store(config.store.url, background=True))
    store = StoreService(cast(SqlStore, counting_store))
    records = recordings_dir(config)
    # one parse per SDP body: the SIP service's check of an offer, the answer to it and the
    # offer mirroring that answer share it
    sdp_cache = ParseCache()
    media_backend = open_media(config, records, sdp_cache)
    media = await media_backend.__aenter__()

    metrics: ServerMetrics | None = None
    try:
        # Built in dependency order, each piece given what it needs: the legs the engine sends
        # out, the engine, the SIP request handler given the engine, the HTTP app given both
        # the engine and the callbacks.
        # every SIP message of a call, for GET .../trace and the console (engine.trace)
        traces = None
        if config.sip.trace_messages:
            traces = CallTraces(
                per_call=config.sip.trace_messages, max_bytes=config.sip.trace_memory << 20
            )
            endpoint.transport.add_observer(traces)
        legs = SipLegs(endpoint, directory, store, config, traces=traces)
        async with trio.open_nursery() as nursery:
            # PostgreSQL: the write-behind queue's flusher, the probe, the contacts' copy
            await nursery.start(store.run)
            if media.relay is not None:
                await nursery.start(_flush_relay_commands, media.relay)
            for transport, host, port in bound:
                announce(f"listening sip {transport} {hostport(host, port)}")
            async with open_engine(
                config,
                directory,
                store,
                media=media.media_for,
                legs=legs,
                recording_unavailable=media.recording_unavailable,
                mixing_unavailable=media.mixing_unavailable,
            ) as engine:
                if traces is not None:
                    engine.listeners.append(traces.on_event)
                sip_service = SipService(
                    endpoint,
                    directory,
                    store,
                    config,
                    engine=engine,
                    traces=traces,
                    sdp_cache=sdp_cache,
                )
                callbacks = CallbackDispatcher(engine)
                token_limiter = FailureLimiter("api token")  # the token endpoint's guesses
                metrics = ServerMetrics(
                    engine=engine,
                    endpoint=endpoint,
                    directory=directory,
                    store=store,
                    backend=counting_store,
                    sip_limiter=sip_service.registrar.limiter,
                    api_limiter=token_limiter,
                    callbacks=callbacks,
                    media_alive=media.alive,
                )
                health = HealthCheck(
                    engine=engine,
                    endpoint=endpoint,
                    store=store,
                    media_alive=media.alive,
                    node=config.cluster.node,
                    query_store=not store.queued,  # a remote one is probed by the service
                )
                await nursery.start(endpoint.run, sip_service.handle)
                api_url = f"http://{hostport(config.api.host, api_port)}"
                # after recover() read the last beat of the previous run
                nursery.start_soon(
                    partial(
                        heartbeat,
                        store,
                        config.cluster.node,
                        config.cluster.heartbeat,
                        api=api_url,
                    )
                )
                await nursery.start(callbacks.run)

                def settled(calls: list[PhoneCall]) -> None:  # their final event
                    for call in calls:
                        if call.status_callback:
                            callbacks.watch(
                                call.id, call.status_callback, after_seq=call.events - 1
                            )

                settled(engine.recovered)  # ended by the restart: BYE their answered legs
                nursery.start_soon(bye_stored_legs, endpoint, store, list(engine.recovered))
                engine.recovered.clear()
                monitor = ClusterMonitor(engine, endpoint, on_settled=settled)
                nursery.start_soon(monitor.run)
                app = OwnerRouting(
                    create_app(
                        engine,
                        public_url=config.api.base_url(api_port),
                        callbacks=callbacks,
                        token_limiter=token_limiter,
                        operations=ServerOperations(metrics, health),
                        traces=traces,
                        sip_address=next(((h, p) for t, h, p in bound if t == "udp"), None),
                    ),
                    owner_of=partial(owner_api, engine),
                    peers=partial(live_peers, engine),
                    node=config.cluster.node,
                    hop_key=derive_key(engine.signing_secret(), HOP_KEY_PURPOSE),
                )
                metrics.watch_gc()
                await nursery.start(watch_loop_lag, metrics.loop_lag.observe)
                stop_http = trio.Event()
                await nursery.start(serve_http, app, api_socket, stop_http.wait)
                running = Running(engine, bound, api_url)
                if freeze_gc:
                    gc.collect()
                    gc.freeze()
                    gc.set_threshold(*GC_THRESHOLDS)
                announce(f"listening api {running.api_url}")
                if config.directory.file is None:
                    for entry in directory.apps:
                        owner = entry.owner_kind + (
                            f":{entry.owner_id}" if entry.owner_id is not None else ""
                        )
                        announce(
                            f"demo app {entry.client_id} secret {entry.client_secret} ({owner})"
                        )
                logger.info(
                    "started: sip %s, api %s, store %s, media %s",
                    ", ".join(f"{t} {hostport(h, p)}" for t, h, p in bound),
                    running.api_url,
                    redact(config.store.url),
                    "rtpengine" if media.relay is None else f"relay process {media.relay.pid}",
                )
                task_status.started(running)
                if handle_signals:
                    nursery.start_soon(_watch_signals, running.shutdown, nursery.cancel_scope)
                nursery.start_soon(_purge_expired, store)
                if media.relay is not None:
                    nursery.start_soon(_watch_relay, media.relay, running)
                if media.digits is not None:
                    nursery.start_soon(media.digits.run)
                await running.shutdown.wait()
                logger.info(
                    "draining: %d live calls, up to %g s", engine.live_count, config.calls.drain
                )
                await engine.drain(config.calls.drain)
                await callbacks.drain(min(5.0, config.calls.drain))  # the final callbacks
                logger.info("drained: %d calls still live", engine.live_count)
                stop_http.set()
            nursery.cancel_scope.cancel()
        if running.failure is not None:
            raise ServerFailed(running.failure)
    finally:
        if metrics is not None:
            metrics.unwatch_gc()
        api_socket.close()  # a no-op once hypercorn has it
        await media_backend.__aexit__(None, None, None)
        store.close()


async def _flush_relay_commands(
    relay: RelayProcess, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
) -> None:
    """The relay's one-way commands of this thread go out together, once per pass of the
    scheduler: the calls' tasks queue them (``RelayProcess.defer_casts``), and this task,
    woken by the first, sends them after those tasks have run. One write and one wake-up of
    the relay process per pass instead of one per command."""
    task = trio.lowlevel.current_task()
    parked = False

    def wake() -> None:
        nonlocal parked
        if parked:
            parked = False
            trio.lowlevel.reschedule(task)

    def abort(_raise_cancel: object) -> trio.lowlevel.Abort:
        nonlocal parked
        parked = False
        return trio.lowlevel.Abort.SUCCEEDED

    relay.defer_casts(wake)
    try:
        task_status.started()
        while True:
            parked = True
            await trio.lowlevel.wait_task_rescheduled(abort)
            relay.flush_casts()
    finally:
        relay.defer_casts(None)  # sends what is left, and later commands at once


async def _watch_relay(relay: RelayProcess, running: Running, interval: float = 1.0) -> None:
    """A relay process that died (or was killed for hanging) leaves every new call without
    media: stop the server cleanly, so that its supervisor restarts the whole."""
    while relay.alive:
        await trio.sleep(interval)
    running.failure = "the relay process exited; stopping so the server can be restarted"
    logger.error("%s", running.failure)
    running.shutdown.set()


async def _purge_expired(store: StoreService, every: float = 300.0) -> None:
    """Drop expired registrations now and then, so they do not pile up."""
    while True:
        await trio.sleep(every)
        try:
            removed = await store.apurge_expired(time.time())
        except Exception:
            logger.exception("purging expired registrations failed")
            continue
        if removed:
            logger.info("purged %d expired registrations", removed)


async def _watch_signals(shutdown: trio.Event, everything: trio.CancelScope) -> None:
    """The first SIGINT/SIGTERM drains; a second one (an impatient Ctrl-C) stops at once."""
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for signum in signals:
            name = signal.Signals(signum).name
            if not shutdown.is_set():
                logger.info("signal %s: shutting down", name)
                shutdown.set()
            else:
                logger.warning("signal %s again: stopping without waiting for live calls", name)
                everything.cancel()
