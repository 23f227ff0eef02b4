"""Acting on a live call: hang it up, or check a PhoneCallAction (transfer, hold, recording,
listen-in, parking) and hand the call the control request that carries it out.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine import parking_rules
from engine.call_types import Control, Hangup, Hold, Recording, Transfer
from engine.directory import ExtensionType
from engine.engine.create import CallCreation
from engine.errors import (
    ActionInProgress,
    ActionNotSupported,
    CallNotBridged,
    CallNotFound,
    CallNotLive,
    CallParked,
    NumberNotAParty,
    PublicTransferNotAllowed,
    RecordingFormatUnsupported,
    TransferTargetInvalid,
    ViewNotFound,
)
from engine.model import CallState, PartyStatus, PhoneCall
from engine.numbers import NumberError, PublicTarget, resolve
from engine.supervise import SUPERVISE_ACTIONS, supervise_request, supervisor_of

SUPPORTED_ACTIONS = frozenset(
    {"Transfer", "TransferToVoicemail", "OnHold", "OffHold", "StartRecording", "StopRecording"}
    | set(SUPERVISE_ACTIONS)
    | {"Park", "UnPark", "PickUp"}
)


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


class CallActions(CallCreation):
    """The Engine's checks of hang-ups and PhoneCallActions."""

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


def _has_party(call: PhoneCall, number: str) -> bool:
    return any(number in (p.number, p.extension) for p in call.parties)
