"""Types shared by the transaction layer: peers, transaction keys, states and events.

Theory of operation
-------------------
A transaction is named by a :class:`TxKey` built from the message alone (RFC 3261 §17.1.3 for
responses, §17.2.3 for requests), so matching an incoming message is one dict lookup:

* client transactions: ``(False, CSeq method, branch, "")`` - the response's top Via branch and
  CSeq method must equal the request's (§17.1.3); a CANCEL has its own transaction because its
  method differs even though its branch equals the INVITE's (§9.1);
* server transactions, RFC 3261 branch (magic cookie ``z9hG4bK``): ``(True, method, branch,
  sent-by)`` where an ACK is looked up as INVITE (§17.2.3);
* server transactions without the magic cookie (RFC 2543 peers): ``(True, method, "rfc2543 "
  + Request-URI / From tag / Call-ID / CSeq number, top Via)``; the To tag (request's, or for an
  ACK the To tag of the response we sent) is checked after the lookup (§17.2.3, last part).

The layer reports what happened as frozen events, drained with ``TransactionLayer.events()``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple, Protocol

from sip.message import Message, Request, Response

if TYPE_CHECKING:
    from sip.timers import TimerConfig

__all__ = [
    "MAGIC_COOKIE",
    "CancelReceived",
    "Event",
    "Peer",
    "RequestReceived",
    "ResponseReceived",
    "SendMessage",
    "StrayResponse",
    "TransactionTerminated",
    "TransactionTimeout",
    "TransportFailed",
    "TxContext",
    "TxKey",
    "TxState",
]

MAGIC_COOKIE = "z9hG4bK"
_UNRELIABLE = frozenset({"udp"})


@dataclass(frozen=True, slots=True)
class Peer:
    """Where a message came from or goes to."""

    transport: str  # "udp" | "tcp" | "tls" ... (lowercase)
    host: str
    port: int

    @property
    def reliable(self) -> bool:
        """True for stream transports (no retransmissions, zero linger timers)."""
        return self.transport.lower() not in _UNRELIABLE

    def __str__(self) -> str:
        return f"{self.transport}:{self.host}:{self.port}"


class TxKey(NamedTuple):
    """Names one transaction; hashable and cheap (a tuple)."""

    server: bool
    method: str  # the transaction's method; ACK is matched as INVITE
    branch: str  # top Via branch, or a synthesised RFC 2543 identity
    sent_by: str  # server side: the top Via sent-by (RFC 2543: the whole top Via); client: ""


class TxState(enum.Enum):
    """States of the four RFC 3261 §17 machines plus RFC 6026's Accepted."""

    CALLING = "Calling"
    TRYING = "Trying"
    PROCEEDING = "Proceeding"
    COMPLETED = "Completed"
    CONFIRMED = "Confirmed"
    ACCEPTED = "Accepted"
    TERMINATED = "Terminated"


@dataclass(frozen=True, slots=True)
class SendMessage:
    """The shell serialises ``message`` and sends it to ``peer``."""

    message: Message
    peer: Peer


@dataclass(frozen=True, slots=True)
class RequestReceived:
    """A new request for the TU; ``key`` is None for an ACK that is not part of a transaction
    (the ACK to a 2xx, RFC 3261 §17 / RFC 6026 §8.7)."""

    request: Request
    peer: Peer
    key: TxKey | None


@dataclass(frozen=True, slots=True)
class ResponseReceived:
    """A response for the TU on the client transaction ``key`` (retransmitted 2xx to INVITE
    included while the transaction is Accepted, RFC 6026 §8.4, so the TU re-sends its ACK)."""

    response: Response
    key: TxKey


@dataclass(frozen=True, slots=True)
class StrayResponse:
    """A 2xx to INVITE that matches no client transaction (a late retransmission after Timer M,
    or a 2xx from another fork): the dialog layer must still ACK it (RFC 3261 §13.2.2.4).
    Other responses without a transaction are dropped (§18.1.2)."""

    response: Response
    peer: Peer


@dataclass(frozen=True, slots=True)
class CancelReceived:
    """A CANCEL matched the pending INVITE server transaction ``invite_key``; the layer has
    already answered 200 to the CANCEL. The TU should answer 487 on the INVITE (§9.2)."""

    cancel: Request
    peer: Peer
    invite_key: TxKey


@dataclass(frozen=True, slots=True)
class TransactionTimeout:
    """Timer B or F (client: the TU treats it as 408) or H (server: the ACK never came)."""

    key: TxKey


@dataclass(frozen=True, slots=True)
class TransportFailed:
    """The transport could not deliver for this transaction (the TU treats it as 503)."""

    key: TxKey


@dataclass(frozen=True, slots=True)
class TransactionTerminated:
    """The transaction is gone; emitted exactly once per transaction."""

    key: TxKey


Event = (
    SendMessage
    | RequestReceived
    | ResponseReceived
    | StrayResponse
    | CancelReceived
    | TransactionTimeout
    | TransportFailed
    | TransactionTerminated
)


class TxContext(Protocol):
    """What a transaction needs from its layer (passed in on each call: no back-references)."""

    @property
    def config(self) -> TimerConfig: ...

    def emit(self, event: Event) -> None: ...

    def send(self, message: Message, peer: Peer) -> None: ...

    def retransmit(self, message: Message, peer: Peer) -> None: ...

    def schedule(self, delay: float, now: float, key: TxKey) -> int: ...

    def cancel_timer(self, token: int) -> None: ...

    def terminate(self, key: TxKey) -> None: ...


class Transaction:
    """State every transaction keeps: small, slotted, and free of back-references (the layer
    is passed in as a :class:`TxContext` on each call, timers name the transaction by key)."""

    __slots__ = (
        "interval",
        "key",
        "last",
        "peer",
        "request",
        "retx_token",
        "state",
        "timeout_token",
    )

    def __init__(self, key: TxKey, peer: Peer, request: Request, state: TxState) -> None:
        self.key = key
        self.peer = peer
        self.request = request
        self.state = state
        # the last message this side would re-send: the server's latest response, the client
        # INVITE's ACK in Completed
        self.last: Message | None = None
        self.retx_token = 0  # retransmit timer A/E/G, or the INVITE server's 100 Trying timer
        self.timeout_token = 0  # timer B/D/F/H/I/J/K/L/M
        self.interval = 0.0  # the current retransmit interval

    def stop_timers(self, ctx: TxContext) -> None:
        """Cancel both timers of this transaction."""
        if self.retx_token:
            ctx.cancel_timer(self.retx_token)
            self.retx_token = 0
        if self.timeout_token:
            ctx.cancel_timer(self.timeout_token)
            self.timeout_token = 0

    def linger(self) -> None:
        """The transaction waits out Timer D/I/J/K/L/M: keep only what re-sending and matching
        need (the messages without their parsed header views)."""
        self.request.shed_parsed()
        if self.last is not None:
            self.last.shed_parsed()

    def on_timer(self, ctx: TxContext, token: int, now: float) -> None:
        """One of this transaction's timers fired."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.key} {self.state.value}>"
