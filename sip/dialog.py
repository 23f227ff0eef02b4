"""SIP dialogs (RFC 3261 §12), sans-IO.

Theory of operation:

* A dialog is identified by Call-ID, local tag and remote tag (§12).  It holds the state the
  RFC lists in §12: local/remote sequence numbers, local/remote URI (From/To of our requests),
  the remote target (the peer's Contact), the route set and the ``secure`` flag.
* UAC side (§12.1.2): created from our INVITE and a 1xx (with To tag, an *early* dialog) or a
  2xx (*confirmed*).  The route set is the response's Record-Route reversed; the remote
  target is the response's Contact.  A 2xx for an early dialog confirms it and recomputes the
  route set and target (§13.2.2.4).
* UAS side (§12.1.1): created from the INVITE we answer with our tag.  The route set is the
  request's Record-Route in order; the remote sequence number is the INVITE's CSeq.
* Requests inside the dialog (§12.2.1.1): From = local URI + local tag, To = remote URI +
  remote tag, CSeq = local sequence + 1 (ACK reuses the INVITE's number, §13.2.2.4).  With an
  empty route set the Request-URI is the remote target; with a loose router first (``lr``)
  the Request-URI is the remote target and the route set becomes Route; with a strict router
  first the Request-URI is that router and the remote target goes last in Route.
* Requests received inside the dialog (§12.2.2): a CSeq lower than the remote sequence
  number is out of order and answered 500; otherwise it becomes the remote sequence number.
  A target refresh (re-INVITE/UPDATE) that we accept replaces the remote target (§12.2.2).
* Nothing here does I/O or reads a clock; the caller adds the Via and sends.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Iterable
from dataclasses import dataclass

from sip.errors import LocalProtocolError, RemoteProtocolError
from sip.headers import Headers
from sip.message import Request, Response
from sip.uri import NameAddr, SipUri, Uri

__all__ = [
    "Dialog",
    "DialogId",
    "DialogState",
]

log = logging.getLogger(__name__)

# Methods whose accepted request (or 2xx) replaces the remote target (§12.2, RFC 3311).
TARGET_REFRESH_METHODS = frozenset({"INVITE", "UPDATE"})
# Requests we send with our Contact (§8.1.1.8, RFC 3311).
_CONTACT_METHODS = frozenset({"INVITE", "UPDATE", "SUBSCRIBE", "NOTIFY", "REFER"})


class DialogState(enum.Enum):
    EARLY = "early"
    CONFIRMED = "confirmed"
    TERMINATED = "terminated"


@dataclass(frozen=True, slots=True)
class DialogId:
    call_id: str
    local_tag: str
    remote_tag: str


def _contact_uri(message: Request | Response) -> Uri | None:
    contacts = message.contacts
    return contacts[0].uri if contacts else None


def _is_loose(route: NameAddr) -> bool:
    uri = route.uri
    return isinstance(uri, SipUri) and uri.has_param("lr")


@dataclass(slots=True)
class Dialog:
    """The state of one dialog; mutated in place by the methods below."""

    call_id: str
    local_tag: str
    remote_tag: str
    local_seq: int
    remote_seq: int | None
    local_addr: NameAddr  # our From (with local tag)
    remote_addr: NameAddr  # our To (with remote tag, once known)
    remote_target: Uri
    route_set: tuple[NameAddr, ...] = ()
    secure: bool = False
    state: DialogState = DialogState.EARLY
    local_contact: NameAddr | None = None

    # -- identity ------------------------------------------------------------------------

    @property
    def id(self) -> DialogId:
        return DialogId(self.call_id, self.local_tag, self.remote_tag)

    @property
    def local_uri(self) -> Uri:
        return self.local_addr.uri

    @property
    def remote_uri(self) -> Uri:
        return self.remote_addr.uri

    def matches_request(self, request: Request) -> bool:
        """True if an incoming request belongs to this dialog (§12.2.2)."""
        return (
            request.call_id == self.call_id
            and request.to.tag == self.local_tag
            and (request.from_.tag or "") == self.remote_tag
        )

    def matches_response(self, response: Response) -> bool:
        """True if a response to one of our requests belongs to this dialog."""
        return (
            response.call_id == self.call_id
            and response.from_.tag == self.local_tag
            and (response.to.tag or "") == self.remote_tag
        )

    # -- creation --------------------------------------------------------------------------

    @classmethod
    def from_uac(cls, invite: Request, response: Response) -> Dialog:
        """Dialog of the UAC from its INVITE and a 1xx-with-tag or 2xx (§12.1.2)."""
        if not 101 <= response.status < 300:
            raise LocalProtocolError(f"a {response.status} response creates no dialog")
        remote_tag = response.to.tag
        if not remote_tag:
            raise RemoteProtocolError("dialog-creating response without To tag")
        local_tag = invite.from_.tag
        if not local_tag:
            raise LocalProtocolError("our INVITE has no From tag")
        target = _contact_uri(response)
        if target is None:
            if response.status >= 200:
                raise RemoteProtocolError("2xx to INVITE without Contact")
            target = invite.uri  # an early dialog without Contact: refine on the 2xx
        local_contact = invite.contacts[0] if invite.contacts else None
        return cls(
            call_id=invite.call_id,
            local_tag=local_tag,
            remote_tag=remote_tag,
            local_seq=invite.cseq.seq,
            remote_seq=None,
            local_addr=invite.from_,
            remote_addr=response.to,
            remote_target=target,
            route_set=tuple(reversed(response.record_routes)),
            secure=isinstance(invite.uri, SipUri) and invite.uri.scheme == "sips",
            state=DialogState.CONFIRMED if response.status >= 200 else DialogState.EARLY,
            local_contact=local_contact,
        )

    @classmethod
    def from_uas(
        cls, invite: Request, local_tag: str, local_contact: NameAddr | None = None
    ) -> Dialog:
        """Dialog of the UAS for the INVITE it answers with ``local_tag`` (§12.1.1)."""
        target = _contact_uri(invite)
        if target is None:
            raise RemoteProtocolError("INVITE without Contact")
        return cls(
            call_id=invite.call_id,
            local_tag=local_tag,
            remote_tag=invite.from_.tag or "",
            local_seq=0,
            remote_seq=invite.cseq.seq,
            local_addr=invite.to.with_tag(local_tag),
            remote_addr=invite.from_,
            remote_target=target,
            route_set=tuple(invite.record_routes),
            secure=isinstance(invite.uri, SipUri) and invite.uri.scheme == "sips",
            state=DialogState.EARLY,
            local_contact=local_contact,
        )

    # -- state changes -----------------------------------------------------------------------

    def confirm(self, response: Response | None = None) -> None:
        """Early -> confirmed.  On the UAC a 2xx recomputes route set and target (§13.2.2.4)."""
        if self.state is DialogState.TERMINATED:
            return
        if response is not None:
            self.route_set = tuple(reversed(response.record_routes))
            target = _contact_uri(response)
            if target is not None:
                self.remote_target = target
        self.state = DialogState.CONFIRMED

    def terminate(self) -> None:
        self.state = DialogState.TERMINATED

    def refresh_target(self, message: Request | Response) -> None:
        """Apply a target refresh: the Contact of an accepted re-INVITE/UPDATE or its 2xx."""
        target = _contact_uri(message)
        if target is not None:
            self.remote_target = target

    # -- requests we send (§12.2.1) ------------------------------------------------------

    def next_hop(self) -> Uri:
        """Where an in-dialog request goes: the first route, else the remote target."""
        return self.route_set[0].uri if self.route_set else self.remote_target

    def _request_uri_and_routes(self) -> tuple[Uri, list[NameAddr]]:
        if not self.route_set:
            return self.remote_target, []
        first = self.route_set[0]
        if _is_loose(first):
            return self.remote_target, list(self.route_set)
        # Strict router (§12.2.1.1): it becomes the Request-URI, the remote target goes last.
        uri = first.uri
        if isinstance(uri, SipUri):
            uri = SipUri(uri.scheme, uri.user, uri.password, uri.host, uri.port, uri.params)
        return uri, [*self.route_set[1:], NameAddr(self.remote_target)]

    def create_request(
        self,
        method: str,
        *,
        headers: Iterable[tuple[str, str]] = (),
        body: bytes = b"",
        content_type: str | None = None,
        cseq: int | None = None,
    ) -> Request:
        """Build an in-dialog request without Via (the sender adds its own).

        Every method but ACK takes the next local sequence number; ACK needs ``cseq``, the
        number of the INVITE it acknowledges (§13.2.2.4).  CANCEL is never built here: it
        copies its INVITE (§9.1).
        """
        method = method.upper()
        if self.state is DialogState.TERMINATED and method not in ("ACK", "BYE"):
            raise LocalProtocolError(f"{method} in a terminated dialog")
        if method == "CANCEL":
            raise LocalProtocolError("CANCEL is built from its INVITE, not from the dialog")
        if method == "ACK":
            if cseq is None:
                raise LocalProtocolError("ACK needs the INVITE's CSeq number")
            seq = cseq
        else:
            if cseq is not None:
                if cseq <= self.local_seq:
                    raise LocalProtocolError("CSeq must increase within a dialog")
                self.local_seq = cseq
            else:
                self.local_seq += 1
            seq = self.local_seq
        request_uri, routes = self._request_uri_and_routes()
        items: list[tuple[str, str]] = [
            ("Max-Forwards", "70"),
            ("From", str(self.local_addr)),
            ("To", str(self.remote_addr)),
            ("Call-ID", self.call_id),
            ("CSeq", f"{seq} {method}"),
        ]
        items.extend(("Route", str(route)) for route in routes)
        if method in _CONTACT_METHODS and self.local_contact is not None:
            items.append(("Contact", str(self.local_contact)))
        items.extend(headers)
        if body and content_type:
            items.append(("Content-Type", content_type))
        return Request(method=method, uri=request_uri, headers=Headers(items), body=body)

    def create_ack(
        self,
        invite_cseq: int,
        *,
        headers: Iterable[tuple[str, str]] = (),
        body: bytes = b"",
        content_type: str | None = None,
    ) -> Request:
        """The ACK for a 2xx to our (re-)INVITE numbered ``invite_cseq`` (§13.2.2.4)."""
        return self.create_request(
            "ACK", headers=headers, body=body, content_type=content_type, cseq=invite_cseq
        )

    # -- requests we receive (§12.2.2) --------------------------------------------------

    def receive_request(self, request: Request) -> Response | None:
        """Check an in-dialog request; a response to send instead of processing, or None."""
        if request.method in ("ACK", "CANCEL"):
            return None
        seq = request.cseq.seq
        if self.remote_seq is not None and seq < self.remote_seq:
            return request.response(500, "CSeq Out Of Order", headers=[("Retry-After", "1")])
        self.remote_seq = seq
        return None
