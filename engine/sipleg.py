"""A leg that is a real SIP INVITE session (a registered device or a carrier gateway).

``sip.uac_driver.InviteClient`` already speaks the leg protocol of ``engine/legs.py`` (its
session emits the protocol-neutral events of ``sip.leg_events``); this adds the one thing
only the engine knows: answering the party's re-offers from its relay side.
"""

from __future__ import annotations

from engine.legs import OfferAnswerer, answer_with
from sip.uac_driver import InviteClient

__all__ = ["SipLeg"]


class SipLeg(InviteClient):
    """One outgoing INVITE; ``label`` names the party and the device for logs."""

    def bind_media(self, side: OfferAnswerer) -> None:
        """Answer this party's re-offers from its relay side (see ``engine.legs.answer_with``)."""
        self.on_offer = answer_with(side)
