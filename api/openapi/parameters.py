"""The OpenAPI document's parameters: the path values and query parameters operations share.

Path values are described as the facade reads them (api/scope.py, api/paging.py), precisely
enough that a fuzzer generating valid requests reaches the handlers.
"""

from __future__ import annotations

from typing import Any

from api.paging import OWN_PARAMETERS, PagingQuery
from api.queries import query_parameters


def path_param(name: str, description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": schema or {"type": "string"},
    }


def query_param(name: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": schema,
    }


# Path values as the facade reads them (api/scope.py): the aliases or a numeric id, and an
# extension number (short or extended) or @self. Precise schemas let a fuzzer reach the handlers.
USER_REF = {
    "anyOf": [
        {"type": "string", "enum": ["@me", "@viewer", "@owner"]},
        {"type": "string", "pattern": "^[0-9]{1,18}$"},
    ],
    "examples": ["@me", "12"],
}
EXTENSION_NUMBER = {
    "anyOf": [
        {"type": "string", "enum": ["@self"]},
        {"type": "string", "pattern": "^([0-9]{1,16}[*])?[0-9]{1,16}$"},
    ],
    "examples": ["210", "0003*210", "@self"],
}

USER_ID = path_param(
    "userId",
    "The user acting: `@me`/`@viewer` (the User App's own user), `@owner` (the owner of the "
    "extension, so not with extension `@self`: error `user_invalid`) or a numeric user id. "
    "Organization and Administrator Apps must give an id.",
    USER_REF,
)
EXTENSION = path_param(
    "extension",
    "An extension number (`0003*210`, or short `210` for User/Organization Apps) owned by the "
    "user, or `@self` for every extension of the user.",
    EXTENSION_NUMBER,
)
PHONE_CALL_ID = path_param(
    "phoneCallId",
    "A PhoneCall id (20 hex digits).",
    {"type": "string", "pattern": "^[0-9a-fA-F]{1,64}$"},
)
OWNER_ID = path_param(
    "ownerId",
    "The user whose call history is read (`@me` or a user id).",
    {
        "anyOf": [
            {"type": "string", "enum": ["@me", "@viewer"]},
            {"type": "string", "pattern": "^[0-9]{1,18}$"},
        ],
        "examples": ["@me", "12"],
    },
)

PAGING = query_parameters(PagingQuery, exclude=OWN_PARAMETERS)

# A party's number as a query value: the server strips it, so it must hold a non-space.
QUERY_NUMBER = {"type": "string", "minLength": 1, "maxLength": 64, "pattern": "\\S"}


def fields_query(description: str, names: tuple[str, ...]) -> dict[str, Any]:
    # what api.paging reads: comma-separated names, white space around them and empty items
    # ignored, at least one name, every name known
    one = "(" + "|".join(names) + ")\\s*"
    pattern = f"^(\\s*,)*\\s*{one}(,\\s*({one})?)*$"
    return query_param(
        "fields",
        f"{description} Error `fields_invalid`.",
        {"type": "string", "pattern": pattern, "examples": ["id,published"]},
    )
