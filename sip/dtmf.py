"""DTMF carried in SIP INFO, sans-IO: ``application/dtmf-relay`` and ``application/dtmf``.

``application/dtmf-relay`` (the de-facto format of Cisco and most phones, no RFC) is a body of
``Key=Value`` lines: ``Signal=5`` and ``Duration=160`` (milliseconds). ``application/dtmf``
is the bare digit (``5``). A digit is one of ``0-9 * # A-D`` (RFC 4733 events 0-15; ``E``/``F``
and 10/11 are read as ``*``/``#``, as some phones write them); a missing ``Duration`` is
``DEFAULT_DURATION_MS``.

``parse_dtmf_info`` tells the session what to answer: a ``DtmfInfo`` (200 and a ``LegDtmf``),
``None`` for another content type (the session's usual answer to INFO), or ``DtmfInfoError``
naming what is wrong (400 with that reason).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "DEFAULT_DURATION_MS",
    "DIGITS",
    "DTMF_CONTENT_TYPES",
    "DtmfInfo",
    "DtmfInfoError",
    "digit_of_event",
    "event_of_digit",
    "parse_dtmf_info",
]

DIGITS = "0123456789*#ABCD"  # RFC 4733 §3.2: events 0-15 in this order
DEFAULT_DURATION_MS = 250
MAX_DURATION_MS = 8000  # a longer "digit" is a stuck key: capped
DTMF_CONTENT_TYPES = ("application/dtmf-relay", "application/dtmf")
_ALIASES = {"E": "*", "F": "#", "10": "*", "11": "#"}


@dataclass(frozen=True, slots=True)
class DtmfInfo:
    digit: str  # one of DIGITS
    duration_ms: int


class DtmfInfoError(ValueError):
    """A DTMF INFO body that cannot be read; the message is the 400's reason."""


def event_of_digit(digit: str) -> int:
    """The RFC 4733 event code of a digit (ValueError for anything else)."""
    index = DIGITS.find(digit.upper()) if len(digit) == 1 else -1
    if index < 0:
        raise ValueError(f"not a DTMF digit: {digit!r}")
    return index


def digit_of_event(event: int) -> str | None:
    """The digit of an RFC 4733 event code, None for events other than the 16 DTMF ones."""
    return DIGITS[event] if 0 <= event < len(DIGITS) else None


def _digit(text: str) -> str:
    value = text.strip().upper()
    value = _ALIASES.get(value, value)
    if len(value) != 1 or value not in DIGITS:
        raise DtmfInfoError(f"Bad DTMF Signal {text.strip()[:16]!r}")
    return value


def _duration(text: str) -> int:
    try:
        value = int(text.strip())
    except ValueError:
        raise DtmfInfoError(f"Bad DTMF Duration {text.strip()[:16]!r}") from None
    if value <= 0:
        raise DtmfInfoError(f"Bad DTMF Duration {value}")
    return min(value, MAX_DURATION_MS)


def parse_dtmf_info(content_type: str | None, body: bytes) -> DtmfInfo | None:
    """The digit of an INFO body; None when ``content_type`` is not a DTMF one."""
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    if media_type not in DTMF_CONTENT_TYPES:
        return None
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise DtmfInfoError("DTMF body is not UTF-8 text") from None
    if media_type == "application/dtmf":
        return DtmfInfo(_digit(text), DEFAULT_DURATION_MS)
    fields: dict[str, str] = {}
    for line in text.splitlines():
        name, sep, value = line.partition("=")
        if sep:
            fields[name.strip().lower()] = value
    if "signal" not in fields:
        raise DtmfInfoError("DTMF body has no Signal")
    duration = fields.get("duration")
    return DtmfInfo(
        _digit(fields["signal"]),
        DEFAULT_DURATION_MS if duration is None else _duration(duration),
    )
