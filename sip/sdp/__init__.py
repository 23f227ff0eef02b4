"""SDP (RFC 8866) parsing and serialising, and the offer/answer rules (RFC 3264) a B2BUA needs.

The package's front door: ``from sip import sdp`` and ``sdp.parse``, ``sdp.make_offer``,
``sdp.SessionDescription``... Each job lives in a module of its own:

- :mod:`sip.sdp.model`: the frozen dataclasses (a session description, its media sections,
  codecs, directions) and what they read out of their attributes;
- :mod:`sip.sdp.parser`: bytes to the model, lenient where real peers are sloppy, otherwise
  :class:`~sip.errors.RemoteProtocolError` (status hint 400) and nothing else;
- :mod:`sip.sdp.serializer`: the model to CRLF-terminated lines in RFC 8866 order, strict
  (:class:`~sip.errors.LocalProtocolError` for what could not be parsed back);
- :mod:`sip.sdp.offer_answer`: offers, answers, hold, media anchoring (RFC 3264, 3605, 6337).

``parse(serialize(sd))`` gives ``sd`` back, and a description that passes through the B2BUA
loses nothing: lines and attributes the model does not interpret are kept verbatim.
"""

from __future__ import annotations

from sip.sdp.cache import ParseCache
from sip.sdp.model import (
    Attribute,
    Codec,
    Connection,
    Direction,
    MediaDescription,
    Origin,
    Rtcp,
    SessionDescription,
    Timing,
)
from sip.sdp.offer_answer import (
    DEFAULT_AUDIO_CODECS,
    DEFAULT_VIDEO_CODECS,
    ICE_ATTRIBUTES,
    bump_version,
    hold,
    make_answer,
    make_offer,
    rewrite_connection,
    with_direction,
)
from sip.sdp.parser import parse

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
    "ParseCache",
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
