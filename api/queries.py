"""Query parameters as pydantic models, defined once: the model checks the query (each field
applies its rule of :mod:`api.fields`, in declared order, with its UAPI code) and gives the
OpenAPI document its parameters (:func:`query_parameters`).
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Annotated, Any

from pydantic import BaseModel, Field, model_validator

from api import fields, jsonschema
from api.bodies import rule


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
