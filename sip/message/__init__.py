"""SIP requests and responses: parsing, serialisation and framing (RFC 3261 §7, §18.3, §20).

The package's front door: ``from sip.message import Request, parse_message, serialize``.  Each
job lives in a module of its own:

- :mod:`sip.message.model`: ``Request``, ``Response`` and their typed, cached header views,
  ``Request.response`` and the standard reason phrases;
- :mod:`sip.message.parser`: ``parse_message`` (one datagram) and ``StreamParser`` (framing a
  TCP stream by Content-Length), lenient where real stacks are sloppy, otherwise
  ``RemoteProtocolError`` with the status to answer (400, 413, 505);
- :mod:`sip.message.serializer`: ``serialize``, strict about what it sends, writing
  Content-Length itself, so ``parse_message(serialize(m)) == m``.
"""

from __future__ import annotations

from sip.message.model import Message, Request, Response, reason_phrase
from sip.message.parser import StreamParser, parse_message
from sip.message.serializer import serialize

__all__ = [
    "Message",
    "Request",
    "Response",
    "StreamParser",
    "parse_message",
    "reason_phrase",
    "serialize",
]
