"""The callee's side of one INVITE session as a sans-IO state machine (RFC 3261 §13.3, §9.2).

Theory of operation
-------------------
``UasSession`` wraps an INVITE we received.  Inputs: ``progress``, ``answer``, ``reject``,
``bye``, ``reinvite`` (the TU's commands), ``cancel_received`` (the endpoint answered a
CANCEL with 200 and the INVITE with 487, §9.2), ``receive_request`` (in-dialog requests; it
returns the response), ``receive_response`` (responses to our requests in the dialog) and
``handle_timer(now)``.  Outputs, drained with ``outputs()``: ``RespondInvite`` (a response on
the INVITE's server transaction), ``SendRequest``/``SendStateless``, ``Acked`` (the ACK for
our 2xx arrived, with the answer when our 2xx carried the offer) and ``LegHungUp`` events.
What happens in the established dialog is shared with the caller's side
(``sip.invite_dialog``).

States (``SessionState``)::

    CALLING --answer: 200--> ESTABLISHED --bye / BYE / no ACK--> ENDED
       |--reject: 3xx-6xx, CANCEL, BYE in the early dialog (INVITE gets 487)--> ENDED

* A provisional response above 100 makes the early dialog (our To tag, §12.1.1); dialog-
  creating responses copy the INVITE's Record-Route.
* We, the UAS core, retransmit our 2xx (§13.3.1.4: timer ``retransmit_2xx``, T1 doubling to
  T2, unreliable transports only) until the ACK; without an ACK within 64*T1 (timer
  ``ack_wait``) we send BYE and report ``LegHungUp("no ACK")``.
* A CANCEL before the final answer, or a BYE in the early dialog (§15.1.2: the INVITE then gets
  487), is ``LegHungUp("caller cancelled")``; a BYE after the answer ``LegHungUp`` with its
  Reason header, else "caller hung up".
* In-dialog requests go where the INVITE came from while there is no route set: over UDP
  always, over TCP only while that connection is open (``flow_open``: we cannot connect back
  to a caller's ephemeral port); else to the dialog's next hop.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from sip.dialog import Dialog
from sip.errors import LocalProtocolError, RemoteProtocolError
from sip.invite_dialog import (
    ALLOW,
    Acked,
    InviteDialogSession,
    OfferHandler,
    RespondInvite,
    SessionState,
    sdp_of,
)
from sip.leg_events import LegHungUp
from sip.message import Request, Response
from sip.timers import TimerConfig
from sip.transaction_types import Peer
from sip.uri import NameAddr, SipUri

__all__ = ["UasSession"]

log = logging.getLogger(__name__)


class UasSession(InviteDialogSession):
    """One incoming INVITE session (see the module docstring)."""

    __slots__ = ("_acked", "_contact", "_flow_open", "request")

    bye_reason = "caller hung up"

    def __init__(
        self,
        request: Request,
        peer: Peer,
        *,
        random_token: Callable[[], str],
        local_address: Callable[[str], tuple[str, int]],
        flow_open: Callable[[Peer], bool],
        config: TimerConfig | None = None,
        user_agent: str = "trio-b2bua",
        on_offer: OfferHandler | None = None,
    ) -> None:
        if request.method != "INVITE":
            raise LocalProtocolError("UasSession needs an INVITE")
        super().__init__(
            peer=peer,
            random_token=random_token,
            local_address=local_address,
            config=config,
            user_agent=user_agent,
            on_offer=on_offer,
        )
        self.request = request
        self.call_id = request.call_id
        self.local_tag = random_token()
        host, port = local_address(peer.transport)
        transport = peer.transport.lower()
        params: tuple[tuple[str, str | None], ...] = (
            () if transport == "udp" else (("transport", transport),)
        )
        self._contact = NameAddr(SipUri("sip", None, None, host, port, params))
        self._flow_open = flow_open
        self._acked = False
        self.state = SessionState.CALLING

    @property
    def offer(self) -> bytes | None:
        return sdp_of(self.request)

    def _flow_usable(self) -> bool:
        return not self.peer.reliable or self._flow_open(self.peer)

    def _ensure_dialog(self) -> Dialog:
        if self._dialog is None:
            self._dialog = Dialog.from_uas(self.request, self.local_tag, self._contact)
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
        headers.append(("User-Agent", self.user_agent))
        headers.extend(extra)
        if sdp:
            headers.append(("Content-Type", "application/sdp"))
        return self.request.response(
            status, reason, to_tag=self.local_tag, headers=headers, body=sdp or b""
        )

    # -- commands ---------------------------------------------------------------------------

    def progress(self, status: int, sdp: bytes | None, now: float) -> None:
        """A provisional response (180 Ringing, 183 with early media SDP...)."""
        if not 100 <= status < 200:
            raise LocalProtocolError(f"{status} is not provisional")
        if self.state is not SessionState.CALLING:
            return
        if status > 100:
            try:
                self._ensure_dialog()
            except RemoteProtocolError as exc:
                log.info("no early dialog for %s: %s", self.call_id, exc)
        if sdp:
            self._local_sdp = sdp
        self._out.append(RespondInvite(self._response(status, sdp)))

    def answer(self, sdp: bytes | None, now: float) -> bool:
        """200 OK, retransmitted until the ACK. False when no 200 went out (the INVITE was
        already answered or cancelled, or was bad: then it gets 400)."""
        if self.state is not SessionState.CALLING:
            log.info("answer() for %s ignored: already %s", self.call_id, self.state.value)
            return False
        try:
            dialog = self._ensure_dialog()
        except RemoteProtocolError as exc:
            self.reject(400, exc.reason)
            return False
        dialog.confirm()
        self._local_sdp = sdp
        response = self._response(200, sdp)
        self.state = SessionState.ESTABLISHED
        self._out.append(RespondInvite(response))
        self._retransmit_until_ack(response, self.peer, self.request.cseq.seq, now)
        return True

    def reject(
        self, status: int, reason: str | None = None, headers: Sequence[tuple[str, str]] = ()
    ) -> None:
        """A final non-2xx answer."""
        if status < 300:
            raise LocalProtocolError(f"reject() needs a status >= 300, not {status}")
        if self.state is not SessionState.CALLING:
            return
        self._end()
        self._out.append(RespondInvite(self._response(status, None, reason, headers)))

    def bye(self, now: float) -> None:
        """BYE an answered call; before the answer: reject with 480."""
        if self.state is SessionState.CALLING:
            self.reject(480)
        else:
            self._bye_established()

    def cancel_received(self) -> None:
        """The caller's CANCEL arrived (the endpoint answered the INVITE 487 unless it was
        answered already)."""
        if self.state is SessionState.CALLING:
            self._end()
            self._out.append(LegHungUp("caller cancelled"))

    def _on_ack_wait(self, now: float) -> None:
        pending = self._pending_2xx
        if (
            pending is not None
            and pending[2] == self.request.cseq.seq
            and self.state is SessionState.ESTABLISHED
        ):  # §13.3.1.4: no ACK for our 2xx -> end the dialog
            log.info("no ACK for %s: sending BYE", self.call_id)
            self._pending_2xx = None
            self._timers.pop("retransmit_2xx", None)
            self._bye_established()
            self._out.append(LegHungUp("no ACK"))
            return
        super()._on_ack_wait(now)

    # -- what the peer sends ----------------------------------------------------------------

    def receive_response(self, response: Response, peer: Peer, now: float) -> None:
        if self._is_reinvite_response(response):
            self._reinvite_response(response)
        elif response.cseq.method == "INVITE" and 200 <= response.status < 300:
            self._late_2xx(response, peer)

    def receive_request(self, request: Request, peer: Peer, now: float) -> Response | None:
        """An in-dialog request: the response to send for it (None for an ACK)."""
        if request.method == "ACK":
            seq = request.cseq.seq
            if seq == self.request.cseq.seq and not self._acked:
                self._acked = True
                self._out.append(Acked(sdp_of(request)))
            self._ack_arrived(seq)
            return None
        dialog = self._dialog
        if dialog is None or self.state is SessionState.ENDED:
            return request.response(481)
        if self.state is SessionState.CALLING and request.method == "BYE":
            problem = dialog.receive_request(request)
            if problem is not None:
                return problem
            # the caller ends the early dialog: the INVITE gets 487 (§15.1.2)
            self._end()
            self._out.append(RespondInvite(self._response(487, None)))
            self._out.append(LegHungUp("caller cancelled"))
            return request.response(200)
        return self._in_dialog(request, peer, dialog, now)
