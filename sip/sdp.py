"""SDP (RFC 8866) parsing and serialising, and the offer/answer rules (RFC 3264) a B2BUA needs.

Theory of operation
-------------------
A session description is a list of ``<type>=<value>`` lines: a session section (RFC 8866 §5:
``v o s i u e p c b t r z k a``) followed by media sections, each opened by ``m=`` (§5.14:
``m i c b k a``).  ``parse()`` turns the bytes into frozen dataclasses and ``serialize()`` turns
them back into CRLF-terminated lines.  Lines the model does not interpret (``i= u= e= p= b= z= k=``
and type letters this module does not know) are kept verbatim in ``other_lines``, and attributes
(``a=``) are kept verbatim and in order in ``attributes``, so a description that passes through the
B2BUA loses nothing.  Serialising writes the lines back in the order RFC 8866 prescribes (lines of
the same type keep their relative order); unknown type letters are written just before ``a=``.

Reading is lenient where real peers are sloppy and a comment says why: bare LF line ends (RFC 8866
§5 says parsers SHOULD accept them), an empty ``s=``, a missing ``t=`` and an ``m=`` line without
formats (seen on rejected streams).  Anything else that does not fit the grammar raises
:class:`~sip.errors.RemoteProtocolError` (status hint 400), and nothing else, whatever the bytes.

Offer/answer (RFC 3264): :func:`make_offer` builds an initial offer (§5); :func:`make_answer`
answers an offer stream by stream (§6): the answer has as many ``m=`` lines as the offer, in the
same order; a stream is accepted with the codecs both sides support in the *offerer's* order
(§6.1) and rejected with port 0 otherwise; the direction is mirrored (sendonly -> recvonly,
recvonly -> sendonly, inactive -> inactive).  Hold and resume are re-offers that change the
direction attribute (RFC 3264 §8.4, RFC 6337 §5): :func:`with_direction`, :func:`hold`.
Media anchoring rewrites the connection address, the ports and the RFC 3605 ``a=rtcp`` attribute
(:func:`rewrite_connection`); every new offer from the same side must carry a higher ``o=``
version (RFC 3264 §8), which :func:`bump_version` provides.
"""

from __future__ import annotations

import dataclasses
import enum
import logging
import secrets
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

from sip.errors import LocalProtocolError, RemoteProtocolError

logger = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_AUDIO_CODECS",
    "DEFAULT_VIDEO_CODECS",
    "ICE_ATTRIBUTES",
    "Attribute",
    "Codec",
    "Connection",
    "Direction",
    "MediaDescription",
    "Origin",
    "Rtcp",
    "SessionDescription",
    "Timing",
    "bump_version",
    "hold",
    "make_answer",
    "make_offer",
    "parse",
    "rewrite_connection",
    "with_direction",
]


class Direction(enum.Enum):
    """The direction attributes of RFC 8866 §6.7 (from the point of view of the writer)."""

    SENDRECV = "sendrecv"
    SENDONLY = "sendonly"
    RECVONLY = "recvonly"
    INACTIVE = "inactive"

    @property
    def sends(self) -> bool:
        return self in (Direction.SENDRECV, Direction.SENDONLY)

    @property
    def receives(self) -> bool:
        return self in (Direction.SENDRECV, Direction.RECVONLY)

    @classmethod
    def from_flags(cls, sends: bool, receives: bool) -> Direction:
        if sends and receives:
            return cls.SENDRECV
        if sends:
            return cls.SENDONLY
        if receives:
            return cls.RECVONLY
        return cls.INACTIVE

    def answer(self, local: Direction | None = None) -> Direction:
        """The direction an answerer writes for this offered direction (RFC 3264 §6.1).

        ``local`` is what the answerer itself would like (default sendrecv): it sends only if the
        offerer receives and it wants to send, and receives only if the offerer sends.
        """
        wanted = Direction.SENDRECV if local is None else local
        return Direction.from_flags(self.receives and wanted.sends, self.sends and wanted.receives)


_DIRECTIONS = frozenset(d.value for d in Direction)


@dataclass(frozen=True, slots=True)
class Origin:
    """``o=<username> <sess-id> <sess-version> <nettype> <addrtype> <unicast-address>`` (§5.2)."""

    username: str
    session_id: str  # digits, kept as written
    version: int
    address: str
    nettype: str = "IN"
    addrtype: str = "IP4"

    def __str__(self) -> str:
        return (
            f"{self.username} {self.session_id} {self.version} "
            f"{self.nettype} {self.addrtype} {self.address}"
        )


@dataclass(frozen=True, slots=True)
class Connection:
    """``c=<nettype> <addrtype> <connection-address>`` (§5.7); a multicast TTL stays in address."""

    address: str
    nettype: str = "IN"
    addrtype: str = "IP4"

    @classmethod
    def for_address(cls, address: str) -> Connection:
        """IN IP4 or IN IP6 depending on the address (a ':' means IPv6)."""
        return cls(address=address, addrtype=_addrtype(address))

    @property
    def is_null(self) -> bool:
        """The RFC 2543 hold address 0.0.0.0 (RFC 3264 §8.4 says to still accept it)."""
        return self.address == "0.0.0.0" or self.address == "::"

    def __str__(self) -> str:
        return f"{self.nettype} {self.addrtype} {self.address}"


@dataclass(frozen=True, slots=True)
class Timing:
    """``t=<start> <stop>`` plus its ``r=`` repeat lines kept verbatim (§5.9, §5.10)."""

    start: int = 0
    stop: int = 0
    repeats: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Attribute:
    """``a=<name>`` (flag, value None) or ``a=<name>:<value>`` (value kept verbatim)."""

    name: str
    value: str | None = None

    def __str__(self) -> str:
        return self.name if self.value is None else f"{self.name}:{self.value}"


@dataclass(frozen=True, slots=True)
class Codec:
    """An RTP payload format: what ``a=rtpmap`` and ``a=fmtp`` say about one payload type."""

    payload_type: int
    name: str  # encoding name as written, e.g. "PCMU", "telephone-event", "H264"
    clock_rate: int
    channels: int | None = None
    fmtp: str | None = None

    def matches(self, other: Codec) -> bool:
        """Same encoding (name case-insensitive, clock rate, channels; H264 packetization-mode)."""
        if self.name.lower() != other.name.lower() or self.clock_rate != other.clock_rate:
            return False
        if (self.channels or 1) != (other.channels or 1):
            return False
        if self.name.lower() == "h264":
            # RFC 6184 §8.2.2: streams with different packetization modes are different formats.
            return _fmtp_param(self.fmtp, "packetization-mode", "0") == _fmtp_param(
                other.fmtp, "packetization-mode", "0"
            )
        return True

    @property
    def rtpmap(self) -> str:
        suffix = "" if self.channels is None else f"/{self.channels}"
        return f"{self.payload_type} {self.name}/{self.clock_rate}{suffix}"


@dataclass(frozen=True, slots=True)
class Rtcp:
    """The RFC 3605 ``a=rtcp:<port> [<nettype> <addrtype> <address>]`` attribute."""

    port: int
    connection: Connection | None = None


# RFC 3551 §6 static payload types that may appear without an rtpmap line.
_STATIC_PAYLOAD_TYPES: Mapping[int, tuple[str, int]] = MappingProxyType(
    {
        0: ("PCMU", 8000),
        3: ("GSM", 8000),
        4: ("G723", 8000),
        8: ("PCMA", 8000),
        9: ("G722", 8000),
        13: ("CN", 8000),
        18: ("G729", 8000),
        26: ("JPEG", 90000),
        31: ("H261", 90000),
        34: ("H263", 90000),
    }
)

DEFAULT_AUDIO_CODECS: tuple[Codec, ...] = (
    Codec(0, "PCMU", 8000),
    Codec(8, "PCMA", 8000),
    Codec(101, "telephone-event", 8000, fmtp="0-16"),
)
DEFAULT_VIDEO_CODECS: tuple[Codec, ...] = (
    Codec(96, "H264", 90000, fmtp="profile-level-id=42e01f;packetization-mode=1"),
    Codec(97, "VP8", 90000),
)

# Formats that carry no media of their own: a stream offering only these is rejected.
_AUXILIARY_CODECS = frozenset({"telephone-event", "cn", "red", "ulpfec", "rtx", "flexfec"})


def _addrtype(address: str) -> str:
    return "IP6" if ":" in address else "IP4"


def _fmtp_param(fmtp: str | None, name: str, default: str) -> str:
    if fmtp is None:
        return default
    for part in fmtp.split(";"):
        key, sep, value = part.strip().partition("=")
        if sep and key.strip().lower() == name:
            return value.strip()
    return default


def _parse_port(text: str, what: str) -> int:
    if not text.isascii() or not text.isdigit() or len(text) > 5:
        raise RemoteProtocolError(f"SDP: bad {what} {text!r}")
    port = int(text)
    if port > 65535:
        raise RemoteProtocolError(f"SDP: {what} out of range: {port}")
    return port


def _set_direction_attrs(
    attrs: tuple[Attribute, ...], direction: Direction
) -> tuple[Attribute, ...]:
    """Replace the direction attribute (kept where the first one was) or append one."""
    out: list[Attribute] = []
    placed = False
    for attr in attrs:
        if attr.value is None and attr.name in _DIRECTIONS:
            if not placed:
                out.append(Attribute(direction.value))
                placed = True
            continue
        out.append(attr)
    if not placed:
        out.append(Attribute(direction.value))
    return tuple(out)


def _explicit_direction(attrs: Iterable[Attribute]) -> Direction | None:
    found: Direction | None = None
    for attr in attrs:
        if attr.value is None and attr.name in _DIRECTIONS:
            found = Direction(attr.name)  # the last one wins if a peer writes several
    return found


@dataclass(frozen=True, slots=True)
class MediaDescription:
    """One media section: ``m=<media> <port>[/<count>] <proto> <fmt> ...`` and its lines."""

    media: str  # "audio", "video", "application", ...
    port: int
    proto: str  # "RTP/AVP", "RTP/SAVP", "UDP/TLS/RTP/SAVPF", ...
    formats: tuple[str, ...]
    connection: Connection | None = None
    attributes: tuple[Attribute, ...] = ()
    port_count: int | None = None
    other_lines: tuple[tuple[str, str], ...] = ()  # (type letter, value): i= b= k= and unknown

    # -- attribute access -------------------------------------------------------------------
    def attribute(self, name: str) -> str | None:
        """The value of the first ``a=name:value`` (None if absent or a flag)."""
        for attr in self.attributes:
            if attr.name == name:
                return attr.value
        return None

    def has_attribute(self, name: str) -> bool:
        return any(attr.name == name for attr in self.attributes)

    def attribute_values(self, name: str) -> list[str]:
        return [a.value for a in self.attributes if a.name == name and a.value is not None]

    # -- helpers ------------------------------------------------------------------------------
    def codecs(self) -> list[Codec]:
        """The RTP payload formats in ``m=`` order, described by rtpmap/fmtp or RFC 3551."""
        rtpmaps: dict[str, tuple[str, int, int | None]] = {}
        for value in self.attribute_values("rtpmap"):
            pt, _, rest = value.strip().partition(" ")
            parts = rest.strip().split("/")
            if len(parts) < 2 or not parts[1].isascii() or not parts[1].isdigit():
                continue  # a malformed rtpmap describes nothing we can use
            channels = (
                int(parts[2])
                if len(parts) > 2 and parts[2].isascii() and parts[2].isdigit()
                else None
            )
            rtpmaps.setdefault(pt, (parts[0], int(parts[1]), channels))
        fmtps: dict[str, str] = {}
        for value in self.attribute_values("fmtp"):
            pt, _, params = value.strip().partition(" ")
            fmtps.setdefault(pt, params.strip())
        result: list[Codec] = []
        for fmt in self.formats:
            if not fmt.isascii() or not fmt.isdigit() or len(fmt) > 3:
                continue
            number = int(fmt)
            if fmt in rtpmaps:
                name, rate, channels = rtpmaps[fmt]
            elif number in _STATIC_PAYLOAD_TYPES:
                name, rate = _STATIC_PAYLOAD_TYPES[number]
                channels = None
            else:
                continue
            result.append(Codec(number, name, rate, channels, fmtps.get(fmt)))
        return result

    @property
    def explicit_direction(self) -> Direction | None:
        """The media-level direction attribute, if any."""
        return _explicit_direction(self.attributes)

    @property
    def direction(self) -> Direction:
        """The media-level direction (sendrecv when absent); see SessionDescription.direction_of."""
        return self.explicit_direction or Direction.SENDRECV

    @property
    def rtcp(self) -> Rtcp | None:
        """The parsed RFC 3605 ``a=rtcp`` attribute (None if absent or malformed)."""
        value = self.attribute("rtcp")
        if value is None:
            return None
        parts = value.split()
        if not parts or not parts[0].isascii() or not parts[0].isdigit() or len(parts[0]) > 5:
            return None
        conn = Connection(parts[3], parts[1], parts[2]) if len(parts) >= 4 else None
        return Rtcp(int(parts[0]), conn)

    @property
    def rtcp_port(self) -> int | None:
        """Where the peer wants RTCP: a=rtcp, else the RTP port with rtcp-mux, else RTP+1.

        None for a disabled stream (port 0).
        """
        if self.port == 0:
            return None
        rtcp = self.rtcp
        if rtcp is not None:
            return rtcp.port
        if self.has_attribute("rtcp-mux"):
            return self.port
        return self.port + 1

    @property
    def is_rejected(self) -> bool:
        return self.port == 0

    def with_attributes(self, attributes: Iterable[Attribute]) -> MediaDescription:
        return dataclasses.replace(self, attributes=tuple(attributes))

    def lines(self) -> list[str]:
        port = str(self.port) if self.port_count is None else f"{self.port}/{self.port_count}"
        m = " ".join((self.media, port, self.proto, *self.formats))
        out = [f"m={m}"]
        out += [f"{t}={v}" for t, v in _ordered(self.other_lines, _MEDIA_ORDER) if t == "i"]
        if self.connection is not None:
            out.append(f"c={self.connection}")
        out += [f"{t}={v}" for t, v in _ordered(self.other_lines, _MEDIA_ORDER) if t != "i"]
        out += [f"a={attr}" for attr in self.attributes]
        return out


# Where the uninterpreted lines go when serialising (RFC 8866 §5 order); unknown letters last.
_SESSION_ORDER: Mapping[str, int] = MappingProxyType(
    {"i": 0, "u": 1, "e": 2, "p": 3, "c": 4, "b": 5, "z": 7, "k": 8}
)
_MEDIA_ORDER: Mapping[str, int] = MappingProxyType({"i": 0, "c": 1, "b": 2, "k": 3})
# Letters with a field of their own, which other_lines must not use (r= lives in Timing).
_SESSION_STRUCTURAL = frozenset("vostcmar")
_MEDIA_STRUCTURAL = frozenset("vostma")
_BAD_IN_LINE = ("\r", "\n", "\x00")


def _check_token(what: str, value: str) -> None:
    if not value or any(ch.isspace() for ch in value) or "\x00" in value:
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


def _ordered(lines: Iterable[tuple[str, str]], order: Mapping[str, int]) -> list[tuple[str, str]]:
    return sorted(lines, key=lambda line: order.get(line[0], 9))


@dataclass(frozen=True, slots=True)
class SessionDescription:
    """A whole session description (RFC 8866 §5)."""

    origin: Origin
    session_name: str = "-"
    connection: Connection | None = None
    times: tuple[Timing, ...] = (Timing(),)
    attributes: tuple[Attribute, ...] = ()
    media: tuple[MediaDescription, ...] = ()
    other_lines: tuple[tuple[str, str], ...] = ()  # (type letter, value): i u e p b z k, unknown

    @classmethod
    def parse(cls, data: bytes) -> SessionDescription:
        return parse(data)

    def serialize(self) -> bytes:
        """CRLF-terminated lines in RFC 8866 order; LocalProtocolError if a field is unwritable."""
        _check_fields(self)
        out = ["v=0", f"o={self.origin}", f"s={self.session_name}"]
        others = _ordered(self.other_lines, _SESSION_ORDER)
        out += [f"{t}={v}" for t, v in others if _SESSION_ORDER.get(t, 9) < 4]
        if self.connection is not None:
            out.append(f"c={self.connection}")
        out += [f"{t}={v}" for t, v in others if 4 <= _SESSION_ORDER.get(t, 9) < 6]
        for timing in self.times:
            out.append(f"t={timing.start} {timing.stop}")
            out += [f"r={r}" for r in timing.repeats]
        out += [f"{t}={v}" for t, v in others if _SESSION_ORDER.get(t, 9) > 6]
        out += [f"a={attr}" for attr in self.attributes]
        for media in self.media:
            out += media.lines()
        for line in out:
            if any(bad in line for bad in _BAD_IN_LINE):
                raise LocalProtocolError(f"SDP: CR, LF or NUL inside line {line[:40]!r}")
        return ("\r\n".join(out) + "\r\n").encode("utf-8", "surrogateescape")

    # -- helpers ------------------------------------------------------------------------------
    def attribute(self, name: str) -> str | None:
        for attr in self.attributes:
            if attr.name == name:
                return attr.value
        return None

    def connection_for(self, media: MediaDescription) -> Connection | None:
        """The media-level ``c=`` or, failing that, the session-level one (§5.7)."""
        return media.connection or self.connection

    def direction_of(self, media: MediaDescription) -> Direction:
        """The effective direction of a stream of this description.

        Media-level attribute, else session-level, else sendrecv (RFC 8866 §6.7); a connection
        address of 0.0.0.0 (old RFC 2543 hold, RFC 3264 §8.4) means the writer receives nothing.
        """
        direction = (
            media.explicit_direction or _explicit_direction(self.attributes) or Direction.SENDRECV
        )
        conn = self.connection_for(media)
        if conn is not None and conn.is_null:
            direction = Direction.from_flags(direction.sends, False)
        return direction

    @property
    def has_active_media(self) -> bool:
        """True if at least one stream has a non-zero port (an answer that accepted something)."""
        return any(m.port != 0 for m in self.media)


# ---------------------------------------------------------------------------------------------
# Parsing
# ---------------------------------------------------------------------------------------------


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
            other_lines=tuple(_ordered(self.others, _MEDIA_ORDER)),
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
        other_lines=tuple(_ordered(others, _SESSION_ORDER)),
    )


# ---------------------------------------------------------------------------------------------
# Offer / answer (RFC 3264)
# ---------------------------------------------------------------------------------------------


def _media_attributes(codecs: Sequence[Codec], direction: Direction) -> list[Attribute]:
    attrs: list[Attribute] = []
    for codec in codecs:
        attrs.append(Attribute("rtpmap", codec.rtpmap))
        if codec.fmtp is not None:
            attrs.append(Attribute("fmtp", f"{codec.payload_type} {codec.fmtp}"))
    attrs.append(Attribute(direction.value))
    return attrs


def _new_session_id() -> str:
    # RFC 8866 §5.2 suggests an NTP timestamp; any unique number will do.
    return str(secrets.randbits(62))


def make_offer(
    address: str,
    audio_port: int,
    video_port: int | None = None,
    *,
    audio_codecs: Sequence[Codec] = DEFAULT_AUDIO_CODECS,
    video_codecs: Sequence[Codec] = DEFAULT_VIDEO_CODECS,
    direction: Direction | str = Direction.SENDRECV,
    session_id: str | int | None = None,
    version: int = 0,
    username: str = "-",
    session_name: str = "-",
    ptime: int | None = 20,
) -> SessionDescription:
    """An initial offer (RFC 3264 §5): one audio stream and optionally one video stream."""
    if not audio_codecs:
        raise LocalProtocolError("make_offer: no audio codecs")
    if video_port is not None and not video_codecs:
        raise LocalProtocolError("make_offer: video port given but no video codecs")
    direction = Direction(direction)
    audio_attrs = _media_attributes(audio_codecs, direction)
    if ptime is not None:
        audio_attrs.insert(len(audio_attrs) - 1, Attribute("ptime", str(ptime)))
    media = [
        MediaDescription(
            "audio",
            audio_port,
            "RTP/AVP",
            tuple(str(c.payload_type) for c in audio_codecs),
            attributes=tuple(audio_attrs),
        )
    ]
    if video_port is not None:
        media.append(
            MediaDescription(
                "video",
                video_port,
                "RTP/AVP",
                tuple(str(c.payload_type) for c in video_codecs),
                attributes=tuple(_media_attributes(video_codecs, direction)),
            )
        )
    sid = _new_session_id() if session_id is None else str(session_id)
    return SessionDescription(
        origin=Origin(username, sid, version, address, addrtype=_addrtype(address)),
        session_name=session_name,
        connection=Connection.for_address(address),
        times=(Timing(0, 0),),
        media=tuple(media),
    )


_ANSWERABLE_PROTOS = ("RTP/AVP", "RTP/AVPF")

# RFC 8839 attributes that describe ICE candidates and credentials of the original endpoint.
ICE_ATTRIBUTES: frozenset[str] = frozenset(
    {
        "candidate",
        "remote-candidates",
        "end-of-candidates",
        "ice-ufrag",
        "ice-pwd",
        "ice-options",
        "ice-lite",
        "ice-mismatch",
        "ice-pacing",
    }
)


def _rejected(offered: MediaDescription) -> MediaDescription:
    # RFC 3264 §6: port 0; the formats are ignored but SDP needs at least one.
    formats = offered.formats[:1] or ("0",)
    return MediaDescription(offered.media, 0, offered.proto, formats)


def make_answer(
    offer: SessionDescription,
    address: str,
    ports: Sequence[int] | Mapping[str, int],
    *,
    audio_codecs: Sequence[Codec] = DEFAULT_AUDIO_CODECS,
    video_codecs: Sequence[Codec] = DEFAULT_VIDEO_CODECS,
    direction: Direction | str = Direction.SENDRECV,
    session_id: str | int | None = None,
    version: int = 0,
    username: str = "-",
    session_name: str = "-",
) -> SessionDescription:
    """Answer ``offer`` stream by stream (RFC 3264 §6).

    ``ports`` gives our RTP port per offered m-line (a sequence as long as ``offer.media``), or
    per media type (``{"audio": 20000, "video": 20002}``; a type without a port is rejected, and
    so is every stream of a type after the first).
    A stream is accepted with the offered formats we support, in the offerer's order, using the
    offerer's payload type numbers, rtpmap and fmtp lines (a relay forwards the payload as is);
    it is rejected (port 0) if it was offered with port 0, uses a profile other than RTP/AVP(F),
    or has no codec in common (telephone-event, CN and the like alone do not count).  The
    direction mirrors the offer's (sendonly -> recvonly, inactive -> inactive), narrowed by
    ``direction``, our own wish.  Check ``answer.has_active_media`` to decide on a 488.
    """
    local = Direction(direction)
    if not isinstance(ports, Mapping) and len(ports) != len(offer.media):
        raise LocalProtocolError(
            f"make_answer: {len(ports)} ports for {len(offer.media)} offered streams"
        )
    supported = {"audio": audio_codecs, "video": video_codecs}
    answered: list[MediaDescription] = []
    seen_types: set[str] = set()
    for index, offered in enumerate(offer.media):
        port: int | None
        if isinstance(ports, Mapping):
            port = None if offered.media in seen_types else ports.get(offered.media)
        else:
            port = ports[index]
        ours = supported.get(offered.media, ())
        if offered.port == 0 or not port or offered.proto not in _ANSWERABLE_PROTOS:
            answered.append(_rejected(offered))
            continue
        common = [c for c in offered.codecs() if any(c.matches(mine) for mine in ours)]
        if not any(c.name.lower() not in _AUXILIARY_CODECS for c in common):
            logger.debug("rejecting %s stream %d: no common codec", offered.media, index)
            answered.append(_rejected(offered))
            continue
        attrs = _media_attributes(common, offer.direction_of(offered).answer(local))
        ptime = offered.attribute("ptime")
        if ptime is not None and offered.media == "audio":
            attrs.insert(len(attrs) - 1, Attribute("ptime", ptime))
        seen_types.add(offered.media)
        answered.append(
            MediaDescription(
                offered.media,
                port,
                offered.proto,
                tuple(str(c.payload_type) for c in common),
                attributes=tuple(attrs),
            )
        )
    sid = _new_session_id() if session_id is None else str(session_id)
    return SessionDescription(
        origin=Origin(username, sid, version, address, addrtype=_addrtype(address)),
        session_name=session_name,
        connection=Connection.for_address(address),
        times=(Timing(0, 0),),
        media=tuple(answered),
    )


def bump_version(sd: SessionDescription) -> SessionDescription:
    """The same description with ``o=`` version + 1 (RFC 3264 §8: each new offer increments it)."""
    return dataclasses.replace(
        sd, origin=dataclasses.replace(sd.origin, version=sd.origin.version + 1)
    )


def with_direction(
    sd: SessionDescription,
    direction: Direction | str,
    *,
    bump: bool = False,
) -> SessionDescription:
    """Every active stream gets ``direction`` (hold: sendonly/inactive, resume: sendrecv).

    Session-level direction attributes are removed so the media-level ones rule alone
    (RFC 3264 §8.4, RFC 6337 §5).  Disabled streams (port 0) are left as they are.
    """
    new = Direction(direction)
    session_attrs = tuple(
        a for a in sd.attributes if not (a.value is None and a.name in _DIRECTIONS)
    )
    media = tuple(
        m if m.port == 0 else m.with_attributes(_set_direction_attrs(m.attributes, new))
        for m in sd.media
    )
    result = dataclasses.replace(sd, attributes=session_attrs, media=media)
    return bump_version(result) if bump else result


def hold(sd: SessionDescription, *, bump: bool = False) -> SessionDescription:
    """The re-offer that puts our previous offer on hold (RFC 3264 §8.4, RFC 6337 §5).

    We stop receiving but keep sending (music on hold): sendrecv -> sendonly,
    recvonly -> inactive; sendonly and inactive stay.
    """
    media: list[MediaDescription] = []
    for m in sd.media:
        if m.port == 0:
            media.append(m)
            continue
        current = sd.direction_of(m)
        new = Direction.from_flags(current.sends, False)
        media.append(m.with_attributes(_set_direction_attrs(m.attributes, new)))
    session_attrs = tuple(
        a for a in sd.attributes if not (a.value is None and a.name in _DIRECTIONS)
    )
    result = dataclasses.replace(sd, attributes=session_attrs, media=tuple(media))
    return bump_version(result) if bump else result


def rewrite_connection(
    sd: SessionDescription,
    address: str,
    ports: Sequence[int | None],
    *,
    bump: bool = False,
    origin_address: bool = True,
    drop_attributes: Collection[str] = ICE_ATTRIBUTES,
) -> SessionDescription:
    """Anchor the media: our ``address`` in every ``c=`` and our RTP port in every ``m=``.

    ``ports`` has one entry per m-line: our RTP port, or None to leave that stream's port as it
    is.  A disabled stream (port 0) stays disabled.  ``a=rtcp`` (RFC 3605) is rewritten to the
    relay's RTCP port (RTP + 1, or the RTP port itself with ``a=rtcp-mux``) and ``address``; the
    session-level ``c=`` is set (or added), media-level ones are replaced.  ``origin_address``
    also puts ``address`` into ``o=``; ``bump`` increments the ``o=`` version (RFC 3264 §8).
    Attributes named in ``drop_attributes`` go, at session and media level: by default the ICE
    ones (RFC 8839), whose candidates name the original address and would let the far end
    bypass the relay, which does not speak ICE.
    """
    if len(ports) != len(sd.media):
        raise LocalProtocolError(
            f"rewrite_connection: {len(ports)} ports for {len(sd.media)} streams"
        )
    conn = Connection.for_address(address)
    media: list[MediaDescription] = []
    for m, port in zip(sd.media, ports, strict=True):
        if m.port == 0:
            media.append(m)
            continue
        new_port = m.port if port is None else port
        attrs: list[Attribute] = []
        for attr in m.attributes:
            if attr.name in drop_attributes:
                continue
            if attr.name == "rtcp":
                rtcp_port = new_port if m.has_attribute("rtcp-mux") else new_port + 1
                old = m.rtcp
                if old is not None and old.connection is not None:
                    attrs.append(Attribute("rtcp", f"{rtcp_port} {conn}"))
                else:
                    attrs.append(Attribute("rtcp", str(rtcp_port)))
            else:
                attrs.append(attr)
        media.append(
            dataclasses.replace(
                m,
                port=new_port,
                connection=None if m.connection is None else conn,
                attributes=tuple(attrs),
                # A second c= line (layered multicast) would still name the old address.
                other_lines=tuple(line for line in m.other_lines if line[0] != "c"),
            )
        )
    origin = sd.origin
    if origin_address:
        origin = dataclasses.replace(origin, address=address, addrtype=conn.addrtype)
    session_attrs = tuple(a for a in sd.attributes if a.name not in drop_attributes)
    result = dataclasses.replace(
        sd, origin=origin, connection=conn, attributes=session_attrs, media=tuple(media)
    )
    return bump_version(result) if bump else result
