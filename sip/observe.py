"""Watching every SIP message the transport sends and receives (metrics, per-call traces).

``SipTransport.add_observer(observer)`` registers a ``MessageObserver``: the transport calls
its ``message`` for each message it parsed on receive (before any Via stamping, as it came)
and for each message it sends, retransmissions included (a retransmission is the same message
again: an observer that must tell them apart compares what it saw). Observers run on the
transport's task and must be quick; an exception from one is logged once per observer and
never reaches the transport.
"""

from __future__ import annotations

from typing import Literal, Protocol

from sip.message import Message
from sip.transaction_types import Peer

__all__ = ["Direction", "MessageObserver"]

Direction = Literal["in", "out"]


class MessageObserver(Protocol):
    def message(self, direction: Literal["in", "out"], message: Message, peer: Peer) -> None: ...
