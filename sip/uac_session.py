"""The caller's side of one INVITE session as a sans-IO state machine (RFC 3261 §13, §14, §15).

Theory of operation
-------------------
Inputs are plain calls with the current time: ``start``, ``receive_response`` (responses of
the client transactions this session asked for, and 2xx retransmissions or other forks'
2xx that outlived them), ``receive_request`` (in-dialog requests; it returns the response),
``cancel``, ``bye``, ``reinvite`` and ``handle_timer(now)``.  Outputs are drained with
``outputs()``, in order: ``SendRequest`` (a new client transaction whose responses come
back through ``receive_response``), ``SendStateless`` (ACK for 2xx, 2xx retransmissions),
``AckAndBye`` (a 2xx of a dialog this session does not keep), the protocol-neutral leg
events of ``sip.leg_events`` and the outcome of our re-INVITE (``ReinviteAnswered`` /
``ReinviteRejected``).  Nothing here reads a clock or draws a random value: random tokens
(Call-ID, tags, branches, cnonce) come from the ``random_token`` callable, local addresses
from ``local_address`` (host bracketed when IPv6, as in a URI).

States (``UacState``)::

    IDLE --start--> CALLING --1xx--> PROCEEDING --2xx--> ESTABLISHED --bye / BYE--> ENDED
                      |  cancel()        | cancel(): CANCEL, timer give_up (64*T1)
                      v                  v
                 CANCEL_PENDING --1xx--> CANCELLING --final / give_up--> ENDED (LegFailed 487)

* 100 Trying is not reported and does not allow a CANCEL; any other 1xx is ``LegRinging``
  (§9.1: CANCEL only after a provisional response; wanted earlier, it goes out with the
  first one).  Without a final response 64*T1 after our CANCEL we give up: ``LegFailed(487)``.
* 2xx: the dialog is made (§12.1.2) and ACKed (§13.2.2.4; the ACK carries our answer when the
  2xx carried the offer).  A 2xx that raced our CANCEL is ACKed and BYEd: ``LegFailed(487)``.
  A 2xx whose Contact/Route cannot be routed is ``LegFailed(502)``.  Retransmissions of the
  winner's 2xx get the very same ACK again; 2xx of other forks get ``AckAndBye``.
* 401/407 is answered once with digest credentials (§22.2): same Call-ID and From tag, CSeq + 1,
  new branch; any other final response is ``LegFailed(status, reason)``.
* In the dialog: BYE -> 200 and ``LegHungUp``; re-INVITE/UPDATE -> 200 with ``on_offer(offer)``
  (or our last SDP), 491 while our own re-INVITE is pending (§14.1 glare); our 2xx to a
  re-INVITE is retransmitted (timer ``reinvite_2xx``: T1 doubling to T2, UDP only) until its
  ACK, for at most 64*T1 (timer ``reinvite_ack``); INFO/OPTIONS/NOTIFY -> 200, others 501.
* In-dialog requests go where the INVITE went while there is no route set (a phone behind NAT
  is reached at its REGISTER's source, RFC 5626 §5.3), else to the dialog's next hop (§12.2.1.1).
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sip.auth import authorize, choose_challenge
from sip.dialog import Dialog
from sip.errors import LocalProtocolError, RemoteProtocolError
from sip.headers import Headers, Via
from sip.leg_events import LegAnswered, LegEvent, LegFailed, LegHungUp, LegRinging
from sip.message import Message, Request, Response
from sip.peers import peer_for_uri
from sip.timers import TimerConfig
from sip.transaction_client import make_cancel
from sip.transaction_types import Peer
from sip.uri import NameAddr, SipUri

__all__ = [
    "ALLOW",
    "AckAndBye",
    "OfferHandler",
    "ReinviteAnswered",
    "ReinviteFailed",
    "ReinviteRejected",
    "SendRequest",
    "SendStateless",
    "UacOutput",
    "UacSession",
    "UacState",
]

log = logging.getLogger(__name__)

ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE"
OfferHandler = Callable[[bytes | None], bytes | None]


class UacState(enum.Enum):
    IDLE = "idle"
    CALLING = "calling"  # INVITE sent, no provisional response yet
    CANCEL_PENDING = "cancel pending"  # cancel() before a provisional: CANCEL with the first
    PROCEEDING = "proceeding"  # a provisional response arrived
    CANCELLING = "cancelling"  # CANCEL sent, waiting for the INVITE's final response
    ESTABLISHED = "established"
    ENDED = "ended"


_EARLY = frozenset(
    {UacState.CALLING, UacState.CANCEL_PENDING, UacState.PROCEEDING, UacState.CANCELLING}
)
_CANCELLED = frozenset({UacState.CANCEL_PENDING, UacState.CANCELLING})


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
class AckAndBye:
    """A 2xx for a dialog this session does not keep (another fork): ACK and BYE it."""

    response: Response
    peer: Peer


@dataclass(frozen=True, slots=True)
class ReinviteAnswered:
    sdp: bytes | None


@dataclass(frozen=True, slots=True)
class ReinviteRejected:
    status: int
    reason: str


UacOutput = SendRequest | SendStateless | AckAndBye | ReinviteAnswered | ReinviteRejected | LegEvent

# named timers
_GIVE_UP = "give_up"
_REINVITE_2XX = "reinvite_2xx"
_REINVITE_ACK = "reinvite_ack"


def _sdp(message: Request | Response) -> bytes | None:
    return message.body or None


class UacSession:
    """One outgoing INVITE session (see the module docstring)."""

    __slots__ = (
        "_acks",
        "_auth_tried",
        "_body",
        "_content_type",
        "_credentials",
        "_dialog",
        "_extra_headers",
        "_from",
        "_local_address",
        "_local_sdp",
        "_out",
        "_pending_2xx",
        "_random_token",
        "_reinvite",
        "_timers",
        "_to",
        "call_id",
        "config",
        "invite",
        "local_tag",
        "on_offer",
        "peer",
        "request_uri",
        "state",
        "user_agent",
    )

    def __init__(
        self,
        *,
        peer: Peer,
        request_uri: SipUri,
        from_addr: NameAddr,
        to_addr: NameAddr,
        random_token: Callable[[], str],
        local_address: Callable[[str], tuple[str, int]],
        config: TimerConfig | None = None,
        credentials: tuple[str, str] | None = None,
        headers: Sequence[tuple[str, str]] = (),
        content_type: str = "application/sdp",
        user_agent: str = "trio-b2bua",
        on_offer: OfferHandler | None = None,
    ) -> None:
        self.peer = peer
        self.request_uri = request_uri
        self.config = config or TimerConfig()
        self.user_agent = user_agent
        self.on_offer = on_offer
        self._random_token = random_token
        self._local_address = local_address
        self.local_tag = random_token()
        self._from = from_addr.with_tag(self.local_tag)
        self._to = to_addr
        host = local_address(peer.transport)[0]
        self.call_id = f"{random_token()}{random_token()}@{host}"
        self._credentials = credentials
        self._extra_headers = tuple(headers)
        self._content_type = content_type
        self._body: bytes | None = None
        self._local_sdp: bytes | None = None
        self.state = UacState.IDLE
        self.invite: Request | None = None
        self._auth_tried = False
        self._dialog: Dialog | None = None
        self._reinvite: Request | None = None  # our pending re-INVITE
        self._acks: dict[int, tuple[Request, Peer]] = {}  # CSeq -> the ACK we sent its 2xx
        # our 2xx to the peer's re-INVITE, until its ACK: (response, peer, CSeq, interval)
        self._pending_2xx: tuple[Response, Peer, int, float] | None = None
        self._timers: dict[str, float] = {}
        self._out: list[UacOutput] = []

    # -- outputs and timers -----------------------------------------------------------------

    def outputs(self) -> list[UacOutput]:
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
        return self.state is UacState.ENDED and not self._timers

    def handle_timer(self, now: float) -> None:
        for name, deadline in list(self._timers.items()):
            if deadline <= now and self._timers.get(name) == deadline:
                del self._timers[name]
                getattr(self, "_on_" + name)(now)

    def _on_give_up(self, now: float) -> None:
        if self.state is UacState.CANCELLING:  # no final response 64*T1 after CANCEL (§9.1)
            self._fail(487, "Request Terminated")

    def _on_reinvite_2xx(self, now: float) -> None:
        if self._pending_2xx is None:
            return
        response, peer, cseq, interval = self._pending_2xx
        self._out.append(SendStateless(response, peer))
        interval = min(interval * 2, self.config.t2)
        self._pending_2xx = (response, peer, cseq, interval)
        self._timers[_REINVITE_2XX] = now + interval

    def _on_reinvite_ack(self, now: float) -> None:
        if self._pending_2xx is not None:
            log.info("no ACK for our 2xx to the re-INVITE of %s", self.call_id)
        self._pending_2xx = None
        self._timers.pop(_REINVITE_2XX, None)

    # -- building requests ------------------------------------------------------------------

    def _via(self, transport: str) -> str:
        host, port = self._local_address(transport)
        branch = "z9hG4bK" + self._random_token()
        params = (("branch", branch), ("rport", None))
        return str(Via(transport.upper(), host, port, params))

    def _with_via(self, request: Request, peer: Peer) -> Request:
        return request.with_headers(request.headers.prepend("Via", self._via(peer.transport)))

    def _build_invite(self, cseq: int, auth: Sequence[tuple[str, str]] = ()) -> Request:
        host, port = self._local_address(self.peer.transport)
        transport = self.peer.transport.lower()
        params: tuple[tuple[str, str | None], ...] = (
            () if transport == "udp" else (("transport", transport),)
        )
        contact = NameAddr(SipUri("sip", None, None, host, port, params))
        items: list[tuple[str, str]] = [
            ("Via", self._via(self.peer.transport)),
            ("Max-Forwards", "70"),
            ("From", str(self._from)),
            ("To", str(self._to)),
            ("Call-ID", self.call_id),
            ("CSeq", f"{cseq} INVITE"),
            ("Contact", str(contact)),
            ("Allow", ALLOW),
            ("User-Agent", self.user_agent),
            *auth,
            *self._extra_headers,
        ]
        if self._body:
            items.append(("Content-Type", self._content_type))
        return Request("INVITE", self.request_uri, Headers(items), self._body or b"")

    def _dialog_peer(self, dialog: Dialog) -> Peer:
        if not dialog.route_set:
            return self.peer  # where the INVITE went (we may always reconnect to it)
        return peer_for_uri(dialog.next_hop(), self.peer.transport)

    def _send_in_dialog(self, request: Request) -> None:
        assert self._dialog is not None
        peer = self._dialog_peer(self._dialog)
        self._out.append(SendRequest(self._with_via(request, peer), peer))

    def _send_ack(self, dialog: Dialog, cseq: int, body: bytes | None = None) -> None:
        sent = self._acks.get(cseq)
        if sent is not None:  # a retransmitted 2xx gets the very same ACK again
            self._out.append(SendStateless(*sent))
            return
        peer = self._dialog_peer(dialog)
        ack = dialog.create_ack(
            cseq, body=body or b"", content_type="application/sdp" if body else None
        )
        ack = self._with_via(ack, peer)
        self._acks = {cseq: (ack, peer)}  # only the latest INVITE's 2xx can still come back
        self._out.append(SendStateless(ack, peer))

    # -- commands ---------------------------------------------------------------------------

    def start(self, body: bytes | None, now: float) -> None:
        """Send the INVITE (with ``body`` as our offer, or none: late offer)."""
        if self.state is not UacState.IDLE:
            raise LocalProtocolError("the INVITE was already sent")
        self._body = body
        self._local_sdp = body
        self.invite = self._build_invite(1)
        self.state = UacState.CALLING
        self._out.append(SendRequest(self.invite, self.peer))

    def cancel(self, now: float) -> None:
        """Give up on the call (§9.1); after the answer this is ``bye``."""
        state = self.state
        if state is UacState.ESTABLISHED:
            self.bye(now)
        elif state is UacState.IDLE:
            self.state = UacState.ENDED
        elif state is UacState.CALLING:
            self.state = UacState.CANCEL_PENDING
        elif state is UacState.PROCEEDING:
            self._send_cancel(now)

    def bye(self, now: float) -> None:
        """End an answered call with BYE; before the answer this is ``cancel``."""
        if self.state in _EARLY or self.state is UacState.IDLE:
            self.cancel(now)
            return
        if self.state is not UacState.ESTABLISHED or self._dialog is None:
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
        if self.state is not UacState.ESTABLISHED or self._dialog is None:
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

    def _send_cancel(self, now: float) -> None:
        assert self.invite is not None
        self.state = UacState.CANCELLING
        self._timers[_GIVE_UP] = now + 64 * self.config.t1
        self._out.append(SendRequest(make_cancel(self.invite), self.peer))

    def _fail(self, status: int, reason: str) -> None:
        self._end()
        self._out.append(LegFailed(status, reason))

    def _end(self) -> None:
        self.state = UacState.ENDED
        self._timers.pop(_GIVE_UP, None)
        if self._dialog is not None:
            self._dialog.terminate()
        if self._reinvite is not None:
            self._reinvite = None
            self._out.append(ReinviteRejected(481, "Call/Transaction Does Not Exist"))

    # -- responses --------------------------------------------------------------------------

    def receive_response(self, response: Response, peer: Peer, now: float) -> None:
        method = response.cseq.method
        seq = response.cseq.seq
        invite = self.invite
        if method != "INVITE":
            if response.status >= 200:
                log.debug("%s for %s answered %d", method, self.call_id, response.status)
            return
        reinvite = self._reinvite
        if reinvite is not None and seq == reinvite.cseq.seq:
            self._reinvite_response(response)
            return
        if self.state in _EARLY and invite is not None and seq == invite.cseq.seq:
            if response.status < 200:
                self._provisional(response, now)
            else:
                self._final(response, now)
            return
        if 200 <= response.status < 300:
            self._late_2xx(response, peer)

    def _provisional(self, response: Response, now: float) -> None:
        if response.status == 100:
            return
        state = self.state
        if state is UacState.CANCEL_PENDING:
            self._send_cancel(now)
        elif state is UacState.CALLING or state is UacState.PROCEEDING:
            self.state = UacState.PROCEEDING
            self._out.append(LegRinging(response.status, _sdp(response)))

    def _final(self, response: Response, now: float) -> None:
        status = response.status
        if status < 300:
            self._answered(response, now)
            return
        if (
            status in (401, 407)
            and self._credentials is not None
            and not self._auth_tried
            and self.state not in _CANCELLED
        ):
            retry = self._authorized_retry(response)
            if retry is not None:
                self._auth_tried = True
                self.invite = retry
                self.state = UacState.CALLING
                self._out.append(SendRequest(retry, self.peer))
                return
        self._fail(status, response.reason)

    def _authorized_retry(self, challenge: Response) -> Request | None:
        assert self.invite is not None and self._credentials is not None
        header = "WWW-Authenticate" if challenge.status == 401 else "Proxy-Authenticate"
        answer = "Authorization" if challenge.status == 401 else "Proxy-Authorization"
        try:
            chosen = choose_challenge(challenge.headers.get_all(header))
            username, password = self._credentials
            value = authorize(
                "INVITE",
                str(self.request_uri),
                chosen,
                username,
                password,
                cnonce=self._random_token() + self._random_token(),
            )
        except (RemoteProtocolError, LocalProtocolError) as exc:
            log.info(
                "cannot answer the %d challenge for %s: %s", challenge.status, self.call_id, exc
            )
            return None
        return self._build_invite(self.invite.cseq.seq + 1, [(answer, value)])

    def _answered(self, response: Response, now: float) -> None:
        assert self.invite is not None
        try:
            dialog = Dialog.from_uac(self.invite, response)
            peer_for_uri(dialog.next_hop(), self.peer.transport)  # routable: SIP Contact/Route
        except (RemoteProtocolError, LocalProtocolError) as exc:
            log.info("unusable 2xx for %s: %s", self.call_id, exc)
            self._fail(502, "Bad Gateway")
            return
        self._dialog = dialog
        answer: bytes | None = None
        if not self._body and response.body:  # the 2xx carries the offer: the ACK the answer
            answer = self.on_offer(response.body) if self.on_offer is not None else None
            self._local_sdp = answer
        self._send_ack(dialog, self.invite.cseq.seq, answer)
        if self.state in _CANCELLED:  # the 2xx raced our CANCEL
            self.state = UacState.ESTABLISHED
            self.bye(now)
            self._out.append(LegFailed(487, "Request Terminated"))
            return
        self.state = UacState.ESTABLISHED
        self._out.append(LegAnswered(_sdp(response)))

    def _late_2xx(self, response: Response, peer: Peer) -> None:
        dialog = self._dialog
        if dialog is not None and (response.to.tag or "") == dialog.remote_tag:
            if self.state is UacState.ESTABLISHED:
                self._send_ack(dialog, response.cseq.seq)  # our ACK got lost
            return
        self._out.append(AckAndBye(response, peer))  # another fork, or too late

    def _reinvite_response(self, response: Response) -> None:
        if response.status < 200:
            return
        self._reinvite = None
        dialog = self._dialog
        if response.status >= 300:
            self._out.append(ReinviteRejected(response.status, response.reason))
            return
        if dialog is None or self.state is not UacState.ESTABLISHED:
            return
        dialog.refresh_target(response)
        self._send_ack(dialog, response.cseq.seq)
        self._out.append(ReinviteAnswered(_sdp(response)))

    # -- requests from the peer ---------------------------------------------------------------

    def receive_request(self, request: Request, peer: Peer, now: float) -> Response | None:
        """An in-dialog request: the response to send for it (None for an ACK)."""
        if request.method == "ACK":
            pending = self._pending_2xx
            if pending is not None and pending[2] == request.cseq.seq:
                self._pending_2xx = None
                self._timers.pop(_REINVITE_2XX, None)
                self._timers.pop(_REINVITE_ACK, None)
            return None
        dialog = self._dialog
        if dialog is None or self.state is not UacState.ESTABLISHED:
            return request.response(481)
        problem = dialog.receive_request(request)
        if problem is not None:
            return problem
        method = request.method
        if method == "BYE":
            self._end()
            self._out.append(LegHungUp(request.headers.get("Reason") or "BYE"))
            return request.response(200)
        if method in ("INVITE", "UPDATE"):
            return self._answer_offer(request, peer, dialog, now)
        if method in ("INFO", "OPTIONS", "NOTIFY"):
            return request.response(200)
        return request.response(501, headers=[("Allow", ALLOW)])

    def _answer_offer(self, request: Request, peer: Peer, dialog: Dialog, now: float) -> Response:
        if request.method == "INVITE" and self._reinvite is not None:
            return request.response(491)  # glare (§14.2)
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
            self._local_sdp = answer
        response = request.response(200, headers=headers, body=answer or b"")
        if request.method == "INVITE":  # §13.3.1.4: we retransmit our 2xx until the ACK
            self._pending_2xx = (response, peer, request.cseq.seq, self.config.t1)
            if not peer.reliable:
                self._timers[_REINVITE_2XX] = now + self.config.t1
            self._timers[_REINVITE_ACK] = now + 64 * self.config.t1
        return response


class ReinviteFailed(Exception):
    """Our re-INVITE got a final non-2xx response (491, 488, 408, ...)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"re-INVITE failed: {status} {reason}")
        self.status = status
        self.reason = reason
