"""The path values of the facade's routes as pydantic types and models, defined once.

Each type checks a path value with its UAPI code and message and publishes the schema it
checks (``rule``); the models group them per route and give the OpenAPI document its path
parameters (``api.openapi.parameters.path_parameters``), so the document and the checks
cannot drift apart. A value is checked where the order of checks puts it, with
:func:`path_value`: ``userId`` first (:mod:`api.scope`, :mod:`api.create`), ``extension`` once
the user is known (:mod:`api.scope`), ``phoneCallId`` last (:mod:`api.phonecalls`).
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, Field, TypeAdapter, ValidationInfo

from api.errors import ApiError
from api.validation import rule, validated_value

T = TypeVar("T")

USER_ID_PATTERN = "[0-9]{1,18}"
EXTENSION_PATTERN = "([0-9]{1,16}[*])?[0-9]{1,16}"
PHONE_CALL_ID_PATTERN = "[0-9a-fA-F]{1,64}"


def _anchored(pattern: str) -> Any:
    # JSON Schema patterns are searched, not matched: anchored, they say what fullmatch checks
    return Annotated[str, Field(pattern=f"^{pattern}$")]


def _user_rule(aliases: tuple[str, ...], published: Any) -> Any:
    def check(value: Any, info: ValidationInfo) -> str:
        text = str(value)
        if text in aliases or re.fullmatch(USER_ID_PATTERN, text):
            return text
        raise ApiError(
            400, "user_invalid", "userId must be a user id or one of @me, @viewer, @owner"
        )

    return rule(check, published)


def _extension(value: Any, info: ValidationInfo) -> str:
    text = str(value)
    if text == "@self" or re.fullmatch(EXTENSION_PATTERN, text):
        return text
    raise ApiError(400, "extension_invalid", f"Unknown extension {text[:64]!r}")


def _phone_call_id(value: Any, info: ValidationInfo) -> str:
    text = str(value)
    if re.fullmatch(PHONE_CALL_ID_PATTERN, text):
        return text
    raise ApiError(404, "pc_not_found", f"No PhoneCall {text[:64]!r} here")


# a user acting: the App's own (@me, @viewer) or a numeric user id; ``user_invalid``
UserRef = Annotated[
    str,
    _user_rule(("@me", "@viewer"), Literal["@me", "@viewer"] | _anchored(USER_ID_PATTERN)),
    Field(examples=["@me", "12"]),
]
# the same, or @owner: the owner of the extension the path names next; ``user_invalid``
UserOrOwnerRef = Annotated[
    str,
    _user_rule(
        ("@me", "@viewer", "@owner"),
        Literal["@me", "@viewer", "@owner"] | _anchored(USER_ID_PATTERN),
    ),
    Field(examples=["@me", "12"]),
]
# an extension number, short (210) or extended (0003*210), or @self; ``extension_invalid``
ExtensionRef = Annotated[
    str,
    rule(_extension, Literal["@self"] | _anchored(EXTENSION_PATTERN)),
    Field(examples=["210", "0003*210", "@self"]),
]
# a PhoneCall id; 404 ``pc_not_found`` for anything else, as for an unknown id
PhoneCallId = Annotated[str, rule(_phone_call_id, _anchored(PHONE_CALL_ID_PATTERN))]

USER_REF: TypeAdapter[str] = TypeAdapter(UserRef)
USER_OR_OWNER_REF: TypeAdapter[str] = TypeAdapter(UserOrOwnerRef)
EXTENSION_REF: TypeAdapter[str] = TypeAdapter(ExtensionRef)
PHONE_CALL_ID: TypeAdapter[str] = TypeAdapter(PhoneCallId)


def path_value(kind: TypeAdapter[T], text: str) -> T:
    """A path value checked by its type; ``ApiError`` with the type's code otherwise."""
    return validated_value(kind, text)


class SimplePath(BaseModel):
    """``/uapi/phoneCalls/{userId}/simple``"""

    userId: UserOrOwnerRef = Field(
        description=(
            "The user acting: `@me`/`@viewer` (the User App's own user), `@owner` (the owner "
            "of the extension, so not with extension `@self`: error `user_invalid`) or a "
            "numeric user id. Organization and Administrator Apps must give an id."
        )
    )


class ExtensionPath(SimplePath):
    """``/uapi/phoneCalls/{userId}/{extension}``"""

    extension: ExtensionRef = Field(
        description=(
            "An extension number (`0003*210`, or short `210` for User/Organization Apps) owned "
            "by the user, or `@self` for every extension of the user."
        )
    )


class PhoneCallPath(ExtensionPath):
    """``/uapi/phoneCalls/{userId}/{extension}/{phoneCallId}`` (and its ``/events``)"""

    phoneCallId: PhoneCallId = Field(description="A PhoneCall id (20 hex digits).")


class CdrPath(BaseModel):
    """``/uapi/cdr/{ownerId}``"""

    ownerId: UserRef = Field(
        description="The user whose call history is read (`@me` or a user id)."
    )


PATH_MODELS: tuple[type[BaseModel], ...] = (SimplePath, ExtensionPath, PhoneCallPath, CdrPath)
