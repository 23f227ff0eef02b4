"""SIP, SIPS and tel URIs and name-addr values (RFC 3261 §19.1, §20.10, §25.1; RFC 3966).

``parse_uri`` returns a ``SipUri`` for ``sip:``/``sips:``, a ``TelUri`` for ``tel:`` and an
``AbsoluteUri`` (kept verbatim) for any other syntactically valid scheme: whether a scheme is
acceptable in a Request-URI is the UAS core's decision (416, RFC 3261 §8.2.2.1), not the parser's.

The user part keeps its escapes as written (``SipUri.user_unescaped`` resolves them), hosts are
lowercased, parameter names are lowercased and parameter order is kept.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, replace
from urllib.parse import unquote as _pct_unquote

from sip._grammar import (
    HOSTNAME_PATTERN,
    IPV6REF_PATTERN,
    Params,
    find_param,
    format_params,
    has_param,
    parse_params,
    quote,
    set_params,
    split_top_level,
    unquote,
)
from sip.errors import RemoteProtocolError

__all__ = [
    "AbsoluteUri",
    "NameAddr",
    "NameAddrCache",
    "SipUri",
    "TelUri",
    "Uri",
    "parse_name_addr",
    "parse_name_addr_list",
    "parse_uri",
    "uri_host",
    "valid_user",
]

_UNRESERVED = r"A-Za-z0-9\-_.!~*'()"
# "%" is accepted by these classes; escapes are checked once per URI (_BAD_ESCAPE_RE).
_USER = rf"[{_UNRESERVED}&=+$,;?/%]+"
_PASSWORD = rf"[{_UNRESERVED}&=+$,%]*"
_PARAMCHAR = rf"[{_UNRESERVED}\[\]/:&+$%]+"
_HNV = rf"[{_UNRESERVED}\[\]/?:+$%]*"
_BAD_ESCAPE_RE = re.compile(r"%(?![0-9A-Fa-f]{2})")
_HOSTNAME = HOSTNAME_PATTERN
_IPV6REF = IPV6REF_PATTERN

_SIP_URI_RE = re.compile(
    rf"([Ss][Ii][Pp][Ss]?):(?:({_USER})(?::({_PASSWORD}))?@)?"
    rf"({_HOSTNAME}|{_IPV6REF})(?::([0-9]{{1,5}}))?"
    rf"((?:;{_PARAMCHAR}(?:={_PARAMCHAR})?)*)"
    rf"(?:\?({_HNV}={_HNV}(?:&{_HNV}={_HNV})*))?"
)
_sip_uri_match = _SIP_URI_RE.fullmatch
_user_match = re.compile(_USER).fullmatch
_TEL_RE = re.compile(
    rf"([Tt][Ee][Ll]):([0-9A-Fa-f*#+\-.()pPwW]+)((?:;{_PARAMCHAR}(?:={_PARAMCHAR})?)*)"
)
_SCHEME_RE = re.compile(r"([A-Za-z][A-Za-z0-9+\-.]*):(.+)", re.S)
# Any other scheme: absoluteURI (RFC 3261 §25.1) - printable ASCII without the delimiters that
# would end a URI in a header ("<", ">", '"', whitespace).
_OPAQUE_RE = re.compile(r"[!#-;=?-~]+")


def _split_uri_params(text: str) -> Params:
    out: list[tuple[str, str | None]] = []
    for raw in text[1:].split(";"):
        name, eq, value = raw.partition("=")
        out.append((name.lower(), value if eq else None))
    return tuple(out)


@dataclass(frozen=True, slots=True)
class SipUri:
    scheme: str
    user: str | None
    password: str | None
    host: str
    port: int | None
    params: Params = ()
    headers: tuple[tuple[str, str], ...] = ()

    @property
    def user_unescaped(self) -> str | None:
        return None if self.user is None else _pct_unquote(self.user)

    def param(self, name: str) -> str | None:
        return find_param(self.params, name.lower())

    def has_param(self, name: str) -> bool:
        return has_param(self.params, name.lower())

    def with_params(self, **params: str | None) -> SipUri:
        return replace(self, params=set_params(self.params, params))

    def without_params(self, *names: str) -> SipUri:
        drop = {n.lower() for n in names}
        return replace(self, params=tuple(p for p in self.params if p[0] not in drop))

    @property
    def transport(self) -> str | None:
        value = find_param(self.params, "transport")
        return None if value is None else value.lower()

    @property
    def host_port(self) -> str:
        return self.host if self.port is None else f"{self.host}:{self.port}"

    def __str__(self) -> str:
        parts = [self.scheme, ":"]
        if self.user is not None:
            parts.append(self.user)
            if self.password is not None:
                parts.append(":")
                parts.append(self.password)
            parts.append("@")
        parts.append(self.host)
        if self.port is not None:
            parts.append(f":{self.port}")
        if self.params:
            parts.append(format_params(self.params))
        if self.headers:
            parts.append("?")
            parts.append("&".join(f"{k}={v}" for k, v in self.headers))
        return "".join(parts)


@dataclass(frozen=True, slots=True)
class TelUri:
    number: str
    params: Params = ()

    def param(self, name: str) -> str | None:
        return find_param(self.params, name.lower())

    def __str__(self) -> str:
        return f"tel:{self.number}{format_params(self.params)}"


@dataclass(frozen=True, slots=True)
class AbsoluteUri:
    scheme: str  # lowercase
    text: str  # the whole URI as written

    def __str__(self) -> str:
        return self.text


Uri = SipUri | TelUri | AbsoluteUri


def uri_host(host: str) -> str:
    """``host`` as a SIP URI writes it: an IPv6 literal in brackets (``::1`` -> ``[::1]``, also
    when given bracketed already), lower-cased like ``parse_uri`` gives it back."""
    host = host.lower()
    if ":" in host and not host.startswith("["):
        return f"[{host}]"
    return host


def valid_user(user: str) -> bool:
    """Whether ``user`` may stand as the user part of a SIP URI as written (RFC 3261 §25.1:
    unreserved and user-unreserved characters, ``%HH`` escapes)."""
    return _user_match(user) is not None and _BAD_ESCAPE_RE.search(user) is None


def _parse_sip_uri(text: str) -> SipUri | None:
    m = _sip_uri_match(text)
    if m is None:
        return None
    if "%" in text and _BAD_ESCAPE_RE.search(text) is not None:
        raise RemoteProtocolError(f"bad escape in URI {text!r}")
    scheme, user, password, host, port, params, headers = m.groups()
    if host[0] == "[":
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            raise RemoteProtocolError(f"bad IPv6 reference in URI {text!r}") from None
    port_num: int | None = None
    if port is not None:
        port_num = int(port)
        if port_num > 65535:
            raise RemoteProtocolError(f"port out of range in URI {text!r}")
    return SipUri(
        scheme.lower(),
        user,
        password,
        host.lower(),
        port_num,
        _split_uri_params(params) if params else (),
        tuple((k, v) for k, _, v in (h.partition("=") for h in headers.split("&")))
        if headers
        else (),
    )


def parse_uri(text: str) -> Uri:
    """Parse a URI (no surrounding whitespace or angle brackets)."""
    uri = _parse_sip_uri(text)
    if uri is not None:
        return uri
    m = _SCHEME_RE.fullmatch(text)
    if m is None:
        raise RemoteProtocolError(f"bad URI {text!r}")
    scheme = m.group(1).lower()
    if scheme in ("sip", "sips"):
        raise RemoteProtocolError(f"bad {scheme} URI {text!r}")
    if scheme == "tel":
        t = _TEL_RE.fullmatch(text)
        if t is None:
            raise RemoteProtocolError(f"bad tel URI {text!r}")
        return TelUri(t.group(2), _split_uri_params(t.group(3)) if t.group(3) else ())
    if _OPAQUE_RE.fullmatch(m.group(2)) is None:
        raise RemoteProtocolError(f"bad URI {text!r}")
    return AbsoluteUri(scheme, text)


@dataclass(frozen=True, slots=True)
class NameAddr:
    uri: Uri
    display_name: str | None = None
    params: Params = ()

    @property
    def tag(self) -> str | None:
        return find_param(self.params, "tag")

    def with_tag(self, tag: str) -> NameAddr:
        return replace(self, params=set_params(self.params, {"tag": tag}))

    def param(self, name: str) -> str | None:
        return find_param(self.params, name.lower())

    def with_params(self, **params: str | None) -> NameAddr:
        return replace(self, params=set_params(self.params, params))

    def __str__(self) -> str:
        head = f"<{self.uri}>"
        if self.display_name is not None:
            head = f"{quote(self.display_name)} {head}"
        return head + format_params(self.params) if self.params else head


_WS = " \t"
# The common shapes: '"Name" <uri>;params', 'Name <uri>;params', '<uri>;params' with a
# display name that needs no unescaping and params without whitespace or quotes.
_NAME_ADDR_FAST_RE = re.compile(
    r"""(?:"([^"\\]*)" ?|([A-Za-z0-9\-.!%*_+`'~]+(?: [A-Za-z0-9\-.!%*_+`'~]+)*) ?)?"""
    r"<([^<>\"\s]+)>((?:;[A-Za-z0-9\-.!%*_+`'~]+(?:=[A-Za-z0-9\-.!%*_+`'~:\[\]]+)?)*)"
)
_name_addr_fast = _NAME_ADDR_FAST_RE.fullmatch
_DISPLAY_WORD_RE = re.compile(r"[A-Za-z0-9\-.!%*_+`'~\u0080-\U0010ffff]+")


def _quoted_end(text: str, start: int) -> int:
    """Index just past the quoted-string that starts at ``text[start] == '"'``."""
    i = start + 1
    n = len(text)
    while i < n:
        ch = text[i]
        if ch == "\\":
            i += 2
            continue
        if ch == '"':
            return i + 1
        i += 1
    raise RemoteProtocolError(f"unterminated quoted string in {text!r}")


def parse_name_addr(text: str) -> NameAddr:
    """Parse ``[display] <uri>;params`` or the addr-spec form ``uri;params``.

    In the addr-spec form every ``;`` parameter belongs to the header, not to the URI
    (RFC 3261 §20.10).
    """
    fast = _name_addr_fast(text)
    if fast is not None:
        quoted, words, uri_text, params = fast.groups()
        uri = parse_uri(uri_text)
        display = words if quoted is None else quoted
        return NameAddr(uri, display or None, parse_params(params) if params else ())
    text = text.strip(_WS)
    display = None
    if text.startswith('"'):
        end = _quoted_end(text, 0)
        display = unquote(text[:end]) or None
        rest = text[end:].lstrip(_WS)
        if not rest.startswith("<"):
            raise RemoteProtocolError(f"expected '<' after display name in {text!r}")
        lt = 0
    else:
        rest = text
        lt = text.find("<")
    if lt >= 0:
        if display is None:
            # display-name = *(token LWS): runs of whitespace collapse to one space.
            # Leniency: non-ASCII characters are accepted in the words (UTF-8 names are common
            # on the wire unquoted); other non-token characters are an error (RFC 4475 baddn).
            words = rest[:lt].split()
            for word in words:
                if _DISPLAY_WORD_RE.fullmatch(word) is None:
                    raise RemoteProtocolError(f"bad display name in {text!r}")
            display = " ".join(words) or None
        gt = rest.find(">", lt)
        if gt < 0:
            raise RemoteProtocolError(f"missing '>' in {text!r}")
        uri = parse_uri(rest[lt + 1 : gt])
        tail = rest[gt + 1 :].strip(_WS)
    else:
        semi = text.find(";")
        if semi < 0:
            uri_text, tail = text, ""
        else:
            uri_text, tail = text[:semi].rstrip(_WS), text[semi:]
        if not uri_text or any(c in uri_text for c in ' \t,?"<>'):
            raise RemoteProtocolError(f"bad addr-spec {text!r}")
        uri = parse_uri(uri_text)
    if not tail:
        return NameAddr(uri, display)
    if tail[0] != ";":
        raise RemoteProtocolError(f"unexpected text after URI in {text!r}")
    return NameAddr(uri, display, parse_params(tail))


class NameAddrCache:
    """``parse_name_addr`` remembered by the text it parsed.

    Every message of a dialog repeats its From, To and Contact values letter for letter, so a
    transport that keeps one of these for the messages it parses parses each value once per
    dialog instead of once per message. A ``NameAddr`` is immutable, so the messages can share
    it. Bounded: when ``limit`` values are kept, the next new one starts the cache afresh (a
    dict cleared is cheaper than an order kept per hit), and a value longer than
    ``max_length`` characters is parsed and not kept (a peer's datagrams of huge unique
    values cannot fill memory with them). A value that does not parse raises as
    ``parse_name_addr`` does and is not kept.
    """

    __slots__ = ("_parsed", "limit", "max_length")

    def __init__(self, limit: int = 4096, max_length: int = 512) -> None:
        if limit < 1:
            raise ValueError("limit must be positive")
        self.limit = limit
        self.max_length = max_length
        self._parsed: dict[str, NameAddr] = {}

    def __len__(self) -> int:
        return len(self._parsed)

    def parse(self, text: str) -> NameAddr:
        parsed = self._parsed.get(text)
        if parsed is None:
            parsed = parse_name_addr(text)
            if len(text) > self.max_length:
                return parsed
            if len(self._parsed) >= self.limit:
                self._parsed.clear()
            self._parsed[text] = parsed
        return parsed


def parse_name_addr_list(text: str) -> list[NameAddr]:
    """Parse a comma-separated list of name-addr/addr-spec values (Contact, Route, ...)."""
    if "," not in text:
        return [parse_name_addr(text)]
    items = split_top_level(text, ",")
    out: list[NameAddr] = []
    for item in items:
        if not item.strip(_WS):
            raise RemoteProtocolError(f"empty element in list {text!r}")
        out.append(parse_name_addr(item))
    return out
