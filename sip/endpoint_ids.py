"""Fresh identifiers the endpoint draws (tags, random tokens) and our Contact URI."""

from __future__ import annotations

import secrets

from sip.uri import SipUri, uri_host

__all__ = ["RandomTokens", "cancel_answer_tag", "contact_uri", "new_tag"]


def new_tag() -> str:
    """A fresh random tag (§19.3: at least 32 bits of randomness), for our answers' To."""
    return secrets.token_hex(8)


def cancel_answer_tag() -> str:
    """The To tag of an answer the transaction layer gives a CANCEL itself."""
    return secrets.token_hex(6)


def contact_uri(host: str, port: int, transport: str) -> SipUri:
    """Our Contact for a listener at ``host``:``port`` (an IPv6 literal gets its brackets)."""
    params: tuple[tuple[str, str | None], ...] = ()
    if transport.lower() != "udp":
        params = (("transport", transport.lower()),)
    return SipUri("sip", None, None, uri_host(host), port, params)


class RandomTokens:
    """64 random bits as hex per call (tags, branches, Call-IDs, cnonces), from the system's
    CSPRNG like ``secrets.token_hex(8)``, but drawn ``BATCH`` tokens at a time: a call takes
    about seven, and one ``getrandom`` system call each was a measurable share of its CPU."""

    BATCH = 64

    __slots__ = ("_at", "_hex")

    def __init__(self) -> None:
        self._hex = ""
        self._at = 0

    def __call__(self) -> str:
        at = self._at
        if at >= len(self._hex):
            self._hex = secrets.token_hex(8 * self.BATCH)
            at = 0
        self._at = at + 16
        return self._hex[at : at + 16]
