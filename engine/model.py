"""The PhoneCall record: what the engine knows about one call, and how it is stored.

A ``PhoneCall`` is owned and mutated by the engine (one task per call). It is saved to the
store on every state change, so a call survives a restart as a record, and the HTTP facade
renders it as a UAPI PhoneCall (one PhoneCallView per ``Party``). The numeric enums carry the
codes UAPI documents (``status`` 0-5, ``flow`` 2/4/8, ``disposition`` 0-5).

``to_dict``/``from_dict`` give a JSON-safe form (ISO 8601 dates with a ``Z`` suffix); this is
the store's serialisation, not the API's resource shape.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import IntEnum, StrEnum
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from engine.numbers import NumberError, Target

logger = logging.getLogger(__name__)

CALL_ID_HEX_DIGITS = 20


class Disposition(IntEnum):
    """How a call (or a party) ended, as UAPI's ``disposition`` codes."""

    ANSWERED = 0
    BUSY = 1
    FAILED = 2
    NO_ANSWER = 3
    UNKNOWN = 4
    NOT_ALLOWED = 5


class PartyStatus(IntEnum):
    """UAPI PhoneCallView ``status`` codes."""

    UNKNOWN = 0
    OFF_HOOK = 1
    TRYING = 2
    RINGING = 3
    OTHER_SIDE_RINGING = 4
    ON_CALL = 5


class Flow(IntEnum):
    """UAPI ``flow`` codes: local, outgoing public, incoming public."""

    LOCAL = 2
    OUTGOING = 4
    INCOMING = 8


class CallState(StrEnum):
    """Where a Simple PhoneCall is in its life (engine-side, not a UAPI field)."""

    CREATED = "created"
    CALLING_SOURCE = "calling_source"
    CALLING_DESTINATION = "calling_destination"
    BRIDGED = "bridged"
    ENDED = "ended"


class RandomBits(Protocol):
    """What ``new_call_id`` needs from a random generator (``random.Random`` and
    ``random.SystemRandom`` both fit)."""

    def getrandbits(self, k: int, /) -> int: ...


def new_call_id(rng: RandomBits) -> str:
    """A PhoneCall id: 20 lowercase hex digits (80 random bits), e.g. ``b817d2618fe6f1804333``."""
    return format(rng.getrandbits(4 * CALL_ID_HEX_DIGITS), f"0{CALL_ID_HEX_DIGITS}x")


def format_datetime(value: datetime) -> str:
    """ISO 8601 in UTC with a ``Z`` suffix; microseconds kept when present.

    Naive datetimes are taken as UTC.
    """
    tz = value.tzinfo
    if tz is None:
        value = value.replace(tzinfo=UTC)
    elif tz is not UTC:
        value = value.astimezone(UTC)
    timespec = "microseconds" if value.microsecond else "seconds"
    # an aware UTC value ends in "+00:00": written as "Z" (one call fewer than dropping the
    # zone first; a record's every timestamp passes here at each of its writes)
    return value.isoformat(timespec=timespec)[:-6] + "Z"


def parse_datetime(text: str) -> datetime:
    """Inverse of ``format_datetime``; also accepts explicit offsets. Always UTC-aware.

    Raises ``ValueError`` on anything else.
    """
    if not isinstance(text, str):
        raise ValueError(f"expected an ISO 8601 date string, got {text!r}")
    value = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith("Z") else text)
    if value.tzinfo is None:
        raise ValueError(f"date {text!r} has no time zone")
    return value.astimezone(UTC)


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _opt_dt(value: datetime | None) -> str | None:
    return None if value is None else format_datetime(value)


def _opt_parse(value: Any) -> datetime | None:
    return None if value is None else parse_datetime(value)


@dataclass(slots=True)
class Party:
    """One party of a call (one UAPI PhoneCallView), from the engine's point of view."""

    number: str  # as given (extended, short, public or sandbox)
    role: str  # "source" | "destination"
    kind: str  # "extension" | "public" | "sandbox"
    extension: str | None = None  # extended number, for extension parties
    status: PartyStatus = PartyStatus.UNKNOWN
    flow: Flow = Flow.LOCAL
    caller_id: str | None = None  # what this party was shown
    ringing: datetime | None = None
    answered: datetime | None = None
    ended: datetime | None = None
    sip_status: int | None = None  # final SIP status of this leg, when it had one
    hangup_cause: str | None = None
    on_hold: datetime | None = None
    recording: datetime | None = None
    parked: datetime | None = None  # when this party was parked (it hears music on hold)
    parked_pos: int | None = None  # its parking slot, unique among the organization's parked
    parked_by: str | None = None  # the extension that parked it (rung back at maxInParking)
    media: dict[str, dict[str, int]] = field(default_factory=dict)  # per stream counters
    # where the number rings, resolved once when the party is made (not stored: the directory
    # may change across a restart); a NumberError when it rings nowhere, None when unknown
    target: Target | NumberError | None = field(default=None, compare=False, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "role": self.role,
            "kind": self.kind,
            "extension": self.extension,
            "status": int(self.status),
            "flow": int(self.flow),
            "caller_id": self.caller_id,
            "ringing": _opt_dt(self.ringing),
            "answered": _opt_dt(self.answered),
            "ended": _opt_dt(self.ended),
            "sip_status": self.sip_status,
            "hangup_cause": self.hangup_cause,
            "on_hold": _opt_dt(self.on_hold),
            "recording": _opt_dt(self.recording),
            "parked": _opt_dt(self.parked),
            "parked_pos": self.parked_pos,
            "parked_by": self.parked_by,
            "media": {name: dict(counters) for name, counters in self.media.items()},
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Party:
        """Rebuild a party; ``ValueError`` names what is wrong."""
        try:
            return cls(
                number=str(data["number"]),
                role=str(data["role"]),
                kind=str(data["kind"]),
                extension=data.get("extension"),
                status=PartyStatus(data.get("status", 0)),
                flow=Flow(data.get("flow", Flow.LOCAL)),
                caller_id=data.get("caller_id"),
                ringing=_opt_parse(data.get("ringing")),
                answered=_opt_parse(data.get("answered")),
                ended=_opt_parse(data.get("ended")),
                sip_status=data.get("sip_status"),
                hangup_cause=data.get("hangup_cause"),
                on_hold=_opt_parse(data.get("on_hold")),
                recording=_opt_parse(data.get("recording")),
                parked=_opt_parse(data.get("parked")),
                parked_pos=data.get("parked_pos"),
                parked_by=data.get("parked_by"),
                media={
                    str(name): {str(k): int(v) for k, v in counters.items()}
                    for name, counters in (data.get("media") or {}).items()
                },
            )
        except KeyError as exc:
            raise ValueError(f"party record lacks {exc.args[0]!r}") from None
        except (TypeError, AttributeError) as exc:
            raise ValueError(f"bad party record: {exc}") from None


@dataclass(slots=True)
class PhoneCall:
    """A PhoneCall as the engine keeps it; mutable, owned by the engine's call task."""

    id: str  # 20 lowercase hex digits
    user_id: int  # owner of the charged extension
    organization_id: int
    extension: str  # extended number of the charged extension
    sources: list[str]
    destinations: list[str]
    caller_id: str | None = None
    caller_id_destination: str | None = None
    nonce: str | None = None
    wait_for_pickup: int = 25
    call_duration: int = 3600
    allow_public_transfer: bool = False
    video: bool = False
    status_callback: str | None = None
    published: datetime = field(default_factory=_utcnow)  # the engine passes its wall clock
    answered: datetime | None = None  # the source answered
    bridged: datetime | None = None  # the destination answered
    ended: datetime | None = None
    state: CallState = CallState.CREATED
    disposition: Disposition | None = None
    hangup_cause: str | None = None
    charge: float = 0.0
    parties: list[Party] = field(default_factory=list)
    origin: str = "api"  # "api" | "sip"
    # events published for this call so far: the last one's seq (statusCallback X-Event-Id)
    events: int = 0
    node: str = ""  # the node that owns the call (runs its tasks and media); "" unknown

    @property
    def billable_seconds(self) -> int:
        """Seconds from bridge to end, rounded up; 0 for a call that was never bridged."""
        if self.bridged is None or self.ended is None:
            return 0
        seconds = (self.ended - self.bridged).total_seconds()
        return max(0, math.ceil(seconds))

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "user_id": self.user_id,
            "organization_id": self.organization_id,
            "extension": self.extension,
            "sources": list(self.sources),
            "destinations": list(self.destinations),
            "caller_id": self.caller_id,
            "caller_id_destination": self.caller_id_destination,
            "nonce": self.nonce,
            "wait_for_pickup": self.wait_for_pickup,
            "call_duration": self.call_duration,
            "allow_public_transfer": self.allow_public_transfer,
            "video": self.video,
            "status_callback": self.status_callback,
            "published": format_datetime(self.published),
            "answered": _opt_dt(self.answered),
            "bridged": _opt_dt(self.bridged),
            "ended": _opt_dt(self.ended),
            "state": str(self.state),
            "disposition": None if self.disposition is None else int(self.disposition),
            "hangup_cause": self.hangup_cause,
            "charge": self.charge,
            "parties": [party.to_dict() for party in self.parties],
            "origin": self.origin,
            "events": self.events,
            "node": self.node,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PhoneCall:
        """Rebuild a call from ``to_dict`` output; ``ValueError`` names what is wrong."""
        if not isinstance(data, dict):
            raise ValueError(f"expected a call record object, got {type(data).__name__}")
        try:
            disposition = data.get("disposition")
            return cls(
                id=str(data["id"]),
                user_id=int(data["user_id"]),
                organization_id=int(data["organization_id"]),
                extension=str(data["extension"]),
                sources=[str(n) for n in data["sources"]],
                destinations=[str(n) for n in data["destinations"]],
                caller_id=data.get("caller_id"),
                caller_id_destination=data.get("caller_id_destination"),
                nonce=data.get("nonce"),
                wait_for_pickup=int(data.get("wait_for_pickup", 25)),
                call_duration=int(data.get("call_duration", 3600)),
                allow_public_transfer=bool(data.get("allow_public_transfer", False)),
                video=bool(data.get("video", False)),
                status_callback=data.get("status_callback"),
                published=parse_datetime(data["published"]),
                answered=_opt_parse(data.get("answered")),
                bridged=_opt_parse(data.get("bridged")),
                ended=_opt_parse(data.get("ended")),
                state=CallState(data.get("state", CallState.CREATED)),
                disposition=None if disposition is None else Disposition(disposition),
                hangup_cause=data.get("hangup_cause"),
                charge=float(data.get("charge", 0.0)),
                parties=[Party.from_dict(p) for p in data.get("parties", [])],
                origin=str(data.get("origin", "api")),
                events=int(data.get("events") or 0),  # absent in records of older versions
                node=str(data.get("node") or ""),
            )
        except KeyError as exc:
            raise ValueError(f"call record lacks {exc.args[0]!r}") from None
        except TypeError as exc:
            raise ValueError(f"bad call record: {exc}") from None
