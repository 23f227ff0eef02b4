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
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import trio

from engine.anchor import RelayMedia
from engine.config import Config
from engine.directory import Directory, demo_directory, load_directory
from engine.engine import Engine, open_engine, recordings_dir
from engine.heartbeat import heartbeat
from engine.media.process import RelayProcess
from engine.model import PhoneCall
from engine.sipservice import SipService, make_endpoint
from engine.store import Store, open_store
from sip.endpoint import SipEndpoint

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


class ListenError(OSError):
    """A listener could not be opened; the text names it and the reason, e.g. ``cannot listen
    on sip udp 127.0.0.1:5060: address already in use``. ``serve`` raises it before starting
    anything else."""

    def __init__(self, what: str, cause: OSError) -> None:
        super().__init__(cause.errno, cause.strerror)
        reason = cause.strerror or str(cause)  # "Address already in use"
        self.message = f"cannot listen on {what}: {reason[:1].lower()}{reason[1:]}"

    def __str__(self) -> str:
        return self.message


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
    from hypercorn.config import Config as HypercornConfig
    from hypercorn.trio import serve as hypercorn_serve

    from api.app import create_app
    from api.events import CallbackDispatcher
    from api.serving import configure, use_uapi_error_bodies

    directory = load_directory_for(config)
    # Listeners first: a taken port is reported before anything else starts.
    endpoint = make_endpoint(config)
    bound = await _listen_all(endpoint, config)
    api_socket = _bind_api(config)
    store = open_store(config.store.url)
    # The relay forwards in its own process: in a thread it would wait for the GIL whenever
    # signalling is busy (benchmarks/bench_relay.py --gil-load shows p99 near 1 s).
    relay = RelayProcess(config.media.address, config.media.ports)
    relay.start()
    records = recordings_dir(config)

    def media_for(call: PhoneCall) -> RelayMedia:
        return RelayMedia(relay, records / f"{call.id}.wav")

    try:
        sip_service = SipService(endpoint, directory, store, config)
        async with trio.open_nursery() as nursery:
            for transport, host, port in bound:
                announce(f"listening sip {transport} {_hostport(host, port)}")
            sip_service.set_local_addresses(bound)
            await nursery.start(endpoint.run, sip_service.handle)
            async with open_engine(
                config, directory, store, media=media_for, legs=sip_service
            ) as engine:
                sip_service.engine = engine
                # after recover() read the last beat of the previous run
                nursery.start_soon(heartbeat, store, config.cluster.node, config.cluster.heartbeat)
                running = Running(engine, bound)
                app_holder: dict[str, object] = {}
                hconfig = HypercornConfig()
                hconfig.bind = [f"fd://{api_socket.detach()}"]  # hypercorn owns it now
                hconfig.accesslog = None
                hconfig.errorlog = logging.getLogger("hypercorn.error")
                hconfig.graceful_timeout = 1.0
                configure(hconfig)
                use_uapi_error_bodies()
                stop_http = trio.Event()
                # The app needs the public URL, which needs the bound port: build it lazily.
                app = _LazyApp(app_holder)
                binds = await nursery.start(
                    lambda task_status: hypercorn_serve(
                        app,  # type: ignore[arg-type]
                        hconfig,
                        shutdown_trigger=stop_http.wait,
                        task_status=task_status,
                    )
                )
                api_port = int(binds[0].rsplit(":", 1)[1]) if binds else config.api.port
                public_url = config.api.base_url(api_port)
                callbacks = CallbackDispatcher(engine)
                await nursery.start(callbacks.run)
                for call in engine.recovered:  # ended by the restart: their final event
                    if call.status_callback:
                        callbacks.watch(call.id, call.status_callback, after_seq=call.events - 1)
                engine.recovered.clear()
                app_holder["app"] = create_app(engine, public_url=public_url, callbacks=callbacks)
                running.api_url = f"http://{_hostport(config.api.host, api_port)}"
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
                task_status.started(running)
                if handle_signals:
                    nursery.start_soon(_watch_signals, running.shutdown, nursery.cancel_scope)
                nursery.start_soon(_purge_expired, store)
                nursery.start_soon(_watch_relay, relay, running)
                await running.shutdown.wait()
                logger.info("draining: %d live calls", engine.live_count)
                await engine.drain(config.calls.drain)
                await callbacks.drain(min(5.0, config.calls.drain))  # the final callbacks
                stop_http.set()
            nursery.cancel_scope.cancel()
        if running.failure is not None:
            raise ServerFailed(running.failure)
    finally:
        api_socket.close()  # a no-op once hypercorn has it
        relay.close()
        store.close()


async def _watch_relay(relay: RelayProcess, running: Running, interval: float = 1.0) -> None:
    """A relay process that died (or was killed for hanging) leaves every new call without
    media: stop the server cleanly, so that its supervisor restarts the whole."""
    while relay.alive:
        await trio.sleep(interval)
    running.failure = "the relay process exited; stopping so the server can be restarted"
    logger.error("%s", running.failure)
    running.shutdown.set()


async def _listen_all(endpoint: SipEndpoint, config: Config) -> list[tuple[str, str, int]]:
    """Bind every ``[sip] listen`` address. Port 0 listeners on one host share the port the
    first one got (UDP and TCP on the same number, as SIP peers expect); should that number
    be taken for the other transport, that listener falls back to a port of its own.
    ``ListenError`` names the listener that could not be bound."""
    bound: list[tuple[str, str, int]] = []
    shared: dict[str, int] = {}
    for listen in config.sip.listen:
        what = f"sip {listen.transport} {_hostport(listen.host, listen.port)}"
        try:
            if listen.port == 0 and listen.host in shared:
                try:
                    host, port = await endpoint.listen(
                        listen.transport, listen.host, shared[listen.host]
                    )
                except OSError:
                    logger.warning("port %d taken for %s", shared[listen.host], listen.transport)
                    host, port = await endpoint.listen(listen.transport, listen.host, 0)
            else:
                host, port = await endpoint.listen(listen.transport, listen.host, listen.port)
                if listen.port == 0:
                    shared[listen.host] = port
        except OSError as exc:
            raise ListenError(what, exc) from None
        bound.append((listen.transport, host, port))
    return bound


def _bind_api(config: Config) -> socket.socket:
    """The API's listening socket, bound here (not by hypercorn) so that a taken port is a
    ``ListenError`` naming it, like the SIP listeners'."""
    host, port = config.api.host, config.api.port
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(100)
    except OSError as exc:
        sock.close()
        raise ListenError(f"api http://{_hostport(host, port)}", exc) from None
    return sock


class _LazyApp:
    """An ASGI app that forwards to the real one once it exists (503 before that)."""

    def __init__(self, holder: dict[str, object]) -> None:
        self._holder = holder

    async def __call__(self, scope: dict[str, object], receive: object, send: object) -> None:
        if scope.get("type") == "lifespan":
            while True:
                message = await receive()  # type: ignore[operator]
                kind = message["type"].rsplit(".", 1)[-1]
                await send({"type": f"lifespan.{kind}.complete"})  # type: ignore[operator]
                if kind == "shutdown":
                    return
        app = self._holder.get("app")
        if app is None:
            await send(  # type: ignore[operator]
                {
                    "type": "http.response.start",
                    "status": 503,
                    "headers": [(b"content-type", b"application/json")],
                }
            )
            await send(  # type: ignore[operator]
                {
                    "type": "http.response.body",
                    "body": b'{"error":{"code":"service_unavailable","message":"starting"}}',
                }
            )
            return
        await app(scope, receive, send)  # type: ignore[operator]


async def _purge_expired(store: Store, every: float = 300.0) -> None:
    """Drop expired registrations now and then, so they do not pile up."""
    while True:
        await trio.sleep(every)
        try:
            removed = store.purge_expired(time.time())
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


def _hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
