"""SIP over UDP and TCP (RFC 3261 §18, RFC 3581), the trio shell's sockets.

Theory of operation:

* ``SipTransport`` binds the listeners, receives, hands every parsed message on and sends;
  the TCP connections (their framing, limits, idle timeout and writer tasks) are its mixed-in
  half ``sip.transport_tcp.TcpConnections``, what it does to messages by §18.2 is
  ``sip.transport_rules``.  A message's path stays within these methods: no call is added
  for being split across modules.
* UDP: one socket per listener and one receive task per socket, so messages from one socket
  are handed on in the order they arrived (a reordered 180/200 confuses every peer).  A
  request gets ``received`` (when the source address differs from the Via host) and, when the
  top Via asks for it, ``rport`` stamped on its top Via (§18.2.1, RFC 3581 §4).
* ``send`` never waits on a TCP peer (a bounded queue per connection); only connecting waits
  (``connect_timeout``); ``has_connection``/``destination`` let the caller run such sends
  apart.
* Responses go back per §18.2.2: over TCP on the connection the request came in when it is
  still open, else a new connection to the Via's ``received``/sent-by port; over UDP to the
  ``received`` address and the ``rport`` (or sent-by) port of the top Via.
* Bad input never kills a loop: a datagram that does not parse is answered 400 (or the
  parser's status hint) when enough of it can be read to build a response, else dropped
  with a log line; a TCP stream that cannot be framed is closed.
* ``add_observer`` hooks ``sip.observe.MessageObserver``s on every message received and sent.
"""

from __future__ import annotations

import logging
import math
import socket
from dataclasses import dataclass
from typing import Literal

import trio

from sip.errors import RemoteProtocolError
from sip.limits import ConnectionLimits
from sip.message import Message, Request, Response, parse_message, serialize
from sip.observe import MessageObserver
from sip.peers import bare_host
from sip.transaction_types import Peer
from sip.transport_rules import error_response_for, response_destination, stamp_via
from sip.transport_tcp import TcpConnection, TcpConnections, TcpListener
from sip.transport_types import ErrorCallback, MessageCallback, TransportError
from sip.uri import NameAddrCache

__all__ = ["SipTransport"]

log = logging.getLogger(__name__)

_MAX_DATAGRAM = 65535
_MAX_QUEUED = 256  # messages waiting for one TCP peer before we give up on it
_FIRST_MESSAGE_TIMEOUT = 30.0  # at most this long for a new connection's first message
# A UDP listener's receive buffer absorbs the datagrams that arrive while the event loop is
# busy elsewhere (a burst, a full garbage collection): what overflows is lost and comes back
# only with the peer's retransmission 0.5-4 s later. The kernel caps SO_RCVBUF at
# net.core.rmem_max (and doubles it for bookkeeping); as root SO_RCVBUFFORCE goes past the cap.
_RECV_BUFFER = 16 << 20
_RECV_BATCH = 64  # datagrams read per wake-up of a UDP listener's task


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


@dataclass(eq=False)
class _UdpListener:
    sock: trio.socket.SocketType
    raw: socket.socket  # the same socket (non-blocking), for the fast paths
    address: tuple[str, int]
    family: int


class SipTransport(TcpConnections):
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
        self._tcp_listeners: list[TcpListener] = []
        self._connections: dict[tuple[str, int], TcpConnection] = {}
        self._retained: dict[tuple[str, int], int] = {}
        self._connect_locks: dict[tuple[str, int], trio.Lock] = {}
        self._nursery: trio.Nursery | None = None
        self._closed = False
        self._observers: list[MessageObserver] = []
        self._observer_failed = False
        # the From/To/Contact values of the dialogs passing here, each parsed once
        self._names = NameAddrCache()

    def add_observer(self, observer: MessageObserver) -> None:
        """Call ``observer.message`` for every message parsed on receive and every message
        sent (``sip.observe``); without observers the cost is one empty-list check."""
        self._observers.append(observer)

    def _observe(
        self, direction: Literal["in", "out"], message: Message, peer: Peer, data: bytes
    ) -> None:
        for observer in self._observers:
            try:
                observer.message(direction, message, peer, data)
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
            tcp = TcpListener(trio.SocketListener(sock), (address[0], address[1]))
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
            message = parse_message(data, self._names)
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
        await self._deliver(message, peer, data)

    async def _deliver(self, message: Message, peer: Peer, data: bytes) -> None:
        """Hand ``message`` (read as ``data``) on."""
        if isinstance(message, Request):
            try:
                message = stamp_via(message, peer)
            except RemoteProtocolError as exc:
                log.info("dropping request from %s with a bad Via: %s", peer, exc.reason)
                return
        if self._observers:
            self._observe("in", message, peer, data)
        try:
            await self._on_message(message, peer)
        except Exception:
            log.exception("error handling a message from %s", peer)

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
            self._observe("out", message, peer, data)

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
                    data = serialize(message)
                    try:
                        udp.raw.sendto(data, (host, peer.port))
                    except BlockingIOError:
                        return False
                    except OSError as exc:
                        raise TransportError(f"udp send to {peer}: {exc}") from exc
                    if self._observers:
                        self._observe("out", message, peer, data)
                    return True
            raise TransportError(f"no udp listener to send to {peer}")
        if transport == "tcp":
            conn = self._connections.get((bare_host(peer.host), peer.port))
            if conn is None or conn.closed:
                return False
            data = serialize(message)
            self._queue_tcp(conn, data, peer)
            if self._observers:
                self._observe("out", message, peer, data)
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
