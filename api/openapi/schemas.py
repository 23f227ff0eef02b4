"""The OpenAPI document's component schemas: every request and response body of the facade.

Operations (:mod:`api.openapi.paths`) refer to them with ``ref(name)``.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from api import jsonschema
from api.action_body import PhoneCallAction
from api.create_bodies import CREATE_MODELS, PhoneCallCreate
from api.resources import component_schemas as resource_schemas
from api.sse import component_schemas as sse_schemas
from api.token_request import component_schemas as token_request_schemas

JSON = "application/json"


def ref(name: str) -> dict[str, str]:
    """A reference to the component schema ``name``."""
    return {"$ref": f"#/components/schemas/{name}"}


DATE = {"type": "string", "format": "date-time", "description": "ISO 8601, UTC, `Z` suffix."}

REQUEST_MODELS: tuple[type[BaseModel], ...] = (PhoneCallCreate, PhoneCallAction)


def request_schemas() -> dict[str, Any]:
    """The components.schemas entries of the request models (and the models they use)."""
    return jsonschema.component_schemas(REQUEST_MODELS, jsonschema.RequestSchema)


def component_schemas() -> dict[str, Any]:
    # the request bodies come from their models (api.create_bodies, api.action_body,
    # api.token_request), which also check them, and the main resources from theirs
    # (api.resources), which the renderers fill, and the event stream's message from its
    # (api.sse), which writes the stream
    return {
        **request_schemas(),
        **jsonschema.component_schemas(CREATE_MODELS, jsonschema.RequestSchema),
        **resource_schemas(),
        **token_request_schemas(),
        **sse_schemas(),
    }
