"""The callee's side of INVITE sessions (UAS) on top of the endpoint and dialogs (trio).

The caller's side is the sans-IO ``sip.uac_session`` with its trio driver ``sip.uac_driver``.

Theory of operation (RFC 3261 §13, §14, §15, §9; RFC 3264 offer/answer; RFC 6026):

* ``InviteServer`` wraps an incoming INVITE: ``progress``/``answer``/``reject``.  We, the
  UAS core, retransmit the 2xx (§13.3.1.4: T1 doubling up to T2, UDP only) until the ACK
  arrives; with no ACK within 64*T1 we send BYE and report ``RemoteBye("no ACK")``.  A
  CANCEL before the final answer is answered 487 by the endpoint -> ``RemoteCancel``.
* In-dialog requests (BYE, re-INVITE) follow the flow the dialog was set up on when there
  is no route set: to where the INVITE came from (over TCP: on that connection while it is
  open), as RFC 3581 and RFC 5626 §5.3 do.  Only with a route set, or without a usable flow,
  the next hop comes from the dialog (§12.2.1.1: first Route, else the remote target).
* Both sides own a ``Dialog`` once established and are registered with the endpoint under
  (Call-ID, local tag), which routes in-dialog requests here: BYE is answered 200 and
  reported as ``RemoteBye``; a re-INVITE/UPDATE is answered 200 with ``on_offer(offer)`` (or
  our last SDP) - 491 while our own re-INVITE is pending (§14.1); INFO/OPTIONS get 200.
"""

from __future__ import annotations

import enum
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import trio

from sip.dialog import Dialog, DialogState, new_tag
from sip.endpoint import ClientRequest, IncomingRequest, SipEndpoint, peer_for_uri
from sip.errors import LocalProtocolError, RemoteProtocolError
from sip.message import Request, Response
from sip.transaction import Peer
from sip.uac_session import ALLOW, ReinviteFailed
from sip.uri import NameAddr

__all__ = [
    "Answered",
    "InviteServer",
    "Progress",
    "ReinviteFailed",
    "Rejected",
    "RemoteBye",
    "RemoteCancel",
    "SessionEvent",
]

log = logging.getLogger(__name__)

OfferHandler = Callable[[bytes | None], bytes | None]


@dataclass(frozen=True, slots=True)
class Progress:
    status: int
    reason: str
    sdp: bytes | None


@dataclass(frozen=True, slots=True)
class Answered:
    sdp: bytes | None


@dataclass(frozen=True, slots=True)
class Rejected:
    status: int
    reason: str


@dataclass(frozen=True, slots=True)
class RemoteBye:
    reason: str | None


@dataclass(frozen=True, slots=True)
class RemoteCancel:
    pass


SessionEvent = Progress | Answered | Rejected | RemoteBye | RemoteCancel


class _Phase(enum.Enum):
    IDLE = "idle"
    CALLING = "calling"  # INVITE sent / received, no final response
    ESTABLISHED = "established"
    ENDED = "ended"


def _sdp(message: Request | Response) -> bytes | None:
    return message.body or None


class _Session:
    """What both sides share: the dialog, in-dialog requests, BYE, re-INVITE."""

    def __init__(
        self, endpoint: SipEndpoint, transport: str, on_offer: OfferHandler | None
    ) -> None:
        self._endpoint = endpoint
        self._transport = transport.lower()
        self.on_offer = on_offer
        self._dialog: Dialog | None = None
        self._phase = _Phase.IDLE
        self._local_sdp: bytes | None = None
        self._send_event, self._receive_event = trio.open_memory_channel[SessionEvent](math.inf)
        self._acks: dict[int, trio.Event] = {}  # CSeq of a 2xx we sent -> its ACK arrived
        self._reinvite_pending = False
        self._call_id = ""
        self._local_tag = ""
        self._retained: Peer | None = None
        self._flow: Peer | None = None  # where the initial INVITE went to / came from
        self._flow_connects = False  # True: we may (re)connect to the flow (TCP)
        self._sent_acks: dict[int, tuple[Request, Peer]] = {}

    # -- events ---------------------------------------------------------------------------

    async def next_event(self) -> SessionEvent:
        """The next event, in order (waits for it)."""
        return await self._receive_event.receive()

    def _emit(self, event: SessionEvent) -> None:
        self._send_event.send_nowait(event)

    @property
    def dialog(self) -> Dialog | None:
        return self._dialog

    @property
    def call_id(self) -> str:
        return self._call_id

    def _retain(self, peer: Peer) -> None:
        """Keep a TCP connection to ``peer`` open for the life of the session."""
        if self._retained is None:
            self._retained = peer
            self._endpoint.transport.retain(peer)

    def _end(self) -> None:
        if self._retained is not None:
            self._endpoint.transport.release(self._retained)
            self._retained = None
        self._phase = _Phase.ENDED
        if self._dialog is not None:
            self._dialog.terminate()
        self._endpoint.unregister_dialog(self._call_id, self._local_tag)

    # -- sending in the dialog ---------------------------------------------------------

    def _dialog_peer(self, dialog: Dialog) -> Peer:
        flow = self._flow
        if (
            flow is not None
            and not dialog.route_set
            and (
                not flow.reliable
                or self._flow_connects
                or self._endpoint.transport.has_connection(flow)
            )
        ):
            return flow
        return peer_for_uri(dialog.next_hop(), self._transport)

    def _with_via(self, request: Request, peer: Peer) -> Request:
        via = self._endpoint.make_via(peer.transport)
        return request.with_headers(request.headers.prepend("Via", str(via)))

    async def _send_in_dialog(self, request: Request) -> ClientRequest:
        assert self._dialog is not None
        peer = self._dialog_peer(self._dialog)
        client = self._endpoint.request(self._with_via(request, peer), peer)
        await client.start()
        return client

    async def _send_ack(self, dialog: Dialog, cseq: int, body: bytes | None = None) -> Request:
        """ACK our (re-)INVITE's 2xx; a retransmitted 2xx gets the very same ACK again."""
        sent = self._sent_acks.get(cseq)
        if sent is not None:
            await self._endpoint.send_stateless(*sent)
            return sent[0]
        peer = self._dialog_peer(dialog)
        ack = dialog.create_ack(
            cseq, body=body or b"", content_type="application/sdp" if body else None
        )
        ack = self._with_via(ack, peer)
        self._sent_acks[cseq] = (ack, peer)
        for old in [k for k in self._sent_acks if k < cseq]:
            del self._sent_acks[old]  # only the latest INVITE's 2xx can still come back
        await self._endpoint.send_stateless(ack, peer)
        return ack

    async def bye(self) -> None:
        """End an established session with BYE (waits for its final response)."""
        if self._phase is not _Phase.ESTABLISHED or self._dialog is None:
            return
        dialog = self._dialog
        self._end()
        try:
            bye = dialog.create_request("BYE", headers=[("User-Agent", self._endpoint.user_agent)])
            client = await self._send_in_dialog(bye)
        except (LocalProtocolError, RemoteProtocolError) as exc:
            log.info("cannot send BYE for %s: %s", self._call_id, exc)
            return
        async for response in client:
            if response.status >= 200:
                log.debug("BYE for %s answered %d", self._call_id, response.status)

    async def reinvite(self, sdp: bytes) -> bytes | None:
        """Re-INVITE with ``sdp`` (hold/unhold); returns the answer SDP (§14.1)."""
        if self._phase is not _Phase.ESTABLISHED or self._dialog is None:
            raise LocalProtocolError("re-INVITE needs an established session")
        if self._reinvite_pending:
            raise LocalProtocolError("a re-INVITE is already pending")
        dialog = self._dialog
        self._reinvite_pending = True
        try:
            request = dialog.create_request(
                "INVITE",
                body=sdp,
                content_type="application/sdp",
                headers=[("Allow", ALLOW), ("User-Agent", self._endpoint.user_agent)],
            )
            client = await self._send_in_dialog(request)
            async for response in client:
                if response.status < 200:
                    continue
                if response.status < 300:
                    dialog.refresh_target(response)
                    await self._send_ack(dialog, request.cseq.seq)
                    self._local_sdp = sdp
                    return _sdp(response)
                raise ReinviteFailed(response.status, response.reason)
        finally:
            self._reinvite_pending = False
        raise ReinviteFailed(408, "Request Timeout")

    # -- requests from the peer (DialogOwner) -------------------------------------------

    def deliver_request(self, incoming: IncomingRequest) -> None:
        self._endpoint.start_soon(self.handle_request, incoming)

    def deliver_response(self, response: Response, peer: Peer) -> None:
        self._endpoint.start_soon(self.handle_response, response, peer)

    async def handle_request(self, incoming: IncomingRequest) -> None:
        request = incoming.request
        if request.method == "ACK":
            ack = self._acks.get(request.cseq.seq)
            if ack is not None:
                ack.set()
            return
        dialog = self._dialog
        if dialog is None or dialog.state is DialogState.TERMINATED:
            await incoming.respond(request.response(481))
            return
        problem = dialog.receive_request(request)
        if problem is not None:
            await incoming.respond(problem)
            return
        method = request.method
        if method == "BYE" and self._phase is _Phase.CALLING:
            await incoming.respond(request.response(200))
            await self._early_bye()
            return
        if method == "BYE":
            await incoming.respond(request.response(200))
            if self._phase is not _Phase.ENDED:
                self._end()
                self._emit(RemoteBye(request.headers.get("Reason")))
            return
        if method in ("INVITE", "UPDATE"):
            await self._answer_offer(incoming, dialog)
            return
        if method in ("INFO", "OPTIONS", "NOTIFY"):
            await incoming.respond(request.response(200))
            return
        await incoming.respond(request.response(501, headers=[("Allow", ALLOW)]))

    async def _early_bye(self) -> None:
        """A BYE in an early dialog (§15: only the caller may send one)."""
        log.info("BYE in the early dialog of %s ignored", self._call_id)

    async def _answer_offer(self, incoming: IncomingRequest, dialog: Dialog) -> None:
        request = incoming.request
        if request.method == "INVITE" and self._reinvite_pending:
            await incoming.respond(request.response(491))  # glare (§14.2)
            return
        offer = _sdp(request)
        answer = self.on_offer(offer) if self.on_offer is not None else self._local_sdp
        if offer is None and request.method == "UPDATE":
            answer = None  # an UPDATE without offer needs no answer
        dialog.refresh_target(request)
        headers: list[tuple[str, str]] = [("Allow", ALLOW)]
        if dialog.local_contact is not None:
            headers.append(("Contact", str(dialog.local_contact)))
        if answer:
            headers.append(("Content-Type", "application/sdp"))
        response = request.response(200, headers=headers, body=answer or b"")
        if answer:
            self._local_sdp = answer
        await incoming.respond(response)
        if request.method == "INVITE" and not await self._await_ack(
            response, incoming.peer, request.cseq.seq
        ):
            log.info("no ACK for our 2xx to the re-INVITE of %s", self._call_id)

    async def _await_ack(self, response: Response, peer: Peer, cseq: int) -> bool:
        """Retransmit our 2xx (UDP: T1 doubling to T2) until its ACK; False after 64*T1."""
        config = self._endpoint.timer_config
        acked = self._acks.setdefault(cseq, trio.Event())
        deadline = trio.current_time() + 64 * config.t1
        interval = config.t1
        try:
            while not acked.is_set():
                wake = deadline if peer.reliable else min(deadline, trio.current_time() + interval)
                with trio.move_on_at(wake):
                    await acked.wait()
                if acked.is_set():
                    break
                if trio.current_time() >= deadline:
                    return False
                await self._endpoint.send_stateless(response, peer)
                interval = min(interval * 2, config.t2)
            return True
        finally:
            self._acks.pop(cseq, None)

    async def handle_response(self, response: Response, peer: Peer) -> None:
        """A 2xx to our INVITE after its transaction delivered a final response."""
        if response.cseq.method != "INVITE" or not 200 <= response.status < 300:
            return
        dialog = self._dialog
        if dialog is not None and (response.to.tag or "") == dialog.remote_tag:
            if self._phase is _Phase.ESTABLISHED:
                await self._send_ack(dialog, response.cseq.seq)  # our ACK got lost
            return
        await self._endpoint.ack_and_bye(response, peer)  # another fork, or too late


class InviteServer(_Session):
    """UAS side of one INVITE session (wraps the endpoint's ``IncomingRequest``)."""

    def __init__(
        self,
        endpoint: SipEndpoint,
        incoming: IncomingRequest,
        *,
        on_offer: OfferHandler | None = None,
    ) -> None:
        if incoming.request.method != "INVITE":
            raise LocalProtocolError("InviteServer needs an INVITE")
        super().__init__(endpoint, incoming.peer.transport, on_offer)
        self.request = incoming.request
        self.peer = incoming.peer
        self._flow = incoming.peer  # over TCP, a connection the caller opened: only while open
        self._incoming = incoming
        self._call_id = self.request.call_id
        self._local_tag = new_tag()
        self._contact = NameAddr(endpoint.contact(self.peer.transport))
        self._phase = _Phase.CALLING
        self.acked = trio.Event()  # set when the ACK for our 2xx arrived
        self.ack_sdp: bytes | None = None  # the answer in the ACK when the INVITE had no offer
        endpoint.register_dialog(self._call_id, self._local_tag, self)
        self._retain(self.peer)
        incoming.on_cancel(self._on_cancel)

    async def handle_request(self, incoming: IncomingRequest) -> None:
        request = incoming.request
        if request.method == "ACK" and request.cseq.seq == self.request.cseq.seq:
            if request.body and not self.acked.is_set():
                self.ack_sdp = request.body
            self.acked.set()
        await super().handle_request(incoming)

    @property
    def offer(self) -> bytes | None:
        return _sdp(self.request)

    async def _early_bye(self) -> None:
        """The caller ended the early dialog with BYE: the INVITE gets 487 (§15.1.2)."""
        await self._incoming.respond(self._response(487, None))
        self._end()
        self._emit(RemoteCancel())

    def _on_cancel(self) -> None:
        if self._phase is _Phase.CALLING:
            self._end()
            self._emit(RemoteCancel())

    def _ensure_dialog(self) -> Dialog:
        if self._dialog is None:
            self._dialog = Dialog.from_uas(self.request, self._local_tag, self._contact)
        return self._dialog

    def _response(
        self,
        status: int,
        sdp: bytes | None,
        reason: str | None = None,
        extra: Sequence[tuple[str, str]] = (),
    ) -> Response:
        headers: list[tuple[str, str]] = []
        if 100 < status < 300:
            # §12.1.1: a dialog-creating response copies the request's Record-Route
            headers.extend(
                ("Record-Route", rr) for rr in self.request.headers.get_all("Record-Route")
            )
        if status < 300:
            headers.append(("Contact", str(self._contact)))
            headers.append(("Allow", ALLOW))
        headers.append(("User-Agent", self._endpoint.user_agent))
        headers.extend(extra)
        if sdp:
            headers.append(("Content-Type", "application/sdp"))
        return self.request.response(
            status, reason, to_tag=self._local_tag, headers=headers, body=sdp or b""
        )

    async def progress(self, status: int = 180, sdp: bytes | None = None) -> None:
        """Send a provisional response (180 Ringing, 183 with early media SDP...)."""
        if not 100 <= status < 200:
            raise LocalProtocolError(f"{status} is not provisional")
        if self._phase is not _Phase.CALLING or self._incoming.answered:
            return
        if status > 100:
            try:
                self._ensure_dialog()
            except RemoteProtocolError as exc:
                log.info("no early dialog for %s: %s", self._call_id, exc)
        if sdp:
            self._local_sdp = sdp
        await self._incoming.respond(self._response(status, sdp))

    async def answer(self, sdp: bytes | None) -> bool:
        """Send 200 OK; it is retransmitted until the ACK (no ACK -> BYE + RemoteBye). False
        when no 200 went out (the INVITE was already answered or cancelled, or was bad)."""
        if self._phase is not _Phase.CALLING or self._incoming.answered:
            log.info("answer() for %s ignored: already %s", self._call_id, self._phase.value)
            return False
        try:
            dialog = self._ensure_dialog()
        except RemoteProtocolError as exc:
            await self.reject(400, exc.reason)
            return False
        dialog.confirm()
        self._local_sdp = sdp
        response = self._response(200, sdp)
        self._phase = _Phase.ESTABLISHED
        self._acks[self.request.cseq.seq] = trio.Event()
        await self._incoming.respond(response)
        self._endpoint.start_soon(self._wait_for_ack, response)
        return True

    async def _wait_for_ack(self, response: Response) -> None:
        if await self._await_ack(response, self.peer, self.request.cseq.seq):
            return
        if self._phase is _Phase.ESTABLISHED:  # §13.3.1.4: no ACK -> end the dialog
            log.info("no ACK for %s: sending BYE", self._call_id)
            await self.bye()
            self._emit(RemoteBye("no ACK"))

    async def reject(
        self, status: int, reason: str | None = None, headers: Sequence[tuple[str, str]] = ()
    ) -> None:
        """A final non-2xx answer."""
        if status < 300:
            raise LocalProtocolError(f"reject() needs a status >= 300, not {status}")
        if self._phase is not _Phase.CALLING or self._incoming.answered:
            return
        self._end()
        await self._incoming.respond(self._response(status, None, reason, headers))

    async def bye(self) -> None:
        """BYE an answered call; before the answer: reject with 480."""
        if self._phase is _Phase.CALLING:
            await self.reject(480)
            return
        await super().bye()
