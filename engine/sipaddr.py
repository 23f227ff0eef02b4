"""The addresses the engine writes into the SIP requests it makes: the From of the legs it
sends out (the caller's identity), the To of an extension's devices, the Request-URI towards
a gateway, and the caller's identity taken from an inbound INVITE.

Each is built so that our own parser reads it back unchanged (``tests/sip`` checks it as a
property): an IPv6 host gets its brackets, a user part is kept in its escaped wire form, and
a caller who is not a number keeps its own identity: ``alice`` stays ``alice``, and the
anonymous caller of RFC 3323 stays ``"Anonymous" <sip:anonymous@anonymous.invalid>``.
"""

from __future__ import annotations

from sip.uri import NameAddr, SipUri, TelUri, Uri, uri_host, valid_user

ANONYMOUS = "anonymous"
ANONYMOUS_HOST = "anonymous.invalid"  # RFC 3323 §4.1.1.3


def caller_number(uri: Uri) -> str:
    """The caller's identity in an inbound INVITE's From: its user part as written (escapes
    kept), a tel URI's number, or ``anonymous`` for an anonymous or user-less From."""
    if isinstance(uri, SipUri):
        if uri.user is None or uri.host == ANONYMOUS_HOST:
            return ANONYMOUS
        return uri.user
    if isinstance(uri, TelUri) and valid_user(uri.number):
        return uri.number
    return ANONYMOUS


def split_caller_id(text: str) -> tuple[str | None, str] | None:
    """``"Name <user>"`` or a bare ``user`` -> (name, user); None when the user part is not a
    usable SIP user. Unlike ``engine.numbers.parse_caller_id`` (the API's rule: numbers only)
    the user may be any SIP user part, e.g. ``alice`` or ``anonymous`` from an inbound call."""
    stripped = text.strip()
    name: str | None = None
    user = stripped
    if stripped.endswith(">"):
        open_at = stripped.rfind("<")
        if open_at < 0:
            return None
        name = " ".join(stripped[:open_at].split()) or None
        user = stripped[open_at + 1 : -1].strip()
    if not user or not user.isascii() or not valid_user(user):
        return None
    return name, user


def caller_address(caller_id: str | None, fallback: str, domain: str) -> NameAddr:
    """The From of a leg we send out: the caller id's name and user at our ``domain`` (the
    anonymous caller at ``anonymous.invalid``); ``fallback`` (the charged extension) when the
    caller id is absent or unusable, and anonymous when that is empty too."""
    parsed = split_caller_id(caller_id) if caller_id else None
    if parsed is None:
        fallback_user = fallback if fallback and valid_user(fallback) else ANONYMOUS
        parsed = (None, fallback_user)
    name, user = parsed
    if user.lower() == ANONYMOUS:
        return NameAddr(SipUri("sip", ANONYMOUS, None, ANONYMOUS_HOST, None), name or "Anonymous")
    return NameAddr(SipUri("sip", user, None, uri_host(domain), None), name)


def local_address(user: str, domain: str) -> NameAddr:
    """``<sip:user@domain>``, e.g. the To of the INVITE to an extension's device."""
    return NameAddr(SipUri("sip", user, None, uri_host(domain), None))


def gateway_uri(number: str, transport: str, host: str, port: int | None) -> SipUri:
    """The Request-URI of a call to ``number`` through a gateway at ``host``:``port``."""
    params: tuple[tuple[str, str | None], ...] = ()
    if transport != "udp":
        params = (("transport", transport),)
    return SipUri("sip", number, None, uri_host(host), port, params)
