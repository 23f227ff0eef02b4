"""The caller's side of one INVITE session as a sans-IO state machine (RFC 3261 §13, §9, §22).

Theory of operation
-------------------
Inputs are plain calls with the current time: ``start``, ``receive_response`` (responses of
the client transactions this session asked for, and 2xx retransmissions or other forks'
2xx that outlived them), ``receive_request`` (in-dialog requests; it returns the response),
``cancel``, ``bye``, ``reinvite`` and ``handle_timer(now)``.  Outputs are drained with
``outputs()``, in order: ``SendRequest`` (a new client transaction whose responses come
back through ``receive_response``), ``SendStateless`` (ACK for 2xx, 2xx retransmissions),
``AckAndBye`` (a 2xx of a dialog this session does not keep), the protocol-neutral leg
events of ``sip.leg_events`` and the outcome of our re-INVITE.  What happens in the dialog
once it is established is shared with the callee's side: ``sip.invite_dialog``.

States (``SessionState``)::

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
  new branch, the cnonce from ``random_token``; any other final response is
  ``LegFailed(status, reason)``.
* In-dialog requests go where the INVITE went while there is no route set (a phone behind NAT
  is reached at its REGISTER's source, RFC 5626 §5.3): we may always reconnect to it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from sip.dialog import Dialog
from sip.digest import authorize, choose_challenge
from sip.errors import LocalProtocolError, RemoteProtocolError
from sip.headers import Headers
from sip.invite_dialog import (
    ALLOW,
    AckAndBye,
    InviteDialogSession,
    OfferHandler,
    ReinviteAnswered,
    ReinviteFailed,
    ReinviteRejected,
    SendRequest,
    SendStateless,
    SessionOutput,
    SessionState,
    sdp_of,
)
from sip.leg_events import LegAnswered, LegFailed, LegRinging
from sip.message import Request, Response
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

UacState = SessionState
UacOutput = SessionOutput

_EARLY = frozenset(
    {
        SessionState.CALLING,
        SessionState.CANCEL_PENDING,
        SessionState.PROCEEDING,
        SessionState.CANCELLING,
    }
)
_CANCELLED = frozenset({SessionState.CANCEL_PENDING, SessionState.CANCELLING})
_GIVE_UP = "give_up"


class UacSession(InviteDialogSession):
    """One outgoing INVITE session (see the module docstring)."""

    __slots__ = (
        "_auth_tried",
        "_body",
        "_content_type",
        "_credentials",
        "_extra_headers",
        "_from",
        "_to",
        "invite",
        "request_uri",
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
        super().__init__(
            peer=peer,
            random_token=random_token,
            local_address=local_address,
            config=config,
            user_agent=user_agent,
            on_offer=on_offer,
        )
        self.request_uri = request_uri
        self.local_tag = random_token()
        self._from = from_addr.with_tag(self.local_tag)
        self._to = to_addr
        host = local_address(peer.transport)[0]
        self.call_id = f"{random_token()}{random_token()}@{host}"
        self._credentials = credentials
        self._extra_headers = tuple(headers)
        self._content_type = content_type
        self._body: bytes | None = None
        self.invite: Request | None = None
        self._auth_tried = False

    def _on_give_up(self, now: float) -> None:
        if self.state is SessionState.CANCELLING:  # no final response 64*T1 after CANCEL (§9.1)
            self._fail(487, "Request Terminated")

    # -- building the INVITE ----------------------------------------------------------------

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

    # -- commands ---------------------------------------------------------------------------

    def start(self, body: bytes | None, now: float) -> None:
        """Send the INVITE (with ``body`` as our offer, or none: late offer)."""
        if self.state is not SessionState.IDLE:
            raise LocalProtocolError("the INVITE was already sent")
        self._body = body
        self._local_sdp = body
        self.invite = self._build_invite(1)
        self.state = SessionState.CALLING
        self._out.append(SendRequest(self.invite, self.peer))

    def cancel(self, now: float) -> None:
        """Give up on the call (§9.1); after the answer this is ``bye``."""
        state = self.state
        if state is SessionState.ESTABLISHED:
            self._bye_established()
        elif state is SessionState.IDLE:
            self.state = SessionState.ENDED
        elif state is SessionState.CALLING:
            self.state = SessionState.CANCEL_PENDING
        elif state is SessionState.PROCEEDING:
            self._send_cancel(now)

    def bye(self, now: float) -> None:
        """End an answered call with BYE; before the answer this is ``cancel``."""
        if self.state in _EARLY or self.state is SessionState.IDLE:
            self.cancel(now)
        else:
            self._bye_established()

    def _send_cancel(self, now: float) -> None:
        assert self.invite is not None
        self.state = SessionState.CANCELLING
        self._timers[_GIVE_UP] = now + 64 * self.config.t1
        self._out.append(SendRequest(make_cancel(self.invite), self.peer))

    def _fail(self, status: int, reason: str) -> None:
        self._end()
        self._out.append(LegFailed(status, reason))

    def _end(self) -> None:
        self._timers.pop(_GIVE_UP, None)
        super()._end()

    # -- responses --------------------------------------------------------------------------

    def receive_response(self, response: Response, peer: Peer, now: float) -> None:
        method = response.cseq.method
        invite = self.invite
        if method != "INVITE":
            if response.status >= 200:
                log.debug("%s for %s answered %d", method, self.call_id, response.status)
            return
        if self._is_reinvite_response(response):
            self._reinvite_response(response)
            return
        if self.state in _EARLY and invite is not None and response.cseq.seq == invite.cseq.seq:
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
        if state is SessionState.CANCEL_PENDING:
            self._send_cancel(now)
        elif state is SessionState.CALLING or state is SessionState.PROCEEDING:
            self.state = SessionState.PROCEEDING
            self._out.append(LegRinging(response.status, sdp_of(response)))

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
                self.state = SessionState.CALLING
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
        cancelled = self.state in _CANCELLED
        self.state = SessionState.ESTABLISHED
        if cancelled:  # the 2xx raced our CANCEL
            self._bye_established()
            self._out.append(LegFailed(487, "Request Terminated"))
            return
        self._out.append(LegAnswered(sdp_of(response)))

    # -- requests from the peer ---------------------------------------------------------------

    def receive_request(self, request: Request, peer: Peer, now: float) -> Response | None:
        """An in-dialog request: the response to send for it (None for an ACK)."""
        if request.method == "ACK":
            self._ack_arrived(request.cseq.seq)
            return None
        dialog = self._dialog
        if dialog is None or self.state is not SessionState.ESTABLISHED:
            return request.response(481)
        return self._in_dialog(request, peer, dialog, now)
