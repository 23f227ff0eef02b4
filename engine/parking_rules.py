"""The engine's checks of Park, UnPark and PickUp, and the parking slots of each organization.

Each ``*_for`` function turns a PhoneCallAction into the control request the call's task
carries out (``engine.parking``, ``engine.fork``), or raises the ``EngineError`` that says why
not. They run in the engine's trio thread, so a slot reserved here cannot be taken twice.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from engine.call_types import Park, PickUp, UnPark
from engine.directory import ExtensionType
from engine.errors import (
    ActionInProgress,
    CallNotBridged,
    CallNotParked,
    CallNotRinging,
    CallParked,
    ParkingTimeInvalid,
    TransferTargetInvalid,
    ViewNotFound,
)
from engine.model import CallState, Party, PartyStatus, PhoneCall
from engine.supervise import supervisor_of

if TYPE_CHECKING:
    from engine.engine.actions import CallAction, CallActions

MIN_IN_PARKING = 10
MAX_IN_PARKING = 3600
DEFAULT_WAIT_FOR_PICKUP = 25


class ParkingLot:
    """Parking slots: per organization, the smallest free position from 1, held by one call
    until it is unparked, its Park fails or it ends (this process's calls only)."""

    def __init__(self) -> None:
        self._slots: dict[str, tuple[int, int]] = {}  # call id -> (organization, position)

    def reserve(self, organization_id: int, call_id: str) -> int:
        taken = {pos for org, pos in self._slots.values() if org == organization_id}
        position = next(p for p in range(1, len(taken) + 2) if p not in taken)
        self._slots[call_id] = (organization_id, position)
        return position

    def release(self, call_id: str) -> None:
        self._slots.pop(call_id, None)

    def holds(self, call_id: str) -> bool:
        return call_id in self._slots


def is_parked(call: PhoneCall) -> bool:
    return any(p.parked is not None for p in call.parties)


def park_for(engine: CallActions, call: PhoneCall, action: CallAction) -> Park:
    if call.state is not CallState.BRIDGED:
        raise CallNotBridged("Park needs a connected call")
    if is_parked(call) or engine.parking.holds(call.id):
        raise CallParked("the call is parked already")
    if action.phone_call_view_id is None:
        raise ViewNotFound("Park needs phoneCallViewId: the party that parks the call")
    parker_index = engine._party_index(call, action.phone_call_view_id, None)
    parker = call.parties[parker_index]
    if not _connected(parker):
        raise ViewNotFound(f"phoneCallView {action.phone_call_view_id} is not in the call now")
    if parker.kind != "extension" or parker.extension is None:
        raise ViewNotFound(
            f"phoneCallView {action.phone_call_view_id} is not an extension: only an "
            "extension can park a call (it is rung back when maxInParking passes)"
        )
    supervisor = supervisor_of(call)
    if supervisor is not None:
        raise ActionInProgress(f"{supervisor.number} is joining or listening to this call")
    others = [i for i, p in enumerate(call.parties) if i != parker_index and _connected(p)]
    if len(others) != 1:
        raise CallNotBridged("Park needs a call between two parties")
    seconds = action.max_in_parking or engine.config.calls.max_in_parking
    if not MIN_IN_PARKING <= seconds <= MAX_IN_PARKING:
        raise ParkingTimeInvalid(
            f"maxInParking must be {MIN_IN_PARKING}-{MAX_IN_PARKING} seconds, not {seconds}"
        )
    ring_back = engine.make_party(parker.extension, "destination", call.organization_id)
    position = engine.parking.reserve(call.organization_id, call.id)
    return Park(parker_index, others[0], float(seconds), position, ring_back)


def unpark_for(engine: CallActions, call: PhoneCall, action: CallAction) -> UnPark:
    parked = [i for i, p in enumerate(call.parties) if p.parked is not None]
    if not parked:
        raise CallNotParked("UnPark needs a parked call")
    if action.phone_call_view_id is not None:
        index = engine._party_index(call, action.phone_call_view_id, None)
        if index not in parked:
            raise ViewNotFound(f"phoneCallView {action.phone_call_view_id} is not parked")
    target = _phone_terminal(engine, call, action, "UnPark")
    return UnPark(target, action.caller_id, _wait(action))


def pick_up_for(engine: CallActions, call: PhoneCall, action: CallAction) -> PickUp:
    ringing = [i for i, p in enumerate(call.parties) if _ringing(p)]
    if call.state is not CallState.CALLING_DESTINATION or not ringing:
        raise CallNotRinging("PickUp needs a call ringing at an extension")
    if action.phone_call_view_id is not None:
        index = engine._party_index(call, action.phone_call_view_id, None)
        if index not in ringing:
            raise CallNotRinging(
                f"phoneCallView {action.phone_call_view_id} is not an extension ringing now"
            )
    target = _phone_terminal(engine, call, action, "PickUp")
    if any(call.parties[i].extension == target.extension for i in ringing):
        raise TransferTargetInvalid(f"{action.send_call_to} is the extension ringing already")
    return PickUp(target, action.caller_id, _wait(action))


def _connected(party: Party) -> bool:
    return party.answered is not None and party.ended is None


def _ringing(party: Party) -> bool:
    return (
        party.role == "destination"
        and party.kind == "extension"
        and party.ended is None
        and party.status in (PartyStatus.TRYING, PartyStatus.RINGING)
    )


def _phone_terminal(engine: CallActions, call: PhoneCall, action: CallAction, name: str) -> Party:
    """``sendCallTo`` as a new party: a Phone Terminal extension of the call's organization."""
    number = action.send_call_to
    if not number:
        raise TransferTargetInvalid(f"{name} needs sendCallTo")
    ext = engine.directory.find_extension(number, call.organization_id)
    if (
        ext is None
        or ext.organization != call.organization_id
        or ext.type is not ExtensionType.PHONE_TERMINAL
    ):
        raise TransferTargetInvalid(
            f"sendCallTo {number!r} is not a Phone Terminal extension of the call's organization"
        )
    party = engine.make_party(ext.extended, "destination", call.organization_id)
    party.status = PartyStatus.UNKNOWN
    return party


def _wait(action: CallAction) -> float:
    return float(action.wait_for_pickup or DEFAULT_WAIT_FOR_PICKUP)
