"""A hook that sees every SIP message the transport sends or receives.

Metrics (messages by method and status class) and per-call traces both watch the wire through
it. ``SipTransport.add_observer`` registers one; the transport calls it for each message it
parsed on receive and for each message it sent (retransmissions included: a request or a
non-2xx response the transaction layer sends again is the very ``Message`` object it sent
first; ``sip.endpoint.SipEndpoint.statistics`` counts them, and the dialogs' 2xx
retransmissions, as ``retransmissions``). With the message comes ``data``, its bytes as they
passed on the wire (a received request's as it arrived, before the transport stamps its Via
with ``received``/``rport``), so an observer that keeps messages never serialises one again.
An observer is called inline on the event loop, so it must be quick; an exception it raises
is caught and logged once by the transport, never passed on.
"""

from __future__ import annotations

from typing import Literal, Protocol

from sip.message import Message
from sip.transaction_types import Peer

__all__ = ["MessageObserver"]


class MessageObserver(Protocol):
    def message(
        self, direction: Literal["in", "out"], message: Message, peer: Peer, data: bytes
    ) -> None: ...
