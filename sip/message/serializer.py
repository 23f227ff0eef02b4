"""Writing SIP messages: ``serialize`` turns a ``Request`` or ``Response`` into bytes.

``serialize`` is strict: it refuses (LocalProtocolError) a message without Via, From, To, Call-ID
or CSeq, a request whose CSeq method differs from its method, and writes Content-Length itself
(the parser consumes Content-Length as framing: parsed ``Headers`` never contain it, so
``parse_message(serialize(m)) == m``; a Content-Length put in ``Headers`` by hand is replaced).
"""

from __future__ import annotations

from sip._grammar import TOKEN_RE
from sip.errors import LocalProtocolError
from sip.message.model import Message, Request, canonical

_MANDATORY = ("via", "from", "to", "call-id", "cseq")
_token_fullmatch = TOKEN_RE.fullmatch


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
