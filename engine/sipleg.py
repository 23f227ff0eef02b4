"""A leg that is a real SIP INVITE session (a registered device or a carrier gateway).

Adapts ``sip.session.InviteClient`` to the protocol-neutral leg events of ``engine/legs.py``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from engine.legs import (
    LegAnswered,
    LegEvent,
    LegFailed,
    LegHungUp,
    LegRinging,
    OfferAnswerer,
    answer_with,
)
from sip.session import Answered, InviteClient, Progress, Rejected, RemoteBye, RemoteCancel

if TYPE_CHECKING:
    from sip.endpoint import SipEndpoint
    from sip.transaction import Peer
    from sip.uri import NameAddr, SipUri

logger = logging.getLogger(__name__)


class SipLeg:
    """One outgoing INVITE; ``label`` names the party and the device for logs."""

    def __init__(
        self,
        endpoint: SipEndpoint,
        *,
        label: str,
        peer: Peer,
        request_uri: SipUri,
        from_addr: NameAddr,
        to_addr: NameAddr,
        credentials: tuple[str, str] | None = None,
    ) -> None:
        self._label = label
        self._endpoint = endpoint
        self._peer = peer
        self._request_uri = request_uri
        self._from = from_addr
        self._to = to_addr
        self._credentials = credentials
        self._client: InviteClient | None = None
        self._on_offer: Callable[[bytes | None], bytes | None] | None = None

    def bind_media(self, side: OfferAnswerer) -> None:
        """Answer this party's re-offers from its relay side (see ``engine.legs.answer_with``)."""
        self._on_offer = answer_with(side)

    @property
    def label(self) -> str:
        return self._label

    async def start(self, offer: bytes | None) -> None:
        self._client = InviteClient(
            self._endpoint,
            peer=self._peer,
            request_uri=self._request_uri,
            from_addr=self._from,
            to_addr=self._to,
            body=offer,
            credentials=self._credentials,
            on_offer=self._on_offer,
        )
        await self._client.start()

    async def next_event(self) -> LegEvent:
        assert self._client is not None, "start() first"
        event = await self._client.next_event()
        if isinstance(event, Progress):
            return LegRinging(event.status, event.sdp)
        if isinstance(event, Answered):
            return LegAnswered(event.sdp)
        if isinstance(event, Rejected):
            return LegFailed(event.status, event.reason)
        if isinstance(event, RemoteBye):
            return LegHungUp(event.reason or "BYE")
        if isinstance(event, RemoteCancel):  # not expected on a client session
            return LegFailed(487, "Request Terminated")
        raise AssertionError(f"unexpected session event {event!r}")

    async def cancel(self) -> None:
        if self._client is not None:
            await self._client.cancel()

    async def bye(self) -> None:
        if self._client is not None:
            await self._client.bye()

    async def reinvite(self, sdp: bytes) -> bytes | None:
        if self._client is None:
            return None
        return await self._client.reinvite(sdp)
