"""The SDP data model (RFC 8866): frozen dataclasses for a session description and its parts.

A :class:`SessionDescription` is a session section (RFC 8866 §5: ``v o s i u e p c b t r z k a``)
followed by :class:`MediaDescription` sections, each opened by ``m=`` (§5.14: ``m i c b k a``).
Lines the model does not interpret (``i= u= e= p= b= z= k=`` and type letters it does not know)
are kept verbatim in ``other_lines``, and attributes (``a=``) are kept verbatim and in order in
``attributes``, so a description that passes through the B2BUA loses nothing.  The readers here
(codecs, direction, RFC 3605 ``a=rtcp``) interpret attributes on demand; reading bytes is
:mod:`sip.sdp.parser`, writing them :mod:`sip.sdp.serializer`.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from sip.sdp.serializer import media_lines, serialize


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


# The flag attributes that set a direction (a=sendrecv, a=sendonly, ...).
DIRECTION_NAMES = frozenset(d.value for d in Direction)


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
        return cls(address=address, addrtype=addrtype_of(address))

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


def addrtype_of(address: str) -> str:
    return "IP6" if ":" in address else "IP4"


def _fmtp_param(fmtp: str | None, name: str, default: str) -> str:
    if fmtp is None:
        return default
    for part in fmtp.split(";"):
        key, sep, value = part.strip().partition("=")
        if sep and key.strip().lower() == name:
            return value.strip()
    return default


def _explicit_direction(attrs: Iterable[Attribute]) -> Direction | None:
    found: Direction | None = None
    for attr in attrs:
        if attr.value is None and attr.name in DIRECTION_NAMES:
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
        """This section's lines, ``m=`` first, without line ends."""
        return media_lines(self)


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
        # The parser builds these classes, so it is imported when first used, not at the top.
        from sip.sdp.parser import parse

        return parse(data)

    def serialize(self) -> bytes:
        """CRLF-terminated lines in RFC 8866 order; LocalProtocolError if a field is unwritable."""
        return serialize(self)

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
