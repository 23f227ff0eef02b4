"""Errors raised by the SIP layer, by blame (after h11).

``RemoteProtocolError`` means the peer sent something we cannot accept; it carries the status a
UAS should answer with (400 for malformed input, 505 for a wrong SIP version, 413 for an
oversized message, ...).  ``LocalProtocolError`` means our own code misused the API, e.g. asked to
serialise a request that lacks a mandatory header.
"""

from __future__ import annotations

__all__ = ["LocalProtocolError", "RemoteProtocolError"]


class RemoteProtocolError(Exception):
    """Bad input from the peer; ``status_hint`` is the response a UAS should send."""

    def __init__(self, reason: str, status_hint: int = 400) -> None:
        super().__init__(reason, status_hint)
        self.reason = reason
        self.status_hint = status_hint

    def __str__(self) -> str:
        return f"{self.reason} (status {self.status_hint})"


class LocalProtocolError(Exception):
    """Our own misuse of the SIP layer (e.g. serialising a request without Call-ID)."""
