"""Answering a SIP caller (the softswitch case): the inbound leg of a ``SimpleCall``.

The caller's offer is answered from relay side A with a 183 and ringback (early media) until the
destination answers; its 200 OK comes then (``accept_inbound``), carrying our offer instead
when the caller's INVITE had none (late offer). Both run inside the call's task.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from engine.call_types import CallEnded, Connected, InboundSource, MediaUnavailable, bind_media
from engine.model import Disposition, PartyStatus
from sip import sdp
from sip.errors import RemoteProtocolError

if TYPE_CHECKING:
    from engine.calls import SimpleCall


async def answer_inbound(controller: SimpleCall, inbound: InboundSource) -> Connected:
    """A SIP caller (the softswitch case): answer its offer from side A with a 183 and
    ringback (early media) until the destination answers; 200 OK comes then."""
    assert controller._media is not None
    party = controller.call.parties[inbound.party_index]
    try:
        side_a = controller._new_side("a")
    except CallEnded:  # no relay ports left: the caller hears why
        inbound.final_status = 503
        raise
    try:
        controller._inbound_answer = await side_a.answer(inbound.offer) if inbound.offer else None
    except MediaUnavailable:
        raise  # not the caller's fault: 503 (see run)
    except Exception as exc:  # an offer we cannot answer
        inbound.final_status = 488
        raise CallEnded(Disposition.FAILED, f"unusable SDP offer: {exc}") from None
    bind_media(inbound, side_a)
    connected = Connected(inbound, party, side_a)
    controller._connected[inbound.party_index] = connected
    assert controller._nursery is not None
    controller._nursery.start_soon(controller._pump, inbound, None)
    # 183 with our answer: the caller hears ringback (early media). A late offer gets 180:
    # our offer may only go in a reliable response, the 200 OK.
    await inbound.progress(183 if controller._inbound_answer else 180, controller._inbound_answer)
    party.status = PartyStatus.OFF_HOOK
    return connected


async def accept_inbound(
    controller: SimpleCall, inbound: InboundSource, source: Connected, dest: Connected
) -> None:
    if inbound.offer is not None:
        await inbound.accept(controller._inbound_answer)
        return
    # Late offer: the 200 carries our offer (with the codecs the destination chose), the
    # caller's ACK the answer (RFC 3261 §13.2.1, RFC 3264).
    answer = await inbound.accept(await source.side.offer(dest.side.accepted))
    if not answer:
        raise CallEnded(Disposition.FAILED, "the caller's ACK carried no SDP answer")
    try:
        parsed = sdp.SessionDescription.parse(answer)
    except RemoteProtocolError as exc:
        raise CallEnded(
            Disposition.FAILED, f"the caller's SDP answer is unusable: {exc.reason}"
        ) from None
    if not any(m.port for m in parsed.media):
        raise CallEnded(Disposition.FAILED, "the caller's SDP answer rejected every stream")
    await source.side.apply_remote(answer)
