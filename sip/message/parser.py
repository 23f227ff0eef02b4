"""Reading SIP messages: one datagram (``parse_message``) or a TCP byte stream (``StreamParser``).

``StreamParser`` frames a stream by Content-Length (RFC 3261 §18.3) and hands each complete
message to the same code as ``parse_message``.  The header block is decoded as UTF-8
(undecodable bytes are kept via ``surrogateescape`` so they are forwarded unchanged), unfolded
(RFC 3261 §7.3.1) and stored raw in ``Headers``.  The headers every transaction and dialog needs
(Via, From, To, Call-ID, CSeq, Content-Length, Max-Forwards, Contact) are checked eagerly on a
fast path, so malformed ones are rejected at parse time with status 400, and their typed values
are cached on the message; every other header is parsed only when someone asks for it.

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

Content-Length is framing: it is consumed here and never kept in the parsed ``Headers``
(``sip.message.serializer.serialize`` writes it again from the body).
"""

from __future__ import annotations

import re

from sip._grammar import TOKEN_RE
from sip.errors import RemoteProtocolError
from sip.headers import (
    _CANONICAL,
    _COMPACT,
    Headers,
    parse_cseq,
    parse_via_list,
)
from sip.message.model import (
    Message,
    Request,
    Response,
    canonical,
    parse_contacts,
    parse_max_forwards,
)
from sip.uri import NameAddr, NameAddrCache, SipUri, Uri, parse_name_addr, parse_uri

# SIP-date = rfc1123-date, always in GMT (RFC 3261 §20.17, RFC 4475 baddate).
_DATE_RE = re.compile(
    r"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), [0-9]{2} "
    r"(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) [0-9]{4} "
    r"[0-9]{2}:[0-9]{2}:[0-9]{2} GMT"
)


def _check_date(value: str) -> None:
    if _DATE_RE.fullmatch(value) is None:
        raise RemoteProtocolError(f"bad Date {value!r}")


_token_fullmatch = TOKEN_RE.fullmatch
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


def _build(head: _Head, body: bytes, names: NameAddrCache | None = None) -> Message:
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
    if names is None:
        from_ = parse_name_addr(items[index("from")][1])
        to = parse_name_addr(items[index("to")][1])
    else:
        from_ = names.parse(items[index("from")][1])
        to = names.parse(items[index("to")][1])
    call_id = items[index("call-id")][1]
    if not call_id or " " in call_id or "\t" in call_id:
        # Leniency: any non-empty Call-ID without whitespace is accepted (RFC 3261 "word"
        # forbids a few more characters that real stacks do send).
        raise RemoteProtocolError(f"bad Call-ID {call_id!r}")
    cseq = parse_cseq(items[index("cseq")][1])
    contacts: list[NameAddr] | None = None
    contacts_count = count("contact")
    if contacts_count == 1:
        value = items[index("contact")][1]
        if names is not None and value != "*" and "," not in value:
            contacts = [names.parse(value)]
        else:
            contacts = parse_contacts([value])
    elif contacts_count:
        contacts = parse_contacts(
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
            parse_max_forwards(_single(headers, "max-forwards"))
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


def parse_message(data: bytes, names: NameAddrCache | None = None) -> Message:
    """Parse one datagram.  Raises RemoteProtocolError(reason, status_hint) on bad input.

    ``names``: From, To and Contact values already parsed (by their text), kept for the next
    messages of the same dialogs."""
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
    return _build(head, body, names)


class StreamParser:
    """Frames SIP messages on a stream transport by Content-Length (RFC 3261 §18.3).

    After a RemoteProtocolError the stream cannot be resynchronised: the caller should answer
    (if it can) and close the connection; further ``feed`` calls raise the same error.

    ``keep_bytes``: each message's bytes as they came are kept too, for ``take_bytes``.
    """

    def __init__(
        self,
        max_head: int = MAX_HEAD_SIZE,
        max_body: int = MAX_BODY_SIZE,
        *,
        keep_bytes: bool = False,
    ) -> None:
        self._kept: list[bytes] | None = [] if keep_bytes else None
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

    def take_bytes(self) -> list[bytes]:
        """The bytes of each message the ``feed`` calls since the last call returned, in the
        same order (``keep_bytes`` only; else empty)."""
        kept = self._kept
        if not kept:
            return []
        self._kept = []
        return kept

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
            if self._kept is not None:
                self._kept.append(bytes(buf[:stop]))
            del buf[:stop]
            self._head = None
            out.append(_build(head, body))
