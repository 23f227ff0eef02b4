"""Reading a JSON request body with a size limit and a UAPI error for anything malformed.

The Content-Type is not checked: VoipNow's own examples send ``Content Type: application/json``
(sic), so the body is parsed as JSON whatever the header says.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from starlette.requests import Request

from api.errors import ApiError

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


async def read_body(request: Request, limit: int = MAX_BODY_BYTES) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isascii() and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, "payload_too_large", f"The request body exceeds {limit} bytes")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise ApiError(413, "payload_too_large", f"The request body exceeds {limit} bytes")
    return body


async def read_json_object(request: Request, *, required: bool = True) -> dict[str, Any]:
    """The body as a JSON object; 400 ``payload_invalid`` when it is not one.

    An empty body is ``{}`` unless ``required``.
    """
    body = await read_body(request)
    if not body.strip():
        if required:
            raise ApiError(400, "payload_invalid", "The request body must be a JSON object")
        return {}
    try:
        data = json.loads(body.decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        message = str(exc)[:200] if isinstance(exc, json.JSONDecodeError) else "not valid JSON"
        raise ApiError(
            400, "payload_invalid", f"The request body is not valid JSON: {message}"
        ) from None
    if not isinstance(data, dict):
        raise ApiError(400, "payload_invalid", "The request body must be a JSON object")
    return data
