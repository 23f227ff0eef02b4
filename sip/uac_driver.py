"""The trio driver of the caller's INVITE session (``sip.uac_session``): a call leg.

``InviteClient`` is what a call controller needs of a leg (``start``, ``next_event``,
``cancel``, ``bye``, ``reinvite``): its session emits the protocol-neutral events of
``sip.leg_events`` itself, and ``sip.session_driver`` steps it (see there).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import trio

from sip.invite_dialog import OfferHandler
from sip.message import Request
from sip.session_driver import SessionDriver
from sip.transaction_types import Peer
from sip.uac_session import UacSession
from sip.uri import NameAddr, SipUri

if TYPE_CHECKING:
    from sip.endpoint import SipEndpoint

__all__ = ["InviteClient"]


class InviteClient(SessionDriver):
    """One outgoing INVITE session: the call leg of a device or gateway."""

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
        self.peer = peer
        self._uac = UacSession(
            peer=peer,
            request_uri=request_uri,
            from_addr=from_addr,
            to_addr=to_addr,
            random_token=endpoint.random_token,
            local_address=endpoint.local_address,
            config=endpoint.timer_config,
            credentials=credentials,
            headers=headers,
            user_agent=endpoint.user_agent,
            on_offer=on_offer,
        )
        super().__init__(endpoint, self._uac, label or str(request_uri))

    @property
    def invite(self) -> Request | None:
        """The INVITE as last sent (None before ``start``)."""
        return self._uac.invite

    async def start(self, offer: bytes | None) -> None:
        """Send the INVITE with ``offer`` (None: late offer); events follow on ``next_event``."""
        self._uac.start(offer, trio.current_time())
        # the step sends the INVITE before any checkpoint: a caller cancelled in here leaves
        # the session registered, so its aftermath (CANCEL, ACK+BYE of a 2xx) is handled
        self._begin()
        await trio.lowlevel.checkpoint()

    async def cancel(self) -> None:
        """Give up on the call (§9.1); after the answer this is ``bye()``."""
        self.cancel_nowait()
        await trio.lowlevel.checkpoint()

    def cancel_nowait(self) -> None:
        """``cancel`` without a checkpoint: it never waits (the CANCEL goes out now)."""
        self._uac.cancel(trio.current_time())
        self._kick()

    async def bye(self) -> None:
        """BYE an answered call; before the answer this is ``cancel()``."""
        self.bye_nowait()
        await trio.lowlevel.checkpoint()

    def bye_nowait(self) -> None:
        """``bye`` without a checkpoint: it never waits (the BYE goes out now)."""
        self._uac.bye(trio.current_time())
        self._kick()
