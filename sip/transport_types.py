"""What the transport's parts share: its error and the callbacks it is given."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from sip.message import Message
from sip.transaction_types import Peer

__all__ = ["ErrorCallback", "MessageCallback", "TransportError"]

MessageCallback = Callable[[Message, Peer], Awaitable[None]]
ErrorCallback = Callable[[Peer], Awaitable[None]]


class TransportError(Exception):
    """A message could not be sent (no listener, connection refused, broken stream)."""
