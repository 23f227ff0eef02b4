"""Writing SDP (RFC 8866): a :class:`~sip.sdp.model.SessionDescription` to CRLF-terminated lines.

Lines are written in the order RFC 8866 §5 prescribes (lines of the same type keep their relative
order); unknown type letters are written just before ``a=``.  Writing is strict: a field that
could not be parsed back, or that would inject a line (CR, LF, NUL), raises
:class:`~sip.errors.LocalProtocolError`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING

from sip.errors import LocalProtocolError

if TYPE_CHECKING:
    from sip.sdp.model import MediaDescription, SessionDescription

# Where the uninterpreted lines go when serialising (RFC 8866 §5 order); unknown letters last.
SESSION_ORDER: Mapping[str, int] = MappingProxyType(
    {"i": 0, "u": 1, "e": 2, "p": 3, "c": 4, "b": 5, "z": 7, "k": 8}
)
MEDIA_ORDER: Mapping[str, int] = MappingProxyType({"i": 0, "c": 1, "b": 2, "k": 3})
# Letters with a field of their own, which other_lines must not use (r= lives in Timing).
_SESSION_STRUCTURAL = frozenset("vostcmar")
_MEDIA_STRUCTURAL = frozenset("vostma")
_BAD_IN_LINE = ("\r", "\n", "\x00")


# whitespace as str.isspace() has it (re's \s is the same Unicode test) or a NUL
_NOT_IN_TOKEN = re.compile(r"[\s\x00]")


def _check_token(what: str, value: str) -> None:
    if not value or _NOT_IN_TOKEN.search(value) is not None:
        raise LocalProtocolError(f"SDP: {what} must be a non-empty token, got {value!r}")


def _check_other_lines(lines: Iterable[tuple[str, str]], structural: frozenset[str]) -> None:
    for letter, _ in lines:
        if len(letter) != 1 or not ("a" <= letter <= "z") or letter in structural:
            raise LocalProtocolError(f"SDP: {letter!r} cannot be written as an extra line")


def _check_fields(sd: SessionDescription) -> None:
    """Strict when sending: refuse what could not be parsed back (or would inject lines)."""
    o = sd.origin
    for what, value in (
        ("o= username", o.username),
        ("o= session id", o.session_id),
        ("o= nettype", o.nettype),
        ("o= addrtype", o.addrtype),
        ("o= address", o.address),
    ):
        _check_token(what, value)
    if not o.session_id.isascii() or not o.session_id.isdigit() or o.version < 0:
        raise LocalProtocolError(f"SDP: bad o= session id/version {o.session_id!r} {o.version}")
    _check_other_lines(sd.other_lines, _SESSION_STRUCTURAL)
    conns = [sd.connection] + [m.connection for m in sd.media]
    for conn in conns:
        if conn is not None:
            for what, value in (("c= field", conn.nettype), ("c= field", conn.addrtype)):
                _check_token(what, value)
            _check_token("c= address", conn.address)
    for t in sd.times:
        if t.start < 0 or t.stop < 0:
            raise LocalProtocolError("SDP: negative t= time")
    for attr in sd.attributes + tuple(a for m in sd.media for a in m.attributes):
        if not attr.name or ":" in attr.name:
            raise LocalProtocolError(f"SDP: bad attribute name {attr.name!r}")
    for m in sd.media:
        for what, value in (("m= media", m.media), ("m= proto", m.proto)):
            _check_token(what, value)
        for fmt in m.formats:
            _check_token("m= format", fmt)
        if not 0 <= m.port <= 65535 or (
            m.port_count is not None and not 0 <= m.port_count <= 65535
        ):
            raise LocalProtocolError(f"SDP: bad m= port {m.port}/{m.port_count}")
        structural = _MEDIA_STRUCTURAL | ({"c"} if m.connection is None else set())
        _check_other_lines(m.other_lines, frozenset(structural))


def ordered_lines(
    lines: Iterable[tuple[str, str]], order: Mapping[str, int]
) -> list[tuple[str, str]]:
    return sorted(lines, key=lambda line: order.get(line[0], 9))


def media_lines(media: MediaDescription) -> list[str]:
    """The lines of one media section, ``m=`` first, without line ends."""
    port = str(media.port) if media.port_count is None else f"{media.port}/{media.port_count}"
    m = " ".join((media.media, port, media.proto, *media.formats))
    out = [f"m={m}"]
    out += [f"{t}={v}" for t, v in ordered_lines(media.other_lines, MEDIA_ORDER) if t == "i"]
    if media.connection is not None:
        out.append(f"c={media.connection}")
    out += [f"{t}={v}" for t, v in ordered_lines(media.other_lines, MEDIA_ORDER) if t != "i"]
    out += [f"a={attr}" for attr in media.attributes]
    return out


def serialize(sd: SessionDescription) -> bytes:
    """CRLF-terminated lines in RFC 8866 order; LocalProtocolError if a field is unwritable."""
    _check_fields(sd)
    out = ["v=0", f"o={sd.origin}", f"s={sd.session_name}"]
    others = ordered_lines(sd.other_lines, SESSION_ORDER)
    out += [f"{t}={v}" for t, v in others if SESSION_ORDER.get(t, 9) < 4]
    if sd.connection is not None:
        out.append(f"c={sd.connection}")
    out += [f"{t}={v}" for t, v in others if 4 <= SESSION_ORDER.get(t, 9) < 6]
    for timing in sd.times:
        out.append(f"t={timing.start} {timing.stop}")
        out += [f"r={r}" for r in timing.repeats]
    out += [f"{t}={v}" for t, v in others if SESSION_ORDER.get(t, 9) > 6]
    out += [f"a={attr}" for attr in sd.attributes]
    for media in sd.media:
        out += media_lines(media)
    for line in out:
        if any(bad in line for bad in _BAD_IN_LINE):
            raise LocalProtocolError(f"SDP: CR, LF or NUL inside line {line[:40]!r}")
    return ("\r\n".join(out) + "\r\n").encode("utf-8", "surrogateescape")
