"""The protocol-neutral events of one call leg, as a call controller sees them.

A leg is one outgoing INVITE (or a sandbox number answered in-process): ``LegRinging`` zero
or more times, then exactly one of ``LegAnswered`` / ``LegFailed``; after ``LegAnswered``
possibly one ``LegHungUp`` when the far end hangs up, and any number of ``LegDtmf`` (a digit
the party sent in a SIP INFO, ``sip.dtmf``) while the dialog lasts.  The SIP session
(``sip.uac_session``) emits these itself, so nothing between the session and the call
renames them; the engine's sandbox legs emit the same ones.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["LegAnswered", "LegDtmf", "LegEvent", "LegFailed", "LegHungUp", "LegRinging"]


@dataclass(frozen=True, slots=True)
class LegRinging:
    status: int
    sdp: bytes | None = None  # early media (183 with SDP)


@dataclass(frozen=True, slots=True)
class LegAnswered:
    sdp: bytes | None


@dataclass(frozen=True, slots=True)
class LegFailed:
    status: int
    reason: str


@dataclass(frozen=True, slots=True)
class LegHungUp:
    reason: str


@dataclass(frozen=True, slots=True)
class LegDtmf:
    """The party sent a DTMF digit in the dialog (SIP INFO ``application/dtmf-relay``)."""

    digit: str  # 0-9 * # A-D
    duration_ms: int


LegEvent = LegRinging | LegAnswered | LegFailed | LegHungUp | LegDtmf
