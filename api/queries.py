"""Query parameters as pydantic models, defined once: the model checks the query (each field
applies its rule of :mod:`api.fields`, in declared order, with its UAPI code) and gives the
OpenAPI document its parameters (:func:`query_parameters`).
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, ValidationInfo, model_validator

from api import fields, jsonschema
from api.paging import parse_date
from api.validation import rule


def _seconds(name: str, code: str, *, integer: bool) -> Any:
    published = (
        Annotated[int, Field(ge=1, le=fields.MAX_SECONDS)]
        if integer
        else Annotated[float, Field(gt=0, le=fields.MAX_SECONDS)]
    )
    return rule(
        lambda value, info: fields.parse_positive_seconds(value, code, name, integer=integer),
        published,
    )


def _boolean(name: str, code: str) -> Any:
    return rule(lambda value, info: fields.parse_boolean(value, code, name), bool)


class CreateQuery(BaseModel):
    """The query of ``POST /uapi/phoneCalls/{userId}/simple``, checked in this order."""

    callDuration: Annotated[
        int | None, _seconds("callDuration", "pc_duration_invalid", integer=True)
    ] = Field(
        default=None,
        description=(
            "Maximum call duration in seconds, a positive integer, at most 604800, counted "
            "from the moment a source answers (so the destination's ringing counts); when it "
            "runs out every party gets BYE. Sandbox calls stop after 180 s at most. Default: "
            "the server's max_duration. Error `pc_duration_invalid`."
        ),
    )
    waitForPickup: Annotated[
        int | None, _seconds("waitForPickup", "pc_timeout_invalid", integer=False)
    ] = Field(
        default=None,
        description=(
            "Seconds to wait for a pickup, > 0 (fractions round up), at most 604800. Default "
            "25. Error `pc_timeout_invalid`."
        ),
    )
    allowPublicTransfer: Annotated[bool, _boolean("allowPublicTransfer", "pc_transfer_invalid")] = (
        Field(
            default=False,
            description=(
                "Allow transferring a call to a public number. Error `pc_transfer_invalid`."
            ),
        )
    )
    video: Annotated[bool, _boolean("video", "pc_video_invalid")] = Field(
        default=False, description="Offer video in SDP. Error `pc_video_invalid`."
    )

    @model_validator(mode="before")
    @classmethod
    def _wait_for_pickup_spelling(cls, data: Any) -> Any:
        if isinstance(data, dict) and "waitForPickup" not in data and "waitForPickUp" in data:
            return {**data, "waitForPickup": data["waitForPickUp"]}
        return data


class CallbackQuery(BaseModel):
    """The query of ``POST /uapi/phoneCalls/{userId}/callback``, checked in this order."""

    callDuration: Annotated[
        int | None, _seconds("callDuration", "pc_duration_invalid", integer=True)
    ] = Field(
        default=None,
        description=(
            "Maximum call duration in seconds (1-604800), counted from the source's answer. "
            "Default: the server's max_duration. Error `pc_duration_invalid`."
        ),
    )
    waitForPickup: Annotated[
        int | None, _seconds("waitForPickup", "pc_timeout_invalid", integer=False)
    ] = Field(
        default=None,
        description=(
            "Seconds each party is rung, > 0 (fractions round up), at most 604800. Default "
            "25. Error `pc_timeout_invalid`."
        ),
    )

    @model_validator(mode="before")
    @classmethod
    def _wait_for_pickup_spelling(cls, data: Any) -> Any:
        if isinstance(data, dict) and "waitForPickup" not in data and "waitForPickUp" in data:
            return {**data, "waitForPickup": data["waitForPickUp"]}
        return data


PIN_PATTERN = "^[0-9]{1,16}$"


def _pin(value: Any, info: ValidationInfo) -> str:
    text = str(value)
    if not (text.isascii() and text.isdigit() and 1 <= len(text) <= 16):
        raise fields.bad("pc_pin_invalid", "pin must be 1 to 16 digits")
    return text


def _conference_number(value: Any, info: ValidationInfo) -> str:
    text = str(value).strip()
    if not text or len(text) > MAX_NUMBER_LENGTH:
        raise fields.bad("pc_conference_invalid", "number must be a conference extension number")
    return text


class ConferenceInviteQuery(CallbackQuery):
    """The query of ``POST /uapi/phoneCalls/{userId}/conferenceInvite``, checked in this
    order (``number`` first: the extension charged defaults to it)."""

    number: Annotated[
        str, rule(_conference_number, Annotated[str, Field(min_length=1, max_length=64)])
    ] = Field(
        description=(
            "The conference extension the destination is dialled into (`400` or `0003*400`). "
            "Error `pc_conference_invalid` (missing, unknown or not a conference)."
        ),
        examples=["400"],
    )
    pin: Annotated[str | None, rule(_pin, Annotated[str, Field(pattern=PIN_PATTERN)] | None)] = (
        Field(
            default=None,
            description=(
                "The conference's PIN, required when it has one. Error `pc_pin_invalid` "
                "(malformed, missing or wrong)."
            ),
        )
    )


MAX_NUMBER_LENGTH = 64
QueryNumber = Annotated[str, Field(min_length=1, max_length=MAX_NUMBER_LENGTH, pattern="\\S")]
QueryDate = Annotated[str, Field(json_schema_extra={"format": "date-time"})]


def _number(name: str, code: str) -> Any:
    def check(value: Any, info: ValidationInfo) -> str:
        text = str(value)
        if not text.strip() or len(text) > MAX_NUMBER_LENGTH:
            raise fields.bad(code, f"{name} must be a phone or extension number")
        return text.strip()

    return rule(check, QueryNumber)


def _date(name: str, code: str, *, after: str | None = None) -> Any:
    def check(value: Any, info: ValidationInfo) -> datetime:
        moment = parse_date(str(value))
        if moment is None:
            raise fields.bad(code, f"{name} must be an ISO 8601 date, e.g. 2026-11-26T10:00:00Z")
        earliest = None if after is None else info.data.get(after)
        if earliest is not None and moment < earliest:
            raise fields.bad(code, f"{name} is before {after}")
        return moment

    return rule(check, QueryDate)


def _code(name: str, allowed: tuple[int, ...], code: str, published: Any) -> Any:
    def check(value: Any, info: ValidationInfo) -> int:
        text = str(value).strip()
        if not (text.isascii() and text.isdigit()) or len(text) > 3 or int(text) not in allowed:
            raise fields.bad(code, f"{name} must be one of {', '.join(map(str, allowed))}")
        return int(text)

    return rule(check, published)


class CdrQuery(BaseModel):
    """The CDR's own filters, checked in this order (then the paging query)."""

    source: Annotated[str | None, _number("source", "cdr_source_invalid")] = Field(
        None, description="Only calls with this source number. Error `cdr_source_invalid`."
    )
    destination: Annotated[str | None, _number("destination", "cdr_destination_invalid")] = Field(
        None,
        description=("Only calls with this destination number. Error `cdr_destination_invalid`."),
    )
    startDate: Annotated[datetime | None, _date("startDate", "cdr_startdate_invalid")] = Field(
        None, description="Published at or after (ISO 8601). Error `cdr_startdate_invalid`."
    )
    endDate: Annotated[
        datetime | None, _date("endDate", "cdr_enddate_invalid", after="startDate")
    ] = Field(
        None,
        description=(
            "Published before (ISO 8601); not before startDate. Error `cdr_enddate_invalid`."
        ),
    )
    disposition: Annotated[
        int | None,
        _code(
            "disposition",
            (0, 1, 2, 3, 4, 5),
            "cdr_disposition_invalid",
            Annotated[int, Field(ge=0, le=5)],
        ),
    ] = Field(None, description="0-5. Error `cdr_disposition_invalid`.")
    flow: Annotated[int | None, _code("flow", (2, 4, 8), "cdr_flow_invalid", Literal[2, 4, 8])] = (
        Field(None, description="2, 4 or 8. Error `cdr_flow_invalid`.")
    )


def query_parameters(
    model: type[BaseModel], *, exclude: Collection[str] = ()
) -> list[dict[str, Any]]:
    """The OpenAPI query parameters of ``model``'s fields (but ``exclude``), in their order."""
    schema = model.model_json_schema(
        ref_template=jsonschema.REF_TEMPLATE, schema_generator=jsonschema.QuerySchema
    )
    parameters = []
    for name, field_schema in schema["properties"].items():
        if name in exclude:
            continue
        described = dict(field_schema)
        description = described.pop("description", "")
        parameters.append(
            {
                "name": name,
                "in": "query",
                "required": name in schema.get("required", ()),
                "description": description,
                "schema": described,
            }
        )
    return parameters
