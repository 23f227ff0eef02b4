"""The OAuth token request (RFC 6749 section 4.4.2) as a pydantic model, defined once.

``TokenRequest`` checks the fields ``POST /oauth/token.php`` reads (``api.oauth`` gathers them
from the query, the form or JSON body and an HTTP Basic header) and gives the OpenAPI document
the request body's schema (:func:`component_schemas`). The fields are checked in order and the
first broken rule is answered, with its OAuth error code and HTTP status:

1. ``grant_type``: missing or empty is 400 ``invalid_request``; anything but
   ``client_credentials`` is 400 ``unsupported_grant_type``;
2. ``client_id`` and ``client_secret``: missing or empty is 401 ``invalid_client``.

Any other field (VoipNow's ``type=unifiedapi``, ``redirect_uri``...) is ignored.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, model_validator

from api import jsonschema
from api.errors import ApiError
from api.validation import rule

GRANT_TYPE = "client_credentials"


def _grant_type(value: Any, info: ValidationInfo) -> str:
    text = str(value)
    if not text:
        raise ApiError(400, "invalid_request", "grant_type is missing")
    if text != GRANT_TYPE:
        raise ApiError(
            400,
            "unsupported_grant_type",
            f"grant_type {text[:64]!r} is not supported; use {GRANT_TYPE}",
        )
    return text


def _credential(value: Any, info: ValidationInfo) -> str:
    text = str(value)
    if not text:
        raise ApiError(401, "invalid_client", "client_id and client_secret are required")
    return text


Credential = Annotated[str, rule(_credential, Annotated[str, Field(min_length=1)])]


class TokenRequest(BaseModel):
    """The fields of a client-credentials token request (see the module doc)."""

    model_config = ConfigDict(
        json_schema_extra={
            "description": (
                "client_id and client_secret may come in an HTTP Basic Authorization header "
                "instead."
            )
        }
    )

    grant_type: Annotated[str, rule(_grant_type, Literal["client_credentials"])]
    client_id: Credential
    client_secret: Credential
    type: str | None = Field(None, description="Accepted and ignored (`unifiedapi`).")
    redirect_uri: str | None = Field(None, description="Accepted and ignored.")

    @model_validator(mode="before")
    @classmethod
    def _absent_is_empty(cls, data: Any) -> Any:
        # RFC 6749 section 3.1: a parameter sent without a value is treated as if omitted, so
        # an omitted one is checked as an empty one (and answered with the same error)
        if not isinstance(data, dict):
            return data
        return {"grant_type": "", "client_id": "", "client_secret": "", **data}


def component_schemas() -> dict[str, Any]:
    """The components.schemas entry of the token request (a form: a field is absent or a
    string, never null)."""
    return jsonschema.component_schemas((TokenRequest,), jsonschema.QuerySchema)
