"""Conference extensions: rooms that mix every party they hold, and the calls that join them.

A conference extension (directory ``type = "conference"``) is a room. A party gets in either
by a ConferenceInvite (the engine dials a number; when it answers it joins) or by calling the
extension's number itself (an inbound INVITE: answered at once, then it joins). Each party is
one PhoneCall of its own, run by :class:`ConferenceCall`: source = the conference (for an
invite) or the caller (dialled in), destination = the invited party (or the conference).

The room (:class:`Room`) holds the relay side of every member and keeps one relay mix of all
of them: each hears every other member, never itself. The mix is re-formed (stopped and
started with the new members) on every join and leave; a member alone hears silence. The
relay's mixer joins at most ``MAX_MEMBERS`` endpoints, so a room takes that many parties,
counting the ones still being rung (a further invite is refused with ``ConferenceFull``, a
further caller gets 486 Busy Here). The last party to leave ends the room (it is forgotten;
the next party to join opens a new one).

PINs: a ConferenceInvite for a room with a PIN must give it (``ConferencePinInvalid``
otherwise). A phone has no way to give one over SIP here (no IVR prompt, no DTMF collection),
so a room with a PIN takes no dialled-in callers: they get 403 Forbidden. A room without a PIN
takes any caller the directory lets call the extension.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import trio

from engine.call_inbound import accept_inbound, answer_inbound
from engine.call_types import CallContext, CallEnded, CallMedia, InboundSource, MediaSide
from engine.calls import SimpleCall
from engine.errors import CodecNotMixable, ConferenceFull, ConferencePinInvalid
from engine.fork import fork
from engine.media.errors import MediaError
from engine.media.mixer import MAX_MEMBERS
from engine.model import CallState, Disposition, PartyStatus, PhoneCall
from engine.sandbox import SANDBOX_MAX_DURATION

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class _Member:
    media: CallMedia
    side: MediaSide


@dataclass(slots=True)
class Room:
    """One live conference: its members (by call id) and the calls being rung for it."""

    number: str  # the conference extension, extended form
    capacity: int
    members: dict[str, _Member] = field(default_factory=dict)
    pending: set[str] = field(default_factory=set)  # call ids still ringing their party
    mixed: MediaSide | None = None  # a member of the relay mix now running, if one is
    mixed_by: CallMedia | None = None  # the media that started it

    @property
    def taken(self) -> int:
        return len(self.members) + len(self.pending)


class Conferences:
    """Every live room of one engine, by conference number."""

    def __init__(self, capacity: int = MAX_MEMBERS) -> None:
        self.capacity = capacity
        self._rooms: dict[str, Room] = {}

    def room(self, number: str) -> Room | None:
        return self._rooms.get(number)

    def size(self, number: str) -> int:
        """Members joined (not counting parties still being rung)."""
        room = self._rooms.get(number)
        return 0 if room is None else len(room.members)

    def check_pin(self, number: str, required: str | None, given: str | None) -> None:
        if required is not None and given != required:
            what = "is missing" if given is None else "is wrong"
            raise ConferencePinInvalid(f"the PIN of conference {number} {what}")

    def reserve(self, number: str, call_id: str) -> None:
        """Hold a place for a party being rung; ``ConferenceFull`` when there is none."""
        room = self._rooms.setdefault(number, Room(number, self.capacity))
        if room.taken >= room.capacity:
            if not room.members and not room.pending:
                del self._rooms[number]
            raise ConferenceFull(
                f"conference {number} is full ({room.capacity} parties, the mixer's limit)"
            )
        room.pending.add(call_id)

    def join(self, number: str, call_id: str, media: CallMedia, side: MediaSide) -> int:
        """The party of ``call_id`` is in: mix it with the others; how many are in now.
        ``CodecNotMixable`` (the room as it was) when its codec cannot be mixed."""
        room = self._rooms.setdefault(number, Room(number, self.capacity))
        room.pending.discard(call_id)
        room.members[call_id] = _Member(media, side)
        try:
            self._remix(room)
        except (MediaError, ValueError) as exc:
            del room.members[call_id]
            self._remix_quietly(room)
            raise CodecNotMixable(f"conference {number}: {exc}") from None
        return len(room.members)

    def leave(self, number: str, call_id: str) -> int:
        """The party of ``call_id`` left (or was never reached); how many stay. The last one
        out ends the room."""
        room = self._rooms.get(number)
        if room is None:
            return 0
        room.pending.discard(call_id)
        was_member = room.members.pop(call_id, None) is not None
        if was_member:
            self._remix_quietly(room)
        if not room.members and not room.pending:
            del self._rooms[number]
            if was_member:
                logger.info("conference %s ended: its last party left", number)
        return len(room.members)

    def _remix(self, room: Room) -> None:
        """Stop the room's mix and start one of its members now (none for fewer than two);
        ``MediaError`` or ``ValueError`` when the relay cannot mix them."""
        if room.mixed is not None:
            mixed, room.mixed = room.mixed, None
            media = room.mixed_by
            try:  # the mix stops for all its members at once (the relay is shared)
                if media is not None:
                    media.stop_mix(mixed)
            except Exception:
                logger.exception("conference %s: could not stop its mix", room.number)
        members = list(room.members.values())
        if len(members) < 2:
            return
        sides = [m.side for m in members]
        hears = [(i, j) for i in range(len(sides)) for j in range(len(sides)) if i != j]
        members[0].media.start_mix(sides, hears)
        room.mixed, room.mixed_by = sides[0], members[0].media

    def _remix_quietly(self, room: Room) -> None:
        """``_remix`` after a party left: a failure is logged (the others stay connected)."""
        try:
            self._remix(room)
        except Exception:
            logger.exception("conference %s: could not mix its parties", room.number)


class ConferenceCall(SimpleCall):
    """One party of a conference, from ringing (or its INVITE) to leaving."""

    def __init__(
        self,
        call: PhoneCall,
        ctx: CallContext,
        *,
        conference: str,
        pin: str | None,
        rooms: Conferences,
        inbound: InboundSource | None = None,
    ) -> None:
        super().__init__(call, ctx, inbound=inbound)
        self.conference = conference
        self.pin = pin
        self.rooms = rooms

    async def _run(self) -> None:
        call = self.call
        try:
            await self._join()
        finally:
            self.rooms.leave(self.conference, call.id)

    async def _join(self) -> None:
        call = self.call
        self._media = self.ctx.media(call)
        room_party = next(p for p in call.parties if p.extension == self.conference)
        guests = [p for p in call.parties if p is not room_party]
        if self._inbound is not None:
            self._admit(self._inbound)
            member = await answer_inbound(self, self._inbound)
            await accept_inbound(self, self._inbound, member, member)
        else:
            call.state = CallState.CALLING_DESTINATION
            self._changed("calling_destination")
            side = self._new_side("b")
            member = await fork(
                self,
                guests,
                side,
                await side.offer(None),
                call.caller_id_destination,
                call.wait_for_pickup,
            )
        started = trio.current_time()
        now = self._now()
        call.answered = call.answered or now
        room_party.status = PartyStatus.ON_CALL
        room_party.answered = room_party.answered or now
        member.party.status = PartyStatus.ON_CALL
        duration = call.call_duration
        if member.party.kind == "sandbox":
            duration = min(duration, SANDBOX_MAX_DURATION)
        with trio.move_on_at(started + duration) as duration_scope:
            await self._tone_for_sandbox(member)
            assert self._media is not None
            try:
                count = self.rooms.join(self.conference, call.id, self._media, member.side)
            except CodecNotMixable as exc:
                raise CallEnded(Disposition.FAILED, exc.message) from None
            call.state = CallState.BRIDGED
            call.bridged = now
            self._changed(
                "conference_joined",
                {"party": member.party.number, "conference": self.conference, "parties": count},
            )
            await self._talk()
        if duration_scope.cancelled_caught:
            raise CallEnded(Disposition.ANSWERED, "call duration reached")

    def _admit(self, inbound: InboundSource) -> None:
        """A caller dialling in: refused (with its SIP status) when the room has a PIN or no
        place left."""
        if self.pin is not None:
            inbound.final_status = 403
            raise CallEnded(Disposition.NOT_ALLOWED, "the conference has a PIN: invite only")
        try:
            self.rooms.reserve(self.conference, self.call.id)
        except ConferenceFull as exc:
            inbound.final_status = 486
            raise CallEnded(Disposition.BUSY, str(exc)) from None
