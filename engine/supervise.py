"""The listen-in actions: Monitor, Whisper and BargeIn bring a supervisor into a bridged call.

The engine checks a request at once (``supervise_request``: the call is bridged, nobody else
is joining or listening, ``sendCallTo`` is a Phone Terminal extension of the organization, the
parties talk G.711), then the call's task rings the supervisor like a transfer target
(``supervise``). When it answers, the relay mixes the three (``engine.media.mixer``), each
hearing what the action allows:

- ``Monitor``: the supervisor hears both parties; nobody hears it.
- ``Whisper``: the supervisor is heard by one party only (the one that is an extension of the
  organization; when both are, the view named by ``phoneCallViewId``); it hears both, or
  nobody with ``privateW``.
- ``BargeIn``: all three hear each other.

No answer in time (or any failure) drops the supervisor and the call goes on as it was. The
supervisor's BYE ends the mix: the two parties are back on their plain bridge. Either party's
BYE ends the call for everyone, the supervisor included (the call's usual end).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from engine.anchor import audio_codec
from engine.call_types import Connected, ForkFailed, Supervise
from engine.directory import ExtensionType
from engine.errors import (
    ActionInProgress,
    CallNotBridged,
    CodecNotMixable,
    NoPartyToWhisperTo,
    TransferTargetInvalid,
    ViewNotFound,
)
from engine.fork import fork
from engine.model import CallState, PartyStatus, PhoneCall

if TYPE_CHECKING:
    from engine.calls import SimpleCall
    from engine.directory import Directory
    from engine.engine import CallAction
    from engine.model import Party

logger = logging.getLogger(__name__)

SUPERVISE_ACTIONS = ("Monitor", "Whisper", "BargeIn")
# the role of the supervisor's PhoneCallView, per action
SUPERVISOR_ROLES = {"Monitor": "monitor", "Whisper": "whisper", "BargeIn": "bargein"}
DEFAULT_WAIT_FOR_PICKUP = 25.0
MIXABLE_CODECS = (0, 8)  # PCMU, PCMA
# what the supervisor is offered: G.711 only, the codecs the mixer speaks
_G711_OFFER_TEMPLATE = (
    b"v=0\r\no=- 0 0 IN IP4 0.0.0.0\r\ns=-\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\n"
    b"m=audio 9 RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n"
    b"a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\n"
)


@dataclass(frozen=True, slots=True)
class _Talking:
    """The two parties of a bridged call, in the order of the call's views."""

    indexes: tuple[int, int]
    connected: tuple[Connected, Connected]


def talking(controller: SimpleCall) -> _Talking | None:
    """The call's source and destination while both are connected; None otherwise."""
    pairs = sorted(
        (i, c)
        for i, c in controller._connected.items()
        if c.party.role in ("source", "destination")
    )
    if len(pairs) != 2:
        return None
    (i, a), (j, b) = pairs
    return _Talking((i, j), (a, b))


def supervisor_of(call: PhoneCall) -> Party | None:
    """The supervisor being rung or listening, if any."""
    for party in call.parties:
        if party.role in SUPERVISOR_ROLES.values() and party.ended is None:
            return party
    return None


def supervise_request(
    call: PhoneCall,
    action: CallAction,
    controller: SimpleCall,
    directory: Directory,
    make_party: Callable[[str, str, int], Party],
) -> Supervise:
    """The control for a Monitor, Whisper or BargeIn; an ``EngineError`` if it cannot be."""
    name = action.action
    if call.state is not CallState.BRIDGED:
        raise CallNotBridged(f"{name} needs a connected call")
    present = supervisor_of(call)
    if present is not None:
        raise ActionInProgress(f"{present.number} is already joining or listening to this call")
    if controller._transfer_staying is not None:
        raise ActionInProgress("a transfer of this call is ringing")
    pair = talking(controller)
    if pair is None:
        raise CallNotBridged(f"{name} needs both parties connected")
    number = action.send_call_to
    if not number:
        raise TransferTargetInvalid(f"{name} needs sendCallTo: an extension to ring")
    ext = directory.find_extension(number, call.organization_id)
    if ext is None or ext.organization != call.organization_id:
        raise TransferTargetInvalid(
            f"sendCallTo {number!r} is not an extension of the call's organization"
        )
    if ext.type is not ExtensionType.PHONE_TERMINAL:
        raise TransferTargetInvalid(f"sendCallTo {number!r} is not a Phone Terminal extension")
    if any(p.extension == ext.extended and p.ended is None for p in call.parties):
        raise TransferTargetInvalid(f"{ext.extended} is already in this call")
    view = _view(call, action.phone_call_view_id, pair)
    whispered_to: int | None = None
    if name == "Whisper":
        whispered_to = _whispered_to(call, directory, view, pair)
    for index, connected in zip(pair.indexes, pair.connected, strict=True):
        if connected.party.kind == "sandbox":
            continue  # played by the relay itself, in PCMU
        codec = audio_codec(connected.side.accepted)
        if codec is None or codec[0] not in MIXABLE_CODECS:
            talks = "no audio codec" if codec is None else codec[1]
            raise CodecNotMixable(
                f"{name} mixes G.711 (PCMU, PCMA) only; {call.parties[index].number} talks {talks}"
            )
    party = make_party(ext.extended, SUPERVISOR_ROLES[name], call.organization_id)
    party.status = PartyStatus.UNKNOWN
    return Supervise(
        mode=name,
        target=party,
        whispered_to=whispered_to,
        private=action.private_whisper,
        caller_id=action.caller_id or call.caller_id,
        wait_for_pickup=float(action.wait_for_pickup or DEFAULT_WAIT_FOR_PICKUP),
    )


def _view(call: PhoneCall, view_id: str | None, pair: _Talking) -> int | None:
    """The party index ``phoneCallViewId`` names: one of the two talking parties."""
    if view_id is None:
        return None
    try:
        index = int(view_id)
    except ValueError:
        index = -1
    if index not in pair.indexes:
        raise ViewNotFound(f"phoneCallView {view_id!r} is not a party talking in this call")
    return index


def _whispered_to(call: PhoneCall, directory: Directory, view: int | None, pair: _Talking) -> int:
    """The party a whisper is heard by: the one that is an extension of the organization."""
    ours = []
    for index in pair.indexes:
        party = call.parties[index]
        ext = None if party.extension is None else directory.extension(party.extension)
        if ext is not None and ext.organization == call.organization_id:
            ours.append(index)
    if not ours:
        raise NoPartyToWhisperTo(
            "Whisper needs a party that is an extension of the call's organization; none is"
        )
    if len(ours) == 1:
        return ours[0]
    if view is None:
        raise NoPartyToWhisperTo(
            "both parties are extensions of the organization: name the one to whisper to "
            "with phoneCallViewId"
        )
    return view


def hears(mode: str, whispered_to: int | None, private: bool) -> list[tuple[int, int]]:
    """The mix's (listener, speaker) pairs; members 0 and 1 are the parties, 2 the supervisor."""
    pairs = [(0, 1), (1, 0)]
    if mode == "BargeIn":
        return [*pairs, (0, 2), (1, 2), (2, 0), (2, 1)]
    if mode == "Whisper":
        if whispered_to not in (0, 1):
            raise ValueError("Whisper needs the party that hears the whisperer")
        pairs.append((whispered_to, 2))
        if private:
            return pairs
    return [*pairs, (2, 0), (2, 1)]


async def supervise(controller: SimpleCall, request: Supervise) -> None:
    """Ring the supervisor; on answer mix it in. Runs in the call's task."""
    media = controller._media
    assert media is not None
    call = controller.call
    party = request.target
    pair = talking(controller)
    present = supervisor_of(call)
    busy = present is not None or controller._transfer_staying is not None
    if pair is None or busy:  # changed since the engine checked (requests queued together)
        cause = "the call is not bridged" if pair is None else "another party is joining"
        controller._changed(
            "supervisor_failed", {"party": party.number, "action": request.mode, "cause": cause}
        )
        return
    try:
        side = media.new_side("supervisor", False)
    except Exception as exc:  # no relay ports left: the call goes on as it was
        controller.ctx.observer.shortage(call, f"{request.mode} without media ports: {exc}")
        controller._changed(
            "supervisor_failed",
            {"party": party.number, "action": request.mode, "cause": f"no media ports: {exc}"},
        )
        return
    call.parties.append(party)
    try:
        joined = await fork(
            controller,
            [party],
            side,
            await side.offer(_G711_OFFER_TEMPLATE),
            request.caller_id,
            request.wait_for_pickup,
        )
    except ForkFailed as failed:
        controller._changed(
            "supervisor_failed",
            {"party": party.number, "action": request.mode, "cause": failed.cause},
        )
        return
    pair = talking(controller)
    member = None if request.whispered_to is None else pair_member(pair, request.whispered_to)
    try:
        if pair is None:
            raise RuntimeError("a party left while the supervisor answered")
        media.start_mix(
            [*(c.side for c in pair.connected), joined.side],
            hears(request.mode, member, request.private),
        )
    except Exception as exc:  # the supervisor's codec, a relay failure: drop it
        logger.warning("call %s: %s not mixed in: %s", call.id, party.number, exc)
        await drop_supervisor(controller, joined, f"not mixed in: {exc}")
        controller._bye_soon(joined.leg)
        controller._changed(
            "supervisor_failed",
            {"party": party.number, "action": request.mode, "cause": f"not mixed in: {exc}"},
        )
        return
    controller._changed("supervisor_joined", {"party": party.number, "action": request.mode})


def pair_member(pair: _Talking | None, index: int) -> int | None:
    """Which member of the mix (0 or 1) party ``index`` is."""
    if pair is None or index not in pair.indexes:
        return None
    return pair.indexes.index(index)


async def drop_supervisor(controller: SimpleCall, connected: Connected, cause: str) -> None:
    """The supervisor leaves (its BYE, or it could not be mixed in): the call as it was."""
    party = connected.party
    party.hangup_cause = cause
    party.ended = controller._now()
    party.status = PartyStatus.UNKNOWN
    await controller._keep_stats(connected)
    index = controller._index_of(party)
    controller._connected.pop(index, None)
    media = controller._media
    if media is not None:
        try:
            media.stop_mix(connected.side)
        except Exception as exc:  # the relay is gone: the call's end will say so
            logger.warning("call %s: mix not stopped: %s", controller.call.id, exc)


async def supervisor_hung_up(controller: SimpleCall, connected: Connected) -> None:
    """The supervisor's BYE: the two parties go back to their bridge."""
    await drop_supervisor(controller, connected, "supervisor hung up")
    controller._changed("supervisor_left", {"party": connected.party.number})


def is_supervisor(party: Party) -> bool:
    return party.role in SUPERVISOR_ROLES.values()
