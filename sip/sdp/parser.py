"""Reading SDP (RFC 8866): bytes to a :class:`~sip.sdp.model.SessionDescription`.

Reading is lenient where real peers are sloppy and a comment says why: bare LF line ends (RFC 8866
§5 says parsers SHOULD accept them), an empty ``s=``, a missing ``t=`` and an ``m=`` line without
formats (seen on rejected streams).  Anything else that does not fit the grammar raises
:class:`~sip.errors.RemoteProtocolError` (status hint 400), and nothing else, whatever the bytes.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from sip.errors import RemoteProtocolError
from sip.sdp.model import (
    Attribute,
    Connection,
    MediaDescription,
    Origin,
    SessionDescription,
    Timing,
)
from sip.sdp.serializer import MEDIA_ORDER, SESSION_ORDER, ordered_lines


def _parse_port(text: str, what: str) -> int:
    if not text.isascii() or not text.isdigit() or len(text) > 5:
        raise RemoteProtocolError(f"SDP: bad {what} {text!r}")
    port = int(text)
    if port > 65535:
        raise RemoteProtocolError(f"SDP: {what} out of range: {port}")
    return port


def _split_lines(data: bytes) -> list[tuple[str, str]]:
    if not isinstance(data, bytes | bytearray | memoryview):
        raise RemoteProtocolError("SDP: body is not bytes")
    # Bytes that are not UTF-8 (a Latin-1 session name) survive a round trip untouched.
    text = bytes(data).decode("utf-8", "surrogateescape")
    if "\x00" in text:
        raise RemoteProtocolError("SDP: NUL byte in body")
    raw = text.split("\n")
    lines: list[tuple[str, str]] = []
    for number, line in enumerate(raw, 1):
        if line.endswith("\r"):
            line = line[:-1]
        if not line:
            # Empty lines are only tolerated at the end (a trailing CRLF or two).
            if any(rest.strip("\r") for rest in raw[number:]):
                raise RemoteProtocolError(f"SDP: empty line {number}")
            continue
        if len(line) < 2 or line[1] != "=" or not ("a" <= line[0] <= "z"):
            raise RemoteProtocolError(f"SDP: line {number} is not <type>=<value>: {line[:40]!r}")
        if "\r" in line:
            raise RemoteProtocolError(f"SDP: stray CR in line {number}")
        lines.append((line[0], line[2:]))
    return lines


def _parse_connection(value: str) -> Connection:
    parts = value.split()
    if len(parts) != 3:
        raise RemoteProtocolError(f"SDP: bad c= line {value[:60]!r}")
    return Connection(address=parts[2], nettype=parts[0], addrtype=parts[1])


def _parse_origin(value: str) -> Origin:
    parts = value.split()
    if len(parts) != 6:
        raise RemoteProtocolError(f"SDP: bad o= line {value[:60]!r}")
    username, session_id, version, nettype, addrtype, address = parts
    if not version.isascii() or not version.isdigit():
        raise RemoteProtocolError(f"SDP: bad o= session version {version[:30]!r}")
    if not session_id.isascii() or not session_id.isdigit():
        raise RemoteProtocolError(f"SDP: bad o= session id {session_id[:30]!r}")
    return Origin(username, session_id, int(version), address, nettype, addrtype)


def _parse_timing(value: str) -> Timing:
    parts = value.split()
    if len(parts) != 2 or not all(p.isascii() and p.isdigit() for p in parts):
        raise RemoteProtocolError(f"SDP: bad t= line {value[:60]!r}")
    return Timing(int(parts[0]), int(parts[1]))


def _parse_attribute(value: str) -> Attribute:
    name, sep, rest = value.partition(":")
    if not name:
        raise RemoteProtocolError(f"SDP: attribute without a name {value[:60]!r}")
    return Attribute(name, rest if sep else None)


def _parse_media_line(value: str) -> MediaDescription:
    parts = value.split()
    # Lenient: RFC 8866 wants at least one format, but rejected streams sometimes come without.
    if len(parts) < 3:
        raise RemoteProtocolError(f"SDP: bad m= line {value[:60]!r}")
    media, port_text, proto, *formats = parts
    port_part, slash, count_part = port_text.partition("/")
    port = _parse_port(port_part, "m= port")
    count = _parse_port(count_part, "m= port count") if slash else None
    return MediaDescription(media, port, proto, tuple(formats), port_count=count)


@dataclass(slots=True)
class _MediaBuilder:
    head: MediaDescription
    connection: Connection | None = None
    attributes: list[Attribute] = dataclasses.field(default_factory=list)
    others: list[tuple[str, str]] = dataclasses.field(default_factory=list)

    def build(self) -> MediaDescription:
        return dataclasses.replace(
            self.head,
            connection=self.connection,
            attributes=tuple(self.attributes),
            other_lines=tuple(ordered_lines(self.others, MEDIA_ORDER)),
        )


def parse(data: bytes) -> SessionDescription:
    """Parse an SDP body; RemoteProtocolError (status hint 400) on anything malformed."""
    lines = _split_lines(data)
    if not lines or lines[0] != ("v", "0"):
        raise RemoteProtocolError("SDP: does not start with v=0")
    origin: Origin | None = None
    session_name: str | None = None
    connection: Connection | None = None
    times: list[Timing] = []
    attributes: list[Attribute] = []
    others: list[tuple[str, str]] = []
    media: list[_MediaBuilder] = []
    for kind, value in lines[1:]:
        if media:
            current = media[-1]
            if kind == "m":
                media.append(_MediaBuilder(_parse_media_line(value)))
            elif kind == "a":
                current.attributes.append(_parse_attribute(value))
            elif kind == "c" and current.connection is None:
                current.connection = _parse_connection(value)
            elif kind in "vost":
                raise RemoteProtocolError(f"SDP: {kind}= line inside a media section")
            else:
                # A second c= (layered multicast), i=, b=, k= and unknown letters stay verbatim.
                current.others.append((kind, value))
            continue
        if kind == "v":
            raise RemoteProtocolError("SDP: repeated v= line")
        elif kind == "o":
            if origin is not None:
                raise RemoteProtocolError("SDP: repeated o= line")
            origin = _parse_origin(value)
        elif kind == "s":
            if session_name is not None:
                raise RemoteProtocolError("SDP: repeated s= line")
            session_name = value  # lenient: an empty s= is common and harmless
        elif kind == "c":
            if connection is not None:
                raise RemoteProtocolError("SDP: repeated session-level c= line")
            connection = _parse_connection(value)
        elif kind == "t":
            times.append(_parse_timing(value))
        elif kind == "r":
            if not times:
                raise RemoteProtocolError("SDP: r= line before any t= line")
            last = times[-1]
            times[-1] = dataclasses.replace(last, repeats=(*last.repeats, value))
        elif kind == "a":
            attributes.append(_parse_attribute(value))
        elif kind == "m":
            media.append(_MediaBuilder(_parse_media_line(value)))
        else:
            others.append((kind, value))
    if origin is None:
        raise RemoteProtocolError("SDP: missing o= line")
    if session_name is None:
        raise RemoteProtocolError("SDP: missing s= line")
    return SessionDescription(
        origin=origin,
        session_name=session_name,
        connection=connection,
        times=tuple(times),
        attributes=tuple(attributes),
        media=tuple(m.build() for m in media),
        # Kept in RFC 8866 order (stable), which is the order serialize() writes them in.
        other_lines=tuple(ordered_lines(others, SESSION_ORDER)),
    )
