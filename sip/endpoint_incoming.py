"""A request for the TU (``IncomingRequest``) and who receives requests from the endpoint.

* Out-of-dialog requests go to the ``RequestHandler``, each in a task of its own; in-dialog
  requests (and their 2xx's ACK) to the ``DialogOwner`` registered for the dialog, handed over
  synchronously in arrival order.
* ``IncomingRequest.respond`` answers on the request's server transaction; ``tagged`` gives
  every response but a 100 the same To tag (§8.2.6.2).
* CANCEL (§9.2): when the endpoint matches a CANCEL to this INVITE (and answered it 487 unless
  a final response went out already), ``cancelled`` is set and the ``on_cancel`` callbacks
  run.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import trio

from sip.endpoint_ids import new_tag
from sip.message import Request, Response
from sip.transaction import Peer, TxKey

if TYPE_CHECKING:
    from sip.endpoint import SipEndpoint

__all__ = ["DialogOwner", "IncomingRequest", "RequestHandler"]

# the endpoint's lines keep the logger name they had when this was one module
log = logging.getLogger("sip.endpoint")


class DialogOwner(Protocol):
    """Whoever owns a dialog (a session): gets its in-dialog traffic from the endpoint, handed
    over synchronously in arrival order (the owner queues it for its own task)."""

    def deliver_request(self, incoming: IncomingRequest) -> None: ...

    def deliver_response(self, response: Response, peer: Peer) -> None: ...


RequestHandler = Callable[["IncomingRequest"], Awaitable[None]]


@dataclass(eq=False)
class IncomingRequest:
    """A request for the TU; ``respond`` sends on its server transaction."""

    request: Request
    peer: Peer
    key: TxKey | None
    endpoint: SipEndpoint = field(repr=False)
    cancelled: trio.Event = field(default_factory=trio.Event)
    final_status: int | None = None
    to_tag: str | None = None  # our To tag once a response carried one
    _cancel_callbacks: list[Callable[[], None]] = field(default_factory=list, repr=False)

    @property
    def answered(self) -> bool:
        return self.final_status is not None

    def tagged(self, response: Response) -> Response:
        """``response`` with our To tag (§8.2.6.2: every response but 100 to a request without
        one carries a tag, the same on every response of this request)."""
        if response.status == 100:
            return response
        tag = response.to.tag
        if tag is not None:
            if self.to_tag is None and self.request.to.tag is None:
                self.to_tag = tag
            return response
        if self.request.to.tag is not None:
            return response
        if self.to_tag is None:
            self.to_tag = new_tag()
        to = response.to.with_tag(self.to_tag)
        return response.with_headers(response.headers.replace("To", str(to)))

    def on_cancel(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` when a CANCEL arrives (at once if one already did)."""
        if self.cancelled.is_set():
            callback()
        else:
            self._cancel_callbacks.append(callback)

    def forget_cancel_callbacks(self) -> None:
        """Drop the callbacks ``on_cancel`` kept: their owner is done with this request (and
        a callback that is its bound method would keep both alive as a reference cycle)."""
        self._cancel_callbacks.clear()

    def _cancel(self) -> None:
        self.cancelled.set()
        callbacks, self._cancel_callbacks = self._cancel_callbacks, []
        for callback in callbacks:
            try:
                callback()
            except Exception:
                log.exception("cancel callback failed")

    async def respond(self, response: Response) -> None:
        self.endpoint.respond_nowait(self, response)
        await trio.lowlevel.checkpoint()
