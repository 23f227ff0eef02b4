"""Server transactions: INVITE (RFC 3261 §17.2.1 + RFC 6026 §8.7) and non-INVITE (§17.2.2).

Theory of operation
-------------------
INVITE server (Figure 7 as amended by RFC 6026 Figure 7)::

    Proceeding --2xx from TU--> Accepted --Timer L--> Terminated
       |   (TU 2xx retransmissions are sent; ACK goes to the TU; INVITE retransmissions absorbed)
       +--300-699 from TU--> Completed --ACK--> Confirmed --Timer I--> Terminated
                               |  Timer G re-sends the final response (T1 doubling to T2)
                               +--Timer H--> TransactionTimeout (no ACK), Terminated

In Proceeding a retransmitted INVITE gets the latest provisional response again.  If the TU has
not answered within 200 ms (``trying_delay``) the transaction sends 100 Trying itself (§17.2.1).
Timer G only runs over unreliable transports; Timer I is T4 there and 0 over reliable ones.

Non-INVITE server (Figure 8)::

    Trying --1xx from TU--> Proceeding --200-699 from TU--> Completed --Timer J--> Terminated

Retransmitted requests are absorbed in Trying and answered with the latest response after.
Timer J is 64*T1 over unreliable transports and 0 over reliable ones.

Responses from the TU that the state does not allow (a second final response, anything after
Confirmed) raise LocalProtocolError: they are the TU's bugs.
"""

from __future__ import annotations

import logging

from sip.errors import LocalProtocolError
from sip.message import Request, Response
from sip.transaction_types import (
    RequestReceived,
    Transaction,
    TransactionTimeout,
    TxContext,
    TxState,
)

__all__ = ["ServerInviteTx", "ServerNonInviteTx", "ServerTx"]

logger = logging.getLogger(__name__)

TRYING = TxState.TRYING
PROCEEDING = TxState.PROCEEDING
COMPLETED = TxState.COMPLETED
CONFIRMED = TxState.CONFIRMED
ACCEPTED = TxState.ACCEPTED


class ServerTx(Transaction):
    """Common interface of server transactions."""

    __slots__ = ()

    def on_request(self, ctx: TxContext, request: Request, now: float) -> None:
        """A retransmission of the request (or, for INVITE, an ACK) matched this transaction."""
        raise NotImplementedError

    def on_tu_response(self, ctx: TxContext, response: Response, now: float) -> None:
        """The TU sends a response on this transaction."""
        raise NotImplementedError

    def pending(self) -> bool:
        """True while no final response has been sent."""
        return self.state is PROCEEDING or self.state is TRYING

    def _misuse(self, response: Response) -> LocalProtocolError:
        return LocalProtocolError(
            f"cannot send {response.status} on {self.key.method} server transaction "
            f"in state {self.state.value}"
        )


class ServerInviteTx(ServerTx):
    """INVITE server transaction (RFC 3261 §17.2.1, RFC 6026 §8.7)."""

    __slots__ = ()

    def start(self, ctx: TxContext, now: float, trying_delay: float | None) -> None:
        """Arm the automatic 100 Trying (None: never; 0: send it at once)."""
        if trying_delay is None:
            return
        if trying_delay <= 0:
            self._send_trying(ctx)
        else:
            self.retx_token = ctx.schedule(trying_delay, now, self.key)

    def _send_trying(self, ctx: TxContext) -> None:
        trying = self.request.response(100)
        self.last = trying
        ctx.send(trying, self.peer)

    def on_request(self, ctx: TxContext, request: Request, now: float) -> None:
        state = self.state
        if request.method == "ACK":
            if state is COMPLETED:
                self.stop_timers(ctx)  # G and H
                self.state = CONFIRMED
                if self.peer.reliable:
                    ctx.terminate(self.key)
                else:
                    self.timeout_token = ctx.schedule(ctx.config.timer_i, now, self.key)
            elif state is ACCEPTED:
                ctx.emit(RequestReceived(request, self.peer, None))  # RFC 6026 §8.7
            # Confirmed: ACK retransmissions absorbed; Proceeding: an ACK before any final
            # response is meaningless and dropped
        elif (state is PROCEEDING or state is COMPLETED) and self.last is not None:
            ctx.retransmit(self.last, self.peer)
        # Accepted and Confirmed absorb INVITE retransmissions

    def on_tu_response(self, ctx: TxContext, response: Response, now: float) -> None:
        status = response.status
        state = self.state
        if state is PROCEEDING:
            if self.retx_token:  # the TU answered: no automatic 100 Trying
                ctx.cancel_timer(self.retx_token)
                self.retx_token = 0
            self.last = response
            ctx.send(response, self.peer)
            if status < 200:
                return
            config = ctx.config
            if status < 300:
                self.state = ACCEPTED
                self.timeout_token = ctx.schedule(config.timer_l, now, self.key)
                self.linger()
            else:
                self.state = COMPLETED
                if not self.peer.reliable:
                    self.interval = config.timer_g
                    self.retx_token = ctx.schedule(self.interval, now, self.key)
                self.timeout_token = ctx.schedule(config.timer_h, now, self.key)
                self.linger()
        elif state is ACCEPTED and 200 <= status < 300:
            ctx.send(response, self.peer)  # the TU retransmits its 2xx (RFC 6026 §8.7)
        else:
            raise self._misuse(response)

    def on_timer(self, ctx: TxContext, token: int, now: float) -> None:
        if token == self.retx_token:
            self.retx_token = 0
            if self.state is PROCEEDING:  # the TU stayed silent for 200 ms
                self._send_trying(ctx)
            elif self.state is COMPLETED and self.last is not None:  # Timer G
                ctx.retransmit(self.last, self.peer)
                self.interval = min(2 * self.interval, ctx.config.t2)
                self.retx_token = ctx.schedule(self.interval, now, self.key)
        elif token == self.timeout_token:
            self.timeout_token = 0
            if self.state is COMPLETED:  # Timer H: the ACK never came
                self.stop_timers(ctx)
                ctx.emit(TransactionTimeout(self.key))
            ctx.terminate(self.key)  # Timer H, I or L


class ServerNonInviteTx(ServerTx):
    """Non-INVITE server transaction (RFC 3261 §17.2.2)."""

    __slots__ = ()

    def on_request(self, ctx: TxContext, request: Request, now: float) -> None:
        if self.last is not None:  # Proceeding or Completed; Trying absorbs
            ctx.retransmit(self.last, self.peer)

    def on_tu_response(self, ctx: TxContext, response: Response, now: float) -> None:
        state = self.state
        if state is not TRYING and state is not PROCEEDING:
            raise self._misuse(response)
        self.last = response
        ctx.send(response, self.peer)
        if response.status < 200:
            self.state = PROCEEDING
            return
        self.state = COMPLETED
        if self.peer.reliable:
            ctx.terminate(self.key)
        else:
            self.timeout_token = ctx.schedule(ctx.config.timer_j, now, self.key)
            self.linger()

    def on_timer(self, ctx: TxContext, token: int, now: float) -> None:
        if token == self.timeout_token:  # Timer J
            self.timeout_token = 0
            ctx.terminate(self.key)
