"""The resources the API returns, as pydantic models defined once: the renderers
(:mod:`api.render`, :mod:`api.errors`, :mod:`api.oauth`) fill them and the OpenAPI document's
schemas are generated from them (:func:`component_schemas`).

A field without a value is left out of the JSON (``dump``), so an optional field is
documented as its type alone.
"""

from __future__ import annotations

from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from api import jsonschema

DATE_FORMAT = {"format": "date-time"}
DATE_NOTE = "ISO 8601, UTC, `Z` suffix."

Date = Annotated[str, Field(json_schema_extra=DATE_FORMAT)]
Uri = Annotated[str, Field(json_schema_extra={"format": "uri"})]
Flow = Literal[2, 4, 8]
Disposition = Annotated[int, Field(ge=0, le=5)]
T = TypeVar("T")


class ErrorDetail(BaseModel):
    code: str
    message: str


class Error(BaseModel):
    """The body of every UAPI error: ``{"error": {"code", "message"}}``."""

    error: ErrorDetail


class OAuthToken(BaseModel):
    access_token: str
    token_type: Literal["Bearer"]
    expires_in: int = Field(description="Seconds (3600).")


class OAuthError(BaseModel):
    error: Literal["invalid_client", "invalid_request", "unsupported_grant_type", "slow_down"]
    error_description: str


class SelfLink(BaseModel):
    self: Uri | None = None


class Link(BaseModel):
    self: Uri


class CreatedPhoneCall(BaseModel):
    """One item of the create answer: the call's id and where to read it."""

    id: Annotated[str, Field(pattern="^[0-9a-f]{20}$")]
    extension: Annotated[str, Field(pattern="^[0-9]{1,16}[*][0-9]{1,16}$")] = Field(
        description=(
            "The extension charged, in its extended form (`0003*210`) whatever form the "
            "request used: the `extension` GET returns for the call, and the one in "
            "`link.self`."
        )
    )
    link: Link


class PhoneCallView(BaseModel):
    """The call from one party's point of view."""

    id: str = Field(description="`00`, `01`, ...: give it as phoneCallViewId.")
    extension: str | None = None
    source: list[str] | None = None
    destination: list[str] | None = None
    flow: Flow | None = Field(None, description="2 local, 4 outgoing public, 8 incoming public.")
    status: Annotated[int, Field(ge=0, le=5)] | None = Field(
        None,
        description=(
            "0 unknown, 1 off hook, 2 trying, 3 ringing, 4 other side ringing, 5 on call."
        ),
    )
    ringing: Date | None = Field(None, description=DATE_NOTE)
    callerId: str | None = None
    recording: Date | None = Field(None, description=DATE_NOTE)
    answered: Date | None = Field(None, description=DATE_NOTE)
    onHold: Date | None = Field(None, description=DATE_NOTE)
    holder: int | None = None
    parked: Date | None = Field(None, description="When this party was parked. " + DATE_NOTE)
    parkedPos: int | None = Field(None, description="Its parking slot in the organization.")
    parkedBy: str | None = Field(None, description="The extension that parked it.")
    disposition: Disposition | None = Field(
        None, description="0 answered, 1 busy, 2 failed, 3 no answer, 4 unknown, 5 not allowed."
    )
    number: str | None = Field(None, description="Extension: the party's number as given.")
    role: Literal["source", "destination", "monitor", "whisper", "bargein"] | None = Field(
        None,
        description=(
            "Extension: source, destination, or the supervisor a Monitor, Whisper or BargeIn "
            "rang (monitor, whisper, bargein)."
        ),
    )
    ended: Date | None = Field(None, description="Extension: when this party's leg ended.")
    sipStatus: int | None = Field(None, description="Extension: the leg's final SIP status.")
    hangupCause: str | None = Field(None, description="Extension.")
    media: dict[str, dict[str, int]] | None = Field(
        None,
        description=(
            "Extension: relay counters per stream (`audio`, `video`): RTP/RTCP packets and "
            "bytes each way, RTP packets lost."
        ),
    )


class PhoneCall(BaseModel):
    """The PhoneCall resource; ``fields`` may leave out everything but ``id``."""

    id: str
    nonce: str | None = None
    extension: str | None = Field(None, description="The extension charged (extended number).")
    ownerId: int | None = Field(None, description="The Organization owning the call.")
    ownerName: str | None = None
    userId: int | None = Field(None, description="Extension: the user the call was made for.")
    published: Date | None = Field(None, description=DATE_NOTE)
    answered: Date | None = Field(None, description="When a source answered.")
    bridged: Date | None = Field(None, description="Extension: when the destination answered.")
    ended: Date | None = Field(None, description="Extension.")
    state: str | None = Field(
        None,
        description="Extension: created, calling_source, calling_destination, bridged, ended.",
    )
    disposition: Disposition | None = Field(None, description="Extension (once ended).")
    hangupCause: str | None = Field(None, description="Extension.")
    duration: Annotated[int, Field(ge=0)] | None = Field(
        None,
        description=(
            "Extension, once ended: the bridged time, from `bridged` (the destination's "
            "answer) to `ended`, in whole seconds rounded up (0.2 s counts as 1); 0 when the "
            "call was never bridged. The sources' time before the bridge (ringing, ringback) "
            "is not counted."
        ),
    )
    charge: float | None = Field(None, description="Extension: the charge, once ended.")
    callerId: str | None = None
    callerIdDestination: str | None = None
    phoneCallView: list[PhoneCallView] | None = None
    links: SelfLink | None = None


class PhoneCallStat(BaseModel):
    """A finished call as a CDR record; ``fields`` may leave out everything but ``id``."""

    id: str
    extension: str | None = None
    userId: int | None = None
    source: str | None = Field(None, description="The source that answered, else the first.")
    destination: str | None = None
    sources: list[str] | None = None
    destinations: list[str] | None = None
    callerId: str | None = None
    published: Date | None = Field(None, description=DATE_NOTE)
    answered: Date | None = Field(None, description=DATE_NOTE)
    bridged: Date | None = Field(None, description=DATE_NOTE)
    ended: Date | None = Field(None, description=DATE_NOTE)
    disposition: Disposition | None = None
    flow: Flow | None = None
    duration: Annotated[int, Field(ge=0)] | None = Field(
        None,
        description=(
            "The bridged time, from `bridged` to `ended`, in whole seconds rounded up; 0 when "
            "never bridged."
        ),
    )
    charge: float | None = None
    hangupCause: str | None = None


class CallEvent(BaseModel):
    """One state change of a call: ``dump_event`` keeps a ``state`` without value as null."""

    model_config = ConfigDict(
        json_schema_extra={
            "description": "One state change: the SSE `data` and the statusCallback POST body."
        }
    )

    phoneCallId: str
    seq: int = Field(description="Per call, increasing; the SSE id and X-Event-Id suffix.")
    event: str = Field(description="created, ringing, answered, bridged, dtmf, ended, ...")
    state: str | None = None
    at: Date | None = Field(description=DATE_NOTE)
    final: bool = Field(description="True exactly once per call, on the last event.")
    data: dict[str, Any] | None = Field(
        None,
        description=(
            "The event's details, e.g. `party` (a party's number); for `dtmf` (a digit a party "
            'pressed, RFC 4733 or SIP INFO) `{"digit": "5", "party": "NUMBER"}`, digit one of '
            "0-9 * # A-D, party the number of the party that pressed it."
        ),
    )


class PageLinks(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "description": (
                "Collection links: this page, and the next/previous ones when they exist "
                "(query kept, token left out)."
            )
        }
    )

    self: Uri
    next: Uri | None = None
    prev: Uri | None = None


class Collection(BaseModel, Generic[T]):
    """A collection answer: its items in ``entry``."""

    entry: list[T]


class Page(Collection[T], Generic[T]):
    """A collection answer with the paging a listing gives (left out for one item)."""

    totalResults: int | None = None
    startIndex: int | None = None
    itemsPerPage: int | None = None
    links: PageLinks | None = None


class HungUp(BaseModel):
    id: str


class PhoneCallCollection(Page[PhoneCall]):
    """A page of a PhoneCall listing, or the one call a GET or PUT of a call gives."""


class PhoneCallStatCollection(Page[PhoneCallStat]):
    """A page of the CDR."""


class HungUpCollection(Collection[HungUp]):
    """The ids a DELETE hung up."""


RESOURCE_MODELS: tuple[type[BaseModel], ...] = (
    Error,
    OAuthToken,
    OAuthError,
    CreatedPhoneCall,
    PhoneCallView,
    PhoneCall,
    PhoneCallStat,
    CallEvent,
    PageLinks,
    PhoneCallCollection,
    PhoneCallStatCollection,
    HungUpCollection,
)


def dump(resource: BaseModel, fields: frozenset[str] | None = None) -> dict[str, Any]:
    """The JSON object of ``resource``: fields without a value left out; with ``fields``
    only those (and ``id``)."""
    include = None if fields is None else set(fields) | {"id"}
    return resource.model_dump(mode="json", exclude_none=True, include=include)


def dump_collection(
    collection: Collection[Any], fields: frozenset[str] | None = None
) -> dict[str, Any]:
    """The JSON object of a collection, as ``dump``; with ``fields`` each entry keeps only
    those (and ``id``)."""
    if fields is None:
        return dump(collection)
    include: dict[str, Any] = dict.fromkeys(type(collection).model_fields, True)
    include["entry"] = {"__all__": set(fields) | {"id"}}
    return collection.model_dump(mode="json", exclude_none=True, include=include)


def dump_event(event: CallEvent) -> dict[str, Any]:
    """The JSON object of a CallEvent: every field, ``state`` null while it has none."""
    return event.model_dump()


def component_schemas() -> dict[str, Any]:
    """The components.schemas entries of the resources."""
    return jsonschema.component_schemas(
        RESOURCE_MODELS,
        jsonschema.ResourceSchema,
        mode="serialization",
        inline=("ErrorDetail", "SelfLink", "HungUp", "Link"),
    )
