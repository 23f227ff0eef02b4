"""SIP over UDP and TCP (RFC 3261 §18, RFC 3581), the trio shell's sockets.

Theory of operation:

* UDP: one socket per listener and one receive task per socket, so messages from one socket
  are handed on in the order they arrived (a reordered 180/200 confuses every peer).  A
  request gets ``received`` (when the source address differs from the Via host) and, when the
  top Via asks for it, ``rport`` stamped on its top Via (§18.2.1, RFC 3581 §4).
* TCP: a listener per address plus outgoing connections, each with a reader task framing the
  stream by Content-Length (``StreamParser``).  Connections are kept in a table keyed by the
  peer's address (and, for connections a peer opened to us, by the sent-by of its Via so our
  requests back to it reuse them).
* TCP limits: at most ``max_connections`` connections from peers in all and
  ``max_connections_per_source`` from one remote address (``ConnectionLimits``); a connection
  over a limit is closed at once on accept (with a reset, so it leaves no TIME_WAIT behind).
  The ones we open are counted but never refused (a flood must not cut us off from our
  gateways).  Each refusal is logged as a warning, at most one line per source and 10 s.
* TCP idle timeout: only a complete SIP message, in either direction, counts as activity; a
  double-CRLF keep-alive ping (answered with a CRLF pong, RFC 5626 §4.4.1) or a message
  trickled in byte by byte does not.  A connection is closed ``idle_timeout`` seconds after
  its last message, or ``first_message_timeout`` seconds after it opened when no message
  has passed yet (slowloris), unless a dialog holds it with ``retain`` (a call may be silent
  for an hour, §18.3).
* Every TCP connection has one writer task fed by a bounded queue, so ``send`` never waits
  on a peer: a peer that stops reading fills its queue or keeps a write pending beyond
  ``send_timeout``, and then its connection is closed and ``on_error`` reports it (the
  endpoint fails the transactions bound to it).  Only connecting waits (``connect_timeout``);
  ``has_connection``/``destination`` let the caller run such sends apart.
* Responses go back per §18.2.2: over TCP on the connection the request came in when it is
  still open, else a new connection to the Via's ``received``/sent-by port; over UDP to the
  ``received`` address and the ``rport`` (or sent-by) port of the top Via.
* Bad input never kills a loop: a datagram that does not parse is answered 400 (or the
  parser's status hint) when enough of it can be read to build a response, else dropped
  with a log line; a TCP stream that cannot be framed is closed.
"""

from __future__ import annotations

import contextlib
import logging
import math
import re
import secrets
import socket
import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Literal

import trio

from sip.errors import RemoteProtocolError
from sip.headers import Headers, canonical_name
from sip.limits import ConnectionLimits
from sip.message import Message, Request, Response, StreamParser, parse_message, serialize
from sip.observe import MessageObserver
from sip.peers import bare_host, default_port
from sip.transaction_types import Peer

__all__ = ["MessageCallback", "SipTransport", "TransportError", "response_destination"]

log = logging.getLogger(__name__)

MessageCallback = Callable[[Message, Peer], Awaitable[None]]
ErrorCallback = Callable[[Peer], Awaitable[None]]

_MAX_DATAGRAM = 65535
_MAX_QUEUED = 256  # messages waiting for one TCP peer before we give up on it
_FIRST_MESSAGE_TIMEOUT = 30.0  # at most this long for a new connection's first message
_PONG = b"\r\n"
# A UDP listener's receive buffer absorbs the datagrams that arrive while the event loop is
# busy elsewhere (a burst, a full garbage collection): what overflows is lost and comes back
# only with the peer's retransmission 0.5-4 s later. The kernel caps SO_RCVBUF at
# net.core.rmem_max (and doubles it for bookkeeping); as root SO_RCVBUFFORCE goes past the cap.
_RECV_BUFFER = 16 << 20
_RECV_BATCH = 64  # datagrams read per wake-up of a UDP listener's task
_REQUEST_LINE = re.compile(r"^([A-Za-z!%*._+`'~-]+) +\S+ +SIP/\d+\.\d+\s*$")


def _is_address(family: int, host: str) -> bool:
    """Whether ``host`` is a literal address of ``family`` (no name to resolve)."""
    try:
        socket.inet_pton(family, host)
    except (OSError, ValueError):
        return False
    return True


def _set_receive_buffer(sock: trio.socket.SocketType, size: int) -> None:
    """Ask for ``size`` bytes of receive buffer: forced if we may, else up to the system cap."""
    force = getattr(socket, "SO_RCVBUFFORCE", None)
    if force is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, force, size)
            return
        except OSError:  # not CAP_NET_ADMIN
            pass
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)


def _reset(stream: trio.SocketStream) -> None:
    """Close a connection we will not serve at once, with a reset (no FIN handshake, no
    TIME_WAIT left on our side)."""
    with contextlib.suppress(OSError):
        stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    stream.socket.close()


class TransportError(Exception):
    """A message could not be sent (no listener, connection refused, broken stream)."""


def response_destination(response: Response, peer: Peer) -> Peer:
    """Where a response to a request from ``peer`` goes (§18.2.2, RFC 3581 §4)."""
    try:
        via = response.vias[0]
    except (RemoteProtocolError, IndexError):
        return peer
    host = via.received or bare_host(via.host)
    if peer.reliable:
        return Peer(peer.transport, host, via.port or default_port(peer.transport))
    rport = via.rport
    port = rport if rport else (via.port or default_port(peer.transport))
    return Peer(peer.transport, host, port)


def stamp_via(request: Request, peer: Peer) -> Request:
    """Add ``received``/``rport`` to the top Via (§18.2.1, RFC 3581 §4)."""
    vias = request.vias
    top = vias[0]
    changes: dict[str, str | None] = {}
    if top.has_rport:
        changes["received"] = peer.host
        changes["rport"] = str(peer.port)
    elif bare_host(top.host) != peer.host:
        changes["received"] = peer.host
    if not changes:
        return request
    stamped = top.with_params(**changes)
    headers = request.headers.replace("Via", str(stamped), *(str(v) for v in vias[1:]))
    return request.with_headers(headers)


def _clean_reason(text: str) -> str:
    cleaned = "".join(ch if ch.isprintable() else " " for ch in text).strip()
    return cleaned[:200] or "Bad Request"


def error_response_for(data: bytes, error: RemoteProtocolError) -> Response | None:
    """Build the 4xx for a request the parser rejected, from a lenient header scan.

    Only when the start line is a request line (never for a response or ACK) and Via, From,
    To, Call-ID and CSeq can be found: otherwise there is nobody to answer.
    """
    text = data.decode("latin-1")
    head = re.split(r"\r?\n\r?\n", text, maxsplit=1)[0]
    lines = re.split(r"\r?\n", head)
    if not lines:
        return None
    match = _REQUEST_LINE.match(lines[0])
    if match is None or match.group(1).upper() == "ACK":
        return None
    items: list[tuple[str, str]] = []
    for line in lines[1:]:
        if line[:1] in (" ", "\t") and items:
            name, value = items[-1]
            items[-1] = (name, f"{value} {line.strip()}")
            continue
        name, sep, value = line.partition(":")
        if not sep:
            continue
        items.append((canonical_name(name.strip()), value.strip()))
    wanted = ("Via", "From", "To", "Call-ID", "CSeq")
    kept = [(n, v) for n, v in items if n in wanted]
    kept = [
        (n, f"{v};tag={secrets.token_hex(6)}" if n == "To" and ";tag=" not in v.lower() else v)
        for n, v in kept
    ]
    if not all(any(n == w for n, _ in kept) for w in wanted):
        return None
    status = error.status_hint if 400 <= error.status_hint < 700 else 400
    try:
        response = Response(
            status=status, reason=_clean_reason(error.reason), headers=Headers(kept)
        )
        serialize(response)
    except Exception:  # the salvaged headers are too broken to send: drop
        return None
    return response


@dataclass(eq=False)
class _TcpConnection:
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
class _UdpListener:
    sock: trio.socket.SocketType
    raw: socket.socket  # the same socket (non-blocking), for the fast paths
    address: tuple[str, int]
    family: int


@dataclass(eq=False)
class _TcpListener:
    listener: trio.SocketListener
    address: tuple[str, int]


class SipTransport:
    """Sockets for SIP; hands every parsed message with its ``Peer`` to ``on_message``."""

    def __init__(
        self,
        on_message: MessageCallback,
        *,
        idle_timeout: float = 32.0,
        first_message_timeout: float | None = None,
        max_connections: int = 1024,
        max_connections_per_source: int = 32,
        connect_timeout: float = 10.0,
        send_timeout: float = 10.0,
        max_queued: int = _MAX_QUEUED,
        on_error: ErrorCallback | None = None,
    ) -> None:
        """``first_message_timeout`` defaults to ``min(30, idle_timeout)``."""
        self._on_message = on_message
        self._on_error = on_error
        self._send_timeout = send_timeout
        self._max_queued = max_queued
        self._idle_timeout = idle_timeout
        self._first_message_timeout = (
            min(_FIRST_MESSAGE_TIMEOUT, idle_timeout)
            if first_message_timeout is None
            else first_message_timeout
        )
        self._limits = ConnectionLimits(max_connections, max_connections_per_source)
        self._connect_timeout = connect_timeout
        self._udp: list[_UdpListener] = []
        self._tcp_listeners: list[_TcpListener] = []
        self._connections: dict[tuple[str, int], _TcpConnection] = {}
        self._retained: dict[tuple[str, int], int] = {}
        self._connect_locks: dict[tuple[str, int], trio.Lock] = {}
        self._nursery: trio.Nursery | None = None
        self._closed = False
        self._observers: list[MessageObserver] = []
        self._observer_failed = False

    def add_observer(self, observer: MessageObserver) -> None:
        """Call ``observer.message`` for every message parsed on receive and every message
        sent (``sip.observe``); without observers the cost is one empty-list check."""
        self._observers.append(observer)

    def _observe(self, direction: Literal["in", "out"], message: Message, peer: Peer) -> None:
        for observer in self._observers:
            try:
                observer.message(direction, message, peer)
            except Exception:
                if not self._observer_failed:  # once: a broken observer must not flood the log
                    self._observer_failed = True
                    log.exception("SIP message observer %r failed (logged once)", observer)

    # -- listeners ----------------------------------------------------------------------

    async def listen(self, transport: str, host: str, port: int) -> tuple[str, int]:
        """Bind a listener; returns the bound (host, port) (port 0 = any free port)."""
        transport = transport.lower()
        bare = bare_host(host)
        family = socket.AF_INET6 if ":" in bare else socket.AF_INET
        if transport == "udp":
            raw = socket.socket(family, socket.SOCK_DGRAM)
            sock = trio.socket.from_stdlib_socket(raw)  # makes it non-blocking
            try:
                _set_receive_buffer(sock, _RECV_BUFFER)
                await sock.bind((bare, port))
            except OSError:
                sock.close()
                raise
            address = sock.getsockname()[:2]
            udp = _UdpListener(sock, raw, (address[0], address[1]), family)
            self._udp.append(udp)
            if self._nursery is not None:
                self._nursery.start_soon(self._udp_loop, udp)
            log.info("listening sip udp %s:%d", address[0], address[1])
            return udp.address
        if transport == "tcp":
            sock = trio.socket.socket(family, socket.SOCK_STREAM)
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                await sock.bind((bare, port))
                sock.listen(512)
            except OSError:
                sock.close()
                raise
            address = sock.getsockname()[:2]
            tcp = _TcpListener(trio.SocketListener(sock), (address[0], address[1]))
            self._tcp_listeners.append(tcp)
            if self._nursery is not None:
                self._nursery.start_soon(self._accept_loop, tcp)
            log.info("listening sip tcp %s:%d", address[0], address[1])
            return tcp.address
        raise ValueError(f"unsupported transport {transport!r} (udp or tcp)")

    def address(self, transport: str) -> tuple[str, int] | None:
        """The first listener's address for ``transport``, or None."""
        transport = transport.lower()
        if transport == "udp" and self._udp:
            return self._udp[0].address
        if transport == "tcp" and self._tcp_listeners:
            return self._tcp_listeners[0].address
        return None

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Run every receive loop until cancelled; listeners added later start at once."""
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                for udp in self._udp:
                    nursery.start_soon(self._udp_loop, udp)
                for tcp in self._tcp_listeners:
                    nursery.start_soon(self._accept_loop, tcp)
                task_status.started()
                await trio.sleep_forever()
        finally:
            self._nursery = None
            self._close_sockets()

    def _close_sockets(self) -> None:
        self._closed = True
        for udp in self._udp:
            udp.sock.close()
        for tcp in self._tcp_listeners:
            tcp.listener.socket.close()
        for conn in list(self._connections.values()):
            conn.closed = True
            conn.stream.socket.close()
        self._connections.clear()

    # -- receiving ------------------------------------------------------------------------

    async def _udp_loop(self, udp: _UdpListener) -> None:
        # Reads what has arrived straight from the non-blocking socket, up to a batch, and
        # only then waits for more: trio's recvfrom would add a pass through the scheduler
        # per datagram. Handling a datagram yields anyway (it sends, or passes on to tasks).
        raw = udp.raw
        while True:
            await trio.lowlevel.wait_readable(raw)
            for _ in range(_RECV_BATCH):
                try:
                    data, address = raw.recvfrom(_MAX_DATAGRAM)
                except BlockingIOError:
                    break
                except OSError as exc:  # e.g. ICMP port unreachable surfacing on Linux
                    log.debug("udp recvfrom on %s: %s", udp.address, exc)
                    continue
                await self._datagram(data, Peer("udp", address[0], address[1]))

    async def _datagram(self, data: bytes, peer: Peer) -> None:
        if not data.strip():
            return  # CRLF keep-alive (RFC 5626 §4.4.1)
        try:
            message = parse_message(data)
        except RemoteProtocolError as exc:
            response = error_response_for(data, exc)
            if response is None:
                log.info("dropping unparsable datagram from %s: %s", peer, exc.reason)
                return
            log.info("answering unparsable request from %s with %d: %s", peer, response.status, exc)
            try:  # to the source address: the Via of a broken request is not to be trusted
                await self.send_raw(serialize(response), peer)
            except TransportError as send_exc:
                log.info("could not answer %s: %s", peer, send_exc)
            return
        await self._deliver(message, peer)

    async def _deliver(self, message: Message, peer: Peer) -> None:
        if isinstance(message, Request):
            try:
                message = stamp_via(message, peer)
            except RemoteProtocolError as exc:
                log.info("dropping request from %s with a bad Via: %s", peer, exc.reason)
                return
        if self._observers:
            self._observe("in", message, peer)
        try:
            await self._on_message(message, peer)
        except Exception:
            log.exception("error handling a message from %s", peer)

    async def _accept_loop(self, tcp: _TcpListener) -> None:
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
    ) -> _TcpConnection:
        """Table a connection (its slot in the limits taken) and start its reader and writer
        tasks; the writer gives the slot back when it closes the stream."""
        assert self._nursery is not None
        outbox, pending = trio.open_memory_channel[bytes](self._max_queued)
        conn = _TcpConnection(stream, peer, trio.current_time(), outbox, pending, incoming=incoming)
        self._connections[(peer.host, peer.port)] = conn
        self._nursery.start_soon(self._tcp_reader, conn)
        self._nursery.start_soon(self._tcp_writer, conn)
        return conn

    def _deadline(self, conn: _TcpConnection) -> float:
        """When ``conn`` is closed unless a complete message passes on it (or a dialog
        holds it)."""
        if conn.last_message is None:
            return conn.opened_at + self._first_message_timeout
        return conn.last_message + self._idle_timeout

    async def _tcp_reader(self, conn: _TcpConnection) -> None:
        parser = StreamParser()
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
                    for message in messages:
                        if isinstance(message, Request):
                            self._alias(message, conn)
                        await self._deliver(message, conn.peer)
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

    async def _tcp_writer(self, conn: _TcpConnection) -> None:
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

    def _abort(self, conn: _TcpConnection) -> None:
        """Close ``conn`` at once: its reader and writer end (a writer blocked on a peer
        that does not read gets ClosedResourceError and reports the failure)."""
        self._forget(conn)
        conn.closed = True
        conn.outbox.close()
        conn.pending.close()
        conn.stream.socket.close()

    async def _report(self, conn: _TcpConnection) -> None:
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

    def _alias(self, request: Request, conn: _TcpConnection) -> None:
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

    def _in_use(self, conn: _TcpConnection) -> bool:
        if not self._retained:
            return False
        return any(c is conn and k in self._retained for k, c in self._connections.items())

    def _forget(self, conn: _TcpConnection) -> None:
        for key in [k for k, c in self._connections.items() if c is conn]:
            del self._connections[key]

    # -- sending --------------------------------------------------------------------------

    async def send(self, message: Message, peer: Peer) -> None:
        """Serialise and send ``message``; TransportError when it cannot go out."""
        if isinstance(message, Response):
            peer = self._response_peer(message, peer)
        data = serialize(message)
        transport = peer.transport.lower()
        if transport == "udp":
            await self._send_udp(data, peer)
        elif transport == "tcp":
            await self._send_tcp(data, peer)
        else:
            raise TransportError(f"unsupported transport {peer.transport!r}")
        if self._observers:
            self._observe("out", message, peer)

    def send_nowait(self, message: Message, peer: Peer) -> bool:
        """Send ``message`` now if that needs no wait: a datagram the kernel takes at once, or
        bytes queued on an open connection. False (nothing sent) when ``send`` must wait: a
        full UDP send buffer, a name to resolve, a connection to open. TransportError as
        ``send``."""
        if isinstance(message, Response):
            peer = self._response_peer(message, peer)
        transport = peer.transport.lower()
        if transport == "udp":
            host = bare_host(peer.host)
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            for udp in self._udp:
                if udp.family == family:
                    if not _is_address(family, host):
                        return False
                    try:
                        udp.raw.sendto(serialize(message), (host, peer.port))
                    except BlockingIOError:
                        return False
                    except OSError as exc:
                        raise TransportError(f"udp send to {peer}: {exc}") from exc
                    if self._observers:
                        self._observe("out", message, peer)
                    return True
            raise TransportError(f"no udp listener to send to {peer}")
        if transport == "tcp":
            conn = self._connections.get((bare_host(peer.host), peer.port))
            if conn is None or conn.closed:
                return False
            self._queue_tcp(conn, serialize(message), peer)
            if self._observers:
                self._observe("out", message, peer)
            return True
        raise TransportError(f"unsupported transport {peer.transport!r}")

    def _response_peer(self, response: Response, peer: Peer) -> Peer:
        if peer.reliable and (peer.host, peer.port) in self._connections:
            return peer
        return response_destination(response, peer)

    def destination(self, message: Message, peer: Peer) -> Peer:
        """Where ``send(message, peer)`` puts the message (a response may need another
        connection than the one its request came on, §18.2.2)."""
        if isinstance(message, Response):
            return self._response_peer(message, peer)
        return peer

    async def send_raw(self, data: bytes, peer: Peer) -> None:
        """Send bytes as they are (keep-alives, tests)."""
        if peer.transport.lower() == "udp":
            await self._send_udp(data, peer)
        else:
            await self._send_tcp(data, peer)

    async def _send_udp(self, data: bytes, peer: Peer) -> None:
        host = bare_host(peer.host)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        for udp in self._udp:
            if udp.family == family:
                if _is_address(family, host):  # a name would be resolved right here, blocking
                    try:  # the common case: the datagram fits in the send buffer at once (no
                        # pass through the scheduler: the caller's next await yields anyway)
                        udp.raw.sendto(data, (host, peer.port))
                        return
                    except BlockingIOError:
                        pass
                    except OSError as exc:
                        raise TransportError(f"udp send to {peer}: {exc}") from exc
                with trio.move_on_after(self._send_timeout):  # a full send buffer, briefly
                    try:
                        await udp.sock.sendto(data, (host, peer.port))
                    except OSError as exc:
                        raise TransportError(f"udp send to {peer}: {exc}") from exc
                    return
                raise TransportError(f"udp send to {peer}: timed out")
        raise TransportError(f"no udp listener to send to {peer}")

    def has_connection(self, peer: Peer) -> bool:
        """True when a message to ``peer`` goes out without connecting first."""
        if not peer.reliable:
            return True
        conn = self._connections.get((bare_host(peer.host), peer.port))
        return conn is not None and not conn.closed

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

    def _queue_tcp(self, conn: _TcpConnection, data: bytes, peer: Peer) -> None:
        try:
            conn.outbox.send_nowait(data)
        except trio.ClosedResourceError as exc:
            raise TransportError(f"tcp send to {peer}: connection closed") from exc
        except trio.WouldBlock as exc:  # the peer does not read: give up on it
            conn.failure = f"{self._max_queued} messages queued"
            self._abort(conn)  # its writer reports the failure for every alias
            raise TransportError(f"tcp send to {peer}: {conn.failure}") from exc

    async def _connect(self, peer: Peer) -> _TcpConnection:
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

    def statistics(self) -> dict[str, float]:
        return {
            "udp_listeners": len(self._udp),
            "tcp_listeners": len(self._tcp_listeners),
            # open TCP connections (accepted and ours; the limits count them)
            "tcp_connections": self._limits.open,
            "tcp_connections_incoming": self._limits.incoming,
            "tcp_connections_refused": self._limits.refused,
            "max_connections": self._limits.max_total,
            "max_connections_per_source": self._limits.max_per_source,
            "idle_timeout": self._idle_timeout if self._idle_timeout else math.inf,
            "first_message_timeout": self._first_message_timeout,
            # bytes the kernel gives the first UDP listener (twice what it may hold in data)
            "udp_receive_buffer": (
                self._udp[0].sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
                if self._udp
                else 0
            ),
        }
