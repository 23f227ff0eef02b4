"""Engine records -> UAPI JSON: the PhoneCall resource, its views and the CDR's PhoneCallStat.

The PhoneCall resource, its views and the PhoneCallStat are the models of :mod:`api.resources`
(which also give the OpenAPI document their schemas). Shapes follow the UAPI reference
(section 2.3): null fields are left out, dates are ISO 8601 in UTC with a ``Z``, codes are
numbers (``status`` 0-5, ``flow`` 2/4/8, ``disposition`` 0-5).
``ownerId``/``ownerName`` are the Organization that owns the call, as VoipNow documents them.

Extensions beyond VoipNow (documented in the OpenAPI document), all left out while null:
PhoneCall ``userId``, ``state``, ``ended``, ``bridged``, ``disposition``, ``hangupCause``,
``duration`` (``ended - bridged`` in whole seconds, rounded up; 0 if never bridged), ``charge``,
``callerIdDestination``;
PhoneCallView ``number``, ``role``, ``ended``, ``sipStatus``, ``hangupCause``, ``media``
(the relay's per-stream packet counters).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from urllib.parse import quote

from api import resources
from engine.directory import Directory
from engine.model import Party, PhoneCall

logger = logging.getLogger(__name__)

# the names `fields` may keep: the PhoneCall resource's
PHONE_CALL_FIELDS = tuple(resources.PhoneCall.model_fields)


def iso(value: datetime | float | None) -> str | None:
    """ISO 8601 UTC with ``Z`` (seconds, or microseconds when present); None stays None."""
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = datetime.fromtimestamp(value, UTC)
    if not isinstance(value, datetime):
        return str(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    moment: datetime = value.astimezone(UTC).replace(tzinfo=None)
    return moment.isoformat(timespec="microseconds" if moment.microsecond else "seconds") + "Z"


def _code(value: int | None) -> int | None:
    return None if value is None else int(value)


def _text(value: str | None) -> str | None:
    return None if value is None else str(value)


def call_path(public_url: str, user_text: str, extension_text: str, call_id: str) -> str:
    safe = "@*+!$&'()=:,;"
    return (
        f"{public_url.rstrip('/')}/uapi/phoneCalls/{quote(user_text, safe=safe)}/"
        f"{quote(extension_text, safe=safe)}/{quote(call_id, safe='')}"
    )


def _answered_source(call: PhoneCall) -> str | None:
    for party in call.parties:
        if str(party.role) == "source" and party.answered is not None:
            return str(party.number)
    return None


def view_of(call: PhoneCall, index: int, party: Party) -> resources.PhoneCallView:
    """One PhoneCallView: the call from one party's point of view."""
    role = str(party.role)
    if role == "source":
        source = [str(party.number)]
        destination = [str(n) for n in call.destinations]
    else:
        answered = _answered_source(call)
        source = [answered] if answered else [str(n) for n in call.sources]
        destination = [str(party.number)]
    on_hold = party.on_hold
    # a dict: role and flow are checked against their documented values here
    return resources.PhoneCallView.model_validate(
        {
            "id": f"{index:02d}",
            "extension": _text(party.extension),
            "number": str(party.number),
            "role": role,
            "source": source,
            "destination": destination,
            "flow": _code(party.flow),
            "status": _code(party.status),
            "ringing": iso(party.ringing) if party.answered is None else None,
            "callerId": _text(party.caller_id),
            "recording": iso(party.recording),
            "answered": iso(party.answered),
            "onHold": iso(on_hold),
            # the hold was placed through the API, not by this peer: holder 0
            "holder": 0 if on_hold is not None else None,
            "parked": iso(party.parked),
            "parkedPos": party.parked_pos,
            "parkedBy": _text(party.parked_by),
            "disposition": _code(call.disposition),
            "ended": iso(party.ended),
            "sipStatus": party.sip_status,
            "hangupCause": _text(party.hangup_cause),
            "media": dict(party.media) if party.media else None,
        }
    )


def call_resource(call: PhoneCall, directory: Directory, self_url: str) -> resources.PhoneCall:
    """The PhoneCall resource (``resources.dump_collection`` applies ``fields``)."""
    org = directory.organization(call.organization_id)
    return resources.PhoneCall(
        id=str(call.id),
        nonce=_text(call.nonce),
        extension=str(call.extension),
        ownerId=int(call.organization_id),
        ownerName=None if org is None else str(org.name),
        userId=int(call.user_id),
        published=iso(call.published),
        answered=iso(call.answered),
        bridged=iso(call.bridged),
        ended=iso(call.ended),
        state=_text(call.state),
        disposition=_code(call.disposition),
        hangupCause=_text(call.hangup_cause),
        duration=int(call.billable_seconds) if call.ended is not None else None,
        charge=float(call.charge) if call.ended is not None else None,
        callerId=_text(call.caller_id),
        callerIdDestination=_text(call.caller_id_destination),
        phoneCallView=[view_of(call, index, party) for index, party in enumerate(call.parties)],
        links=resources.SelfLink(self=self_url),
    )


def call_flow(call: PhoneCall) -> int:
    """The call's flow: the destination party's (2 local, 4 outgoing public)."""
    for party in call.parties:
        if str(party.role) == "destination":
            return int(party.flow)
    return 2


def stat_resource(call: PhoneCall) -> resources.PhoneCallStat:
    """A finished call as a CDR PhoneCallStat (``resources.dump_collection`` applies
    ``fields``)."""
    answered = _answered_source(call)
    destination_party = next((p for p in call.parties if str(p.role) == "destination"), None)
    # a dict: flow and disposition are checked against their documented values here
    return resources.PhoneCallStat.model_validate(
        {
            "id": str(call.id),
            "extension": str(call.extension),
            "userId": int(call.user_id),
            "source": answered or (str(call.sources[0]) if call.sources else None),
            "destination": str(destination_party.number)
            if destination_party is not None
            else (str(call.destinations[0]) if call.destinations else None),
            "sources": [str(n) for n in call.sources],
            "destinations": [str(n) for n in call.destinations],
            "callerId": _text(call.caller_id),
            "published": iso(call.published),
            "answered": iso(call.answered),
            "bridged": iso(call.bridged),
            "ended": iso(call.ended),
            "disposition": _code(call.disposition),
            "flow": call_flow(call),
            "duration": int(call.billable_seconds),
            "charge": float(call.charge),
            "hangupCause": _text(call.hangup_cause),
        }
    )


# the names `fields` may keep in a CDR: the PhoneCallStat resource's
STAT_FIELDS = tuple(resources.PhoneCallStat.model_fields)
