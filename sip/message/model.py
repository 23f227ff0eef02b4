"""The SIP message model (RFC 3261 §7): ``Request``, ``Response`` and their typed header views.

A message keeps its headers raw in ``Headers``; the views every transaction and dialog needs
(Via, From, To, CSeq, Contact, Route, Record-Route) are parsed on first access and cached on the
message (the parser fills them on its fast path, so a received message has them already).
``Request.response`` builds a response the RFC 3261 §8.2.6 way.  Reading bytes is
:mod:`sip.message.parser`, writing them :mod:`sip.message.serializer`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sip.errors import LocalProtocolError, RemoteProtocolError
from sip.headers import (
    _CANONICAL,
    CSeq,
    Headers,
    Via,
    parse_cseq,
    parse_via_list,
)
from sip.uri import (
    AbsoluteUri,
    NameAddr,
    TelUri,
    Uri,
    parse_name_addr,
    parse_name_addr_list,
)

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
        return None if value is None else parse_max_forwards(value)

    @property
    def contacts(self) -> list[NameAddr]:
        """Contact values; ``Contact: *`` (REGISTER) gives an empty list."""
        value = self._contacts
        if value is None:
            value = parse_contacts(self.headers.get_all_raw("contact"))
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


def parse_contacts(values: list[str]) -> list[NameAddr]:
    if len(values) == 1 and values[0] == "*":
        return []
    return _parse_list(values)


def parse_max_forwards(value: str) -> int:
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


def canonical(key: str) -> str:
    """The canonical spelling of a header's lookup key ("call-id" -> "Call-ID")."""
    return _CANONICAL.get(key, key)
