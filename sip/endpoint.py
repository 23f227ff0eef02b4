"""The SIP endpoint: sockets + transaction layer + dialog routing, the trio shell.

Theory of operation (RFC 3261 §8, §12, §17, §18; RFC 6026):

* The endpoint owns a ``SipTransport`` and one sans-IO ``TransactionLayer``.  Every input
  (a message from a socket, a request/response from the TU, a timer) is one synchronous call
  on the layer followed by ``_pump()``, which drains the layer's events synchronously, so
  the messages the layer asks to send go out in the order it produced them.
* The drain never waits, and so never yields to the scheduler (nor can a cancelled caller
  drop the events it took, which belong to every transaction): a send hands a datagram to
  the kernel (UDP) or queues bytes on an open connection (TCP).  A datagram the kernel
  cannot take at once waits in an ordered backlog sent by one task (later datagrams queue
  behind it), and a message that needs a new connection first is sent by a task of its own.
* One timer task sleeps until the earliest of ``layer.get_timer()`` and the sessions' timers
  (``schedule_session_timer``: the INVITE sessions have no task of their own) and fires what
  is due; whoever schedules an earlier deadline wakes it.  Time is read only through
  ``trio.current_time()``, so ``trio.testing.MockClock`` drives every timer in tests.
* New server transactions: out-of-dialog requests pass ``uas.check_request`` (§8.2) and go to
  the handler, spawned in the endpoint's nursery (a crash is logged and answered 500).
  Requests with a To tag, the ACK to a 2xx (no transaction, §17.2.3/RFC 6026) and 2xx
  responses that outlive their client transaction (retransmissions, other forks) go to the
  dialog owner registered under (Call-ID, local tag); an in-dialog request for no known
  dialog gets 481 (§12.2.2), a 2xx nobody owns is ACKed and BYEd (§13.2.2.4: we never want
  a dialog we cannot account for).
* CANCEL (§9.2): the layer answers it 200; the endpoint answers the INVITE 487 unless a final
  response went out already, and sets ``IncomingRequest.cancelled``.
* ``request()`` returns a ``ClientRequest``: sends on ``start()`` (or first iteration) and
  yields responses until the final one; Timer B/F gives a synthesised 408 and a transport
  failure a 503 (§8.1.3.1, §8.1.3.4).
"""

from __future__ import annotations

import collections
import logging
import math
import secrets
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Protocol

import trio

from sip.dialog import Dialog
from sip.errors import LocalProtocolError, RemoteProtocolError
from sip.headers import Via
from sip.message import Message, Request, Response
from sip.peers import peer_for_uri
from sip.timers import TimerConfig, TimerQueue
from sip.transaction import (
    CancelReceived,
    Peer,
    RequestReceived,
    ResponseReceived,
    SendMessage,
    StrayResponse,
    TransactionLayer,
    TransactionTerminated,
    TransactionTimeout,
    TransportFailed,
    TxKey,
)
from sip.transport import SipTransport, TransportError
from sip.uas import check_request
from sip.uri import SipUri, uri_host

__all__ = [
    "DEFAULT_ALLOWED_METHODS",
    "ClientRequest",
    "DialogOwner",
    "IncomingRequest",
    "RandomTokens",
    "RequestHandler",
    "SipEndpoint",
    "contact_uri",
    "peer_for_uri",
]

log = logging.getLogger(__name__)

DEFAULT_ALLOWED_METHODS = ("INVITE", "ACK", "CANCEL", "BYE", "OPTIONS", "INFO", "UPDATE")


def new_tag() -> str:
    """A fresh random tag (§19.3: at least 32 bits of randomness), for our answers' To."""
    return secrets.token_hex(8)


def cancel_answer_tag() -> str:
    """The To tag of an answer the transaction layer gives a CANCEL itself."""
    return secrets.token_hex(6)


def contact_uri(host: str, port: int, transport: str) -> SipUri:
    """Our Contact for a listener at ``host``:``port`` (an IPv6 literal gets its brackets)."""
    params: tuple[tuple[str, str | None], ...] = ()
    if transport.lower() != "udp":
        params = (("transport", transport.lower()),)
    return SipUri("sip", None, None, uri_host(host), port, params)


class RandomTokens:
    """64 random bits as hex per call (tags, branches, Call-IDs, cnonces), from the system's
    CSPRNG like ``secrets.token_hex(8)``, but drawn ``BATCH`` tokens at a time: a call takes
    about seven, and one ``getrandom`` system call each was a measurable share of its CPU."""

    BATCH = 64

    __slots__ = ("_at", "_hex")

    def __init__(self) -> None:
        self._hex = ""
        self._at = 0

    def __call__(self) -> str:
        at = self._at
        if at >= len(self._hex):
            self._hex = secrets.token_hex(8 * self.BATCH)
            at = 0
        self._at = at + 16
        return self._hex[at : at + 16]


class DialogOwner(Protocol):
    """Whoever owns a dialog (a session): gets its in-dialog traffic from the endpoint, handed
    over synchronously in arrival order (the owner queues it for its own task)."""

    def deliver_request(self, incoming: IncomingRequest) -> None: ...

    def deliver_response(self, response: Response, peer: Peer) -> None: ...


class TimerOwner(Protocol):
    """Whoever asked for a session timer: told when it is due."""

    def timer_due(self) -> None: ...


RequestHandler = Callable[["IncomingRequest"], Awaitable[None]]


@dataclass(eq=False)
class IncomingRequest:
    """A request for the TU; ``respond`` sends on its server transaction."""

    request: Request
    peer: Peer
    key: TxKey | None
    endpoint: SipEndpoint = field(repr=False)
    cancelled: trio.Event = field(default_factory=trio.Event)
    final_status: int | None = None
    to_tag: str | None = None  # our To tag once a response carried one
    _cancel_callbacks: list[Callable[[], None]] = field(default_factory=list, repr=False)

    @property
    def answered(self) -> bool:
        return self.final_status is not None

    def tagged(self, response: Response) -> Response:
        """``response`` with our To tag (§8.2.6.2: every response but 100 to a request without
        one carries a tag, the same on every response of this request)."""
        if response.status == 100:
            return response
        tag = response.to.tag
        if tag is not None:
            if self.to_tag is None and self.request.to.tag is None:
                self.to_tag = tag
            return response
        if self.request.to.tag is not None:
            return response
        if self.to_tag is None:
            self.to_tag = new_tag()
        to = response.to.with_tag(self.to_tag)
        return response.with_headers(response.headers.replace("To", str(to)))

    def on_cancel(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` when a CANCEL arrives (at once if one already did)."""
        if self.cancelled.is_set():
            callback()
        else:
            self._cancel_callbacks.append(callback)

    def forget_cancel_callbacks(self) -> None:
        """Drop the callbacks ``on_cancel`` kept: their owner is done with this request (and
        a callback that is its bound method would keep both alive as a reference cycle)."""
        self._cancel_callbacks.clear()

    def _cancel(self) -> None:
        self.cancelled.set()
        callbacks, self._cancel_callbacks = self._cancel_callbacks, []
        for callback in callbacks:
            try:
                callback()
            except Exception:
                log.exception("cancel callback failed")

    async def respond(self, response: Response) -> None:
        self.endpoint.respond_nowait(self, response)
        await trio.lowlevel.checkpoint()


class ClientRequest:
    """One client transaction seen from the TU: an async iterator of its responses, or (with
    a ``sink``) each response handed to ``sink(response, peer)`` as it arrives."""

    def __init__(
        self,
        endpoint: SipEndpoint,
        request: Request,
        peer: Peer,
        sink: Callable[[Response, Peer], None] | None = None,
    ) -> None:
        self._endpoint = endpoint
        self.request = request
        self.peer = peer
        self.key: TxKey | None = None
        self._sink = sink
        # the queue an iterating TU reads; none with a sink (fewer objects per transaction)
        self._send: trio.MemorySendChannel[Response] | None = None
        self._receive: trio.MemoryReceiveChannel[Response] | None = None
        if sink is None:
            self._send, self._receive = trio.open_memory_channel[Response](math.inf)
        self._done = False
        self._final_seen = False

    async def start(self) -> None:
        if self.key is None:
            await self._endpoint._start_client(self)

    def _deliver(self, response: Response) -> bool:
        """Queue a response; False once the final one went by (the caller reroutes)."""
        if self._done:
            return False
        if response.status >= 200:
            self._done = True
        if self._sink is not None:
            self._sink(response, self.peer)
        elif self._send is not None:
            self._send.send_nowait(response)
        return True

    def _fail(self, status: int) -> None:
        if not self._done:
            self._deliver(self.request.response(status))

    def __aiter__(self) -> ClientRequest:
        return self

    async def __anext__(self) -> Response:
        if self.key is None:
            await self.start()
        if self._final_seen:
            raise StopAsyncIteration
        if self._receive is None:
            raise LocalProtocolError("a request with a sink has no responses to iterate")
        response = await self._receive.receive()
        if response.status >= 200:
            self._final_seen = True
        return response


class SipEndpoint:
    """A SIP user agent's network side (see the module docstring)."""

    def __init__(
        self,
        timer_config: TimerConfig | None = None,
        *,
        user_agent: str = "trio-b2bua",
        allowed_methods: Iterable[str] = DEFAULT_ALLOWED_METHODS,
        supported_extensions: Iterable[str] = (),
        idle_timeout: float = 32.0,
        max_connections: int = 1024,
        max_connections_per_source: int = 32,
    ) -> None:
        """``idle_timeout`` and the limits apply to TCP connections (``SipTransport``)."""
        self.timer_config = timer_config or TimerConfig()
        self.user_agent = user_agent
        self.allowed_methods = tuple(m.upper() for m in allowed_methods)
        self.supported_extensions = tuple(supported_extensions)
        self._layer = TransactionLayer(self.timer_config, tag_factory=cancel_answer_tag)
        self._transport = SipTransport(
            self._on_message,
            idle_timeout=idle_timeout,
            max_connections=max_connections,
            max_connections_per_source=max_connections_per_source,
            on_error=self._on_transport_error,
        )
        self.random_token = RandomTokens()  # the sessions' tags, branches, Call-IDs
        self._pumping = False
        self._backlog: collections.deque[tuple[Message, Peer]] = collections.deque()
        self._session_timers: TimerQueue[TimerOwner] = TimerQueue()
        self._clients: dict[TxKey, ClientRequest] = {}
        self._answered: dict[TxKey, Peer] = {}  # client transactions past their final response
        self._server_invites: dict[TxKey, IncomingRequest] = {}
        self._dialogs: dict[tuple[str, str], DialogOwner] = {}
        self._nursery: trio.Nursery | None = None
        self._handler: RequestHandler | None = None
        self._timer_wakeup = trio.Event()
        self._sleeping_until = math.inf
        self._closed = trio.Event()
        self._stopped = trio.Event()
        self._resent_2xx = 0  # 2xx retransmissions of the dialogs (until their ACK)

    # -- set-up -------------------------------------------------------------------------

    async def listen(self, transport: str, host: str, port: int) -> tuple[str, int]:
        return await self._transport.listen(transport, host, port)

    @property
    def transport(self) -> SipTransport:
        return self._transport

    async def run(
        self,
        handler: RequestHandler,
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Serve until cancelled (or ``aclose``): receive loops, the timer task, handlers."""
        self._handler = handler
        self._stopped = trio.Event()
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                await nursery.start(self._transport.serve)
                nursery.start_soon(self._timer_loop)
                task_status.started()
                await self._closed.wait()
                nursery.cancel_scope.cancel()
        finally:
            self._nursery = None
            self._stopped.set()

    async def aclose(self) -> None:
        """Stop serving: cancels handlers and timers, closes the sockets; returns once ``run``
        has ended (at once when called from inside it, e.g. a handler, or when not running).
        Hang up live calls before: this sends nothing."""
        self._closed.set()
        if self._nursery is not None and not _inside(self._nursery):
            await self._stopped.wait()
        else:
            await trio.lowlevel.checkpoint()

    def start_soon(self, fn: Callable[..., Awaitable[object]], *args: object) -> None:
        """Run background work (session drivers) in the endpoint's nursery; an exception in
        it is logged and never takes the endpoint down."""
        if self._nursery is None:
            raise LocalProtocolError("the endpoint is not running")
        self._nursery.start_soon(self._guarded, fn(*args))

    # -- identity helpers ---------------------------------------------------------------

    @staticmethod
    def new_branch() -> str:
        return "z9hG4bK" + secrets.token_hex(10)

    def new_call_id(self) -> str:
        host = self._transport.address("udp") or self._transport.address("tcp")
        domain = host[0] if host else "localhost"
        return f"{secrets.token_hex(12)}@{domain}"

    def local_address(self, transport: str) -> tuple[str, int]:
        """Our listening address for ``transport`` (host bracketed when IPv6)."""
        return self._local_address(transport)

    def _local_address(self, transport: str) -> tuple[str, int]:
        address = self._transport.address(transport) or self._transport.address(
            "udp" if transport.lower() != "udp" else "tcp"
        )
        if address is None:
            raise LocalProtocolError("the endpoint has no listener")
        return uri_host(address[0]), address[1]

    def make_via(self, transport: str) -> Via:
        host, port = self._local_address(transport)
        return Via(transport.upper(), host, port, (("branch", self.new_branch()), ("rport", None)))

    def contact(self, transport: str) -> SipUri:
        host, port = self._local_address(transport)
        return contact_uri(host, port, transport)

    # -- dialogs --------------------------------------------------------------------------

    def register_dialog(self, call_id: str, local_tag: str, owner: DialogOwner) -> None:
        self._dialogs[(call_id, local_tag)] = owner

    def unregister_dialog(self, call_id: str, local_tag: str) -> None:
        self._dialogs.pop((call_id, local_tag), None)

    # -- sending --------------------------------------------------------------------------

    def request(
        self,
        request: Request,
        peer: Peer,
        sink: Callable[[Response, Peer], None] | None = None,
    ) -> ClientRequest:
        """A client transaction for ``request`` (with its top Via); iterate for responses,
        or give a ``sink`` that gets each one synchronously."""
        return ClientRequest(self, request, peer, sink)

    async def _start_client(self, client: ClientRequest) -> None:
        self.start_client_nowait(client)
        await trio.lowlevel.checkpoint()

    def start_client_nowait(self, client: ClientRequest) -> None:
        """Start ``client``'s transaction (its request goes out now, or queued: see above)."""
        request = client.request
        if request.method == "ACK":
            raise LocalProtocolError("an ACK has no transaction: use send_stateless")
        key = self._layer.send_request(request, client.peer, trio.current_time())
        client.key = key
        self._clients[key] = client
        self._pump()

    async def send_stateless(self, message: Message, peer: Peer) -> None:
        """Send outside any transaction (ACK for 2xx, 2xx retransmissions); errors logged."""
        if isinstance(message, Response):  # the first 2xx went through its transaction
            self._resent_2xx += 1
        await self._send_stateless(message, peer)

    async def _send_stateless(self, message: Message, peer: Peer) -> None:
        try:
            await self._transport.send(message, peer)
        except TransportError as exc:
            log.info("stateless send to %s failed: %s", peer, exc)

    def send_stateless_nowait(self, message: Message, peer: Peer) -> None:
        """``send_stateless`` without waiting: what cannot go out at once, a task sends."""
        if isinstance(message, Response):
            self._resent_2xx += 1
        try:
            if self._transport.send_nowait(message, peer):
                return
        except TransportError as exc:
            log.info("stateless send to %s failed: %s", peer, exc)
            return
        self._spawn(self._send_stateless, message, peer)

    async def _respond(self, incoming: IncomingRequest, response: Response) -> None:
        self.respond_nowait(incoming, response)
        await trio.lowlevel.checkpoint()

    def respond_nowait(self, incoming: IncomingRequest, response: Response) -> None:
        """Answer ``incoming`` on its server transaction (a 2xx again: retransmitted)."""
        if incoming.key is None:
            raise LocalProtocolError("an ACK is never answered")
        response = incoming.tagged(response)
        if response.status >= 200:
            if incoming.final_status is not None:
                if 200 <= response.status < 300 and 200 <= incoming.final_status < 300:
                    self.send_stateless_nowait(response, incoming.peer)  # 2xx retransmission
                    return
                log.info("dropping second final response %d", response.status)
                return
            incoming.final_status = response.status
            # a CANCEL after the final response changes nothing (the layer answers it): drop
            # the TU's request, its cancel callbacks and everything they reach now, not when
            # the transaction ends (Timer L/H: 32 s later)
            self._server_invites.pop(incoming.key, None)
        elif incoming.final_status is not None:
            return
        try:
            self._layer.send_response(incoming.key, response, trio.current_time())
        except LocalProtocolError as exc:
            log.info("cannot send %d: %s", response.status, exc)
            return
        self._pump()

    # -- the event pump -----------------------------------------------------------------

    async def _on_message(self, message: Message, peer: Peer) -> None:
        try:
            self._layer.receive(message, peer, trio.current_time())
        except RemoteProtocolError as exc:
            log.info("dropping message from %s: %s", peer, exc.reason)
            return
        self._pump()

    async def _on_transport_error(self, peer: Peer) -> None:
        """A connection failed after a send was queued: fail its transactions."""
        self._layer.transport_error(peer, trio.current_time())
        self._pump()
        await trio.lowlevel.checkpoint()

    def _pump(self) -> None:
        """Drain the layer's events, in order, without waiting (see the module docstring)."""
        if self._pumping:  # called from inside the drain: the loop below takes the new events
            return
        self._pumping = True
        try:
            while True:
                events = self._layer.events()
                if not events:
                    break
                for event in events:
                    try:
                        self._handle_event(event)
                    except Exception:  # one bad event must not stop the others
                        log.exception("error handling %r", event)
        finally:
            self.random_token = RandomTokens()  # the sessions' tags, branches, Call-IDs
        self._pumping = False
        deadline = self._layer.get_timer()
        if deadline is not None and deadline < self._sleeping_until:
            self._timer_wakeup.set()

    def _handle_event(self, event: object) -> None:
        if isinstance(event, SendMessage):
            message, peer = event.message, event.peer
            transport = self._transport
            if not transport.has_connection(transport.destination(message, peer)):
                # connecting may take long: never hold up every other message for it
                self._spawn(self._send_detached, message, peer)
                return
            try:
                if self._backlog or not transport.send_nowait(message, peer):
                    self._queue_backlog(message, peer)
            except TransportError as exc:
                log.info("send to %s failed: %s", peer, exc)
                self._layer.transport_error(peer, trio.current_time())
        elif isinstance(event, ResponseReceived):
            client = self._clients.get(event.key)
            if client is None:
                self._stray(event.response, self._answered.get(event.key))
            elif not client._deliver(event.response):
                self._stray(event.response, client.peer)
            elif client._done:
                # the final response is queued for the TU; what follows (2xx retransmissions)
                # goes to the dialog layer: keep only the peer until the transaction ends
                # (Timer M/K), not the request, its channel and the TU's task state
                del self._clients[event.key]
                self._answered[event.key] = client.peer
        elif isinstance(event, StrayResponse):
            self._stray(event.response, event.peer)
        elif isinstance(event, RequestReceived):
            self._dispatch_request(event)
        elif isinstance(event, CancelReceived):
            self._cancelled(event)
        elif isinstance(event, TransactionTimeout):
            client = self._clients.get(event.key)
            if client is not None:
                client._fail(408)
            else:
                self._server_invites.pop(event.key, None)
        elif isinstance(event, TransportFailed):
            client = self._clients.get(event.key)
            if client is not None:
                client._fail(503)
        elif isinstance(event, TransactionTerminated):
            client = self._clients.pop(event.key, None)
            if client is not None:
                client._fail(408)  # only if no final response came
            self._answered.pop(event.key, None)
            self._server_invites.pop(event.key, None)

    async def _send_detached(self, message: Message, peer: Peer) -> None:
        try:
            await self._transport.send(message, peer)
        except TransportError as exc:
            log.info("send to %s failed: %s", peer, exc)
            self._layer.transport_error(peer, trio.current_time())
            self._pump()

    def _queue_backlog(self, message: Message, peer: Peer) -> None:
        """A message that cannot go out at once: after those queued before it, by one task."""
        self._backlog.append((message, peer))
        if len(self._backlog) == 1:
            self._spawn(self._send_backlog)

    async def _send_backlog(self) -> None:
        backlog = self._backlog
        while backlog:
            message, peer = backlog[0]
            try:
                await self._transport.send(message, peer)
            except TransportError as exc:
                log.info("send to %s failed: %s", peer, exc)
                self._layer.transport_error(peer, trio.current_time())
            backlog.popleft()
            self._pump()

    def _spawn(self, fn: Callable[..., Awaitable[object]], *args: object) -> None:
        if self._nursery is None:
            log.warning("endpoint not running; dropping work %r", fn)
            return
        self._nursery.start_soon(fn, *args)

    def _stray(self, response: Response, peer: Peer | None) -> None:
        """A response no pending ClientRequest wants: a 2xx retransmission or fork."""
        try:
            key = (response.call_id, response.from_.tag or "")
        except RemoteProtocolError:
            return
        owner = self._dialogs.get(key)
        if owner is not None:
            owner.deliver_response(response, peer or _NO_PEER)
        elif response.cseq.method == "INVITE" and 200 <= response.status < 300:
            self._spawn(self.ack_and_bye, response, peer)

    def _dispatch_request(self, event: RequestReceived) -> None:
        request = event.request
        incoming = IncomingRequest(request, event.peer, event.key, self)
        to_tag = request.to.tag
        if event.key is None:  # ACK for a 2xx
            owner = self._dialogs.get((request.call_id, to_tag or ""))
            if owner is not None:
                owner.deliver_request(incoming)
            else:
                log.debug("ACK for no dialog: %s", request.call_id)
            return
        if to_tag is not None:
            owner = self._dialogs.get((request.call_id, to_tag))
            if owner is not None:
                owner.deliver_request(incoming)
            else:
                self._reply_sync(incoming, request.response(481))
            return
        try:
            problem = check_request(
                request,
                allowed_methods=self.allowed_methods,
                supported_extensions=self.supported_extensions,
            )
        except RemoteProtocolError as exc:
            log.info("dropping request from %s: %s", event.peer, exc.reason)
            return
        if problem is not None:
            self._reply_sync(incoming, problem)
            return
        if request.method == "INVITE":
            self._server_invites[event.key] = incoming
        if self._handler is None:
            self._reply_sync(incoming, request.response(503))
            return
        self._spawn(self._run_handler, self._handler, incoming)

    def _reply_sync(self, incoming: IncomingRequest, response: Response) -> None:
        """Answer from inside the pump (the loop drains what this queues)."""
        if incoming.key is None:
            return
        if response.status >= 200:
            if incoming.final_status is not None:
                return
            incoming.final_status = response.status
        response = incoming.tagged(response)
        try:
            self._layer.send_response(incoming.key, response, trio.current_time())
        except LocalProtocolError as exc:
            log.info("cannot send %d: %s", response.status, exc)

    def _cancelled(self, event: CancelReceived) -> None:
        incoming = self._server_invites.get(event.invite_key)
        if incoming is None:
            return
        if not incoming.answered:
            self._reply_sync(incoming, incoming.request.response(487))
        incoming._cancel()

    async def _guarded(self, work: Awaitable[object]) -> None:
        try:
            await work
        except Exception:
            log.exception("background SIP work failed")

    async def _run_handler(self, handler: RequestHandler, incoming: IncomingRequest) -> None:
        try:
            await handler(incoming)
        except Exception:
            log.exception("request handler failed for %s", incoming.request.method)
            if not incoming.answered:
                await incoming.respond(incoming.request.response(500))

    async def ack_and_bye(self, response: Response, peer: Peer | None) -> None:
        """ACK + BYE a 2xx to INVITE that belongs to no session (§13.2.2.4)."""
        try:
            invite = Request(
                "INVITE",
                response.contacts[0].uri
                if response.contacts
                else SipUri("sip", None, None, "invalid", None),
                response.headers,
            )
            dialog = Dialog.from_uac(invite, response)
        except (RemoteProtocolError, LocalProtocolError) as exc:
            log.info("cannot ACK a stray 2xx: %s", exc)
            return
        if peer == _NO_PEER:
            peer = None
        default = peer.transport if peer else "udp"
        try:
            next_peer = peer_for_uri(dialog.next_hop(), default)
        except LocalProtocolError as exc:
            log.info("cannot ACK a stray 2xx: %s", exc)
            return
        if (  # no route set: back along the flow the 2xx belongs to (a phone behind NAT)
            peer is not None
            and not dialog.route_set
            and (not peer.reliable or self._transport.has_connection(peer))
        ):
            next_peer = peer
        ack = dialog.create_ack(response.cseq.seq)
        ack = ack.with_headers(ack.headers.prepend("Via", str(self.make_via(next_peer.transport))))
        await self.send_stateless(ack, next_peer)
        bye = dialog.create_request("BYE")
        bye = bye.with_headers(bye.headers.prepend("Via", str(self.make_via(next_peer.transport))))
        client = self.request(bye, next_peer)
        with trio.move_on_after(64 * self.timer_config.t1):
            async for _ in client:
                pass

    # -- the timer task -----------------------------------------------------------------

    def schedule_session_timer(self, deadline: float, owner: TimerOwner) -> int:
        """Call ``owner.timer_due()`` at ``deadline``; the token cancels it."""
        token = self._session_timers.schedule(deadline, owner)
        if deadline < self._sleeping_until:
            self._timer_wakeup.set()
        return token

    def cancel_session_timer(self, token: int) -> None:
        self._session_timers.cancel(token)

    def _next_deadline(self) -> float:
        deadline = self._layer.get_timer()
        session = self._session_timers.earliest()
        if deadline is None:
            return math.inf if session is None else session
        return deadline if session is None or deadline <= session else session

    async def _timer_loop(self) -> None:
        while True:
            self._sleeping_until = self._next_deadline()
            self._timer_wakeup = trio.Event()
            if self._sleeping_until > trio.current_time():
                with trio.move_on_at(self._sleeping_until):
                    await self._timer_wakeup.wait()
            else:
                await trio.lowlevel.checkpoint()
            self._sleeping_until = math.inf
            now = trio.current_time()
            deadline = self._layer.get_timer()
            if deadline is not None and deadline <= now:
                try:
                    self._layer.handle_timer(now)
                except Exception:
                    log.exception("transaction timer failed")
                self._pump()
            while (due := self._session_timers.pop_due(now)) is not None:
                try:
                    due[0].timer_due()
                except Exception:
                    log.exception("session timer failed")

    def statistics(self) -> dict[str, int]:
        return {
            "transactions": len(self._layer),
            "client_requests": len(self._clients),
            "dialogs": len(self._dialogs),
            # the transaction layer's and the dialogs' 2xx (sent outside any transaction)
            "retransmissions": self._layer.retransmissions + self._resent_2xx,
            "transaction_timeouts": self._layer.timeouts,
        }

    @property
    def serving(self) -> bool:
        """True while ``run`` serves (its receive loops and timer task are up)."""
        return self._nursery is not None and not self._closed.is_set()


_NO_PEER = Peer("udp", "0.0.0.0", 0)


def _inside(nursery: trio.Nursery) -> bool:
    """True if the current task runs (directly or deeper) inside ``nursery``."""
    task: trio.lowlevel.Task | None = trio.lowlevel.current_task()
    while task is not None:
        if task.parent_nursery is nursery:
            return True
        parent = task.parent_nursery
        task = parent.parent_task if parent is not None else None
    return False
