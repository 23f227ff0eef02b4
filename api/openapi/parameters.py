"""The OpenAPI document's parameters: the path values and query parameters operations share.

Both are generated from the models that check them: the path values' (api/pathparams.py) and
the queries' (api/queries.py, api/paging.py).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from api.paging import OWN_PARAMETERS, PagingQuery
from api.queries import query_parameters


def query_param(name: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": schema,
    }


def path_parameters(model: type[BaseModel]) -> list[dict[str, Any]]:
    """The OpenAPI path parameters of ``model``'s fields (api.pathparams), in their order."""
    return [{**parameter, "in": "path"} for parameter in query_parameters(model)]


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
