"""The trio shell of an INVITE session state machine: no task of its own.

Theory of operation
-------------------
``SessionDriver`` owns a sans-IO session (``sip.uac_session.UacSession`` or
``sip.uas_session.UasSession``) and steps it synchronously, in whatever task hands it an
input: the endpoint's receive path for responses of the client transactions the session
started (handed to a sink: no channel per transaction), 2xx that outlived their transaction
and in-dialog requests (the endpoint's ``DialogOwner`` calls), the call's task for commands
(``cancel``, ``bye``, ``reinvite``, answering), the endpoint's timer task for the session's
timers (``SipEndpoint.schedule_session_timer``).  A step feeds the session its queued inputs
in arrival order, so two in-dialog requests of one dialog are answered in the order they
came, and carries out its outputs in order: responses on the INVITE's server transaction,
new client transactions, stateless sends, ACK+BYE of foreign forks, and the leg events,
which go unchanged to ``next_event()`` on a bounded channel (ringing and DTMF beyond half of
it are dropped, so the final events always fit).  None of that waits: the endpoint sends at once
or queues (see ``sip.endpoint``), so the INVITE's aftermath - CANCEL, a 2xx racing it that
needs ACK and BYE, our 2xx retransmissions - never depends on the call's task, and no
cancellation can cut a step in half.  An input arriving while a step runs (a response
handed over synchronously by a send) is queued and taken by that same step.

When the session has ended and has nothing left to retransmit, the dialog is unregistered
and the TCP connection released.  Beyond ``QUEUE_SIZE`` queued inputs, in-dialog requests
get 503 and stray responses are dropped (the responses of our own transactions never are:
there are as few as the requests we sent).
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

import trio

from sip.errors import LocalProtocolError
from sip.invite_dialog import (
    AckAndBye,
    Acked,
    OfferHandler,
    ReinviteAnswered,
    ReinviteFailed,
    ReinviteRejected,
    RespondInvite,
    SendRequest,
    SendStateless,
    SessionState,
)
from sip.leg_events import LegDtmf, LegEvent, LegFailed, LegRinging
from sip.message import Response
from sip.transaction_types import Peer
from sip.uac_session import UacSession
from sip.uas_session import UasSession

if TYPE_CHECKING:
    from sip.dialog import Dialog
    from sip.endpoint import IncomingRequest, SipEndpoint

__all__ = ["SessionDriver"]

log = logging.getLogger(__name__)

QUEUE_SIZE = 64  # inputs of one session waiting for its task
EVENTS_SIZE = 16  # leg events waiting for the call; ringing only up to half of it
_RESPONSE = 0
_REQUEST = 1
_Input = tuple[int, "Response | IncomingRequest", "Peer | None"]


def _late_response(response: Response, peer: Peer) -> None:
    """Where responses to our requests go once the session is closed: nowhere."""


class SessionDriver:
    """Steps one session state machine (see the module docstring)."""

    def __init__(self, endpoint: SipEndpoint, session: UacSession | UasSession, label: str) -> None:
        self._endpoint = endpoint
        self._session = session
        self._label = label
        self._queue: deque[_Input] | None = None  # made when needed: a quiet call has none
        self._stepping = False
        self._closed = False
        self._timer: tuple[float, int] | None = None  # (deadline, token) asked of the endpoint
        self._to_call, self._events = trio.open_memory_channel[LegEvent](EVENTS_SIZE)
        self._event_sink: Callable[[LegEvent], bool] | None = None  # see forward_events
        self._reinvite_done: trio.Event | None = None
        self._reinvite_result: ReinviteAnswered | ReinviteRejected | None = None
        self._retained: Peer | None = None
        self._sink = self._own_response  # one bound method for all our transactions

    def _begin(self) -> None:
        """Register the dialog, keep the connection, take the first step."""
        session = self._session
        self._endpoint.register_dialog(session.call_id, session.local_tag, self)
        self._retained = session.peer
        self._endpoint.transport.retain(session.peer)
        self._kick()

    # -- what the call sees -----------------------------------------------------------------

    @property
    def label(self) -> str:
        return self._label

    @property
    def on_offer(self) -> OfferHandler | None:
        return self._session.on_offer

    @on_offer.setter
    def on_offer(self, handler: OfferHandler | None) -> None:
        self._session.on_offer = handler

    @property
    def call_id(self) -> str:
        return self._session.call_id

    @property
    def dialog(self) -> Dialog | None:
        return self._session.dialog

    async def next_event(self) -> LegEvent:
        """The next leg event, in order (waits for it)."""
        return await self._events.receive()

    def forward_events(self, sink: Callable[[LegEvent], bool]) -> None:
        """Hand every leg event to ``sink`` as it happens (those waiting first), instead of
        through ``next_event``: no task of the call needs to wait for them. ``sink`` returns
        False when it cannot take one. Dropped once the session is over (no cycle is left
        between the call and its legs)."""
        while True:
            try:
                event = self._events.receive_nowait()
            except trio.WouldBlock:
                break
            sink(event)
        if not self._closed:
            self._event_sink = sink

    async def reinvite(self, sdp: bytes) -> bytes | None:
        """Re-INVITE with ``sdp`` (hold/unhold); the answer SDP, or ``ReinviteFailed``."""
        self._session.reinvite(sdp, trio.current_time())  # LocalProtocolError when it cannot
        done = self._reinvite_done = trio.Event()
        self._kick()
        await done.wait()
        result, self._reinvite_result = self._reinvite_result, None
        if isinstance(result, ReinviteAnswered):
            return result.sdp
        if result is None:
            raise ReinviteFailed(408, "Request Timeout")
        raise ReinviteFailed(result.status, result.reason)

    # -- what the endpoint hands over (synchronously, in arrival order) ----------------------

    def _full(self) -> bool:
        return self._queue is not None and len(self._queue) >= QUEUE_SIZE and not self._closed

    def deliver_request(self, incoming: IncomingRequest) -> None:
        if self._full():
            self._endpoint.start_soon(_answer_busy, incoming)
            return
        self._put((_REQUEST, incoming, None))

    def deliver_response(self, response: Response, peer: Peer) -> None:
        if self._full():
            log.info("%s: dropping a %d, too many inputs queued", self._label, response.status)
            return
        self._put((_RESPONSE, response, peer))

    def _own_response(self, response: Response, peer: Peer) -> None:
        self._put((_RESPONSE, response, peer))

    def _put(self, item: _Input) -> None:
        if self._closed:  # the session is over
            self._late(item)
            return
        if self._queue is None:
            self._queue = deque()
        self._queue.append(item)
        self._kick()

    def _late(self, item: _Input) -> None:
        kind, message, peer = item
        if kind == _REQUEST and not isinstance(message, Response):
            self._endpoint.start_soon(_answer_late, message)
        elif (
            kind == _RESPONSE
            and isinstance(message, Response)
            and message.cseq.method == "INVITE"
            and 200 <= message.status < 300
        ):
            self._endpoint.start_soon(self._endpoint.ack_and_bye, message, peer)

    def timer_due(self) -> None:
        """The endpoint's timer task: the deadline we asked for has come."""
        self._timer = None
        self._kick()

    # -- the step ---------------------------------------------------------------------------

    def _kick(self) -> None:
        """Step the session: its queued inputs, due timers and outputs, until it waits."""
        if self._closed or self._stepping:  # a step running further up the stack takes it
            return
        self._stepping = True
        session = self._session
        now = trio.current_time()  # one reading per step: a step takes microseconds
        try:
            while True:
                self._flush()
                if session.finished:
                    self._close()
                    return
                queue = self._queue
                if queue:
                    kind, message, peer = queue.popleft()
                    if kind == _RESPONSE:
                        assert isinstance(message, Response) and peer is not None
                        session.receive_response(message, peer, now)
                    else:
                        assert not isinstance(message, Response)
                        response = session.receive_request(message.request, message.peer, now)
                        if response is not None:
                            self._endpoint.respond_nowait(message, response)
                    continue
                deadline = session.get_timer()
                if deadline is not None and deadline <= now:
                    session.handle_timer(now)
                    continue
                self._set_timer(deadline)
                if queue is not None and session.state is SessionState.ESTABLISHED:
                    self._queue = None  # a quiet call keeps no queue
                return
        except Exception:
            log.exception("INVITE session %s failed", session.call_id)
            if session.state is not SessionState.ESTABLISHED:
                self._emit(LegFailed(500, "Server Internal Error"))
            self._close()
        finally:
            self._stepping = False

    def _set_timer(self, deadline: float | None) -> None:
        timer = self._timer
        if timer is not None:
            if timer[0] == deadline:
                return
            self._endpoint.cancel_session_timer(timer[1])
            self._timer = None
        if deadline is not None:
            self._timer = (deadline, self._endpoint.schedule_session_timer(deadline, self))

    def _close(self) -> None:
        session = self._session
        self._closed = True
        self._event_sink = None
        self._set_timer(None)
        # the one reference cycle of a session (self -> its bound method -> self): broken here,
        # so a finished call is freed by reference counting, not left to the cycle collector
        self._sink = _late_response
        self._endpoint.unregister_dialog(session.call_id, session.local_tag)
        if self._retained is not None:
            self._endpoint.transport.release(self._retained)
            self._retained = None
        if self._reinvite_done is not None:
            self._reinvite_done.set()
        queue, self._queue = self._queue, None
        for item in queue or ():
            self._late(item)

    def _flush(self) -> None:
        endpoint = self._endpoint
        while True:
            outputs = self._session.outputs()
            if not outputs:
                return
            for output in outputs:
                if isinstance(output, SendRequest):
                    try:
                        client = endpoint.request(output.request, output.peer, sink=self._sink)
                        endpoint.start_client_nowait(client)
                    except LocalProtocolError as exc:
                        log.info("cannot send %s: %s", output.request.method, exc)
                elif isinstance(output, SendStateless):
                    endpoint.send_stateless_nowait(output.message, output.peer)
                elif isinstance(output, RespondInvite):
                    self._respond_invite(output.response)
                elif isinstance(output, AckAndBye):
                    endpoint.start_soon(endpoint.ack_and_bye, output.response, output.peer)
                elif isinstance(output, ReinviteAnswered | ReinviteRejected):
                    self._reinvite_result = output
                    if self._reinvite_done is not None:
                        self._reinvite_done.set()
                        self._reinvite_done = None
                elif isinstance(output, Acked):
                    self._acked(output.sdp)
                else:
                    self._emit(output)

    def _respond_invite(self, response: Response) -> None:
        raise LocalProtocolError("only the callee's side answers an INVITE")

    def _acked(self, sdp: bytes | None) -> None:
        """The ACK for our 2xx to the initial INVITE arrived (callee's side)."""

    def _emit(self, event: LegEvent) -> None:
        sink = self._event_sink
        if sink is not None:
            if not sink(event):
                log.warning("%s: dropping %r, the call is not taking events", self._label, event)
            return
        if (
            isinstance(event, LegRinging | LegDtmf)
            and self._to_call.statistics().current_buffer_used >= EVENTS_SIZE // 2
        ):
            log.info("%s: dropping %r, the call is not reading", self._label, event)
            return
        try:
            self._to_call.send_nowait(event)
        except trio.WouldBlock:  # cannot happen: at most two final events follow the ringing
            log.warning("%s: dropping %r", self._label, event)


async def _answer_busy(incoming: IncomingRequest) -> None:
    if incoming.request.method != "ACK":
        response = incoming.request.response(503, headers=[("Retry-After", "1")])
        await incoming.respond(response)


async def _answer_late(incoming: IncomingRequest) -> None:
    if incoming.request.method != "ACK":
        await incoming.respond(incoming.request.response(481))
