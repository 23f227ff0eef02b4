"""The trio shell of ``sip.uac_session``: one task runs one outgoing INVITE session.

Theory of operation
-------------------
``InviteClient`` owns a sans-IO ``UacSession`` and one driver task, started by ``start()`` in
the endpoint's nursery (the INVITE's aftermath - CANCEL, a 2xx racing it that needs ACK and
BYE, our 2xx retransmissions - must outlive the call that gave it up).  Everything the network
says to the session arrives on one bounded inbox, in arrival order: responses of the client
transactions the session started (the endpoint hands them over synchronously, no channel of
their own), 2xx that outlived their transaction and in-dialog requests (the endpoint's
``DialogOwner`` calls, also synchronous).  So two in-dialog requests of the dialog are
answered in the order they came, whatever order trio runs tasks in.  Commands (``cancel``,
``bye``, ``reinvite``) call the session directly and wake the task.

After each input (or timer: the task sleeps until ``get_timer()``) the task carries out the
session's outputs in order: new client transactions, stateless sends, ACK+BYE of foreign
forks, and the leg events, which go unchanged to ``next_event()`` on a bounded channel (a
provisional response beyond half of it is dropped, so the final events always fit).  The
task ends when the session has ended and has nothing left to retransmit; then the dialog is
unregistered and the TCP connection released.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
from collections.abc import Sequence
from typing import TYPE_CHECKING

import trio

from sip.errors import LocalProtocolError
from sip.leg_events import LegEvent, LegFailed, LegRinging
from sip.message import Request, Response
from sip.transaction_types import Peer
from sip.uac_session import (
    AckAndBye,
    OfferHandler,
    ReinviteAnswered,
    ReinviteFailed,
    ReinviteRejected,
    SendRequest,
    SendStateless,
    UacSession,
    UacState,
)
from sip.uri import NameAddr, SipUri

if TYPE_CHECKING:
    from sip.dialog import Dialog
    from sip.endpoint import IncomingRequest, SipEndpoint

__all__ = ["InviteClient"]

log = logging.getLogger(__name__)

INBOX_SIZE = 64  # inputs of one session waiting for its task
EVENTS_SIZE = 16  # leg events waiting for the call; ringing only up to half of it
_RESPONSE = 0
_REQUEST = 1
_KICK = 2
_Input = tuple[int, "Response | IncomingRequest | None", "Peer | None"]
_KICK_INPUT: _Input = (_KICK, None, None)


def random_token() -> str:
    """64 random bits as hex: tags, branches, Call-IDs, cnonces."""
    return secrets.token_hex(8)


class InviteClient:
    """One outgoing INVITE session: the call leg of a device or gateway (see module doc)."""

    def __init__(
        self,
        endpoint: SipEndpoint,
        *,
        peer: Peer,
        request_uri: SipUri,
        from_addr: NameAddr,
        to_addr: NameAddr,
        label: str = "",
        credentials: tuple[str, str] | None = None,
        headers: Sequence[tuple[str, str]] = (),
        on_offer: OfferHandler | None = None,
    ) -> None:
        self._endpoint = endpoint
        self._label = label or str(request_uri)
        self.peer = peer
        self._session = UacSession(
            peer=peer,
            request_uri=request_uri,
            from_addr=from_addr,
            to_addr=to_addr,
            random_token=random_token,
            local_address=endpoint.local_address,
            config=endpoint.timer_config,
            credentials=credentials,
            headers=headers,
            user_agent=endpoint.user_agent,
            on_offer=on_offer,
        )
        self._to_task, self._inbox = trio.open_memory_channel[_Input](INBOX_SIZE)
        self._to_call, self._events = trio.open_memory_channel[LegEvent](EVENTS_SIZE)
        self._reinvite_done: trio.Event | None = None
        self._reinvite_result: ReinviteAnswered | ReinviteRejected | None = None
        self._retained: Peer | None = None
        self._sink = self.deliver_response  # one bound method for all our transactions

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
    def invite(self) -> Request | None:
        """The INVITE as last sent (None before ``start``)."""
        return self._session.invite

    @property
    def call_id(self) -> str:
        return self._session.call_id

    @property
    def dialog(self) -> Dialog | None:
        return self._session.dialog

    async def start(self, offer: bytes | None) -> None:
        """Send the INVITE with ``offer`` (None: late offer); events follow on ``next_event``."""
        session = self._session
        session.start(offer, trio.current_time())
        # the task sends the INVITE: a caller cancelled in here can never leave an INVITE on
        # the wire without the task that CANCELs or ACKs it
        self._endpoint.start_soon(self._run)
        self._endpoint.register_dialog(session.call_id, session.local_tag, self)
        self._retained = self.peer
        self._endpoint.transport.retain(self.peer)
        await trio.lowlevel.checkpoint()

    async def next_event(self) -> LegEvent:
        """The next leg event, in order (waits for it)."""
        return await self._events.receive()

    async def cancel(self) -> None:
        """Give up on the call (§9.1); after the answer this is ``bye()``."""
        self._session.cancel(trio.current_time())
        self._kick()
        await trio.lowlevel.checkpoint()

    async def bye(self) -> None:
        """BYE an answered call; before the answer this is ``cancel()``."""
        self._session.bye(trio.current_time())
        self._kick()
        await trio.lowlevel.checkpoint()

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

    def deliver_request(self, incoming: IncomingRequest) -> None:
        self._put((_REQUEST, incoming, None))

    def deliver_response(self, response: Response, peer: Peer) -> None:
        self._put((_RESPONSE, response, peer))

    def _put(self, item: _Input) -> None:
        try:
            self._to_task.send_nowait(item)
        except trio.WouldBlock:  # a burst: wait for room in a task of its own
            self._endpoint.start_soon(self._put_later, item)
        except trio.BrokenResourceError:  # the session is over: the endpoint handles strays
            self._late(item)

    async def _put_later(self, item: _Input) -> None:
        try:
            await self._to_task.send(item)
        except trio.BrokenResourceError:
            self._late(item)

    def _late(self, item: _Input) -> None:
        kind, message, peer = item
        if kind == _REQUEST and message is not None and not isinstance(message, Response):
            self._endpoint.start_soon(self._answer_late, message)
        elif (
            kind == _RESPONSE
            and isinstance(message, Response)
            and message.cseq.method == "INVITE"
            and 200 <= message.status < 300
        ):
            self._endpoint.start_soon(self._endpoint.ack_and_bye, message, peer)

    async def _answer_late(self, incoming: IncomingRequest) -> None:
        if incoming.request.method != "ACK":
            await incoming.respond(incoming.request.response(481))

    def _kick(self) -> None:
        # a full inbox: the task is busy with other inputs anyway; a broken one: it is over
        with contextlib.suppress(trio.WouldBlock, trio.BrokenResourceError):
            self._to_task.send_nowait(_KICK_INPUT)

    # -- the task ---------------------------------------------------------------------------

    async def _run(self) -> None:
        session = self._session
        inbox = self._inbox
        try:
            while True:
                await self._flush()
                if session.finished:
                    return
                deadline = session.get_timer()
                item: _Input | None = None
                if deadline is None:
                    item = await inbox.receive()
                else:
                    with trio.move_on_at(deadline):
                        item = await inbox.receive()
                now = trio.current_time()
                if item is None:
                    session.handle_timer(now)
                    continue
                kind, message, peer = item
                if kind == _RESPONSE:
                    assert isinstance(message, Response) and peer is not None
                    session.receive_response(message, peer, now)
                elif kind == _REQUEST:
                    assert message is not None and not isinstance(message, Response)
                    response = session.receive_request(message.request, message.peer, now)
                    if response is not None:
                        await message.respond(response)
        except Exception:
            log.exception("INVITE session %s failed", session.call_id)
            if session.state is not UacState.ESTABLISHED and session.state is not UacState.ENDED:
                self._emit(LegFailed(500, "Server Internal Error"))
        finally:
            inbox.close()
            self._endpoint.unregister_dialog(session.call_id, session.local_tag)
            if self._retained is not None:
                self._endpoint.transport.release(self._retained)
                self._retained = None
            if self._reinvite_done is not None:
                self._reinvite_done.set()

    async def _flush(self) -> None:
        endpoint = self._endpoint
        while True:
            outputs = self._session.outputs()
            if not outputs:
                return
            for output in outputs:
                if isinstance(output, SendRequest):
                    try:
                        client = endpoint.request(output.request, output.peer, sink=self._sink)
                        await client.start()
                    except LocalProtocolError as exc:
                        log.info("cannot send %s: %s", output.request.method, exc)
                elif isinstance(output, SendStateless):
                    await endpoint.send_stateless(output.message, output.peer)
                elif isinstance(output, AckAndBye):
                    endpoint.start_soon(endpoint.ack_and_bye, output.response, output.peer)
                elif isinstance(output, ReinviteAnswered | ReinviteRejected):
                    self._reinvite_result = output
                    if self._reinvite_done is not None:
                        self._reinvite_done.set()
                        self._reinvite_done = None
                else:
                    self._emit(output)

    def _emit(self, event: LegEvent) -> None:
        if (
            isinstance(event, LegRinging)
            and self._to_call.statistics().current_buffer_used >= EVENTS_SIZE // 2
        ):
            log.info("%s: dropping %d, the call is not reading", self._label, event.status)
            return
        try:
            self._to_call.send_nowait(event)
        except trio.WouldBlock:  # cannot happen: at most two final events follow the ringing
            log.warning("%s: dropping %r", self._label, event)
