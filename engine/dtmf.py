"""A digit a party sent: reported on the call's event stream, passed on to the other party.

Digits reach a call two ways. RFC 4733 telephone-events travel in the party's RTP: the relay
forwards them to the other party itself (with that party's payload type) and reports each
digit once, when its end packet arrives (``engine.call_types.DtmfHeard``). A SIP INFO
(``application/dtmf-relay``) arrives as the leg event ``LegDtmf``: the relay then plays the
digit to the other party as RFC 4733 packets when that party agreed to telephone-event in
its SDP; otherwise the digit is not passed on (a DEBUG line says so).

Either way the call publishes one ``dtmf`` event: ``{"digit": "5", "party": NUMBER}``, the
number of the party that sent it.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from engine.call_types import Connected, MediaSide
from engine.supervise import is_supervisor

if TYPE_CHECKING:
    from engine.calls import SimpleCall
    from engine.legs import Leg

logger = logging.getLogger(__name__)

__all__ = ["digit_from_leg", "digit_from_media"]


def _connected_by(
    controller: SimpleCall, *, leg: Leg | None = None, side: MediaSide | None = None
) -> Connected | None:
    for connected in controller._connected.values():
        if (leg is not None and connected.leg is leg) or (
            side is not None and connected.side is side
        ):
            return connected
    return None


def _report(controller: SimpleCall, connected: Connected, digit: str) -> None:
    controller._changed("dtmf", {"digit": digit, "party": connected.party.number})


def digit_from_media(controller: SimpleCall, side: MediaSide, digit: str) -> None:
    """The relay saw the end of a telephone-event from ``side``'s party (already forwarded)."""
    connected = _connected_by(controller, side=side)
    if connected is None:  # the party left meanwhile
        logger.debug(
            "call %s: DTMF %s from a side no longer in the call", controller.call.id, digit
        )
        return
    _report(controller, connected, digit)


def digit_from_leg(controller: SimpleCall, leg: Leg, digit: str, duration_ms: int) -> None:
    """A SIP INFO digit from ``leg``'s party: reported, and played to the other parties."""
    connected = _connected_by(controller, leg=leg)
    if connected is None:
        logger.debug("call %s: DTMF %s from a leg not connected", controller.call.id, digit)
        return
    _report(controller, connected, digit)
    media = controller._media
    if media is None:
        return
    for other in list(controller._connected.values()):
        if other is connected or is_supervisor(other.party):
            continue
        if not media.send_dtmf(other.side, digit, duration_ms):
            logger.debug(
                "call %s: DTMF %s not passed to %s: it did not agree to telephone-event",
                controller.call.id,
                digit,
                other.party.number,
            )
