"""The engine's public API: what the HTTP facade and embedders call.

``open_engine`` runs an :class:`Engine` inside the caller's trio run; every call is a
:class:`engine.calls.SimpleCall` task in the engine's calls nursery, so a call outlives the
HTTP request that created it (the one deliberate exception to "nothing outlives its caller").
The record of a call is given to the store before ``originate`` returns, and again on every
change (SQLite writes it at once, PostgreSQL through its write-behind queue: ``StoreService``),
so ``get_call`` is always current and a restart finds every call.
"""

from __future__ import annotations

import logging
import random
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import trio

from engine import parking_rules
from engine.call_end import call_charge
from engine.call_types import (
    CallContext,
    CallMedia,
    Control,
    Hangup,
    Hold,
    InboundSource,
    Recording,
    Transfer,
)
from engine.calls import SimpleCall
from engine.conference import ConferenceCall, Conferences
from engine.config_model import Config
from engine.directory import Directory, Extension, ExtensionType
from engine.errors import (
    ActionInProgress,
    ActionNotSupported,
    CallNotBridged,
    CallNotFound,
    CallNotLive,
    CallParked,
    ConferenceInvalid,
    EngineDraining,
    NumberNotAParty,
    PublicTransferNotAllowed,
    RecordingFormatUnsupported,
    TransferTargetInvalid,
    ViewNotFound,
)
from engine.keys import cluster_secret
from engine.legs import FailedLeg, Leg
from engine.logctx import CALL_ID
from engine.model import (
    CallState,
    Disposition,
    Flow,
    Party,
    PartyStatus,
    PhoneCall,
    new_call_id,
)
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
from engine.store.service import StoreService
from engine.supervise import SUPERVISE_ACTIONS, supervise_request, supervisor_of
from engine.throttle import ThrottledWarning

if TYPE_CHECKING:
    from engine.store import ContactRecord, SqlStore

logger = logging.getLogger(__name__)

SUPPORTED_ACTIONS = frozenset(
    {"Transfer", "TransferToVoicemail", "OnHold", "OffHold", "StartRecording", "StopRecording"}
    | set(SUPERVISE_ACTIONS)
    | {"Park", "UnPark", "PickUp"}
)


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


@dataclass(frozen=True, slots=True)
class CallAction:
    """A UAPI PhoneCallAction."""

    action: str
    send_call_to: str | None = None
    phone_call_view_id: str | None = None
    transfer_number: str | None = None
    transfer_from_number: str | None = None
    format: str | None = None
    wait_for_pickup: int | None = None
    caller_id: str | None = None  # shown to the party an action rings (Monitor, UnPark...)
    private_whisper: bool = False  # Whisper's privateW: the whisperer hears nobody
    max_in_parking: int | None = None  # Park; None: [calls] max_in_parking


@dataclass(frozen=True, slots=True)
class CallEvent:
    """One state change of a call, as published to subscribers (SSE, status callbacks)."""

    call_id: str
    seq: int
    event: str
    state: str
    at: datetime
    data: dict[str, Any]
    final: bool


@dataclass(slots=True)
class _Live:
    runner: SimpleCall  # or a ConferenceCall (engine.conference)
    history: list[CallEvent] = field(default_factory=list)
    subscribers: list[trio.MemorySendChannel[CallEvent]] = field(default_factory=list)


class LegProvider:
    """Where non-sandbox legs come from (the SIP service); absent: such parties fail with 480."""

    def legs_for(self, call: PhoneCall, party: Party, caller_id: str | None) -> list[Leg]:
        return [FailedLeg(party.number, 480, "no SIP service")]


class Engine:
    """Call control for Simple PhoneCalls; see ``open_engine``."""

    def __init__(
        self,
        config: Config,
        directory: Directory,
        store: SqlStore | StoreService,
        *,
        media: Callable[[PhoneCall], CallMedia],
        legs: LegProvider | None = None,
        wall_clock: Callable[[], datetime] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config
        self.directory = directory
        self.store = StoreService.of(store)
        self.legs = legs or LegProvider()
        self._media = media
        self._wall_clock = wall_clock or (lambda: datetime.now(UTC))
        self._rng = rng or random.Random()
        self._ids = random.SystemRandom() if rng is None else rng
        self._live: dict[str, _Live] = {}
        self._nursery: trio.Nursery | None = None
        self.draining = False
        self.listeners: list[Callable[[PhoneCall, CallEvent], None]] = []
        self._shortage_warning = ThrottledWarning(logger)
        self.recovered: list[PhoneCall] = []  # ended by recover(), for their final callbacks
        self.parking = parking_rules.ParkingLot()
        self.recording_unavailable: str | None = None  # the media backend cannot record: why
        self.mixing_unavailable: str | None = None  # the media backend cannot mix (listen-in): why
        self.conferences = Conferences()

    # --- lifecycle --------------------------------------------------------------------------

    def recover(self) -> int:
        """Mark this node's calls that were live when it stopped as ended; return how many.

        They end at this node's last heartbeat before the stop (``engine.heartbeat``), when
        the store has one: their duration and charge count up to it (a call bridged after it
        lasted 0 s). Without a beat they end now, uncharged. Each gets its final ``ended``
        event (seq one past the last it had: see ``changed``), which ``subscribe`` replays;
        ``recovered`` lists them, so the server can deliver that event to their
        ``statusCallback`` and BYE their answered legs (``engine.cluster``). Calls of other
        nodes sharing the store are theirs (or, when they die, ``ClusterMonitor``'s)."""
        node = self.config.cluster.node
        beat = self.store.last_beat(node)
        last_alive = None if beat is None else datetime.fromtimestamp(beat, UTC)
        calls = self.store.live_calls_of(node)
        self.settle(calls, last_alive, "engine restarted while the call was live")
        self.recovered.extend(calls)
        if calls:
            logger.warning("marked %d calls live at the last stop as ended", len(calls))
        return len(calls)

    def settle(self, calls: list[PhoneCall], last_alive: datetime | None, cause: str) -> None:
        """End the records of ``calls`` whose node stopped (this one before a restart, or a
        dead one) at ``last_alive`` (None: now, uncharged) with ``cause``, and save them."""
        for call in calls:
            call.state = CallState.ENDED
            if last_alive is None:
                call.ended = self._wall_clock()
            else:  # not before anything the record says happened
                call.ended = max(last_alive, _latest_time(call))
            call.disposition = Disposition.ANSWERED if call.bridged else Disposition.FAILED
            call.hangup_cause = cause
            for party in call.parties:
                if party.ended is None:
                    party.ended = call.ended
                party.status = PartyStatus.UNKNOWN
            if last_alive is not None:
                call.charge = call_charge(call, self._rate_for)
            call.events += 1  # the final event, made now
            self.store.save_call(call)

    async def drain(self, timeout: float) -> None:
        """Refuse new calls, hang up live ones cleanly, wait up to ``timeout`` for them."""
        self.draining = True
        live = list(self._live.values())
        for entry in live:
            entry.runner.control(Hangup("server shutting down"))
        with trio.move_on_after(timeout):
            for entry in live:
                await entry.runner.finished.wait()

    @property
    def live_count(self) -> int:
        return len(self._live)

    @property
    def live_legs(self) -> int:
        """Parties of live calls being rung or talking (not yet ended): one leg each."""
        return sum(
            1
            for entry in self._live.values()
            for party in entry.runner.call.parties
            if party.ended is None and party.status is not PartyStatus.UNKNOWN
        )

    # --- calls ------------------------------------------------------------------------------

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
        self._live[call.id] = _Live(runner)
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

    # --- observer (called by SimpleCall) ------------------------------------------------------

    def shortage(self, call: PhoneCall, what: str) -> None:
        # the server's own shortage, so the operator hears of it, but not once per call: when
        # it happens, every new call hits it (engine.throttle)
        self._shortage_warning.warn(f"call {call.id}: {what}")

    def changed(self, call: PhoneCall, event: str, data: dict[str, object]) -> None:
        # The event's seq is counted in the record before it is saved, and a call with a
        # statusCallback is committed at every event: after a crash its stored count is at
        # least every seq a receiver may have seen, so the final event recover() makes for it
        # cannot reuse one (receivers drop duplicates by X-Event-Id CALLID:SEQ).
        call.events += 1
        if event in ("unparked", "park_failed", "ended"):
            self.parking.release(call.id)
        try:
            self.store.save_call(call, durable=call.status_callback is not None)
        except Exception:
            logger.exception("call %s: could not save the record", call.id)
        self._publish(call, event, dict(data), call.events)

    def _publish(self, call: PhoneCall, event: str, data: dict[str, Any], seq: int) -> None:
        entry = self._live.get(call.id)
        final = event == "ended"
        item = CallEvent(call.id, seq, event, str(call.state), self._wall_clock(), data, final)
        _log_event(call, event, data)
        if entry is not None:
            entry.history.append(item)
            for channel in list(entry.subscribers):
                try:
                    channel.send_nowait(item)
                except (trio.WouldBlock, trio.BrokenResourceError, trio.ClosedResourceError):
                    entry.subscribers.remove(channel)
                    channel.close()
        for listener in self.listeners:
            try:
                listener(call, item)
            except Exception:
                logger.exception("call %s: event listener failed", call.id)

    # --- reading ----------------------------------------------------------------------------

    def get_call(self, call_id: str) -> PhoneCall | None:
        entry = self._live.get(call_id)
        if entry is not None:
            return entry.runner.call
        return self.store.get_call(call_id)

    def list_calls(
        self,
        *,
        user_id: int | None = None,
        extension: str | None = None,
        limit: int | None = None,
        offset: int = 0,
        newest_first: bool = False,
        organization_id: int | None = None,
        ended: bool | None = None,
    ) -> list[PhoneCall]:
        """Calls by publish time (oldest first unless ``newest_first``), paged by the store;
        a live call is the engine's own current copy. ``ended``: only ended (True) or only
        unfinished (False) calls, by the stored state."""
        calls = self.store.list_calls(
            user_id=user_id,
            extension=extension,
            organization_id=organization_id,
            ended=ended,
            limit=limit,
            offset=offset,
            newest_first=newest_first,
        )
        return [self._live[c.id].runner.call if c.id in self._live else c for c in calls]

    def count_calls(
        self,
        *,
        user_id: int | None = None,
        extension: str | None = None,
        organization_id: int | None = None,
        ended: bool | None = None,
    ) -> int:
        """How many calls ``list_calls`` gives without a limit."""
        return self.store.count_calls(
            user_id=user_id, extension=extension, organization_id=organization_id, ended=ended
        )

    def live_calls(self) -> list[PhoneCall]:
        """The calls running in this engine now (current records), oldest first."""
        return [entry.runner.call for entry in self._live.values()]

    def registrations(self, extended: str) -> list[ContactRecord]:
        """The unexpired device bindings of extension ``extended``, oldest first."""
        return self.store.contacts(extended, self._wall_clock().timestamp())

    # The same reads without blocking the trio thread on a remote store (what the API uses):
    # awaited in a worker thread after this node's queued writes have landed.

    async def aget_call(self, call_id: str) -> PhoneCall | None:
        entry = self._live.get(call_id)
        if entry is not None:
            return entry.runner.call
        return await self.store.aget_call(call_id)

    async def alist_calls(
        self,
        *,
        user_id: int | None = None,
        extension: str | None = None,
        limit: int | None = None,
        offset: int = 0,
        newest_first: bool = False,
        organization_id: int | None = None,
        ended: bool | None = None,
    ) -> list[PhoneCall]:
        calls = await self.store.alist_calls(
            user_id=user_id,
            extension=extension,
            organization_id=organization_id,
            ended=ended,
            limit=limit,
            offset=offset,
            newest_first=newest_first,
        )
        return [self._live[c.id].runner.call if c.id in self._live else c for c in calls]

    async def acount_calls(
        self,
        *,
        user_id: int | None = None,
        extension: str | None = None,
        organization_id: int | None = None,
        ended: bool | None = None,
    ) -> int:
        return await self.store.acount_calls(
            user_id=user_id, extension=extension, organization_id=organization_id, ended=ended
        )

    def signing_secret(self) -> bytes:
        """The secret that signing keys derive from (``engine.keys``): ``[cluster] secret``,
        or the one generated once and kept in the store."""
        return cluster_secret(self.config.cluster, self.store)

    @asynccontextmanager
    async def subscribe(self, call_id: str) -> AsyncIterator[trio.MemoryReceiveChannel[CallEvent]]:
        """Events of one call: the history so far, then live ones; closes after the final one."""
        send, receive = trio.open_memory_channel[CallEvent](1024)
        entry = self._live.get(call_id)
        if entry is not None:
            for item in entry.history:
                send.send_nowait(item)
            entry.subscribers.append(send)
        else:
            call = await self.store.aget_call(call_id)
            if call is not None and call.state is CallState.ENDED:
                send.send_nowait(
                    CallEvent(
                        call.id,
                        max(call.events, 1),  # the final event's own seq
                        "ended",
                        str(call.state),
                        call.ended or self._wall_clock(),
                        {"disposition": int(call.disposition or 0), "cause": call.hangup_cause},
                        True,
                    )
                )
            send.close()
        try:
            async with receive:
                yield receive
        finally:
            if entry is not None and send in entry.subscribers:
                entry.subscribers.remove(send)

    # --- acting -----------------------------------------------------------------------------

    async def hangup(self, call_id: str, phone_number: str | None = None) -> bool:
        """Hang up a live call (only if ``phone_number``, when given, is one of its parties)."""
        entry = self._live.get(call_id)
        if entry is None:
            return False
        call = entry.runner.call
        if phone_number is not None and not _has_party(call, phone_number):
            return False
        entry.runner.control(Hangup("hung up via the API"))
        return True

    async def act(self, call_id: str, action: CallAction) -> PhoneCall:
        entry = self._live.get(call_id)
        if entry is None:
            if await self.store.aget_call(call_id) is None:
                raise CallNotFound(call_id)
            raise CallNotLive(call_id)
        call = entry.runner.call
        request: Control
        if action.action != "UnPark" and parking_rules.is_parked(call):
            raise CallParked(f"the call is parked: {action.action} waits until it is unparked")
        if action.action in SUPERVISE_ACTIONS:
            if self.mixing_unavailable is not None:
                raise ActionNotSupported(f"{action.action}: {self.mixing_unavailable}")
            request = supervise_request(call, action, entry.runner, self.directory, self.make_party)
        else:
            request = self._control_for(call, action)
        entry.runner.control(request)
        return call

    def _control_for(self, call: PhoneCall, action: CallAction) -> Control:
        name = action.action
        if name == "UnPark":
            return parking_rules.unpark_for(self, call, action)
        if name == "Park":
            return parking_rules.park_for(self, call, action)
        if name == "PickUp":
            return parking_rules.pick_up_for(self, call, action)
        if name in ("OnHold", "OffHold", "StartRecording", "StopRecording"):
            if call.state is not CallState.BRIDGED:
                raise CallNotBridged(f"{name} needs a connected call")
            if name in ("StartRecording", "StopRecording"):
                if self.recording_unavailable is not None:
                    raise ActionNotSupported(f"{name}: {self.recording_unavailable}")
                if action.format not in (None, "wav"):
                    raise RecordingFormatUnsupported(
                        f"recording format {action.format!r} unsupported"
                    )
                return Recording(start=name == "StartRecording")
            index = self._party_index(call, action.phone_call_view_id, action.transfer_number)
            return Hold(index, held=name == "OnHold")
        if name in ("Transfer", "TransferToVoicemail"):
            return self._transfer_for(call, action)
        raise ActionNotSupported(f"action {name!r} is not implemented")

    def _transfer_for(self, call: PhoneCall, action: CallAction) -> Control:
        if call.state is not CallState.BRIDGED:
            raise CallNotBridged("Transfer needs a connected call")
        supervisor = supervisor_of(call)
        if supervisor is not None:
            raise ActionInProgress(f"{supervisor.number} is joining or listening to this call")
        target_number = action.send_call_to
        if not target_number:
            raise TransferTargetInvalid("sendCallTo is required for a transfer")
        if action.action == "TransferToVoicemail":
            ext = self.directory.find_extension(target_number, call.organization_id)
            if ext is None or ext.type is not ExtensionType.VOICEMAIL_CENTER:
                raise ActionNotSupported(
                    "TransferToVoicemail needs a voicemail_center extension; none matches"
                )
        try:
            target = resolve(target_number, self.directory, call.organization_id)
        except NumberError as exc:
            raise TransferTargetInvalid(str(exc)) from None
        if isinstance(target, PublicTarget) and not call.allow_public_transfer:
            raise PublicTransferNotAllowed(
                "transfer to a public number needs allowPublicTransfer=true on the call"
            )
        if action.transfer_number is None and action.phone_call_view_id is None:
            # Default: the source stays, the destination is replaced.
            index = next(i for i, p in enumerate(call.parties) if p.role == "source")
            index = self._connected_source_index(call, index)
        else:
            index = self._party_index(call, action.phone_call_view_id, action.transfer_number)
        party = self.make_party(target_number, "destination", call.organization_id)
        party.status = PartyStatus.UNKNOWN
        return Transfer(index, party, float(action.wait_for_pickup or 25))

    @staticmethod
    def _connected_source_index(call: PhoneCall, default: int) -> int:
        for i, party in enumerate(call.parties):
            if party.role == "source" and party.answered is not None and party.ended is None:
                return i
        return default

    @staticmethod
    def _party_index(call: PhoneCall, view_id: str | None, number: str | None) -> int:
        if view_id is not None:
            try:
                index = int(view_id)
            except ValueError:
                index = -1
            if not 0 <= index < len(call.parties):
                raise ViewNotFound(f"no phoneCallView {view_id!r} in this call")
            return index
        if number is not None:
            for i, party in enumerate(call.parties):
                if party.number == number or party.extension == number:
                    return i
            raise NumberNotAParty(f"{number} is not a party of this call")
        for i, party in enumerate(call.parties):
            if party.answered is not None and party.ended is None and party.role == "destination":
                return i
        raise ViewNotFound("phoneCallViewId is required")


def _log_event(call: PhoneCall, event: str, data: dict[str, Any]) -> None:
    """A call's creation and end at INFO (what an operator follows), its other events at DEBUG."""
    extra = {"call": call.id}
    if event == "created":
        logger.info(
            "call %s created (%s): %s -> %s",
            call.id,
            call.origin,
            ", ".join(call.sources),
            ", ".join(call.destinations),
            extra=extra,
        )
    elif event == "ended":
        disposition = "NONE" if call.disposition is None else call.disposition.name
        logger.info(
            "call %s ended: %s after %d s bridged (%s)",
            call.id,
            disposition,
            call.billable_seconds,
            call.hangup_cause or "no cause",
            extra=extra,
        )
    else:
        logger.debug("call %s: %s %s", call.id, event, data or "", extra=extra)


def _latest_time(call: PhoneCall) -> datetime:
    """The last moment the record of ``call`` knows of."""
    times = [call.published, call.answered, call.bridged]
    for party in call.parties:
        times += [party.ringing, party.answered, party.ended]
    return max(t for t in times if t is not None)


def _has_party(call: PhoneCall, number: str) -> bool:
    return any(number in (p.number, p.extension) for p in call.parties)


@asynccontextmanager
async def open_engine(
    config: Config,
    directory: Directory,
    store: SqlStore | StoreService,
    *,
    media: Callable[[PhoneCall], CallMedia] | None = None,
    legs: LegProvider | None = None,
    wall_clock: Callable[[], datetime] | None = None,
    rng: random.Random | None = None,
    recording_unavailable: str | None = None,
    mixing_unavailable: str | None = None,
) -> AsyncIterator[Engine]:
    """Run an engine for the duration of the block; on exit live calls are drained.
    ``recording_unavailable``: the media backend cannot record, and this says why (the
    recording actions are then refused with ``ActionNotSupported``); ``mixing_unavailable``
    likewise for the listen-in actions (Monitor, Whisper, BargeIn)."""
    from engine.anchor import NullMedia

    engine = Engine(
        config,
        directory,
        store,
        media=media or (lambda call: NullMedia()),
        legs=legs,
        wall_clock=wall_clock,
        rng=rng,
    )
    engine.recording_unavailable = recording_unavailable
    engine.mixing_unavailable = mixing_unavailable
    engine.recover()
    async with trio.open_nursery() as nursery:
        engine._nursery = nursery
        try:
            yield engine
        finally:
            with trio.CancelScope(shield=True):
                await engine.drain(config.calls.drain)
            nursery.cancel_scope.cancel()


def recordings_dir(config: Config) -> Path:
    """Where StartRecording writes its WAV files: ``recordings/`` beside the store file."""
    url = config.store.url
    base = Path(url.removeprefix("sqlite:///")).parent if url.startswith("sqlite:///") else Path()
    return base / "recordings"
