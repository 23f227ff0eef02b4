"""Pydantic's verdict on a request value as the API's error: one UAPI code and message.

A model's field applies a rule of :mod:`api.fields` through :func:`rule`, whose ``ApiError``
becomes that field's validation error; :func:`validated` (a body, a query, a form) and
:func:`validated_value` (one value, such as a path's) check the value and answer the first
broken rule as that ``ApiError``. Fields are checked in their declared order and the first
broken rule is answered. The type a rule declares (``json_schema_input_type``) is what the
OpenAPI document publishes for the field, so the check and the document cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from pydantic import BaseModel, PlainValidator, TypeAdapter, ValidationError, ValidationInfo
from pydantic_core import PydanticCustomError

from api import fields
from api.errors import ApiError

M = TypeVar("M", bound=BaseModel)
V = TypeVar("V")

# what a missing required field answers (pydantic reports it before any rule runs)
MISSING: dict[str, tuple[str, str]] = {
    "source": (
        "pc_source_invalid",
        "source is missing: give one or more extension or public numbers",
    ),
    "destination": (
        "pc_destination_invalid",
        "destination is missing: give one or more extension or public numbers",
    ),
    "action": ("pc_action_invalid", "action is missing"),
    "extension": ("extension_invalid", "extension is missing"),
    "number": (
        "pc_conference_invalid",
        "number is missing: give the conference extension to dial into",
    ),
}


def rule(check: Callable[[Any, ValidationInfo], Any], published: Any) -> PlainValidator:
    """A field validator running ``check``, whose ``ApiError`` becomes the field's error;
    ``published`` is the type the OpenAPI document shows for the field."""

    def run(value: Any, info: ValidationInfo) -> Any:
        try:
            return check(value, info)
        except ApiError as exc:
            context = {"message": exc.message, "status": exc.status}
            raise PydanticCustomError(exc.code, "{message}", context) from None

    return PlainValidator(run, json_schema_input_type=published)


def validated(model: type[M], data: dict[str, Any], context: object = None) -> M:
    """``data`` checked by ``model``; ``ApiError`` answers the first rule broken."""
    try:
        return model.model_validate(data, context=context)
    except ValidationError as exc:
        raise _api_error(exc) from None


def validated_value(kind: TypeAdapter[V], value: Any) -> V:
    """``value`` checked by the type ``kind`` (a path value...); ``ApiError`` as above."""
    try:
        return kind.validate_python(value)
    except ValidationError as exc:
        raise _api_error(exc) from None


def _api_error(exc: ValidationError) -> ApiError:
    first = exc.errors(include_url=False, include_input=False)[0]
    context = first.get("ctx") or {}
    if "status" in context:
        return ApiError(int(context["status"]), first["type"], str(context["message"]))
    name = next((str(part) for part in reversed(first["loc"]) if isinstance(part, str)), "")
    if first["type"] == "missing" and name in MISSING:
        return fields.bad(*MISSING[name])
    # not reached by a JSON object body: every field's rule answers with its own code
    return fields.bad("payload_invalid", f"{name or 'The request body'}: {first['msg']}")
