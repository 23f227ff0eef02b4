# ruff: noqa: E501  (long description strings: this module is data)
"""The OpenAPI 3.1 document of the facade (served at /uapi/openapi.json).

Assembled from the path operations (:mod:`api.openapi.paths`) and the component schemas
(:mod:`api.openapi.schemas`).
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from api.openapi.operators import operator_paths, operator_schemas
from api.openapi.paths import path_operations
from api.openapi.schemas import component_schemas


def openapi_document(public_url: str) -> dict[str, Any]:
    """The whole OpenAPI 3.1 document, with ``public_url`` as the server."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "trio-b2bua UnifiedAPI (UAPI) facade",
            "version": "0.1.0",
            "description": (
                "VoipNow UnifiedAPI-compatible click-to-call: OAuth client-credentials tokens, "
                "Simple PhoneCalls, PhoneCall list/get/hang-up/actions, CDR, plus this server's "
                "extensions (status callbacks, Server-Sent Events, extra record fields). Errors are "
                'always `{"error": {"code", "message"}}`; unknown paths answer 404 '
                "`not_found`, wrong methods 405 `method_not_allowed`, other malformed requests "
                "400 `request_invalid`, too large bodies 413 `payload_too_large`, a request line and "
                "headers over 16 KiB 431 `headers_too_large`, unexpected "
                "failures 500 `internal_server_error`; while the server drains for shutdown, "
                "new calls and actions get 503 `service_unavailable` (reads and hang-ups work)."
            ),
        },
        "servers": [{"url": public_url or "/"}],
        "security": [{"bearer": []}, {"accessRequestToken": []}],
        "tags": [
            {"name": "OAuth"},
            {"name": "PhoneCalls"},
            {"name": "CDR"},
            {"name": "Meta"},
            {"name": "Operations"},
        ],
        "paths": {**path_operations(), **operator_paths()},
        "components": {
            "schemas": {**component_schemas(), **operator_schemas()},
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "`Authorization: Bearer TOKEN`.",
                },
                "accessRequestToken": {
                    "type": "apiKey",
                    "in": "query",
                    "name": "accessRequestToken",
                    "description": "`accessRequestToken=Bearer TOKEN` (the bare token is tolerated).",
                },
                "oauth": {
                    "type": "oauth2",
                    "flows": {"clientCredentials": {"tokenUrl": "/oauth/token.php", "scopes": {}}},
                },
            },
        },
    }


async def openapi_endpoint(request: Request) -> Response:
    return JSONResponse(request.app.state.openapi)
