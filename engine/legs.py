"""Call legs: one outgoing INVITE towards one device, gateway or sandbox number.

A B2BUA is two symmetric legs exchanging protocol-neutral call-control events (the idea of
sippy's UA/CC events, without its globals and callbacks), defined in ``sip.leg_events`` so the
SIP session emits them itself. The call controller in
``engine/calls.py`` only ever sees the events below; whether a leg is a real SIP dialog
(``SipLeg``) or a sandbox number answered in-process (``engine/sandbox.py``) does not matter to it.

A leg's life: ``start()`` sends the INVITE; ``next_event()`` yields ``LegRinging`` (zero or more),
then exactly one of ``LegAnswered`` / ``LegFailed``; after ``LegAnswered`` possibly one
``LegHungUp`` when the far end hangs up. ``cancel()`` before the answer, ``bye()`` after it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Protocol

import trio

from sip.leg_events import LegAnswered, LegDtmf, LegEvent, LegFailed, LegHungUp, LegRinging

__all__ = [
    "FailedLeg",
    "Leg",
    "LegAnswered",
    "LegDtmf",
    "LegEvent",
    "LegFailed",
    "LegHungUp",
    "LegRinging",
    "OfferAnswerer",
    "answer_with",
]

logger = logging.getLogger(__name__)


class Leg(Protocol):
    """What the call controller needs from a leg."""

    @property
    def label(self) -> str:
        """Short human label for logs (number and device)."""
        ...

    async def start(self, offer: bytes | None) -> None: ...

    async def next_event(self) -> LegEvent: ...

    async def cancel(self) -> None: ...

    async def bye(self) -> None: ...

    async def reinvite(self, sdp: bytes) -> bytes | None: ...


class OfferAnswerer(Protocol):
    """The part of a media side that answers a party's own re-offers at once, from what the
    side already has (a SIP session asks synchronously; see ``engine.call_types.MediaSide``)."""

    def reanswer(self, offer: bytes) -> bytes:
        """Our answer to the party's re-offer (the media backend follows its new SDP)."""
        ...

    def reoffer(self) -> bytes:
        """Our offer for an offerless re-INVITE."""
        ...


def answer_with(side: OfferAnswerer) -> Callable[[bytes | None], bytes | None]:
    """An ``on_offer`` handler for a SIP session: answer the party's re-offer from its relay
    side (which also points the relay at any new address); an offerless re-INVITE gets our
    offer. A re-offer we cannot answer returns None (the session then keeps the last SDP)."""

    def on_offer(offer: bytes | None) -> bytes | None:
        try:
            return side.reanswer(offer) if offer else side.reoffer()
        except Exception:
            logger.warning("cannot answer a re-offer", exc_info=True)
            return None

    return on_offer


class FailedLeg:
    """A leg that fails at once (no registered device, no route): keeps the controller uniform."""

    def __init__(self, label: str, status: int, reason: str) -> None:
        self._label = label
        self._event: LegEvent | None = LegFailed(status, reason)

    @property
    def label(self) -> str:
        return self._label

    async def start(self, offer: bytes | None) -> None:
        return None

    async def next_event(self) -> LegEvent:
        if self._event is None:
            await trio.sleep_forever()
        event, self._event = self._event, None
        assert event is not None
        return event

    async def cancel(self) -> None:
        return None

    async def bye(self) -> None:
        return None

    async def reinvite(self, sdp: bytes) -> bytes | None:
        return None
