"""SIP requests and responses: parsing, serialisation and framing (RFC 3261 §7, §18.3, §20).

Theory of operation
-------------------
``parse_message`` takes one datagram; ``StreamParser`` frames a TCP byte stream by
Content-Length (RFC 3261 §18.3) and hands each complete message to the same code.  The header
block is decoded as UTF-8 (undecodable bytes are kept via ``surrogateescape`` so they are
forwarded unchanged), unfolded (RFC 3261 §7.3.1) and stored raw in ``Headers``.  The headers
every transaction and dialog needs (Via, From, To, Call-ID, CSeq, Content-Length, Max-Forwards,
Contact) are checked eagerly on a fast path, so malformed ones are rejected at parse time with
status 400, and their typed values are cached on the message; every other header is parsed only
when someone asks for it.

Leniencies (each with a test in tests/sip/):
- CRLFs before the start line are skipped (RFC 3261 §7.5; keep-alives, RFC 5626 §4.4.1).
- A bare LF is accepted as a line terminator in datagrams (common in hand-written tools).
- A body longer than Content-Length in a datagram is truncated to it (RFC 3261 §18.3).
- A missing Content-Length in a datagram means "the rest of the datagram" (RFC 3261 §18.3).
- A missing reason phrase in a status line is accepted.
- A missing Max-Forwards is accepted (RFC 3261 §16.3 lets proxies add one; the UAS decides).
- The Request-URI may have any syntactically valid scheme; ``Request.uri_scheme_supported``
  tells the UAS core whether to answer 416 (RFC 3261 §8.2.2.1).
- Undecodable UTF-8 in the header block is kept (surrogateescape) and re-sent unchanged.
- Call-ID: any non-empty value without whitespace (stricter "word" rules are not enforced).
- Elsewhere (each commented where it lives): "_" in host names (sip/_grammar.py), non-ASCII
  words in unquoted display names (sip/uri.py), empty elements of list headers skipped by
  ``Headers.get_all`` (sip/headers.py).

Rejected at parse time with 400 (RFC 4475 §3.1.2): duplicate From/To/Call-ID/CSeq/Max-Forwards,
conflicting Content-Length, CSeq >= 2**31 or not matching the method, Max-Forwards > 255, a Date
not in GMT, headers in the Request-URI, malformed Via/From/To/Contact; 505 for another SIP
version.  Responses get the same checks; the transport drops a response that fails them.

``serialize`` is strict: it refuses (LocalProtocolError) a message without Via, From, To, Call-ID
or CSeq, a request whose CSeq method differs from its method, and writes Content-Length itself
(the parser consumes Content-Length as framing: parsed ``Headers`` never contain it, so
``parse_message(serialize(m)) == m``; a Content-Length put in ``Headers`` by hand is replaced).
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sip.errors import LocalProtocolError, RemoteProtocolError
from sip.headers import (
    _CANONICAL,
    _COMPACT,
    CSeq,
    Headers,
    Via,
    parse_cseq,
    parse_via_list,
)
from sip.uri import (
    AbsoluteUri,
    NameAddr,
    SipUri,
    TelUri,
    Uri,
    parse_name_addr,
    parse_name_addr_list,
    parse_uri,
)

__all__ = [
    "Message",
    "Request",
    "Response",
    "StreamParser",
    "parse_message",
    "reason_phrase",
    "serialize",
]

logger = logging.getLogger(__name__)

_REASONS: dict[int, str] = {
    100: "Trying",
    180: "Ringing",
    181: "Call Is Being Forwarded",
    182: "Queued",
    183: "Session Progress",
    199: "Early Dialog Terminated",
    200: "OK",
    202: "Accepted",
    204: "No Notification",
    300: "Multiple Choices",
    301: "Moved Permanently",
    302: "Moved Temporarily",
    305: "Use Proxy",
    380: "Alternative Service",
    400: "Bad Request",
    401: "Unauthorized",
    402: "Payment Required",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    406: "Not Acceptable",
    407: "Proxy Authentication Required",
    408: "Request Timeout",
    410: "Gone",
    412: "Conditional Request Failed",
    413: "Request Entity Too Large",
    414: "Request-URI Too Long",
    415: "Unsupported Media Type",
    416: "Unsupported URI Scheme",
    417: "Unknown Resource-Priority",
    420: "Bad Extension",
    421: "Extension Required",
    422: "Session Interval Too Small",
    423: "Interval Too Brief",
    428: "Use Identity Header",
    429: "Provide Referrer Identity",
    433: "Anonymity Disallowed",
    436: "Bad Identity-Info",
    437: "Unsupported Certificate",
    438: "Invalid Identity Header",
    439: "First Hop Lacks Outbound Support",
    440: "Max-Breadth Exceeded",
    469: "Bad Info Package",
    470: "Consent Needed",
    480: "Temporarily Unavailable",
    481: "Call/Transaction Does Not Exist",
    482: "Loop Detected",
    483: "Too Many Hops",
    484: "Address Incomplete",
    485: "Ambiguous",
    486: "Busy Here",
    487: "Request Terminated",
    488: "Not Acceptable Here",
    489: "Bad Event",
    491: "Request Pending",
    493: "Undecipherable",
    494: "Security Agreement Required",
    500: "Server Internal Error",
    501: "Not Implemented",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Server Time-out",
    505: "Version Not Supported",
    513: "Message Too Large",
    555: "Push Notification Service Not Supported",
    580: "Precondition Failure",
    600: "Busy Everywhere",
    603: "Decline",
    604: "Does Not Exist Anywhere",
    606: "Not Acceptable",
    607: "Unwanted",
    608: "Rejected",
}
_CLASS_REASONS = {
    1: "Trying",
    2: "OK",
    3: "Redirect",
    4: "Client Error",
    5: "Server Error",
    6: "Global Failure",
}


def reason_phrase(status: int) -> str:
    """The standard reason phrase of ``status`` (a generic one for unknown codes)."""
    phrase = _REASONS.get(status)
    if phrase is not None:
        return phrase
    return _CLASS_REASONS.get(status // 100, "Unknown")


_MANDATORY = ("via", "from", "to", "call-id", "cseq")
_SUPPORTED_SCHEMES = frozenset({"sip", "sips", "tel"})


_PARSED_VIEWS = ("_vias", "_from", "_to", "_cseq", "_contacts", "_routes", "_record_routes")


class _HeaderViews:
    """Typed, cached views of the headers shared by Request and Response.

    Values come from the parser's fast path (already validated) or are parsed on first access;
    a malformed value raises RemoteProtocolError, a missing mandatory one LocalProtocolError
    (only messages we built ourselves can lack them: the parser rejects such input).
    """

    __slots__ = ()

    headers: Headers
    _vias: list[Via] | None
    _from: NameAddr | None
    _to: NameAddr | None
    _cseq: CSeq | None
    _contacts: list[NameAddr] | None
    _routes: list[NameAddr] | None
    _record_routes: list[NameAddr] | None

    def shed_parsed(self) -> None:
        """Forget the parsed header views; they parse again from ``headers`` on first access.

        A message kept only to be re-sent or matched (a transaction lingering for Timer
        J/L/M/D) then holds a handful of objects instead of dozens: the cyclic GC walks every
        tracked object of every call of the last 32 s on each full collection.
        """
        for name in _PARSED_VIEWS:
            object.__setattr__(self, name, None)

    def _required(self, key: str) -> str:
        value = self.headers.get(key)
        if value is None:
            raise LocalProtocolError(f"message has no {key} header")
        return value

    @property
    def vias(self) -> list[Via]:
        vias = self._vias
        if vias is None:
            vias = []
            for value in self.headers.get_all_raw("via"):
                vias.extend(parse_via_list(value))
            if not vias:
                raise LocalProtocolError("message has no Via header")
            object.__setattr__(self, "_vias", vias)
        return list(vias)

    @property
    def top_via(self) -> Via:
        vias = self._vias
        if vias is None:
            return self.vias[0]
        return vias[0]

    @property
    def from_(self) -> NameAddr:
        value = self._from
        if value is None:
            value = parse_name_addr(self._required("from"))
            object.__setattr__(self, "_from", value)
        return value

    @property
    def to(self) -> NameAddr:
        value = self._to
        if value is None:
            value = parse_name_addr(self._required("to"))
            object.__setattr__(self, "_to", value)
        return value

    @property
    def call_id(self) -> str:
        return self._required("call-id")

    @property
    def cseq(self) -> CSeq:
        value = self._cseq
        if value is None:
            value = parse_cseq(self._required("cseq"))
            object.__setattr__(self, "_cseq", value)
        return value

    @property
    def max_forwards(self) -> int | None:
        value = self.headers.get("max-forwards")
        return None if value is None else _parse_max_forwards(value)

    @property
    def contacts(self) -> list[NameAddr]:
        """Contact values; ``Contact: *`` (REGISTER) gives an empty list."""
        value = self._contacts
        if value is None:
            value = _parse_contacts(self.headers.get_all_raw("contact"))
            object.__setattr__(self, "_contacts", value)
        return list(value)

    @property
    def content_type(self) -> str | None:
        """The media type, lowercased and without parameters ("application/sdp")."""
        value = self.headers.get("content-type")
        if value is None:
            return None
        return value.partition(";")[0].strip().lower()

    @property
    def routes(self) -> list[NameAddr]:
        value = self._routes
        if value is None:
            value = _parse_list(self.headers.get_all_raw("route"))
            object.__setattr__(self, "_routes", value)
        return list(value)

    @property
    def record_routes(self) -> list[NameAddr]:
        value = self._record_routes
        if value is None:
            value = _parse_list(self.headers.get_all_raw("record-route"))
            object.__setattr__(self, "_record_routes", value)
        return list(value)


def _parse_list(values: list[str]) -> list[NameAddr]:
    out: list[NameAddr] = []
    for value in values:
        out.extend(parse_name_addr_list(value))
    return out


def _parse_contacts(values: list[str]) -> list[NameAddr]:
    if len(values) == 1 and values[0] == "*":
        return []
    return _parse_list(values)


# SIP-date = rfc1123-date, always in GMT (RFC 3261 §20.17, RFC 4475 baddate).
_DATE_RE = re.compile(
    r"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), [0-9]{2} "
    r"(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) [0-9]{4} "
    r"[0-9]{2}:[0-9]{2}:[0-9]{2} GMT"
)


def _check_date(value: str) -> None:
    if _DATE_RE.fullmatch(value) is None:
        raise RemoteProtocolError(f"bad Date {value!r}")


def _parse_max_forwards(value: str) -> int:
    if not value.isdigit() or not value.isascii() or len(value) > 10:
        raise RemoteProtocolError(f"bad Max-Forwards {value!r}")
    number = int(value)
    if number > 255:
        raise RemoteProtocolError(f"Max-Forwards out of range: {value}")
    return number


@dataclass(frozen=True, slots=True)
class Request(_HeaderViews):
    method: str
    uri: Uri
    headers: Headers
    body: bytes = b""
    _vias: list[Via] | None = field(default=None, init=False, repr=False, compare=False)
    _from: NameAddr | None = field(default=None, init=False, repr=False, compare=False)
    _to: NameAddr | None = field(default=None, init=False, repr=False, compare=False)
    _cseq: CSeq | None = field(default=None, init=False, repr=False, compare=False)
    _contacts: list[NameAddr] | None = field(default=None, init=False, repr=False, compare=False)
    _routes: list[NameAddr] | None = field(default=None, init=False, repr=False, compare=False)
    _record_routes: list[NameAddr] | None = field(
        default=None, init=False, repr=False, compare=False
    )

    @property
    def uri_scheme(self) -> str:
        return self.uri.scheme if not isinstance(self.uri, TelUri) else "tel"

    @property
    def uri_scheme_supported(self) -> bool:
        """False if the Request-URI scheme is not sip/sips/tel: the UAS answers 416."""
        return not isinstance(self.uri, AbsoluteUri)

    def response(
        self,
        status: int,
        reason: str | None = None,
        *,
        to_tag: str | None = None,
        headers: Iterable[tuple[str, str]] = (),
        body: bytes = b"",
    ) -> Response:
        """Build a response (RFC 3261 §8.2.6): Via, From, To, Call-ID and CSeq copied."""
        if not 100 <= status <= 699:
            raise LocalProtocolError(f"bad status code {status}")
        add_tag = to_tag is not None and self.to.tag is None
        pairs: list[tuple[str, str]] = []
        keys: list[str] = []
        own = self.headers
        for key, item in zip(own._keys, own._items, strict=True):
            if key in _COPIED:
                if key == "to" and add_tag:
                    item = (item[0], f"{item[1]};tag={to_tag}")
                pairs.append(item)
                keys.append(key)
        extra = headers if isinstance(headers, Headers) else Headers(headers)
        pairs.extend(extra._items)
        keys.extend(extra._keys)
        resp = Response(
            status,
            reason_phrase(status) if reason is None else reason,
            Headers._trusted(tuple(pairs), tuple(keys)),
            body,
        )
        object.__setattr__(resp, "_vias", self._vias)
        object.__setattr__(resp, "_from", self._from)
        object.__setattr__(resp, "_cseq", self._cseq)
        if not add_tag:
            object.__setattr__(resp, "_to", self._to)
        return resp

    def replace(self, **changes: Any) -> Request:
        return dataclasses.replace(self, **changes)

    def with_headers(self, headers: Headers) -> Request:
        return dataclasses.replace(self, headers=headers)


_COPIED = frozenset({"via", "from", "to", "call-id", "cseq"})


@dataclass(frozen=True, slots=True)
class Response(_HeaderViews):
    status: int
    reason: str
    headers: Headers
    body: bytes = b""
    _vias: list[Via] | None = field(default=None, init=False, repr=False, compare=False)
    _from: NameAddr | None = field(default=None, init=False, repr=False, compare=False)
    _to: NameAddr | None = field(default=None, init=False, repr=False, compare=False)
    _cseq: CSeq | None = field(default=None, init=False, repr=False, compare=False)
    _contacts: list[NameAddr] | None = field(default=None, init=False, repr=False, compare=False)
    _routes: list[NameAddr] | None = field(default=None, init=False, repr=False, compare=False)
    _record_routes: list[NameAddr] | None = field(
        default=None, init=False, repr=False, compare=False
    )

    def replace(self, **changes: Any) -> Response:
        return dataclasses.replace(self, **changes)

    def with_headers(self, headers: Headers) -> Response:
        return dataclasses.replace(self, headers=headers)


Message = Request | Response

# ---------------------------------------------------------------------------------------------
# Parsing

_TOKEN_RE = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+")
_token_fullmatch = _TOKEN_RE.fullmatch
_VERSION_RE = re.compile(r"[Ss][Ii][Pp]/[0-9]+\.[0-9]+")
_STATUS_RE = re.compile(r"[1-6][0-9][0-9]")
# Exact spellings seen on the wire -> (canonical name, lookup key); anything else is computed.
_NAME_TABLE: dict[str, tuple[str, str]] = {}
for _key, _canon in _CANONICAL.items():
    for _spelling in (_canon, _key, _canon.upper()):
        _NAME_TABLE[_spelling] = (_canon, _key)
for _short, _key in _COMPACT.items():
    _canon = _CANONICAL.get(_key, _key)
    _NAME_TABLE[_short] = (_canon, _key)
    _NAME_TABLE[_short.upper()] = (_canon, _key)
del _key, _canon, _spelling, _short

MAX_HEAD_SIZE = 65536
MAX_BODY_SIZE = 1 << 20


class _Head:
    """A parsed start line and header block, waiting for its body."""

    __slots__ = ("content_length", "headers", "method", "reason", "status", "uri")

    def __init__(
        self,
        method: str | None,
        uri: Uri | None,
        status: int,
        reason: str,
        headers: Headers,
        content_length: int | None,
    ) -> None:
        self.method = method
        self.uri = uri
        self.status = status
        self.reason = reason
        self.headers = headers
        self.content_length = content_length


def _parse_start_line(line: str) -> tuple[str | None, Uri | None, int, str]:
    if line.startswith("SIP/") or line[:4].upper() == "SIP/":
        version, _, rest = line.partition(" ")
        if version != "SIP/2.0" and version.upper() != "SIP/2.0":
            if _VERSION_RE.fullmatch(version):
                raise RemoteProtocolError(f"unsupported SIP version {version!r}", 505)
            raise RemoteProtocolError(f"bad status line {line!r}")
        code, _, reason = rest.partition(" ")
        if _STATUS_RE.fullmatch(code) is None:
            raise RemoteProtocolError(f"bad status code in {line!r}")
        return None, None, int(code), reason
    parts = line.split(" ")
    if len(parts) != 3:
        raise RemoteProtocolError(f"bad request line {line!r}")
    method, uri_text, version = parts
    if version != "SIP/2.0":
        if version.upper() == "SIP/2.0":
            pass
        elif _VERSION_RE.fullmatch(version):
            raise RemoteProtocolError(f"unsupported SIP version {version!r}", 505)
        else:
            raise RemoteProtocolError(f"bad request line {line!r}")
    if _token_fullmatch(method) is None:
        raise RemoteProtocolError(f"bad method in {line!r}")
    return method, parse_uri(uri_text), 0, ""


def _header_name(name: str) -> tuple[str, str]:
    """(canonical name, lookup key) of a header name as written; 400 if it is not a token."""
    known = _NAME_TABLE.get(name)
    if known is not None:
        return known
    name = name.rstrip(" \t")  # HCOLON allows whitespace before the colon
    known = _NAME_TABLE.get(name)
    if known is not None:
        return known
    if _token_fullmatch(name) is None:
        raise RemoteProtocolError(f"bad header name {name!r}")
    lower = name.lower()
    key = _COMPACT.get(lower, lower)
    return _CANONICAL.get(key, name), key


def _split_headers(lines: list[str]) -> list[tuple[str, str]]:
    """General path: header lines with folding (RFC 3261 §7.3.1) -> (name, value) pairs."""
    pairs: list[list[str]] = []
    for line in lines:
        first = line[:1]
        if first == " " or first == "\t":
            # Folded continuation line: joined to the previous one with a single space.
            if not pairs:
                raise RemoteProtocolError("continuation line before the first header")
            cont = line.strip(" \t")
            if cont:
                prev = pairs[-1][1]
                pairs[-1][1] = f"{prev} {cont}" if prev else cont
            continue
        colon = line.find(":")
        if colon <= 0:
            raise RemoteProtocolError(f"bad header line {line!r}")
        pairs.append([line[:colon], line[colon + 1 :].strip(" \t")])
    return [(name, value) for name, value in pairs]


# One unfolded header line: name, HCOLON, value (surrounding whitespace excluded).
# Anchored at line starts and possessive so that a long line without a colon costs O(n).
_HEADER_LINE_RE = re.compile(
    r"^([^:\r\n]++):[ \t]*+((?:[^\r\n]*[^\r\n \t])?)[ \t]*\r\n", re.MULTILINE
)
_header_lines = _HEADER_LINE_RE.findall


def _parse_head(head: bytes, bare_lf_ok: bool) -> _Head:
    text = head.decode("utf-8", "surrogateescape")
    crlf = text.count("\r\n")
    pairs: list[tuple[str, str]] | None = None
    if text.count("\n") != crlf or text.count("\r") != crlf:
        if not bare_lf_ok or text.count("\r") != crlf:
            raise RemoteProtocolError("bare CR or LF in header block")
        # Leniency: bare LF line endings (datagrams only).
        lines = text.replace("\r\n", "\n").split("\n")
        start_line = lines[0]
    else:
        eol = text.find("\r\n")
        start_line = text if eol < 0 else text[:eol]
        if eol >= 0 and "\r\n " not in text and "\r\n\t" not in text:
            # Fast path: no folding, so every line is "name: value".
            found = _header_lines(text[eol + 2 :] + "\r\n")
            if len(found) == crlf:
                pairs = found
        lines = [] if pairs is not None else text.split("\r\n")
    method, uri, status, reason = _parse_start_line(start_line)
    if pairs is None:
        pairs = _split_headers(lines[1:])

    table = _NAME_TABLE
    known = [table.get(name) or _header_name(name) for name, _ in pairs]
    keys = [key for _, key in known]
    names = [canon for canon, _ in known]
    values = [value for _, value in pairs]

    content_length: int | None = None
    if "content-length" in keys:
        # Content-Length is framing, not content: it is consumed here and ``serialize`` writes
        # it again from the body, so parse(serialize(m)) == m holds.
        while "content-length" in keys:
            index = keys.index("content-length")
            value = values[index]
            del keys[index], names[index], values[index]
            if not value.isdigit() or not value.isascii() or len(value) > 12:
                raise RemoteProtocolError(f"bad Content-Length {value!r}")
            number = int(value)
            if content_length is not None and number != content_length:
                raise RemoteProtocolError("conflicting Content-Length headers")
            content_length = number
    headers = Headers._trusted(tuple(zip(names, values, strict=True)), tuple(keys))
    return _Head(method, uri, status, reason, headers, content_length)


def _single(headers: Headers, key: str) -> str:
    keys = headers._keys
    count = keys.count(key)
    if count == 0:
        raise RemoteProtocolError(f"missing {canonical(key)} header")
    if count > 1:
        raise RemoteProtocolError(f"more than one {canonical(key)} header")
    return headers._items[keys.index(key)][1]


def canonical(key: str) -> str:
    return _CANONICAL.get(key, key)


def _build(head: _Head, body: bytes) -> Message:
    headers = head.headers
    keys = headers._keys
    items = headers._items
    count = keys.count
    index = keys.index
    vias_count = count("via")
    if vias_count == 1:
        vias = parse_via_list(items[index("via")][1])
    elif vias_count == 0:
        raise RemoteProtocolError("missing Via header")
    else:
        vias = []
        for key, item in zip(keys, items, strict=True):
            if key == "via":
                vias.extend(parse_via_list(item[1]))
    if count("from") != 1 or count("to") != 1 or count("call-id") != 1 or count("cseq") != 1:
        for key in ("from", "to", "call-id", "cseq"):
            _single(headers, key)  # raises with the right reason
    from_ = parse_name_addr(items[index("from")][1])
    to = parse_name_addr(items[index("to")][1])
    call_id = items[index("call-id")][1]
    if not call_id or " " in call_id or "\t" in call_id:
        # Leniency: any non-empty Call-ID without whitespace is accepted (RFC 3261 "word"
        # forbids a few more characters that real stacks do send).
        raise RemoteProtocolError(f"bad Call-ID {call_id!r}")
    cseq = parse_cseq(items[index("cseq")][1])
    contacts: list[NameAddr] | None = None
    contacts_count = count("contact")
    if contacts_count == 1:
        contacts = _parse_contacts([items[index("contact")][1]])
    elif contacts_count:
        contacts = _parse_contacts(
            [v for k, (_, v) in zip(keys, items, strict=True) if k == "contact"]
        )
    message: Message
    if head.method is not None:
        assert head.uri is not None
        if cseq.method != head.method:
            raise RemoteProtocolError(
                f"CSeq method {cseq.method!r} does not match request method {head.method!r}"
            )
        if "max-forwards" in keys:
            _parse_max_forwards(_single(headers, "max-forwards"))
        if isinstance(head.uri, SipUri) and head.uri.headers:
            # RFC 3261 §19.1.1 (table 1): headers are not allowed in a Request-URI (RFC 4475
            # escruri).
            raise RemoteProtocolError("Request-URI must not contain headers")
        if "date" in keys:
            _check_date(_single(headers, "date"))
        message = Request(head.method, head.uri, headers, body)
    else:
        message = Response(head.status, head.reason, headers, body)
    setattr_ = object.__setattr__
    setattr_(message, "_vias", vias)
    setattr_(message, "_from", from_)
    setattr_(message, "_to", to)
    setattr_(message, "_cseq", cseq)
    if contacts is not None:
        setattr_(message, "_contacts", contacts)
    return message


def parse_message(data: bytes) -> Message:
    """Parse one datagram.  Raises RemoteProtocolError(reason, status_hint) on bad input."""
    start = 0
    n = len(data)
    while data.startswith(b"\r\n", start):
        start += 2
    end = data.find(b"\r\n\r\n", start)
    if end >= 0:
        head_bytes = data[start:end]
        body_start = end + 4
        bare_lf = False
    else:
        end = data.find(b"\n\n", start)
        if end < 0:
            if start >= n:
                raise RemoteProtocolError("empty message")
            raise RemoteProtocolError("no empty line after the headers")
        head_bytes = data[start:end]
        body_start = end + 2
        bare_lf = True
    head = _parse_head(head_bytes, bare_lf_ok=True)
    del bare_lf
    body = data[body_start:]
    length = head.content_length
    if length is not None:
        if length > len(body):
            raise RemoteProtocolError(
                f"body shorter ({len(body)} bytes) than Content-Length {length}"
            )
        # Leniency (RFC 3261 §18.3): extra bytes after Content-Length are discarded.
        body = body[:length]
    return _build(head, body)


class StreamParser:
    """Frames SIP messages on a stream transport by Content-Length (RFC 3261 §18.3).

    After a RemoteProtocolError the stream cannot be resynchronised: the caller should answer
    (if it can) and close the connection; further ``feed`` calls raise the same error.
    """

    def __init__(self, max_head: int = MAX_HEAD_SIZE, max_body: int = MAX_BODY_SIZE) -> None:
        self._buffer = bytearray()
        self._head: _Head | None = None
        self._body_start = 0
        self._scan_from = 0
        self._max_head = max_head
        self._max_body = max_body
        self._error: RemoteProtocolError | None = None
        self._crlfs = 0  # CRLFs seen since the last message (two make a keep-alive ping)
        self._pings = 0

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    def take_pings(self) -> int:
        """Double-CRLF keep-alive pings (RFC 5626 §4.4.1) seen between messages since the
        last call; each asks for a single CRLF pong."""
        pings, self._pings = self._pings, 0
        return pings

    def feed(self, data: bytes) -> list[Message]:
        if self._error is not None:
            raise self._error
        self._buffer += data
        try:
            return self._drain()
        except RemoteProtocolError as exc:
            self._error = exc
            raise

    def _drain(self) -> list[Message]:
        out: list[Message] = []
        buf = self._buffer
        while True:
            if self._head is None:
                # Keep-alive CRLFs between messages are ignored (RFC 5626 §4.4.1).
                skip = 0
                while buf.startswith(b"\r\n", skip):
                    skip += 2
                    self._crlfs += 1
                    if self._crlfs == 2:
                        self._pings += 1
                        self._crlfs = 0
                if skip:
                    del buf[:skip]
                    self._scan_from = 0
                if not buf or buf == b"\r":
                    return out
                self._crlfs = 0  # a message starts
                end = buf.find(b"\r\n\r\n", self._scan_from)
                if end < 0:
                    if len(buf) > self._max_head:
                        raise RemoteProtocolError("header block too large", 413)
                    self._scan_from = max(0, len(buf) - 3)
                    return out
                if end > self._max_head:
                    raise RemoteProtocolError("header block too large", 413)
                head = _parse_head(bytes(buf[:end]), bare_lf_ok=False)
                if head.content_length is None:
                    raise RemoteProtocolError("missing Content-Length on a stream transport")
                if head.content_length > self._max_body:
                    raise RemoteProtocolError("body too large", 413)
                self._head = head
                self._body_start = end + 4
                self._scan_from = 0
            head = self._head
            assert head.content_length is not None
            stop = self._body_start + head.content_length
            if len(buf) < stop:
                return out
            body = bytes(buf[self._body_start : stop])
            del buf[:stop]
            self._head = None
            out.append(_build(head, body))


# ---------------------------------------------------------------------------------------------
# Serialisation


def serialize(message: Message) -> bytes:
    """Bytes of ``message`` with a correct Content-Length; strict about mandatory headers."""
    headers = message.headers
    keys = headers._keys
    for key in _MANDATORY:
        if key not in keys:
            raise LocalProtocolError(f"cannot send a message without {canonical(key)}")
    if isinstance(message, Request):
        cseq = headers._items[keys.index("cseq")][1]
        if cseq.rpartition(" ")[2] != message.method:
            raise LocalProtocolError(
                f"CSeq {cseq!r} does not match request method {message.method!r}"
            )
        if _token_fullmatch(message.method) is None:
            raise LocalProtocolError(f"bad method {message.method!r}")
        start = f"{message.method} {message.uri} SIP/2.0"
    else:
        reason = message.reason
        if not 100 <= message.status <= 699 or "\r" in reason or "\n" in reason:
            raise LocalProtocolError(f"bad status line {message.status} {reason!r}")
        start = f"SIP/2.0 {message.status} {reason}"
    body = message.body
    length = f"Content-Length: {len(body)}"
    if "content-length" in keys:
        lines = [start]
        seen = False
        for key, (name, value) in zip(keys, headers._items, strict=True):
            if key == "content-length":
                if not seen:
                    lines.append(length)
                    seen = True
            else:
                lines.append(f"{name}: {value}")
    else:
        lines = [start, *[f"{name}: {value}" for name, value in headers._items], length]
    lines.append("\r\n")
    try:
        head = "\r\n".join(lines).encode("utf-8", "surrogateescape")
    except UnicodeEncodeError as exc:
        raise LocalProtocolError(f"unencodable text in message: {exc}") from None
    return head + body if body else head
