"""The sans-IO SIP transaction layer (RFC 3261 §17, §9; RFC 6026).

Theory of operation
-------------------
:class:`TransactionLayer` owns every client and server transaction, the timer queue and an
event list.  Inputs are method calls carrying ``now``: messages from the network
(:meth:`~TransactionLayer.receive`), requests and responses from the TU
(:meth:`~TransactionLayer.send_request`, :meth:`~TransactionLayer.send_response`), transport
failures and timer expiry (:meth:`~TransactionLayer.handle_timer`).  Outputs are events drained
with :meth:`~TransactionLayer.events`: :class:`SendMessage` for the shell, the rest for the TU.

Matching is one dict lookup on a :class:`TxKey` computed from the message
(see :mod:`sip.transaction_types`): §17.1.3 for responses, §17.2.3 for requests with the RFC
2543 fallback.  Beyond the state machines in :mod:`sip.transaction_client` and
:mod:`sip.transaction_server` the layer itself does:

* CANCEL (§9.2): answered by the layer, 200 when it matches an INVITE server transaction (then
  :class:`CancelReceived` if that transaction has not sent a final response; the TU answers 487
  on the INVITE), 481 otherwise; either way the CANCEL gets its own non-INVITE server
  transaction, so retransmitted CANCELs get the same answer (that transaction's key is never
  handed to the TU, but like every transaction it ends with one TransactionTerminated and can
  report TransportFailed: the TU ignores keys it does not know);
* ACK without a transaction (the ACK to a 2xx, §17.1.1.3 / §13.2.2.4): to the TU as
  ``RequestReceived(key=None)``; ``send_request`` with an ACK just sends it, creating nothing;
* responses without a transaction: a 2xx to INVITE becomes :class:`StrayResponse` (the dialog
  layer ACKs it), anything else is dropped (§18.1.2);
* ``transport_error(peer)``: every transaction bound to that peer reports
  :class:`TransportFailed` and terminates (§17.1.1.2, §17.1.2.2, §17.2.4).

Timers live in one heap (:class:`sip.timers.TimerQueue`) keyed by ``TxKey``; a transaction
keeps at most two timer tokens.  Timers re-armed in ``handle_timer(now)`` count from ``now``.
Nothing here reads a clock, does I/O, or keeps references from a transaction to the layer.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from sip.errors import LocalProtocolError, RemoteProtocolError
from sip.message import Message, Request, Response
from sip.timers import TimerConfig, TimerQueue
from sip.transaction_client import (
    ClientInviteTx,
    ClientNonInviteTx,
    ClientTx,
    make_ack,
    make_cancel,
)
from sip.transaction_server import ServerInviteTx, ServerNonInviteTx, ServerTx
from sip.transaction_types import (
    MAGIC_COOKIE,
    CancelReceived,
    Event,
    Peer,
    RequestReceived,
    ResponseReceived,
    SendMessage,
    StrayResponse,
    TransactionTerminated,
    TransactionTimeout,
    TransportFailed,
    TxKey,
    TxState,
)

__all__ = [
    "CancelReceived",
    "Event",
    "Peer",
    "RequestReceived",
    "ResponseReceived",
    "SendMessage",
    "StrayResponse",
    "TimerConfig",
    "TransactionLayer",
    "TransactionTerminated",
    "TransactionTimeout",
    "TransportFailed",
    "TxKey",
    "TxState",
    "make_ack",
    "make_cancel",
]

logger = logging.getLogger(__name__)

_DEFAULT_CONFIG = TimerConfig()
_LEGACY = "rfc2543 "


class TransactionLayer:
    """All transactions of one SIP endpoint; sans-IO (see the module docstring)."""

    __slots__ = (
        "_by_peer",
        "_clients",
        "_config",
        "_events",
        "_servers",
        "_tag_factory",
        "_timers",
        "_trying_delay",
        "retransmissions",
        "timeouts",
    )

    def __init__(
        self,
        config: TimerConfig = _DEFAULT_CONFIG,
        *,
        trying_delay: float | None = 0.2,
        tag_factory: Callable[[], str],
    ) -> None:
        """``trying_delay``: how long an INVITE server transaction waits for the TU before it
        sends 100 Trying itself (§17.2.1); None never sends one, 0 sends it at once.
        ``tag_factory`` makes the To tags of the layer's own CANCEL answers: random ones
        from the caller (the endpoint), as this sans-IO layer draws no random value."""
        self._config = config
        self._trying_delay = trying_delay
        self._tag_factory = tag_factory
        self._clients: dict[TxKey, ClientTx] = {}
        self._servers: dict[TxKey, ServerTx] = {}
        self._by_peer: dict[Peer, set[TxKey]] = {}
        self._timers: TimerQueue[TxKey] = TimerQueue()
        self._events: list[Event] = []
        self.retransmissions = 0  # messages sent again (timers, answers to retransmitted requests)
        self.timeouts = 0  # transactions that timed out (Timer B, F or H)

    # ------------------------------------------------------------------ TU and shell API

    def send_request(self, request: Request, peer: Peer, now: float) -> TxKey:
        """Start a client transaction for ``request`` (its top Via carries an RFC 3261 branch).

        An ACK is sent without a transaction (it is never retransmitted by this layer); the
        returned key then names nothing.  LocalProtocolError for a request without a usable
        branch, with a CSeq method differing from its method, or reusing a live branch.
        """
        try:
            branch = request.top_via.branch
            cseq_method = request.cseq.method
        except RemoteProtocolError as exc:
            raise LocalProtocolError(f"cannot send request: {exc.reason}") from exc
        if not branch or not branch.startswith(MAGIC_COOKIE):
            raise LocalProtocolError(f"top Via branch must start with {MAGIC_COOKIE}: {branch!r}")
        method = request.method
        if cseq_method != method:
            raise LocalProtocolError(f"CSeq method {cseq_method} differs from method {method}")
        key = TxKey(False, method, branch, "")
        if method == "ACK":
            self.send(request, peer)
            return key
        if key in self._clients:
            raise LocalProtocolError(f"a client transaction with branch {branch} exists")
        state = TxState.CALLING if method == "INVITE" else TxState.TRYING
        tx: ClientTx
        if method == "INVITE":
            tx = ClientInviteTx(key, peer, request, state)
        else:
            tx = ClientNonInviteTx(key, peer, request, state)
        self._clients[key] = tx
        self._bind(peer, key)
        tx.start(self, now)
        return key

    def send_response(self, key: TxKey, response: Response, now: float) -> None:
        """Send a response on the server transaction ``key``.

        LocalProtocolError if the transaction is gone (e.g. after TransportFailed) or its
        state does not allow this response (a second final response, ...).
        """
        tx = self._servers.get(key)
        if tx is None:
            raise LocalProtocolError(f"no server transaction {key}")
        tx.on_tu_response(self, response, now)

    def send_stateless(self, message: Message, peer: Peer) -> None:
        """Send a message outside any transaction (e.g. a dialog's 2xx retransmission after
        its INVITE server transaction ended)."""
        self.send(message, peer)

    def receive(self, message: Message, peer: Peer, now: float) -> None:
        """A message arrived from ``peer``.

        Raises RemoteProtocolError (and changes nothing) if a header needed for matching
        (Via, CSeq, and for new requests From/To/Call-ID) is missing or malformed; the shell
        then drops the message or answers it statelessly.
        """
        try:
            if isinstance(message, Response):
                self._receive_response(message, peer, now)
            else:
                self._receive_request(message, peer, now)
        except LocalProtocolError as exc:  # a header the message API calls mandatory is absent
            raise RemoteProtocolError(str(exc)) from exc

    def transport_error(self, peer: Peer, now: float) -> None:
        """The transport failed to reach ``peer``: fail every transaction bound to it."""
        keys = self._by_peer.get(peer)
        if not keys:
            return
        for key in list(keys):
            self.emit(TransportFailed(key))
            self.terminate(key)

    def get_timer(self) -> float | None:
        """The earliest deadline at which ``handle_timer`` has work, or None."""
        return self._timers.earliest()

    def handle_timer(self, now: float) -> None:
        """Fire every timer due at ``now`` (in deadline order)."""
        timers = self._timers
        clients = self._clients
        servers = self._servers
        while (due := timers.pop_due(now)) is not None:
            key, token = due
            tx = servers.get(key) if key.server else clients.get(key)
            if tx is not None:
                tx.on_timer(self, token, now)

    def events(self) -> list[Event]:
        """Drain the events produced since the last call, oldest first."""
        events = self._events
        self._events = []
        return events

    def state(self, key: TxKey) -> TxState | None:
        """The state of transaction ``key``, or None once it terminated."""
        tx = self._servers.get(key) if key.server else self._clients.get(key)
        return tx.state if tx is not None else None

    def __len__(self) -> int:
        """The number of live transactions."""
        return len(self._clients) + len(self._servers)

    # ------------------------------------------------------------------ TxContext (internal)

    @property
    def config(self) -> TimerConfig:
        """The timer configuration (part of the transactions' TxContext)."""
        return self._config

    def emit(self, event: Event) -> None:
        """Queue an event (TxContext)."""
        if type(event) is TransactionTimeout:
            self.timeouts += 1
        self._events.append(event)

    def send(self, message: Message, peer: Peer) -> None:
        """Queue a SendMessage (TxContext)."""
        self._events.append(SendMessage(message, peer))

    def retransmit(self, message: Message, peer: Peer) -> None:
        """Queue a SendMessage of a message sent before, and count it (TxContext)."""
        self.retransmissions += 1
        self._events.append(SendMessage(message, peer))

    def schedule(self, delay: float, now: float, key: TxKey) -> int:
        """Arm a timer for transaction ``key`` (TxContext)."""
        return self._timers.schedule(now + delay, key)

    def cancel_timer(self, token: int) -> None:
        """Disarm a timer (TxContext)."""
        self._timers.cancel(token)

    def terminate(self, key: TxKey) -> None:
        """Remove transaction ``key`` and report TransactionTerminated, once (TxContext)."""
        tx = self._servers.pop(key, None) if key.server else self._clients.pop(key, None)
        if tx is None:
            return
        tx.stop_timers(self)
        tx.state = TxState.TERMINATED
        keys = self._by_peer.get(tx.peer)
        if keys is not None:
            keys.discard(key)
            if not keys:
                del self._by_peer[tx.peer]
        self._events.append(TransactionTerminated(key))

    # ------------------------------------------------------------------ internals

    def _bind(self, peer: Peer, key: TxKey) -> None:
        keys = self._by_peer.get(peer)
        if keys is None:
            self._by_peer[peer] = {key}
        else:
            keys.add(key)

    def _receive_response(self, response: Response, peer: Peer, now: float) -> None:
        branch = response.top_via.branch or ""
        method = response.cseq.method
        tx = self._clients.get(TxKey(False, method, branch, ""))
        if tx is not None:
            tx.on_response(self, response, peer, now)
            return
        if method == "INVITE" and 200 <= response.status < 300:
            self.emit(StrayResponse(response, peer))
        else:
            logger.debug(
                "dropping %d %s with no transaction from %s", response.status, method, peer
            )

    def _server_key(self, request: Request) -> TxKey:
        """§17.2.3: branch + sent-by + method (ACK as INVITE), or the RFC 2543 identity."""
        via = request.top_via
        branch = via.branch
        method = request.method
        if method == "ACK":
            method = "INVITE"
        if branch is not None and branch.startswith(MAGIC_COOKIE):
            port = via.port
            sent_by = via.host if port is None else f"{via.host}:{port}"
            return TxKey(True, method, branch, sent_by)
        identity = (
            f"{_LEGACY}{request.uri} {request.from_.tag or ''} {request.call_id} {request.cseq.seq}"
        )
        return TxKey(True, method, identity, str(via))

    def _find_server(self, key: TxKey, request: Request) -> ServerTx | None:
        tx = self._servers.get(key)
        if tx is None or not key.branch.startswith(_LEGACY):
            return tx
        # RFC 2543 matching also compares the To tag: an ACK's with the tag of the response
        # the transaction sent, any other request's with the original request's
        to_tag = request.to.tag
        if request.method == "ACK":
            last = tx.last
            expected = last.to.tag if isinstance(last, Response) else None
            if expected is None or to_tag == expected:
                return tx
            return None
        return tx if to_tag == tx.request.to.tag else None

    def _receive_request(self, request: Request, peer: Peer, now: float) -> None:
        key = self._server_key(request)
        method = request.method
        tx = self._find_server(key, request)
        if tx is not None:
            tx.on_request(self, request, now)
            return
        if method == "ACK":
            self.emit(RequestReceived(request, peer, None))
            return
        # parse what responses need now, so bad input fails here and not in a timer
        request.from_  # noqa: B018
        request.to  # noqa: B018
        if key in self._servers:
            logger.warning("RFC 2543 request collides with a live transaction; dropped: %s", key)
            return
        if method == "CANCEL":
            self._receive_cancel(request, peer, key, now)
            return
        if method == "INVITE":
            invite = ServerInviteTx(key, peer, request, TxState.PROCEEDING)
            self._servers[key] = invite
            self._bind(peer, key)
            self.emit(RequestReceived(request, peer, key))
            invite.start(self, now, self._trying_delay)
        else:
            self._servers[key] = ServerNonInviteTx(key, peer, request, TxState.TRYING)
            self._bind(peer, key)
            self.emit(RequestReceived(request, peer, key))

    def _receive_cancel(self, cancel: Request, peer: Peer, key: TxKey, now: float) -> None:
        """§9.2: answer the CANCEL ourselves on its own server transaction."""
        tx = ServerNonInviteTx(key, peer, cancel, TxState.TRYING)
        self._servers[key] = tx
        self._bind(peer, key)
        invite_key = key._replace(method="INVITE")
        invite = self._find_server(invite_key, cancel)
        if invite is None:
            tx.on_tu_response(self, cancel.response(481, to_tag=self._tag_factory()), now)
            return
        last = invite.last
        to_tag = last.to.tag if isinstance(last, Response) else None
        tx.on_tu_response(self, cancel.response(200, to_tag=to_tag or self._tag_factory()), now)
        if invite.pending():
            self.emit(CancelReceived(cancel, peer, invite_key))
