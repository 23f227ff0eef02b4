"""Header names, the ``Headers`` collection and the Via and CSeq values (RFC 3261 §7.3, §20).

``Headers`` is an immutable, ordered list of ``(name, value)`` pairs.  Names are stored in their
canonical spelling (compact forms expanded, RFC 3261 §7.3.3); unknown names keep their spelling
but are looked up case-insensitively.  Values are stored raw (folding already replaced by a
space); typed views (``parse_via_list``, ``parse_cseq``, ``sip.uri.parse_name_addr``) parse them on
demand, so headers nobody looks at cost nothing and unknown headers pass through intact.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace

from sip._grammar import (
    HOSTNAME_PATTERN,
    IPV6REF_PATTERN,
    Params,
    find_param,
    format_params,
    has_param,
    is_token,
    parse_params,
    set_params,
    split_top_level,
)
from sip.errors import LocalProtocolError, RemoteProtocolError

__all__ = [
    "CSeq",
    "Headers",
    "Via",
    "canonical_name",
    "header_key",
    "parse_cseq",
    "parse_via_list",
]

_CANONICAL_NAMES = (
    "Accept",
    "Accept-Contact",
    "Accept-Encoding",
    "Accept-Language",
    "Alert-Info",
    "Allow",
    "Allow-Events",
    "Authentication-Info",
    "Authorization",
    "Call-ID",
    "Call-Info",
    "Contact",
    "Content-Disposition",
    "Content-Encoding",
    "Content-Language",
    "Content-Length",
    "Content-Type",
    "CSeq",
    "Date",
    "Error-Info",
    "Event",
    "Expires",
    "From",
    "Identity",
    "Identity-Info",
    "In-Reply-To",
    "Max-Forwards",
    "Min-Expires",
    "Min-SE",
    "MIME-Version",
    "Organization",
    "P-Asserted-Identity",
    "P-Preferred-Identity",
    "Path",
    "Priority",
    "Privacy",
    "Proxy-Authenticate",
    "Proxy-Authorization",
    "Proxy-Require",
    "RAck",
    "Reason",
    "Record-Route",
    "Refer-To",
    "Referred-By",
    "Reject-Contact",
    "Replaces",
    "Reply-To",
    "Request-Disposition",
    "Require",
    "Retry-After",
    "Route",
    "RSeq",
    "Server",
    "Service-Route",
    "Session-Expires",
    "SIP-ETag",
    "SIP-If-Match",
    "Subject",
    "Subscription-State",
    "Supported",
    "Timestamp",
    "To",
    "Unsupported",
    "User-Agent",
    "Via",
    "Warning",
    "WWW-Authenticate",
)
_CANONICAL: dict[str, str] = {n.lower(): n for n in _CANONICAL_NAMES}

# Compact forms (RFC 3261 §7.3.3 and the registry of later RFCs).
_COMPACT: dict[str, str] = {
    "a": "accept-contact",
    "b": "referred-by",
    "c": "content-type",
    "d": "request-disposition",
    "e": "content-encoding",
    "f": "from",
    "i": "call-id",
    "j": "reject-contact",
    "k": "supported",
    "l": "content-length",
    "m": "contact",
    "n": "identity-info",
    "o": "event",
    "r": "refer-to",
    "s": "subject",
    "t": "to",
    "u": "allow-events",
    "v": "via",
    "x": "session-expires",
    "y": "identity",
}

# Headers whose values are comma-separated lists (RFC 3261 §7.3.1): get_all() splits them.
# The authentication headers are not here: their values contain commas between parameters.
_LIST_KEYS = frozenset(
    {
        "accept",
        "accept-contact",
        "accept-encoding",
        "accept-language",
        "alert-info",
        "allow",
        "allow-events",
        "call-info",
        "contact",
        "content-encoding",
        "content-language",
        "error-info",
        "in-reply-to",
        "p-asserted-identity",
        "p-preferred-identity",
        "path",
        "proxy-require",
        "record-route",
        "reject-contact",
        "require",
        "route",
        "service-route",
        "supported",
        "unsupported",
        "via",
        "warning",
    }
)


def header_key(name: str) -> str:
    """Lookup key of a header name: lowercase, compact form expanded."""
    lower = name.lower()
    return _COMPACT.get(lower, lower)


def canonical_name(name: str) -> str:
    """Canonical spelling of a header name ("v" -> "Via", "cseq" -> "CSeq"); unknown as written."""
    lower = name.lower()
    return _CANONICAL.get(_COMPACT.get(lower, lower), name)


class Headers:
    """Immutable ordered (name, value) pairs with canonical names."""

    __slots__ = ("_items", "_keys")

    _items: tuple[tuple[str, str], ...]
    _keys: tuple[str, ...]

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        pairs: list[tuple[str, str]] = []
        keys: list[str] = []
        for name, value in items:
            if not is_token(name):
                raise LocalProtocolError(f"bad header name {name!r}")
            if "\r" in value or "\n" in value:
                raise LocalProtocolError(f"CR/LF in value of header {name!r}")
            lower = name.lower()
            key = _COMPACT.get(lower, lower)
            pairs.append((_CANONICAL.get(key, name), value))
            keys.append(key)
        self._items = tuple(pairs)
        self._keys = tuple(keys)

    @classmethod
    def _trusted(cls, items: tuple[tuple[str, str], ...], keys: tuple[str, ...]) -> Headers:
        """Build without validation (the parser already checked names and values)."""
        h = object.__new__(cls)
        h._items = items
        h._keys = keys
        return h

    def get(self, name: str) -> str | None:
        lower = name.lower()
        key = _COMPACT.get(lower, lower)
        keys = self._keys
        if key in keys:
            return self._items[keys.index(key)][1]
        return None

    def get_all(self, name: str) -> list[str]:
        lower = name.lower()
        key = _COMPACT.get(lower, lower)
        values = [item[1] for k, item in zip(self._keys, self._items, strict=True) if k == key]
        if key not in _LIST_KEYS:
            return values
        out: list[str] = []
        for value in values:
            if "," not in value:
                out.append(value)
                continue
            # Leniency: empty list elements ("a,,b") are skipped.
            for part in split_top_level(value, ","):
                part = part.strip(" \t")
                if part:
                    out.append(part)
        return out

    def get_all_raw(self, name: str) -> list[str]:
        """Every value of ``name`` as written (comma-joined lists not split)."""
        key = header_key(name)
        return [item[1] for k, item in zip(self._keys, self._items, strict=True) if k == key]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and header_key(name) in self._keys

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Headers):
            return NotImplemented
        return self._items == other._items

    def __hash__(self) -> int:
        return hash(self._items)

    def __repr__(self) -> str:
        return f"Headers({list(self._items)!r})"

    def items(self) -> tuple[tuple[str, str], ...]:
        return self._items

    def _with(self, pairs: list[tuple[str, str]], keys: list[str]) -> Headers:
        return Headers._trusted(tuple(pairs), tuple(keys))

    @staticmethod
    def _checked(name: str, values: tuple[str, ...]) -> tuple[str, str]:
        if not is_token(name):
            raise LocalProtocolError(f"bad header name {name!r}")
        for value in values:
            if "\r" in value or "\n" in value:
                raise LocalProtocolError(f"CR/LF in value of header {name!r}")
        key = header_key(name)
        return key, _CANONICAL.get(key, name)

    def replace(self, name: str, *values: str) -> Headers:
        """Drop every ``name`` header and put ``values`` where the first one was (or at the end)."""
        key, canon = self._checked(name, values)
        pairs: list[tuple[str, str]] = []
        keys: list[str] = []
        placed = False
        for k, item in zip(self._keys, self._items, strict=True):
            if k == key:
                if not placed:
                    pairs.extend((canon, v) for v in values)
                    keys.extend(key for _ in values)
                    placed = True
                continue
            pairs.append(item)
            keys.append(k)
        if not placed:
            pairs.extend((canon, v) for v in values)
            keys.extend(key for _ in values)
        return self._with(pairs, keys)

    def prepend(self, name: str, value: str) -> Headers:
        """Put a new ``name`` value above the existing ones (or at the very top)."""
        key, canon = self._checked(name, (value,))
        keys = list(self._keys)
        pairs = list(self._items)
        index = keys.index(key) if key in keys else 0
        keys.insert(index, key)
        pairs.insert(index, (canon, value))
        return self._with(pairs, keys)

    def append(self, name: str, value: str) -> Headers:
        """Add a ``name`` value after every existing header."""
        key, canon = self._checked(name, (value,))
        return self._with([*self._items, (canon, value)], [*self._keys, key])

    def remove(self, name: str) -> Headers:
        key = header_key(name)
        if key not in self._keys:
            return self
        kept = [(k, item) for k, item in zip(self._keys, self._items, strict=True) if k != key]
        return self._with([item for _, item in kept], [k for k, _ in kept])


@dataclass(frozen=True, slots=True)
class Via:
    transport: str  # uppercase
    host: str  # lowercase; IPv6 keeps its brackets
    port: int | None
    params: Params = ()

    @property
    def branch(self) -> str | None:
        return find_param(self.params, "branch")

    @property
    def received(self) -> str | None:
        return find_param(self.params, "received")

    @property
    def maddr(self) -> str | None:
        return find_param(self.params, "maddr")

    @property
    def rport(self) -> int | None:
        value = find_param(self.params, "rport")
        return int(value) if value is not None and value.isdigit() else None

    @property
    def has_rport(self) -> bool:
        return has_param(self.params, "rport")

    def param(self, name: str) -> str | None:
        return find_param(self.params, name.lower())

    def with_params(self, **params: str | None) -> Via:
        return replace(self, params=set_params(self.params, params))

    @property
    def sent_by(self) -> str:
        return self.host if self.port is None else f"{self.host}:{self.port}"

    def __str__(self) -> str:
        return f"SIP/2.0/{self.transport} {self.sent_by}{format_params(self.params)}"


_TOKEN = r"[A-Za-z0-9\-.!%*_+`'~]+"
_VIA_RE = re.compile(
    rf"[ \t]*({_TOKEN})[ \t]*/[ \t]*({_TOKEN})[ \t]*/[ \t]*({_TOKEN})[ \t]+"
    rf"({HOSTNAME_PATTERN}|{IPV6REF_PATTERN})(?:[ \t]*:[ \t]*([0-9]{{1,5}}))?[ \t]*(;.*)?",
    re.S,
)
_via_match = _VIA_RE.fullmatch


def _parse_via(text: str) -> Via:
    m = _via_match(text)
    if m is None:
        raise RemoteProtocolError(f"bad Via {text.strip()!r}")
    name, version, transport, host, port, params = m.groups()
    if version != "2.0" or name.upper() != "SIP":
        raise RemoteProtocolError(f"bad Via protocol {name}/{version}")
    if host[0] == "[":
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            raise RemoteProtocolError(f"bad IPv6 reference in Via {text!r}") from None
    port_num: int | None = None
    if port is not None:
        port_num = int(port)
        if port_num > 65535:
            raise RemoteProtocolError(f"port out of range in Via {text!r}")
    return Via(
        transport.upper(),
        host.lower(),
        port_num,
        parse_params(params) if params else (),
    )


def parse_via_list(value: str) -> list[Via]:
    """Parse one Via header value (possibly several comma-separated via-parms)."""
    if "," not in value:
        return [_parse_via(value)]
    return [_parse_via(part) for part in split_top_level(value, ",")]


@dataclass(frozen=True, slots=True)
class CSeq:
    seq: int
    method: str

    def __str__(self) -> str:
        return f"{self.seq} {self.method}"


def parse_cseq(value: str) -> CSeq:
    """Parse ``1*DIGIT LWS Method``; the number must be below 2**31 (RFC 3261 §8.1.1.5)."""
    parts = value.split()
    if len(parts) != 2 or not parts[0].isdigit() or not parts[0].isascii():
        raise RemoteProtocolError(f"bad CSeq {value!r}")
    seq = int(parts[0])
    if seq >= 2**31:
        raise RemoteProtocolError(f"CSeq number too large: {parts[0]}")
    if not is_token(parts[1]):
        raise RemoteProtocolError(f"bad CSeq method {parts[1]!r}")
    return CSeq(seq, parts[1])
