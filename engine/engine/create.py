"""Creating and starting calls: a Simple PhoneCall from the API (``originate``), a call from a
SIP caller (``start_inbound``); the parties they ring, each call's task and what it works with.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import trio

from engine.call_types import CallContext, InboundSource
from engine.calls import SimpleCall
from engine.conference import ConferenceCall
from engine.directory import Extension, ExtensionType
from engine.engine.events import CallEvents
from engine.engine.reads import CallReads
from engine.engine.state import LiveCall
from engine.errors import ActionNotSupported, ConferenceInvalid, EngineDraining
from engine.legs import Leg
from engine.logctx import CALL_ID
from engine.model import Flow, Party, PartyStatus, PhoneCall, new_call_id
from engine.numbers import (
    ExtensionTarget,
    NumberError,
    PublicTarget,
    SandboxTarget,
    Target,
    resolve,
    target_of,
)
from engine.sandbox import SandboxLeg, plan_for
from engine.store.interface import StoreUnavailable

# The Engine's lines keep their package's logger name, whichever of its modules logs them
# (operators filter on it: docs/OPERATIONS.md).
logger = logging.getLogger("engine.engine")


@dataclass(frozen=True, slots=True)
class OriginateRequest:
    """A validated Simple PhoneCall request (the HTTP layer checks the UAPI rules)."""

    user_id: int
    organization_id: int
    extension: Extension  # the charged Phone Terminal extension
    sources: list[str]
    destinations: list[str]
    caller_id: str | None = None
    caller_id_destination: str | None = None
    nonce: str | None = None
    wait_for_pickup: int = 25
    call_duration: int | None = None  # None: [calls] max_duration
    allow_public_transfer: bool = False
    video: bool = False
    status_callback: str | None = None
    # where numbers ring, when the caller resolved them already (the API's checks did)
    targets: Mapping[str, Target] = field(default_factory=dict)
    # ConferenceInvite: the conference extension (extended) the destination joins, its PIN
    conference: str | None = None
    pin: str | None = None


class CallCreation(CallEvents, CallReads):
    """The create and start paths of the Engine."""

    async def originate(self, req: OriginateRequest) -> tuple[PhoneCall, bool]:
        """Store the PhoneCall and start it; ``(call, False)`` when the nonce was seen before."""
        if self.draining:
            raise EngineDraining("the server is shutting down")
        if not self.store.available:  # its record could not be kept: refuse it (503)
            raise StoreUnavailable(f"store {self.store.name!r} unreachable")
        if req.nonce is not None:
            existing = await self.store.afind_call_by_nonce(req.user_id, req.nonce)
            if existing is not None:
                return existing, False
        call = PhoneCall(
            id=new_call_id(self._ids),
            user_id=req.user_id,
            organization_id=req.organization_id,
            extension=req.extension.extended,
            sources=list(req.sources),
            destinations=list(req.destinations),
            caller_id=req.caller_id or req.extension.caller_id,
            caller_id_destination=req.caller_id_destination or req.extension.caller_id,
            nonce=req.nonce,
            wait_for_pickup=req.wait_for_pickup,
            call_duration=req.call_duration or self.config.calls.max_duration,
            allow_public_transfer=req.allow_public_transfer,
            video=req.video,
            status_callback=req.status_callback,
            published=self._wall_clock(),
            node=self.config.cluster.node,
        )
        org, targets = req.organization_id, req.targets
        for number in req.sources:
            call.parties.append(self.make_party(number, "source", org, targets.get(number)))
        for number in req.destinations:
            call.parties.append(self.make_party(number, "destination", org, targets.get(number)))
        call.events = 1  # "created", published by _start
        conference = self._conference_for(req)
        if conference is not None:  # a place in the room (ConferenceFull: the nonce stays free)
            self.conferences.reserve(conference.extended, call.id)
        try:
            if req.nonce is not None:  # atomic across nodes: one create wins a user's nonce
                winner = await self.store.aclaim_nonce(req.user_id, req.nonce, call.id)
                if winner != call.id:
                    existing = await self._claimed_call(winner)
                    if existing is not None:
                        if conference is not None:
                            self.conferences.leave(conference.extended, call.id)
                        return existing, False
                    # its node died between the claim and the write: this call takes the
                    # nonce (find_call_by_nonce, asked first, finds it from now on)
            self.store.save_call(call)
        except BaseException:
            if conference is not None:
                self.conferences.leave(conference.extended, call.id)
            raise
        self._start(call, conference=conference)
        # before the 202: the record is in the shared store, so another node asked for the
        # call right after reads it (a node's writes are queued on a database server)
        await self.store.written()
        return call, True

    def _conference_for(self, req: OriginateRequest) -> Extension | None:
        """A ConferenceInvite's conference extension, its PIN checked; None for other calls."""
        if req.conference is None:
            return None
        if self.mixing_unavailable is not None:
            raise ActionNotSupported(f"conferences: {self.mixing_unavailable}")
        ext = self.directory.find_extension(req.conference, req.organization_id)
        if ext is None or ext.type is not ExtensionType.CONFERENCE:
            raise ConferenceInvalid(f"{req.conference} is not a conference extension")
        self.conferences.check_pin(ext.extended, ext.pin, req.pin)
        return ext

    async def _claimed_call(self, call_id: str) -> PhoneCall | None:
        """The call that won a nonce: its record may still be on its way to the store (the
        winner writes it right after the claim), so look for a few seconds."""
        for _ in range(50):
            call = await self.aget_call(call_id)
            if call is not None:
                return call
            await trio.sleep(0.1)
        return None

    def start_inbound(
        self,
        *,
        caller_number: str,
        caller_name: str | None,
        caller_extension: Extension | None,
        organization_id: int,
        destination: str,
        video: bool,
        make_leg: Callable[[int, str], InboundSource],
        destination_target: Target | None = None,
    ) -> PhoneCall:
        """An INVITE from a registered device or a trusted peer: record it as a PhoneCall
        (origin ``sip``) and connect it to ``destination`` through the relay.
        ``destination_target``: where ``destination`` rings, when the caller resolved it."""
        if self.draining:
            raise EngineDraining("the server is shutting down")
        if destination_target is None:
            destination_party = self.make_party(destination, "destination", organization_id)
        else:
            destination_party = self.make_party(
                destination, "destination", organization_id, destination_target
            )
        charged = caller_extension or self._charged_extension(destination_party, organization_id)
        caller_id = (
            caller_extension.caller_id if caller_extension and caller_extension.caller_id else None
        ) or (f"{caller_name} <{caller_number}>" if caller_name else caller_number)
        call = PhoneCall(
            id=new_call_id(self._ids),
            user_id=charged.user if charged else 0,
            organization_id=organization_id,
            extension=charged.extended if charged else "",
            sources=[caller_number],
            destinations=[destination],
            caller_id=caller_id,
            caller_id_destination=caller_id,
            wait_for_pickup=self.config.calls.wait_for_pickup,
            call_duration=self.config.calls.max_duration,
            video=video,
            published=self._wall_clock(),
            origin="sip",
            node=self.config.cluster.node,
        )
        if caller_extension is not None:
            source = Party(caller_number, "source", "extension", caller_extension.extended)
        else:
            source = Party(caller_number, "source", "public", flow=Flow.INCOMING)
        source.status = PartyStatus.OFF_HOOK
        call.parties.append(source)
        call.parties.append(destination_party)
        call.events = 1  # "created", published by _start
        self.store.save_call(call)
        reached = destination_party.target  # resolved once: a conference is joined
        conference = (
            reached.extension
            if isinstance(reached, ExtensionTarget)
            and reached.extension.type is ExtensionType.CONFERENCE
            else None
        )
        self._start(call, inbound=make_leg(0, f"caller {caller_number}"), conference=conference)
        return call

    def _charged_extension(self, destination: Party, organization_id: int) -> Extension | None:
        """A trusted peer's call is charged to the extension it reaches, else to the first
        Phone Terminal of the peer's organization."""
        if isinstance(destination.target, ExtensionTarget):
            return destination.target.extension
        for candidate in self.directory.extensions_of(organization_id):
            if candidate.type is ExtensionType.PHONE_TERMINAL:
                return candidate
        return None

    def make_party(
        self, number: str, role: str, organization_id: int, target: Target | None = None
    ) -> Party:
        """A party for ``number``, resolved here (or given its ``target`` when the caller
        resolved it already) and only here: the legs and the charge use ``party.target``."""
        if target is None:
            try:
                target = resolve(number, self.directory, organization_id, allow_short=True)
            except NumberError as exc:
                return Party(number, role, "public", flow=Flow.OUTGOING, target=exc)
        if isinstance(target, ExtensionTarget):
            extended = target.extension.extended
            return Party(number, role, "extension", extended, flow=Flow.LOCAL, target=target)
        if isinstance(target, SandboxTarget):
            return Party(number, role, "sandbox", flow=Flow.LOCAL, target=target)
        return Party(number, role, "public", flow=Flow.OUTGOING, target=target)

    def _start(
        self, call: PhoneCall, *, conference: Extension | None = None, **kwargs: Any
    ) -> SimpleCall:
        if self._nursery is None:
            raise RuntimeError("the engine is not running (use open_engine)")
        runner: SimpleCall
        if conference is not None:
            runner = ConferenceCall(
                call,
                self._context(),
                conference=conference.extended,
                pin=conference.pin,
                rooms=self.conferences,
                **kwargs,
            )
        else:
            runner = SimpleCall(call, self._context(), **kwargs)
        self._live[call.id] = LiveCall(runner)
        self._publish(call, "created", {}, call.events)
        self._nursery.start_soon(self._run_call, runner, name=f"call {call.id}")
        return runner

    async def _run_call(self, runner: SimpleCall) -> None:
        CALL_ID.set(runner.call.id)  # this task's context: every line it logs names the call
        try:
            await runner.run()
        except Exception:
            logger.exception("call %s crashed", runner.call.id)
        finally:
            entry = self._live.pop(runner.call.id, None)
            if entry is not None:
                for channel in entry.subscribers:
                    channel.close()

    def _context(self) -> CallContext:
        return CallContext(
            legs=self._legs_for,
            media=self._media,
            observer=self,
            wall_clock=self._wall_clock,
            rate_for=self._rate_for,
        )

    def _legs_for(self, call: PhoneCall, party: Party, caller_id: str | None) -> list[Leg]:
        if party.kind == "sandbox":
            target = target_of(party, self.directory, call.organization_id)
            assert isinstance(target, SandboxTarget)
            return [SandboxLeg(party.number, plan_for(target.index, self._rng))]
        return self.legs.legs_for(call, party, caller_id)

    def _rate_for(self, party: Party) -> float:
        if isinstance(party.target, PublicTarget):
            return party.target.route.rate
        route = self.directory.route_for(party.number)  # e.g. an inbound public caller
        return route.rate if route is not None else 0.0
