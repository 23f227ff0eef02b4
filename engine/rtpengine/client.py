"""An ng protocol client for rtpengine on trio: one UDP socket, many requests in flight.

Each request is one datagram ``COOKIE SP <bencoded dict>``; rtpengine answers with the same
cookie (and answers a repeated cookie from its cache, so a retry is safe). Requests that get no
answer within ``timeout`` are sent again, up to ``tries`` times, then fail with
:class:`NgUnavailable` naming the instance. Answers are matched to requests by cookie only: a
late answer to an earlier try, or one nobody waits for, is dropped.

Several instances: a call's first request goes to the instance :meth:`NgClient.choose` picks
(round robin over those not marked down), and the call keeps that instance for all later
requests (rtpengine holds the call's state). An instance that did not answer is marked down for
``retry_down`` seconds, so the next calls go to the others; when every instance is down the one
marked down longest ago is tried again.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Protocol

import trio

from engine.rtpengine.bencode import Bencodable, BencodeError, decode, encode

__all__ = [
    "DatagramSocket",
    "Instance",
    "NgClient",
    "NgError",
    "NgRefused",
    "NgUnavailable",
    "open_ng_client",
    "parse_instance",
]

logger = logging.getLogger(__name__)

MAX_DATAGRAM = 65535


class NgError(Exception):
    """An ng request that did not succeed; the message names the instance and the command."""


class NgUnavailable(NgError):
    """rtpengine did not answer (or answered something unreadable)."""


class NgRefused(NgError):
    """rtpengine answered ``result: error``."""


@dataclass(frozen=True, slots=True)
class Instance:
    host: str
    port: int

    @property
    def label(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"udp:{host}:{self.port}"

    def __str__(self) -> str:
        return self.label


def parse_instance(text: str) -> Instance:
    """``udp:HOST:PORT`` (an IPv6 HOST in brackets); ValueError saying what is wrong."""
    if not isinstance(text, str) or not text.startswith("udp:"):
        raise ValueError(f"expected 'udp:HOST:PORT', got {text!r}")
    rest = text[4:]
    if rest.startswith("["):
        host, sep, port_text = rest[1:].partition("]:")
        if not sep:
            raise ValueError(f"expected 'udp:[IPV6]:PORT', got {text!r}")
    else:
        host, sep, port_text = rest.rpartition(":")
        if not sep or ":" in host:
            raise ValueError(f"expected 'udp:HOST:PORT', got {text!r}")
    if not host or any(c.isspace() for c in host):
        raise ValueError(f"expected 'udp:HOST:PORT' with a host, got {text!r}")
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ValueError(f"port must be 1-65535 in {text!r}")
    return Instance(host, int(port_text))


class DatagramSocket(Protocol):
    """What the client needs of a UDP socket (trio's, or a fake in tests)."""

    def sendto(self, data: bytes, address: tuple[str, int], /) -> Awaitable[int]: ...

    def recvfrom(self, bufsize: int, /) -> Awaitable[tuple[bytes, Any]]: ...

    def close(self) -> None: ...


class NgClient:
    """Requests to rtpengine instances over one socket; run :meth:`run` in a nursery."""

    def __init__(
        self,
        instances: Sequence[Instance],
        sock: DatagramSocket,
        *,
        timeout: float = 1.0,
        tries: int = 3,
        retry_down: float = 10.0,
        cookie_prefix: str | None = None,
        resolve: Callable[[Instance], tuple[str, int]] | None = None,
    ) -> None:
        if not instances:
            raise ValueError("at least one rtpengine instance is needed")
        self.instances = list(instances)
        self._sock = sock
        self._timeout = timeout
        self._tries = tries
        self._retry_down = retry_down
        # rtpengine caches answers by cookie: cookies must not repeat across our restarts
        self._prefix = cookie_prefix if cookie_prefix is not None else os.urandom(6).hex()
        self._serial = itertools.count(1)
        self._next = itertools.count()
        self._pending: dict[bytes, trio.MemorySendChannel[bytes]] = {}
        self._down_until: dict[Instance, float] = {}
        self._down_events: dict[Instance, trio.Event] = {}
        self._resolve = resolve or (lambda instance: (instance.host, instance.port))
        self._nursery: trio.Nursery | None = None

    # --- instances ------------------------------------------------------------------------

    def choose(self) -> Instance:
        """The instance for a new call: round robin over those up, else the longest down."""
        now = trio.current_time()
        n = len(self.instances)
        start = next(self._next)
        for k in range(n):
            instance = self.instances[(start + k) % n]
            if self._down_until.get(instance, 0.0) <= now:
                return instance
        return min(self.instances, key=lambda i: self._down_until.get(i, 0.0))

    def is_down(self, instance: Instance) -> bool:
        return self._down_until.get(instance, 0.0) > trio.current_time()

    async def wait_down(self, instance: Instance) -> None:
        """Return when the monitor next finds ``instance`` dead (see :meth:`monitor`)."""
        await self._down_events.setdefault(instance, trio.Event()).wait()

    def spawn(self, task: Callable[[], Awaitable[None]]) -> None:
        """Run ``task`` in the background, in the client's nursery (dropped when not open)."""
        if self._nursery is not None:
            self._nursery.start_soon(task)

    # --- requests -------------------------------------------------------------------------

    async def request(
        self, instance: Instance, command: str, **fields: Bencodable
    ) -> dict[str, Any]:
        """Send ``command`` with ``fields`` (``from_tag`` is sent as ``from-tag``)."""
        message: dict[str, Any] = {"command": command}
        for key, value in fields.items():
            message[key.replace("_", "-")] = value
        cookie = f"{self._prefix}_{next(self._serial)}".encode()
        datagram = cookie + b" " + encode(message)
        send, receive = trio.open_memory_channel[bytes](1)
        self._pending[cookie] = send
        address = self._resolve(instance)
        try:
            for _attempt in range(self._tries):
                try:
                    await self._sock.sendto(datagram, address)
                except OSError as exc:
                    self._mark_down(instance)
                    raise NgUnavailable(f"rtpengine {instance}: {command}: {exc}") from None
                with trio.move_on_after(self._timeout):
                    body = await receive.receive()
                    break
            else:
                self._mark_down(instance)
                raise NgUnavailable(
                    f"rtpengine {instance} did not answer {command} "
                    f"({self._tries} tries, {self._timeout:g} s each)"
                )
        finally:
            del self._pending[cookie]
        self._down_until.pop(instance, None)
        try:
            reply = decode(body)
        except BencodeError as exc:
            raise NgUnavailable(
                f"rtpengine {instance}: unreadable answer to {command}: {exc}"
            ) from None
        if not isinstance(reply, dict):
            raise NgUnavailable(f"rtpengine {instance}: answer to {command} is not a dictionary")
        if reply.get("result") == "error":
            reason = reply.get("error-reason", "no reason given")
            raise NgRefused(f"rtpengine {instance} refused {command}: {reason}")
        return reply

    def _mark_down(self, instance: Instance) -> None:
        self._down_until[instance] = trio.current_time() + self._retry_down
        logger.warning(
            "rtpengine %s is not answering; new calls avoid it for %g s", instance, self._retry_down
        )

    async def ping(self, instance: Instance) -> bool:
        return (await self.request(instance, "ping")).get("result") == "pong"

    async def monitor(self, interval: float) -> None:
        """Ping every instance every ``interval`` s: one that does not answer a ping (all its
        tries) is dead, and the calls on it are told (:meth:`wait_down`)."""

        async def check(instance: Instance) -> None:
            try:
                await self.ping(instance)
            except NgUnavailable:
                # Dead, not merely slow for one request: its calls are told (a call's own
                # request that times out only steers new calls away).
                event = self._down_events.pop(instance, None)
                if event is not None:
                    event.set()
            except NgError:
                pass

        while True:
            async with trio.open_nursery() as nursery:
                for instance in self.instances:
                    nursery.start_soon(check, instance)
            await trio.sleep(interval)

    # --- the reader -----------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Read answers and hand each to the request waiting for its cookie."""
        task_status.started()
        while True:
            try:
                data, _sender = await self._sock.recvfrom(MAX_DATAGRAM)
            except OSError as exc:  # an ICMP port unreachable from a dead instance, on Linux
                logger.debug("ng socket: %s", exc)
                continue
            cookie, sep, body = data.partition(b" ")
            waiting = self._pending.get(cookie) if sep else None
            if waiting is None:
                logger.debug("ng answer with an unknown cookie dropped: %r", data[:40])
                continue
            # a duplicate answer to a request already answered is dropped
            with contextlib.suppress(trio.WouldBlock):
                waiting.send_nowait(body)


@asynccontextmanager
async def open_ng_client(
    instances: Sequence[Instance],
    *,
    timeout: float = 1.0,
    tries: int = 3,
    retry_down: float = 10.0,
    ping_interval: float = 0.0,
) -> AsyncIterator[NgClient]:
    """A client on a fresh UDP socket (IPv6 when the first instance's host is IPv6); with
    ``ping_interval`` > 0 it also pings every instance that often (:meth:`NgClient.monitor`)."""
    family = socket.AF_INET6 if ":" in instances[0].host else socket.AF_INET
    sock = trio.socket.socket(family, socket.SOCK_DGRAM)
    try:
        await sock.bind(("::" if family == socket.AF_INET6 else "0.0.0.0", 0))
        client = NgClient(instances, sock, timeout=timeout, tries=tries, retry_down=retry_down)
        try:
            async with trio.open_nursery() as nursery:
                await nursery.start(client.run)
                client._nursery = nursery
                if ping_interval > 0:
                    nursery.start_soon(client.monitor, ping_interval)
                yield client
                nursery.cancel_scope.cancel()
        except BaseExceptionGroup as group:  # the caller's own error, not a group of one
            if len(group.exceptions) == 1:
                raise group.exceptions[0] from None
            raise
    finally:
        sock.close()
