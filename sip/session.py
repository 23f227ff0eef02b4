"""INVITE sessions (UAC and UAS) on top of the endpoint and dialogs (trio).

Theory of operation (RFC 3261 §13, §14, §15, RFC 3264 offer/answer, RFC 6026):

* ``InviteClient`` sends an INVITE through the endpoint and turns its responses into
  protocol-neutral ``SessionEvent`` values: 1xx -> ``Progress``, 2xx -> ``Answered`` (after
  we ACKed it, §13.2.2.4), any other final -> ``Rejected``.  A 401/407 is answered once with
  digest credentials (§22.2).  ``cancel()`` follows §9.1: a CANCEL only goes out once a
  provisional response arrived; a 2xx that races the CANCEL is ACKed and BYEd.  Further 2xx
  from other forks (§13.2.2.4) are ACKed and BYEd, retransmitted 2xx of the winner re-ACKed.
* ``InviteServer`` wraps an incoming INVITE: ``progress``/``answer``/``reject``.  The 2xx is
  retransmitted by us, the UAS core (§13.3.1.4: T1 doubling up to T2), until the ACK
  arrives; no ACK within 64*T1 -> BYE and ``RemoteBye("no ACK")``.  A CANCEL before the
  final answer is answered 487 by the endpoint and reported as ``RemoteCancel``.
* Both sides own a ``Dialog`` once established; in-dialog requests from the peer (BYE,
  re-INVITE, UPDATE, INFO, OPTIONS) are routed here by the endpoint's dialog table.  BYE is
  answered 200 and reported as ``RemoteBye``; an offer in a re-INVITE/UPDATE is answered with
  ``on_offer(offer)`` (or our last SDP).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sip.endpoint import IncomingRequest, SipEndpoint
    from sip.message import Request
    from sip.transaction import Peer
    from sip.uri import NameAddr, SipUri


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


class InviteClient:
    """UAC side of one INVITE session (skeleton: implementation in progress)."""

    def __init__(
        self,
        endpoint: SipEndpoint,
        *,
        peer: Peer,
        request_uri: SipUri,
        from_addr: NameAddr,
        to_addr: NameAddr,
        body: bytes | None,
        content_type: str = "application/sdp",
        credentials: tuple[str, str] | None = None,
        headers: Sequence[tuple[str, str]] = (),
        on_offer: Callable[[bytes | None], bytes | None] | None = None,
    ) -> None:
        raise NotImplementedError

    async def start(self) -> None:
        raise NotImplementedError

    async def next_event(self) -> SessionEvent:
        raise NotImplementedError

    async def cancel(self) -> None:
        raise NotImplementedError

    async def bye(self) -> None:
        raise NotImplementedError

    async def reinvite(self, sdp: bytes) -> bytes | None:
        raise NotImplementedError


class InviteServer:
    """UAS side of one INVITE session (skeleton: implementation in progress)."""

    request: Request
    peer: Peer
    on_offer: Callable[[bytes | None], bytes | None] | None

    def __init__(self, endpoint: SipEndpoint, incoming: IncomingRequest) -> None:
        raise NotImplementedError

    async def progress(self, status: int = 180, sdp: bytes | None = None) -> None:
        raise NotImplementedError

    async def answer(self, sdp: bytes | None) -> None:
        raise NotImplementedError

    async def reject(
        self, status: int, reason: str | None = None, headers: Sequence[tuple[str, str]] = ()
    ) -> None:
        raise NotImplementedError

    async def next_event(self) -> SessionEvent:
        raise NotImplementedError

    async def bye(self) -> None:
        raise NotImplementedError

    async def reinvite(self, sdp: bytes) -> bytes | None:
        raise NotImplementedError
