"""The caller's side of an inbound SIP call (the softswitch case), as a call-controller source.

Wraps ``sip.uas_driver.InviteServer``: the controller sends 183 with our SDP (ringback as early
media), then 200 OK when the destination answers, or the destination's failure status. An
INVITE without SDP (late offer) gets 180, then a 200 with our offer, and the ACK's answer.
Once answered, the caller's dialog state is kept in the store while it lasts
(``engine.dialogs``), so that another node can BYE the caller if this one dies.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import trio

from engine.dialogs import DialogKeeper, leg_dialog
from engine.legs import LegEvent, LegHungUp, OfferAnswerer, answer_with
from sip.uas_driver import InviteServer

logger = logging.getLogger(__name__)

_ACK_WAIT = 34.0  # a little over 64*T1 (32 s), after which the session gives up on the ACK


class InboundLeg:
    """``engine.call_types.InboundSource`` over an ``InviteServer``."""

    def __init__(
        self,
        server: InviteServer,
        party_index: int,
        label: str,
        *,
        keeper: DialogKeeper | None = None,
    ) -> None:
        self._server = server
        self._keeper = keeper
        self.phonecall = ""  # the PhoneCall's id, once the engine made it
        self._kept: tuple[str, str] | None = None
        self._party_index = party_index
        self._label = label
        self.offer: bytes | None = server.request.body or None
        self.final_status = 480
        self._answered = False
        self._finished = False

    def bind_media(self, side: OfferAnswerer) -> None:
        """Answer the caller's re-offers from its relay side."""
        self._server.on_offer = answer_with(side)

    @property
    def party_index(self) -> int:
        return self._party_index

    @property
    def label(self) -> str:
        return self._label

    async def start(self, offer: bytes | None) -> None:
        return None

    async def next_event(self) -> LegEvent:
        # the session says "caller cancelled", the BYE's Reason or "caller hung up", "no ACK"
        event = await self._server.next_event()
        if isinstance(event, LegHungUp):
            self._finished = True
            self._forget()
        return event

    def forward_events(self, sink: Callable[[LegEvent], bool]) -> None:
        """Hand the session's events to ``sink`` as they happen (see ``SessionDriver``)."""

        def forward(event: LegEvent) -> bool:
            if isinstance(event, LegHungUp):
                self._finished = True
                self._forget()
            return sink(event)

        self._server.forward_events(forward)

    async def progress(self, status: int, sdp: bytes | None) -> None:
        await self._server.progress(status, sdp)

    async def accept(self, sdp: bytes | None) -> bytes | None:
        self._answered = True
        sent = await self._server.answer(sdp)
        if sent:
            self._keep()
        if self.offer is not None or not sent:  # no 200 went out (e.g. cancelled): no ACK
            return None
        # Late offer: our 200 carried the offer, the ACK carries the answer. No ACK within
        # 64*T1 and the session itself sends BYE (LegHungUp "no ACK").
        with trio.move_on_after(_ACK_WAIT):
            await self._server.acked.wait()
        return self._server.ack_sdp

    async def cancel(self) -> None:
        await self.bye()

    async def bye(self) -> None:
        self.bye_nowait()
        await trio.lowlevel.checkpoint()

    def cancel_nowait(self) -> None:
        self.bye_nowait()

    def bye_nowait(self) -> None:
        """``bye`` without a checkpoint: it never waits."""
        if self._finished:
            return
        self._finished = True
        if self._answered:
            self._server.bye_nowait()
            self._forget()
        else:
            self._server.reject_nowait(self.final_status)

    async def reinvite(self, sdp: bytes) -> bytes | None:
        if not self._answered:
            return None
        try:
            return await self._server.reinvite(sdp)
        finally:
            if self._kept is not None:
                self._keep()  # our CSeq moved on

    def _keep(self) -> None:
        dialog = self._server.dialog
        if self._keeper is None or dialog is None or not self.phonecall:
            return
        self._keeper.answered(self.phonecall, leg_dialog(dialog, self._server.peer))
        self._kept = (dialog.call_id, dialog.local_tag)

    def _forget(self) -> None:
        if self._keeper is not None and self._kept is not None:
            self._keeper.ended(*self._kept)
            self._kept = None
