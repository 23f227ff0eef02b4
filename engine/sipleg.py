"""A leg that is a real SIP INVITE session (a registered device or a carrier gateway).

``sip.uac_driver.InviteClient`` already speaks the leg protocol of ``engine/legs.py`` (its
session emits the protocol-neutral events of ``sip.leg_events``); this adds what only the
engine knows: answering the party's re-offers from its relay side, and keeping the dialog
state of the answered leg in the store while it lasts (``engine.dialogs``), so that another
node can BYE it if this one dies.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from engine.dialogs import DialogKeeper, leg_dialog
from engine.legs import OfferAnswerer, answer_with
from sip.endpoint import SipEndpoint
from sip.leg_events import LegAnswered, LegEvent, LegFailed, LegHungUp
from sip.transaction_types import Peer
from sip.uac_driver import InviteClient
from sip.uri import NameAddr, SipUri

__all__ = ["SipLeg"]


class SipLeg(InviteClient):
    """One outgoing INVITE; ``label`` names the party and the device for logs.
    ``keeper`` and ``phonecall``: where the answered dialog's state is kept, for which call."""

    def __init__(
        self,
        endpoint: SipEndpoint,
        *,
        peer: Peer,
        request_uri: SipUri,
        from_addr: NameAddr,
        to_addr: NameAddr,
        label: str = "",
        headers: Sequence[tuple[str, str]] = (),
        keeper: DialogKeeper | None = None,
        phonecall: str = "",
    ) -> None:
        super().__init__(
            endpoint,
            peer=peer,
            request_uri=request_uri,
            from_addr=from_addr,
            to_addr=to_addr,
            label=label,
            headers=headers,
        )
        self._keeper = keeper
        self._phonecall = phonecall
        self._kept: tuple[str, str] | None = None  # (Call-ID, local tag) of the stored row

    def bind_media(self, side: OfferAnswerer) -> None:
        """Answer this party's re-offers from its relay side (see ``engine.legs.answer_with``)."""
        self.on_offer = answer_with(side)

    async def next_event(self) -> LegEvent:
        event = await super().next_event()
        self._observe(event)
        return event

    def forward_events(self, sink: Callable[[LegEvent], bool]) -> None:
        """As ``InviteClient.forward_events``; each event is seen here first."""

        def observed(event: LegEvent) -> bool:
            self._observe(event)
            return sink(event)

        super().forward_events(observed)

    def _observe(self, event: LegEvent) -> None:
        if isinstance(event, LegAnswered):
            self._keep()
        elif isinstance(event, LegHungUp | LegFailed):
            self._forget()

    def bye_nowait(self) -> None:  # bye() comes here too
        super().bye_nowait()
        self._forget()

    def cancel_nowait(self) -> None:  # cancel() comes here too
        super().cancel_nowait()
        self._forget()

    async def reinvite(self, sdp: bytes) -> bytes | None:
        try:
            return await super().reinvite(sdp)
        finally:
            if self._kept is not None:
                self._keep()  # our CSeq moved on

    def _keep(self) -> None:
        dialog = self.dialog
        if self._keeper is None or dialog is None:
            return
        self._keeper.answered(self._phonecall, leg_dialog(dialog, self.peer))
        self._kept = (dialog.call_id, dialog.local_tag)

    def _forget(self) -> None:
        if self._keeper is not None and self._kept is not None:
            self._keeper.ended(*self._kept)
            self._kept = None
