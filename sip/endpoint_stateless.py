"""Sending outside any transaction, and the ACK and BYE of a 2xx that belongs to no session.

``StatelessSends`` is mixed into ``sip.endpoint.SipEndpoint`` (its state is set there).  A 2xx
to INVITE that no session owns (another fork's, or one that arrived after the INVITE was
given up) is ACKed and then ended with a BYE (§13.2.2.4: we never want a dialog we cannot
account for).  ``SipEndpoint.send_stateless_nowait``, on the message path, stays with the
endpoint.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import trio

from sip.dialog import Dialog
from sip.endpoint_client import ClientRequest
from sip.errors import LocalProtocolError, RemoteProtocolError
from sip.headers import Via
from sip.message import Message, Request, Response
from sip.peers import peer_for_uri
from sip.timers import TimerConfig
from sip.transaction import Peer
from sip.transport import SipTransport
from sip.transport_types import TransportError
from sip.uri import SipUri

__all__ = ["NO_PEER", "StatelessSends"]

# the endpoint's lines keep the logger name they had when this was one module
log = logging.getLogger("sip.endpoint")

NO_PEER = Peer("udp", "0.0.0.0", 0)  # a dialog owner's response with no known peer


class StatelessSends:
    """ACK, BYE and stateless sends of ``SipEndpoint`` (a mixin: its state is set there)."""

    timer_config: TimerConfig
    _transport: SipTransport
    _resent_2xx: int
    # the endpoint's own
    make_via: Callable[[str], Via]
    request: Callable[[Request, Peer], ClientRequest]

    async def send_stateless(self, message: Message, peer: Peer) -> None:
        """Send outside any transaction (ACK for 2xx, 2xx retransmissions); errors logged."""
        if isinstance(message, Response):  # the first 2xx went through its transaction
            self._resent_2xx += 1
        await self._send_stateless(message, peer)

    async def _send_stateless(self, message: Message, peer: Peer) -> None:
        try:
            await self._transport.send(message, peer)
        except TransportError as exc:
            log.info("stateless send to %s failed: %s", peer, exc)

    async def ack_and_bye(self, response: Response, peer: Peer | None) -> None:
        """ACK + BYE a 2xx to INVITE that belongs to no session (§13.2.2.4)."""
        try:
            invite = Request(
                "INVITE",
                response.contacts[0].uri
                if response.contacts
                else SipUri("sip", None, None, "invalid", None),
                response.headers,
            )
            dialog = Dialog.from_uac(invite, response)
        except (RemoteProtocolError, LocalProtocolError) as exc:
            log.info("cannot ACK a stray 2xx: %s", exc)
            return
        if peer == NO_PEER:
            peer = None
        default = peer.transport if peer else "udp"
        try:
            next_peer = peer_for_uri(dialog.next_hop(), default)
        except LocalProtocolError as exc:
            log.info("cannot ACK a stray 2xx: %s", exc)
            return
        if (  # no route set: back along the flow the 2xx belongs to (a phone behind NAT)
            peer is not None
            and not dialog.route_set
            and (not peer.reliable or self._transport.has_connection(peer))
        ):
            next_peer = peer
        ack = dialog.create_ack(response.cseq.seq)
        ack = ack.with_headers(ack.headers.prepend("Via", str(self.make_via(next_peer.transport))))
        await self.send_stateless(ack, next_peer)
        bye = dialog.create_request("BYE")
        bye = bye.with_headers(bye.headers.prepend("Via", str(self.make_via(next_peer.transport))))
        client = self.request(bye, next_peer)
        with trio.move_on_after(64 * self.timer_config.t1):
            async for _ in client:
                pass
