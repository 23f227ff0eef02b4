"""What both sides of an INVITE session share, sans-IO: the dialog and its requests.

Theory of operation (RFC 3261 §12, §13.2.2.4, §13.3.1.4, §14, §15; RFC 3264)
------------------------------------------------------------------------------
``InviteDialogSession`` is the base of ``sip.uac_session.UacSession`` (the caller's side) and
``sip.uas_session.UasSession`` (the callee's side).  Inputs are plain calls with the current
time; outputs are drained with ``outputs()`` in order; named timers (``get_timer()`` gives the
earliest deadline, ``handle_timer(now)`` runs the due ones, each calling ``_on_<name>``).
Nothing here reads a clock or draws a random value: random tokens (tags, branches, Call-IDs,
cnonces) come from ``random_token``, local addresses from ``local_address`` (host bracketed
when IPv6, as in a URI).

Once the dialog exists:

* BYE -> 200 and ``LegHungUp`` (its Reason header, else the side's default reason);
* re-INVITE/UPDATE -> 200 with ``on_offer(offer)`` (or our last SDP), 491 while our own
  re-INVITE is pending (§14.1 glare); our 2xx to an INVITE is retransmitted (timer
  ``retransmit_2xx``: T1 doubling to T2, unreliable transports only) until its ACK, for at
  most 64*T1 (timer ``ack_wait``); INFO/OPTIONS/NOTIFY -> 200; anything else 501;
* INFO with a DTMF body (``sip.dtmf``: ``application/dtmf-relay``, ``application/dtmf``) ->
  200 and ``LegDtmf``, or 400 naming what is wrong with the body; INFO of another content
  type still gets 200 (as before: nothing here reads it);
* a request with a lower CSeq than the last one gets 500 (§12.2.2), so the driver must hand
  requests over in arrival order;
* our re-INVITE (``reinvite``) ends with ``ReinviteAnswered`` (we ACK the 2xx, and re-send
  that very ACK for a retransmitted 2xx) or ``ReinviteRejected``; ``bye`` sends BYE.

In-dialog requests follow the flow the dialog was set up on while there is no route set (a
phone behind NAT is reached where its messages came from, RFC 3581, RFC 5626 §5.3); with a
route set, or without a usable flow, the next hop comes from the dialog (§12.2.1.1).
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable
from dataclasses import dataclass

from sip.dialog import Dialog
from sip.dtmf import DtmfInfoError, parse_dtmf_info
from sip.errors import LocalProtocolError, RemoteProtocolError
from sip.headers import Via
from sip.leg_events import LegDtmf, LegEvent, LegHungUp
from sip.message import Message, Request, Response
from sip.peers import peer_for_uri
from sip.timers import TimerConfig
from sip.transaction_types import Peer

__all__ = [
    "ALLOW",
    "AckAndBye",
    "Acked",
    "InviteDialogSession",
    "OfferHandler",
    "ReinviteAnswered",
    "ReinviteFailed",
    "ReinviteRejected",
    "RespondInvite",
    "SendRequest",
    "SendStateless",
    "SessionOutput",
    "SessionState",
]

log = logging.getLogger(__name__)

ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE"
OfferHandler = Callable[[bytes | None], bytes | None]


class SessionState(enum.Enum):
    IDLE = "idle"  # the caller's INVITE not sent yet
    CALLING = "calling"  # INVITE sent (caller) or received (callee), no final response
    CANCEL_PENDING = "cancel pending"  # caller: cancel() before a provisional response
    PROCEEDING = "proceeding"  # caller: a provisional response arrived
    CANCELLING = "cancelling"  # caller: CANCEL sent, waiting for the final response
    ESTABLISHED = "established"
    ENDED = "ended"


@dataclass(frozen=True, slots=True)
class SendRequest:
    """Start a client transaction for ``request`` (Via included) towards ``peer``."""

    request: Request
    peer: Peer


@dataclass(frozen=True, slots=True)
class SendStateless:
    """Send outside any transaction (an ACK for a 2xx, a 2xx retransmission)."""

    message: Message
    peer: Peer


@dataclass(frozen=True, slots=True)
class RespondInvite:
    """Callee: send ``response`` on the initial INVITE's server transaction."""

    response: Response


@dataclass(frozen=True, slots=True)
class AckAndBye:
    """Caller: a 2xx for a dialog this session does not keep (another fork): ACK and BYE it."""

    response: Response
    peer: Peer


@dataclass(frozen=True, slots=True)
class Acked:
    """Callee: the ACK for our 2xx arrived (``sdp``: the answer, when our 2xx offered)."""

    sdp: bytes | None


@dataclass(frozen=True, slots=True)
class ReinviteAnswered:
    sdp: bytes | None


@dataclass(frozen=True, slots=True)
class ReinviteRejected:
    status: int
    reason: str


class ReinviteFailed(Exception):
    """Our re-INVITE got a final non-2xx response (491, 488, 408, ...)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"re-INVITE failed: {status} {reason}")
        self.status = status
        self.reason = reason


SessionOutput = (
    SendRequest
    | SendStateless
    | RespondInvite
    | AckAndBye
    | Acked
    | ReinviteAnswered
    | ReinviteRejected
    | LegEvent
)

_RETRANSMIT_2XX = "retransmit_2xx"
_ACK_WAIT = "ack_wait"


def sdp_of(message: Request | Response) -> bytes | None:
    return message.body or None


class InviteDialogSession:
    """The dialog part of an INVITE session (see the module docstring)."""

    __slots__ = (
        "_ack",
        "_dialog",
        "_local_address",
        "_local_sdp",
        "_out",
        "_pending_2xx",
        "_random_token",
        "_reinvite",
        "_timers",
        "call_id",
        "config",
        "local_tag",
        "on_offer",
        "peer",
        "state",
        "user_agent",
    )

    #: the reason of a BYE without a Reason header
    bye_reason = "BYE"

    def __init__(
        self,
        *,
        peer: Peer,
        random_token: Callable[[], str],
        local_address: Callable[[str], tuple[str, int]],
        config: TimerConfig | None,
        user_agent: str,
        on_offer: OfferHandler | None,
    ) -> None:
        self.peer = peer  # the flow: where the INVITE went to / came from
        self.config = config or TimerConfig()
        self.user_agent = user_agent
        self.on_offer = on_offer
        self._random_token = random_token
        self._local_address = local_address
        self.call_id = ""
        self.local_tag = ""
        self.state = SessionState.IDLE
        self._local_sdp: bytes | None = None
        self._dialog: Dialog | None = None
        self._reinvite: Request | None = None  # our pending re-INVITE
        self._ack: tuple[int, Request, Peer] | None = None  # the last ACK we sent, its CSeq
        # our 2xx to a peer's INVITE, until its ACK: (response, peer, CSeq, interval)
        self._pending_2xx: tuple[Response, Peer, int, float] | None = None
        self._timers: dict[str, float] = {}
        self._out: list[SessionOutput] = []

    # -- outputs and timers -----------------------------------------------------------------

    def outputs(self) -> list[SessionOutput]:
        """What to do, in order (drains the list)."""
        out, self._out = self._out, []
        return out

    def get_timer(self) -> float | None:
        """The earliest deadline of a named timer, or None."""
        return min(self._timers.values()) if self._timers else None

    @property
    def dialog(self) -> Dialog | None:
        return self._dialog

    @property
    def finished(self) -> bool:
        """Ended, and nothing left to retransmit or wait for."""
        return self.state is SessionState.ENDED and not self._timers

    def handle_timer(self, now: float) -> None:
        for name, deadline in list(self._timers.items()):
            if deadline <= now and self._timers.get(name) == deadline:
                del self._timers[name]
                getattr(self, "_on_" + name)(now)

    def _on_retransmit_2xx(self, now: float) -> None:
        if self._pending_2xx is None:
            return
        response, peer, cseq, interval = self._pending_2xx
        self._out.append(SendStateless(response, peer))
        interval = min(interval * 2, self.config.t2)
        self._pending_2xx = (response, peer, cseq, interval)
        self._timers[_RETRANSMIT_2XX] = now + interval

    def _on_ack_wait(self, now: float) -> None:
        if self._pending_2xx is not None:
            log.info("no ACK for our 2xx to the re-INVITE of %s", self.call_id)
        self._pending_2xx = None
        self._timers.pop(_RETRANSMIT_2XX, None)

    def _retransmit_until_ack(self, response: Response, peer: Peer, cseq: int, now: float) -> None:
        """§13.3.1.4: our 2xx to an INVITE goes again (T1 doubling to T2) until its ACK."""
        self._pending_2xx = (response, peer, cseq, self.config.t1)
        if not peer.reliable:
            self._timers[_RETRANSMIT_2XX] = now + self.config.t1
        self._timers[_ACK_WAIT] = now + 64 * self.config.t1

    def _ack_arrived(self, cseq: int) -> bool:
        pending = self._pending_2xx
        if pending is None or pending[2] != cseq:
            return False
        self._pending_2xx = None
        self._timers.pop(_RETRANSMIT_2XX, None)
        self._timers.pop(_ACK_WAIT, None)
        return True

    # -- sending in the dialog --------------------------------------------------------------

    def _via(self, transport: str) -> str:
        host, port = self._local_address(transport)
        branch = "z9hG4bK" + self._random_token()
        return str(Via(transport.upper(), host, port, (("branch", branch), ("rport", None))))

    def _with_via(self, request: Request, peer: Peer) -> Request:
        return request.with_headers(request.headers.prepend("Via", self._via(peer.transport)))

    def _flow_usable(self) -> bool:
        """May in-dialog requests go along the flow (when there is no route set)?"""
        return True

    def _dialog_peer(self, dialog: Dialog) -> Peer:
        if not dialog.route_set and self._flow_usable():
            return self.peer
        return peer_for_uri(dialog.next_hop(), self.peer.transport)

    def _send_in_dialog(self, request: Request) -> None:
        assert self._dialog is not None
        peer = self._dialog_peer(self._dialog)
        self._out.append(SendRequest(self._with_via(request, peer), peer))

    def _send_ack(self, dialog: Dialog, cseq: int, body: bytes | None = None) -> None:
        sent = self._ack
        if sent is not None and sent[0] == cseq:  # a retransmitted 2xx: the very same ACK
            self._out.append(SendStateless(sent[1], sent[2]))
            return
        peer = self._dialog_peer(dialog)
        ack = dialog.create_ack(
            cseq, body=body or b"", content_type="application/sdp" if body else None
        )
        ack = self._with_via(ack, peer)
        self._ack = (cseq, ack, peer)  # only the latest INVITE's 2xx can still come back
        self._out.append(SendStateless(ack, peer))

    # -- commands ---------------------------------------------------------------------------

    def _bye_established(self) -> None:
        if self.state is not SessionState.ESTABLISHED or self._dialog is None:
            return
        dialog = self._dialog
        self._end()
        try:
            bye = dialog.create_request("BYE", headers=[("User-Agent", self.user_agent)])
            self._send_in_dialog(bye)
        except (LocalProtocolError, RemoteProtocolError) as exc:
            log.info("cannot send BYE for %s: %s", self.call_id, exc)

    def reinvite(self, sdp: bytes, now: float) -> None:
        """Re-INVITE with ``sdp`` (hold/unhold); the outcome is ``ReinviteAnswered`` or
        ``ReinviteRejected`` (§14.1)."""
        if self.state is not SessionState.ESTABLISHED or self._dialog is None:
            raise LocalProtocolError("re-INVITE needs an established session")
        if self._reinvite is not None:
            raise LocalProtocolError("a re-INVITE is already pending")
        request = self._dialog.create_request(
            "INVITE",
            body=sdp,
            content_type="application/sdp",
            headers=[("Allow", ALLOW), ("User-Agent", self.user_agent)],
        )
        self._reinvite = request
        self._send_in_dialog(request)

    def _end(self) -> None:
        self.state = SessionState.ENDED
        if self._dialog is not None:
            self._dialog.terminate()
        if self._reinvite is not None:
            self._reinvite = None
            self._out.append(ReinviteRejected(481, "Call/Transaction Does Not Exist"))

    # -- responses to our requests in the dialog ----------------------------------------------

    def _is_reinvite_response(self, response: Response) -> bool:
        reinvite = self._reinvite
        return (
            reinvite is not None
            and response.cseq.method == "INVITE"
            and response.cseq.seq == reinvite.cseq.seq
        )

    def _reinvite_response(self, response: Response) -> None:
        if response.status < 200:
            return
        self._reinvite = None
        dialog = self._dialog
        if response.status >= 300:
            self._out.append(ReinviteRejected(response.status, response.reason))
            return
        if dialog is None or self.state is not SessionState.ESTABLISHED:
            return
        dialog.refresh_target(response)
        self._send_ack(dialog, response.cseq.seq)
        self._out.append(ReinviteAnswered(sdp_of(response)))

    def _late_2xx(self, response: Response, peer: Peer) -> None:
        """A 2xx to an INVITE of ours that outlived its transaction."""
        dialog = self._dialog
        if dialog is not None and (response.to.tag or "") == dialog.remote_tag:
            if self.state is SessionState.ESTABLISHED:
                self._send_ack(dialog, response.cseq.seq)  # our ACK got lost
            return
        self._out.append(AckAndBye(response, peer))  # another fork, or too late

    # -- requests from the peer -------------------------------------------------------------

    def _in_dialog(self, request: Request, peer: Peer, dialog: Dialog, now: float) -> Response:
        """An in-dialog request other than ACK once the dialog is established."""
        problem = dialog.receive_request(request)
        if problem is not None:
            return problem
        method = request.method
        if method == "BYE":
            self._end()
            self._out.append(LegHungUp(request.headers.get("Reason") or self.bye_reason))
            return request.response(200)
        if method in ("INVITE", "UPDATE"):
            return self._answer_offer(request, peer, dialog, now)
        if method == "INFO":
            return self._info(request)
        if method in ("OPTIONS", "NOTIFY"):
            return request.response(200)
        return request.response(501, headers=[("Allow", ALLOW)])

    def _info(self, request: Request) -> Response:
        try:
            dtmf = parse_dtmf_info(request.headers.get("Content-Type"), request.body)
        except DtmfInfoError as exc:
            return request.response(400, str(exc))
        if dtmf is not None:
            self._out.append(LegDtmf(dtmf.digit, dtmf.duration_ms))
        return request.response(200)

    def _answer_offer(self, request: Request, peer: Peer, dialog: Dialog, now: float) -> Response:
        if request.method == "INVITE" and self._reinvite is not None:
            return request.response(491)  # glare (§14.2)
        offer = sdp_of(request)
        answer = self.on_offer(offer) if self.on_offer is not None else self._local_sdp
        if offer is None and request.method == "UPDATE":
            answer = None  # an UPDATE without offer needs no answer
        dialog.refresh_target(request)
        headers: list[tuple[str, str]] = [("Allow", ALLOW)]
        if dialog.local_contact is not None:
            headers.append(("Contact", str(dialog.local_contact)))
        if answer:
            headers.append(("Content-Type", "application/sdp"))
            self._local_sdp = answer
        response = request.response(200, headers=headers, body=answer or b"")
        if request.method == "INVITE":
            self._retransmit_until_ack(response, peer, request.cseq.seq, now)
        return response
