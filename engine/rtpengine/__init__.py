"""rtpengine as the media backend: its ng protocol (bencode over UDP) and a ``CallMedia`` on it."""

from __future__ import annotations

from engine.rtpengine.bencode import BencodeError, decode, encode
from engine.rtpengine.client import (
    Instance,
    NgClient,
    NgError,
    NgRefused,
    NgUnavailable,
    open_ng_client,
    parse_instance,
)

__all__ = [
    "BencodeError",
    "Instance",
    "NgClient",
    "NgError",
    "NgRefused",
    "NgUnavailable",
    "decode",
    "encode",
    "open_ng_client",
    "parse_instance",
]
