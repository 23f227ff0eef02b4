"""The trio driver of the callee's INVITE session (``sip.uas_session``).

``InviteServer`` wraps the endpoint's ``IncomingRequest`` for an INVITE: ``progress``,
``answer`` and ``reject`` answer it, ``next_event`` gives ``LegHungUp`` when the caller gives
up or hangs up, ``acked`` is set when the ACK for our 2xx arrived (``ack_sdp``: its answer
when our 2xx carried the offer).  ``sip.session_driver`` steps the session (no task of its own).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import trio

from sip.errors import LocalProtocolError
from sip.invite_dialog import OfferHandler
from sip.message import Response
from sip.session_driver import SessionDriver
from sip.uas_session import UasSession

if TYPE_CHECKING:
    from sip.endpoint import IncomingRequest, SipEndpoint

__all__ = ["InviteServer"]


class InviteServer(SessionDriver):
    """The callee's side of one INVITE session."""

    def __init__(
        self,
        endpoint: SipEndpoint,
        incoming: IncomingRequest,
        *,
        on_offer: OfferHandler | None = None,
        label: str = "",
    ) -> None:
        if incoming.request.method != "INVITE":
            raise LocalProtocolError("InviteServer needs an INVITE")
        self.request = incoming.request
        self.peer = incoming.peer
        self._incoming = incoming
        self._uas = UasSession(
            incoming.request,
            incoming.peer,
            random_token=endpoint.random_token,
            local_address=endpoint.local_address,
            flow_open=endpoint.transport.has_connection,
            config=endpoint.timer_config,
            user_agent=endpoint.user_agent,
            on_offer=on_offer,
        )
        self.acked = trio.Event()  # set when the ACK for our 2xx arrived
        self.ack_sdp: bytes | None = None  # the answer in the ACK when the INVITE had no offer
        super().__init__(endpoint, self._uas, label or incoming.request.call_id)
        self._begin()
        incoming.on_cancel(self._on_cancel)

    @property
    def offer(self) -> bytes | None:
        return self._uas.offer

    def _on_cancel(self) -> None:
        self._uas.cancel_received()
        self._kick()

    def _close(self) -> None:
        super()._close()
        self._incoming.forget_cancel_callbacks()

    async def progress(self, status: int = 180, sdp: bytes | None = None) -> None:
        """Send a provisional response (180 Ringing, 183 with early media SDP...)."""
        self._uas.progress(status, sdp, trio.current_time())
        self._kick()
        await trio.lowlevel.checkpoint()

    async def answer(self, sdp: bytes | None) -> bool:
        """Send 200 OK; it is retransmitted until the ACK (no ACK -> BYE + "no ACK"). False
        when no 200 went out (the INVITE was already answered or cancelled, or was bad)."""
        if self._incoming.answered:  # e.g. the endpoint answered a CANCEL with 487
            self._uas.cancel_received()
            self._kick()
            return False
        sent = self._uas.answer(sdp, trio.current_time())
        self._kick()
        await trio.lowlevel.checkpoint()
        return sent

    async def reject(
        self, status: int, reason: str | None = None, headers: Sequence[tuple[str, str]] = ()
    ) -> None:
        """A final non-2xx answer."""
        self.reject_nowait(status, reason, headers)
        await trio.lowlevel.checkpoint()

    def reject_nowait(
        self, status: int, reason: str | None = None, headers: Sequence[tuple[str, str]] = ()
    ) -> None:
        """``reject`` without a checkpoint: it never waits."""
        self._uas.reject(status, reason, headers)
        self._kick()

    async def bye(self) -> None:
        """BYE an answered call; before the answer: reject with 480."""
        self.bye_nowait()
        await trio.lowlevel.checkpoint()

    def bye_nowait(self) -> None:
        """``bye`` without a checkpoint: it never waits."""
        self._uas.bye(trio.current_time())
        self._kick()

    def _respond_invite(self, response: Response) -> None:
        self._endpoint.respond_nowait(self._incoming, response)

    def _acked(self, sdp: bytes | None) -> None:
        if sdp is not None:
            self.ack_sdp = sdp
        self.acked.set()
