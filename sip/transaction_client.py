"""Client transactions: INVITE (RFC 3261 §17.1.1 + RFC 6026 §8.4) and non-INVITE (§17.1.2).

Theory of operation
-------------------
INVITE client (Figure 5 as amended by RFC 6026 Figure 5)::

    Calling --1xx--> Proceeding --2xx--> Accepted --Timer M--> Terminated
       |  \\__________________________/                 (2xx retransmissions go to the TU,
       |  300-699: send ACK (same branch, §17.1.1.3)        which re-sends its own ACK)
       |          -> Completed --Timer D--> Terminated  (final retransmission: re-send ACK;
       |                                                 a 2xx from another fork: StrayResponse)
       +--Timer B--> TransactionTimeout, Terminated

Timer A retransmits the INVITE in Calling every T1, 2*T1, 4*T1 ... (no cap) over unreliable
transports; Timer B (64*T1) only runs in Calling: once a provisional arrived the TU decides when
to give up (with CANCEL, §9.1).  Timer D is 0 over reliable transports.

Non-INVITE client (Figure 6)::

    Trying --1xx--> Proceeding --200-699--> Completed --Timer K--> Terminated
       \\____________________________/
          Timer F: TransactionTimeout, Terminated

Timer E retransmits at T1, then doubles up to T2 in Trying and re-arms at T2 in Proceeding
(unreliable only).  Timer K is T4 over unreliable transports, 0 over reliable ones.

A transport error in any state informs the TU (TransportFailed) and terminates.
"""

from __future__ import annotations

import logging

from sip.errors import LocalProtocolError
from sip.headers import Headers
from sip.message import Request, Response
from sip.transaction_types import (
    Peer,
    ResponseReceived,
    StrayResponse,
    Transaction,
    TransactionTimeout,
    TxContext,
    TxState,
)

__all__ = ["ClientInviteTx", "ClientNonInviteTx", "ClientTx", "make_ack", "make_cancel"]

logger = logging.getLogger(__name__)

CALLING = TxState.CALLING
TRYING = TxState.TRYING
PROCEEDING = TxState.PROCEEDING
COMPLETED = TxState.COMPLETED
ACCEPTED = TxState.ACCEPTED


def _hop_headers(invite: Request) -> tuple[str, str | None, list[str]]:
    vias = invite.headers.get_all("Via")
    return vias[0], invite.headers.get("Max-Forwards"), invite.headers.get_all("Route")


def make_ack(invite: Request, response: Response) -> Request:
    """The ACK for a non-2xx final response (RFC 3261 §17.1.1.3).

    Same Request-URI, Call-ID, From and CSeq number as the INVITE, the To of the response (with
    its tag), one Via equal to the INVITE's top Via (same branch) and the INVITE's Route set.
    """
    top_via, max_forwards, routes = _hop_headers(invite)
    items: list[tuple[str, str]] = [("Via", top_via), ("Max-Forwards", max_forwards or "70")]
    items.extend(("Route", route) for route in routes)
    items += [
        ("From", _required(invite, "From")),
        ("To", _required(response, "To")),
        ("Call-ID", _required(invite, "Call-ID")),
        ("CSeq", f"{invite.cseq.seq} ACK"),
    ]
    return Request("ACK", invite.uri, Headers(items))


def make_cancel(invite: Request) -> Request:
    """A CANCEL for a client INVITE (RFC 3261 §9.1): same Request-URI, Call-ID, To, From, CSeq
    number and Route set, a single Via equal to the INVITE's top Via (so the same branch), CSeq
    method CANCEL.

    Sending it is the TU's decision: §9.1 says not before a provisional response arrived
    (the CANCEL then gets its own non-INVITE client transaction via ``send_request``).
    """
    if invite.method != "INVITE":
        raise LocalProtocolError(f"only an INVITE can be cancelled, not {invite.method}")
    top_via, max_forwards, routes = _hop_headers(invite)
    items: list[tuple[str, str]] = [("Via", top_via), ("Max-Forwards", max_forwards or "70")]
    items.extend(("Route", route) for route in routes)
    items += [
        ("From", _required(invite, "From")),
        ("To", _required(invite, "To")),
        ("Call-ID", _required(invite, "Call-ID")),
        ("CSeq", f"{invite.cseq.seq} CANCEL"),
    ]
    return Request("CANCEL", invite.uri, Headers(items))


def _required(message: Request | Response, name: str) -> str:
    value = message.headers.get(name)
    if value is None:
        raise LocalProtocolError(f"cannot build an ACK/CANCEL: no {name} header")
    return value


class ClientTx(Transaction):
    """Common interface of client transactions."""

    __slots__ = ()

    def start(self, ctx: TxContext, now: float) -> None:
        """Send the request for the first time and arm the timers."""
        raise NotImplementedError

    def on_response(self, ctx: TxContext, response: Response, peer: Peer, now: float) -> None:
        """A response matched this transaction."""
        raise NotImplementedError


class ClientInviteTx(ClientTx):
    """INVITE client transaction (RFC 3261 §17.1.1, RFC 6026 §8.4)."""

    __slots__ = ()

    def start(self, ctx: TxContext, now: float) -> None:
        config = ctx.config
        ctx.send(self.request, self.peer)
        if not self.peer.reliable:
            self.interval = config.timer_a
            self.retx_token = ctx.schedule(self.interval, now, self.key)
        self.timeout_token = ctx.schedule(config.timer_b, now, self.key)

    def on_response(self, ctx: TxContext, response: Response, peer: Peer, now: float) -> None:
        status = response.status
        state = self.state
        if state is CALLING or state is PROCEEDING:
            if status < 200:
                if state is CALLING:
                    self.stop_timers(ctx)  # A and B only run in Calling
                    self.state = PROCEEDING
                ctx.emit(ResponseReceived(response, self.key))
            elif status < 300:
                self.stop_timers(ctx)
                self.state = ACCEPTED
                self.timeout_token = ctx.schedule(ctx.config.timer_m, now, self.key)
                ctx.emit(ResponseReceived(response, self.key))
                self.linger()
            else:
                self.stop_timers(ctx)
                self.state = COMPLETED
                ack = make_ack(self.request, response)
                self.last = ack
                ctx.emit(ResponseReceived(response, self.key))
                ctx.send(ack, self.peer)
                if self.peer.reliable:
                    ctx.terminate(self.key)
                else:
                    self.timeout_token = ctx.schedule(ctx.config.timer_d, now, self.key)
                    self.linger()
        elif state is COMPLETED:
            if status >= 300 and self.last is not None:
                ctx.send(self.last, self.peer)  # the final response was retransmitted
            elif 200 <= status < 300:
                # a 2xx after a non-2xx final (another fork): the TU must still ACK it and
                # end that dialog, as for a 2xx without any transaction
                ctx.emit(StrayResponse(response, peer))
        elif state is ACCEPTED and 200 <= status < 300:
            ctx.emit(ResponseReceived(response, self.key))  # the TU re-ACKs (RFC 6026 §8.4)

    def on_timer(self, ctx: TxContext, token: int, now: float) -> None:
        if token == self.retx_token:  # Timer A (only armed in Calling)
            ctx.retransmit(self.request, self.peer)
            self.interval *= 2
            self.retx_token = ctx.schedule(self.interval, now, self.key)
        elif token == self.timeout_token:
            self.timeout_token = 0
            if self.state is CALLING:  # Timer B
                self.stop_timers(ctx)
                ctx.emit(TransactionTimeout(self.key))
            ctx.terminate(self.key)  # Timer B, D or M


class ClientNonInviteTx(ClientTx):
    """Non-INVITE client transaction (RFC 3261 §17.1.2)."""

    __slots__ = ()

    def start(self, ctx: TxContext, now: float) -> None:
        config = ctx.config
        ctx.send(self.request, self.peer)
        if not self.peer.reliable:
            self.interval = config.timer_e
            self.retx_token = ctx.schedule(self.interval, now, self.key)
        self.timeout_token = ctx.schedule(config.timer_f, now, self.key)

    def on_response(self, ctx: TxContext, response: Response, peer: Peer, now: float) -> None:
        state = self.state
        if state is TRYING or state is PROCEEDING:
            if response.status < 200:
                self.state = PROCEEDING
                ctx.emit(ResponseReceived(response, self.key))
            else:
                self.stop_timers(ctx)
                self.state = COMPLETED
                ctx.emit(ResponseReceived(response, self.key))
                if self.peer.reliable:
                    ctx.terminate(self.key)
                else:
                    self.timeout_token = ctx.schedule(ctx.config.timer_k, now, self.key)
                    self.linger()
        # Completed: response retransmissions are absorbed

    def on_timer(self, ctx: TxContext, token: int, now: float) -> None:
        if token == self.retx_token:  # Timer E
            ctx.retransmit(self.request, self.peer)
            t2 = ctx.config.t2
            self.interval = min(2 * self.interval, t2) if self.state is TRYING else t2
            self.retx_token = ctx.schedule(self.interval, now, self.key)
        elif token == self.timeout_token:
            self.timeout_token = 0
            if self.state is not COMPLETED:  # Timer F
                self.stop_timers(ctx)
                ctx.emit(TransactionTimeout(self.key))
            ctx.terminate(self.key)  # Timer F or K
