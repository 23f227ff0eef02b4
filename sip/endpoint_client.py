"""One client transaction seen from the TU (``ClientRequest``), made by ``SipEndpoint.request``.

It sends on ``start()`` (or first iteration) and yields responses until the final one; Timer
B/F gives a synthesised 408 and a transport failure a 503 (§8.1.3.1, §8.1.3.4).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

import trio

from sip.errors import LocalProtocolError
from sip.message import Request, Response
from sip.transaction import Peer, TxKey

if TYPE_CHECKING:
    from sip.endpoint import SipEndpoint

__all__ = ["ClientRequest"]


class ClientRequest:
    """One client transaction seen from the TU: an async iterator of its responses, or (with
    a ``sink``) each response handed to ``sink(response, peer)`` as it arrives."""

    def __init__(
        self,
        endpoint: SipEndpoint,
        request: Request,
        peer: Peer,
        sink: Callable[[Response, Peer], None] | None = None,
    ) -> None:
        self._endpoint = endpoint
        self.request = request
        self.peer = peer
        self.key: TxKey | None = None
        self._sink = sink
        # the queue an iterating TU reads; none with a sink (fewer objects per transaction)
        self._send: trio.MemorySendChannel[Response] | None = None
        self._receive: trio.MemoryReceiveChannel[Response] | None = None
        if sink is None:
            self._send, self._receive = trio.open_memory_channel[Response](math.inf)
        self._done = False
        self._final_seen = False

    async def start(self) -> None:
        if self.key is None:
            await self._endpoint._start_client(self)

    def _deliver(self, response: Response) -> bool:
        """Queue a response; False once the final one went by (the caller reroutes)."""
        if self._done:
            return False
        if response.status >= 200:
            self._done = True
        if self._sink is not None:
            self._sink(response, self.peer)
        elif self._send is not None:
            self._send.send_nowait(response)
        return True

    def _fail(self, status: int) -> None:
        if not self._done:
            self._deliver(self.request.response(status))

    def __aiter__(self) -> ClientRequest:
        return self

    async def __anext__(self) -> Response:
        if self.key is None:
            await self.start()
        if self._final_seen:
            raise StopAsyncIteration
        if self._receive is None:
            raise LocalProtocolError("a request with a sink has no responses to iterate")
        response = await self._receive.receive()
        if response.status >= 200:
            self._final_seen = True
        return response
