"""SIP over TCP (RFC 3261 §18.3): connections, their framing, limits and timeouts.

``TcpConnections`` is the TCP half of ``sip.transport.SipTransport``, mixed into it so that a
message's path (the reader hands it to the transport's ``_deliver``, ``send`` queues it on a
connection) goes through no more calls than if it were written there.

Theory of operation:

* A listener per address plus outgoing connections, each with a reader task framing the
  stream by Content-Length (``StreamParser``).  Connections are kept in a table keyed by the
  peer's address (and, for connections a peer opened to us, by the sent-by of its Via so our
  requests back to it reuse them).
* Limits: at most ``max_connections`` connections from peers in all and
  ``max_connections_per_source`` from one remote address (``ConnectionLimits``); a connection
  over a limit is closed at once on accept (with a reset, so it leaves no TIME_WAIT behind).
  The ones we open are counted but never refused (a flood must not cut us off from our
  gateways).  Each refusal is logged as a warning, at most one line per source and 10 s.
* Idle timeout: only a complete SIP message, in either direction, counts as activity; a
  double-CRLF keep-alive ping (answered with a CRLF pong, RFC 5626 §4.4.1) or a message
  trickled in byte by byte does not.  A connection is closed ``idle_timeout`` seconds after
  its last message, or ``first_message_timeout`` seconds after it opened when no message
  has passed yet (slowloris), unless a dialog holds it with ``retain`` (a call may be silent
  for an hour, §18.3).
* Every connection has one writer task fed by a bounded queue, so ``send`` never waits
  on a peer: a peer that stops reading fills its queue or keeps a write pending beyond
  ``send_timeout``, and then its connection is closed and ``on_error`` reports it (the
  endpoint fails the transactions bound to it).  Only connecting waits (``connect_timeout``).
* A stream that cannot be framed is answered 400 when possible (``error_response_for``),
  then closed.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import trio

from sip.errors import RemoteProtocolError
from sip.limits import ConnectionLimits
from sip.message import Message, Request, StreamParser, serialize
from sip.peers import bare_host, default_port
from sip.transaction_types import Peer
from sip.transport_rules import error_response_for
from sip.transport_types import ErrorCallback, TransportError

__all__ = ["TcpConnection", "TcpConnections", "TcpListener"]

# the transport's lines keep the logger name they had when this was one module
log = logging.getLogger("sip.transport")

_PONG = b"\r\n"


def _reset(stream: trio.SocketStream) -> None:
    """Close a connection we will not serve at once, with a reset (no FIN handshake, no
    TIME_WAIT left on our side)."""
    with contextlib.suppress(OSError):
        stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    stream.socket.close()


@dataclass(eq=False)
class TcpConnection:
    stream: trio.SocketStream
    peer: Peer
    opened_at: float
    outbox: trio.MemorySendChannel[bytes]
    pending: trio.MemoryReceiveChannel[bytes]
    last_message: float | None = None  # when the last complete message went either way
    closed: bool = False
    failure: str = ""
    aliases: set[tuple[str, int]] = field(default_factory=set)
    incoming: bool = True  # accepted from a peer (False: we opened it)


@dataclass(eq=False)
class TcpListener:
    listener: trio.SocketListener
    address: tuple[str, int]


class TcpConnections:
    """The TCP half of ``SipTransport`` (a mixin: its state is set by ``SipTransport``)."""

    _on_error: ErrorCallback | None
    _send_timeout: float
    _max_queued: int
    _idle_timeout: float
    _first_message_timeout: float
    _limits: ConnectionLimits
    _connect_timeout: float
    _connections: dict[tuple[str, int], TcpConnection]
    _retained: dict[tuple[str, int], int]
    _connect_locks: dict[tuple[str, int], trio.Lock]
    _nursery: trio.Nursery | None
    _closed: bool
    # the transport's own: stamps a request's Via, tells the observers, hands the message on
    _deliver: Callable[[Message, Peer, bytes], Awaitable[None]]

    async def _accept_loop(self, tcp: TcpListener) -> None:
        while True:
            try:
                stream = await tcp.listener.accept()
            except OSError as exc:  # EMFILE and friends: keep serving
                log.warning("tcp accept on %s: %s", tcp.address, exc)
                await trio.sleep(0.1)
                continue
            except trio.ClosedResourceError:
                return
            try:
                remote = stream.socket.getpeername()
            except OSError:  # reset by the peer already
                _reset(stream)
                continue
            refusal = self._limits.admit(remote[0], trio.current_time())
            if refusal is not None:
                if refusal.warning is not None:
                    log.warning("%s", refusal.warning)
                _reset(stream)
                continue
            self._add_connection(stream, Peer("tcp", remote[0], remote[1]))

    def _add_connection(
        self, stream: trio.SocketStream, peer: Peer, *, incoming: bool = True
    ) -> TcpConnection:
        """Table a connection (its slot in the limits taken) and start its reader and writer
        tasks; the writer gives the slot back when it closes the stream."""
        assert self._nursery is not None
        outbox, pending = trio.open_memory_channel[bytes](self._max_queued)
        conn = TcpConnection(stream, peer, trio.current_time(), outbox, pending, incoming=incoming)
        self._connections[(peer.host, peer.port)] = conn
        self._nursery.start_soon(self._tcp_reader, conn)
        self._nursery.start_soon(self._tcp_writer, conn)
        return conn

    def _deadline(self, conn: TcpConnection) -> float:
        """When ``conn`` is closed unless a complete message passes on it (or a dialog
        holds it)."""
        if conn.last_message is None:
            return conn.opened_at + self._first_message_timeout
        return conn.last_message + self._idle_timeout

    async def _tcp_reader(self, conn: TcpConnection) -> None:
        parser = StreamParser(keep_bytes=True)
        try:
            while not conn.closed:
                with trio.move_on_at(self._deadline(conn)):
                    data = await conn.stream.receive_some(65536)
                    if not data:
                        break
                    try:
                        messages = parser.feed(data)
                    except RemoteProtocolError as exc:
                        log.info("closing tcp connection from %s: %s", conn.peer, exc.reason)
                        response = error_response_for(data, exc)  # best effort, then close
                        if response is not None:
                            with contextlib.suppress(trio.WouldBlock, trio.ClosedResourceError):
                                conn.outbox.send_nowait(serialize(response))
                        break
                    if parser.take_pings():  # one pong for what arrived at once is enough
                        with contextlib.suppress(trio.WouldBlock, trio.ClosedResourceError):
                            conn.outbox.send_nowait(_PONG)
                    if messages:
                        conn.last_message = trio.current_time()
                    for message, raw in zip(messages, parser.take_bytes(), strict=True):
                        if isinstance(message, Request):
                            self._alias(message, conn)
                        await self._deliver(message, conn.peer, raw)
                    continue
                now = trio.current_time()
                if now < self._deadline(conn):
                    continue  # a message went out meanwhile
                if self._in_use(conn):
                    conn.last_message = now  # a dialog still needs it
                    continue
                log.debug(
                    "closing tcp connection %s: no SIP message for %g s",
                    conn.peer,
                    now - (conn.opened_at if conn.last_message is None else conn.last_message),
                )
                break
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
            log.debug("tcp connection %s ended: %s", conn.peer, exc)
        finally:
            # the writer sends what is queued (within send_timeout), then closes the stream
            self._forget(conn)
            conn.closed = True
            conn.outbox.close()

    async def _tcp_writer(self, conn: TcpConnection) -> None:
        """Send the connection's queue in order; a write that takes longer than
        ``send_timeout`` or fails closes the connection and reports ``on_error``."""
        failed = ""
        try:
            async for data in conn.pending:
                with trio.move_on_after(self._send_timeout) as scope:
                    await conn.stream.send_all(data)
                if scope.cancelled_caught:
                    failed = f"no write progress for {self._send_timeout} s"
                    break
                if data != _PONG:
                    conn.last_message = trio.current_time()
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
            failed = str(exc) or type(exc).__name__
        finally:
            self._abort(conn)
            try:
                with trio.CancelScope(shield=True):
                    await conn.stream.aclose()
            finally:
                self._limits.release(conn.peer.host, incoming=conn.incoming)
        if failed and not self._closed:
            log.info("tcp connection %s failed: %s", conn.peer, conn.failure or failed)
            await self._report(conn)

    def _abort(self, conn: TcpConnection) -> None:
        """Close ``conn`` at once: its reader and writer end (a writer blocked on a peer
        that does not read gets ClosedResourceError and reports the failure)."""
        self._forget(conn)
        conn.closed = True
        conn.outbox.close()
        conn.pending.close()
        conn.stream.socket.close()

    async def _report(self, conn: TcpConnection) -> None:
        """Tell ``on_error`` about every address the failed connection served."""
        if self._on_error is None:
            return
        keys = {(conn.peer.host, conn.peer.port), *conn.aliases}
        for host, port in sorted(keys):
            peer = Peer("tcp", host, port)
            try:
                await self._on_error(peer)
            except Exception:
                log.exception("transport error callback failed for %s", peer)

    def _alias(self, request: Request, conn: TcpConnection) -> None:
        """Reuse a connection a peer opened for our requests to its Via sent-by (RFC 5923
        without the ``alias`` ceremony: only for the address that sent on this connection)."""
        try:
            via = request.vias[0]
        except (RemoteProtocolError, IndexError):
            return
        key = (conn.peer.host, via.port or default_port("tcp"))
        if key not in self._connections:
            self._connections[key] = conn
            conn.aliases.add(key)

    def retain(self, peer: Peer) -> None:
        """Keep the connection to ``peer`` open while idle (a dialog uses it, §18.3)."""
        if peer.reliable:
            key = (bare_host(peer.host), peer.port)
            self._retained[key] = self._retained.get(key, 0) + 1

    def release(self, peer: Peer) -> None:
        """Undo one ``retain``; the idle timeout applies again when none is left."""
        if peer.reliable:
            key = (bare_host(peer.host), peer.port)
            count = self._retained.get(key, 0) - 1
            if count > 0:
                self._retained[key] = count
            else:
                self._retained.pop(key, None)

    def _in_use(self, conn: TcpConnection) -> bool:
        if not self._retained:
            return False
        return any(c is conn and k in self._retained for k, c in self._connections.items())

    def _forget(self, conn: TcpConnection) -> None:
        for key in [k for k, c in self._connections.items() if c is conn]:
            del self._connections[key]

    async def _send_tcp(self, data: bytes, peer: Peer) -> None:
        key = (bare_host(peer.host), peer.port)
        conn = self._connections.get(key)
        if conn is None or conn.closed:
            # one connection attempt per peer at a time; waiting senders keep their order
            lock = self._connect_locks.setdefault(key, trio.Lock())
            try:
                async with lock:
                    conn = self._connections.get(key)
                    if conn is None or conn.closed:
                        conn = await self._connect(peer)
            finally:
                if not lock.locked() and self._connect_locks.get(key) is lock:
                    del self._connect_locks[key]
        self._queue_tcp(conn, data, peer)

    def _queue_tcp(self, conn: TcpConnection, data: bytes, peer: Peer) -> None:
        try:
            conn.outbox.send_nowait(data)
        except trio.ClosedResourceError as exc:
            raise TransportError(f"tcp send to {peer}: connection closed") from exc
        except trio.WouldBlock as exc:  # the peer does not read: give up on it
            conn.failure = f"{self._max_queued} messages queued"
            self._abort(conn)  # its writer reports the failure for every alias
            raise TransportError(f"tcp send to {peer}: {conn.failure}") from exc

    async def _connect(self, peer: Peer) -> TcpConnection:
        if self._nursery is None:
            raise TransportError("transport is not running")
        host = bare_host(peer.host)
        self._limits.admit(host, trio.current_time(), incoming=False)  # counted, not refused
        stream: trio.SocketStream | None = None
        try:
            with trio.move_on_after(self._connect_timeout):
                try:
                    stream = await trio.open_tcp_stream(host, peer.port)
                except OSError as exc:
                    raise TransportError(f"tcp connect to {peer}: {exc}") from exc
            if stream is None:
                raise TransportError(f"tcp connect to {peer}: timed out")
            existing = self._connections.get((host, peer.port))
            if existing is not None and not existing.closed:  # lost a race with another sender
                lost, stream = stream, None
                await lost.aclose()
                return existing
        finally:
            if stream is None:
                self._limits.release(host, incoming=False)
        return self._add_connection(stream, Peer("tcp", host, peer.port), incoming=False)
