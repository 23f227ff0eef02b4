# ruff: noqa: E501  (long description strings: this module is data)
"""The OpenAPI document's path operations: every route of the facade, its parameters and answers.

Kept next to the handlers it describes; ``tests/api/test_openapi.py`` checks that every route
of the app is documented and every documented path is routed.
"""

from __future__ import annotations

from typing import Any

from api.openapi.parameters import (
    PAGING,
    QUERY_NUMBER,
    fields_query,
    path_parameters,
    query_param,
)
from api.openapi.schemas import JSON, ref
from api.pathparams import CdrPath, ExtensionPath, PhoneCallPath, SimplePath
from api.queries import CdrQuery, CreateQuery, query_parameters
from api.render import PHONE_CALL_FIELDS, STAT_FIELDS


def _error(description: str, codes: list[str]) -> dict[str, Any]:
    listed = ", ".join(f"`{code}`" for code in codes)
    return {
        "description": f"{description} Codes: {listed}.",
        "content": {JSON: {"schema": ref("Error")}},
    }


ERR_401 = _error("Missing, unknown or expired access token.", ["access_denied"])
ERR_403 = _error("The App may not act for this user.", ["access_denied"])
ERR_404 = _error("No such PhoneCall for this user and extension.", ["pc_not_found"])
ERR_413 = _error("The request body exceeds 64 KiB.", ["payload_too_large"])
ERR_500 = _error("An unexpected server error.", ["internal_server_error"])
ERR_501 = _error("Not implemented by this server.", ["request_not_implemented"])
ERR_503 = _error(
    "The server is draining for shutdown (sent with Retry-After).", ["service_unavailable"]
)
SCOPE_CODES = ["user_invalid", "extension_invalid"]
LIST_CODES = [
    *SCOPE_CODES,
    "count_invalid",
    "startindex_invalid",
    "filterby_invalid",
    "filterop_invalid",
    "filtervalue_invalid",
    "sortorder_invalid",
    "fields_invalid",
]


# What a created call's id leads to (OpenAPI links: clients and fuzzers follow them).
CALL_LINKS = [
    ("GetPhoneCall", "getPhoneCall", "Read the call."),
    ("UpdatePhoneCall", "updatePhoneCall", "Act on the call (hold, record, transfer)."),
    ("HangUpPhoneCall", "hangUpPhoneCall", "Hang the call up."),
    ("FollowPhoneCall", "followPhoneCall", "Follow the call as Server-Sent Events."),
]


def path_operations() -> dict[str, Any]:
    call_one = "/uapi/phoneCalls/{userId}/{extension}/{phoneCallId}"
    return {
        "/oauth/token.php": {
            "post": {
                "tags": ["OAuth"],
                "summary": "Get an access token (client credentials)",
                "operationId": "getToken",
                "description": "Form-encoded `grant_type=client_credentials`, `client_id`, `client_secret` (or HTTP Basic client authentication, or a JSON object). Other fields are ignored. The token lives one hour.",
                "security": [],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/x-www-form-urlencoded": {"schema": ref("TokenRequest")},
                        JSON: {"schema": ref("TokenRequest")},
                    },
                },
                "responses": {
                    "200": {
                        "description": "A bearer token.",
                        "content": {JSON: {"schema": ref("OAuthToken")}},
                    },
                    "400": {
                        "description": "`invalid_request` or `unsupported_grant_type`.",
                        "content": {JSON: {"schema": ref("OAuthError")}},
                    },
                    "401": {
                        "description": "`invalid_client`: unknown client or wrong secret.",
                        "content": {JSON: {"schema": ref("OAuthError")}},
                    },
                    "429": {
                        "description": "`slow_down`: this client id or source address failed too often; try again after `Retry-After` seconds (the wait grows with further failures). A client that gets its secret right from another address is not held up.",
                        "headers": {
                            "Retry-After": {
                                "description": "Seconds to wait before the next attempt.",
                                "schema": {"type": "integer", "minimum": 1},
                            }
                        },
                        "content": {JSON: {"schema": ref("OAuthError")}},
                    },
                    "500": ERR_500,
                },
            }
        },
        "/uapi/phoneCalls/{userId}/simple": {
            "post": {
                "tags": ["PhoneCalls"],
                "summary": "Create Simple PhoneCalls",
                "operationId": "createSimplePhoneCalls",
                "description": "Calls the source numbers at once; when one answers, calls the destination and bridges them. Checks run in this order: userId, extension, callDuration, waitForPickup, allowPublicTransfer, video, source, destination, callerId(s), nonce, statusCallback; the first failure is answered.",
                "parameters": [
                    *path_parameters(SimplePath),
                    *query_parameters(CreateQuery),
                ],
                "requestBody": {
                    "required": True,
                    "content": {
                        JSON: {
                            "schema": ref("PhoneCallCreate"),
                            "example": {
                                "extension": "210",
                                "phoneCallView": [
                                    {"source": ["0003*00"], "destination": ["0003*01"]}
                                ],
                            },
                        }
                    },
                },
                "responses": {
                    "202": {
                        "description": "The call was created (or replayed for a repeated nonce).",
                        "headers": {
                            "Location": {"schema": {"type": "string"}},
                            "Idempotent-Replayed": {"schema": {"type": "string", "const": "true"}},
                        },
                        "content": {
                            JSON: {"schema": {"type": "array", "items": ref("CreatedPhoneCall")}}
                        },
                        "links": {
                            name: {
                                "operationId": operation_id,
                                "description": description,
                                "parameters": {
                                    "userId": "$request.path.userId",
                                    "extension": "$response.body#/0/extension",
                                    "phoneCallId": "$response.body#/0/id",
                                },
                            }
                            for name, operation_id, description in CALL_LINKS
                        },
                    },
                    "400": _error(
                        "Invalid request.",
                        [
                            "payload_invalid",
                            "user_invalid",
                            "extension_invalid",
                            "pc_duration_invalid",
                            "pc_timeout_invalid",
                            "pc_transfer_invalid",
                            "pc_video_invalid",
                            "pc_source_invalid",
                            "pc_destination_invalid",
                            "pc_callerid_invalid",
                            "pc_nonce_invalid",
                            "pc_status_callback_invalid",
                        ],
                    ),
                    "401": ERR_401,
                    "403": ERR_403,
                    "413": ERR_413,
                    "500": ERR_500,
                    "501": _error(
                        "statusCallback given but callback delivery is not enabled.",
                        ["request_not_implemented"],
                    ),
                    "503": ERR_503,
                },
            }
        },
        "/uapi/phoneCalls/{userId}/{extension}": {
            "parameters": path_parameters(ExtensionPath),
            "get": {
                "tags": ["PhoneCalls"],
                "summary": "List PhoneCalls",
                "operationId": "listPhoneCalls",
                "description": "Live and finished calls charged to the extension (or every extension of the user for @self), ordered by publish time.",
                "parameters": [
                    *PAGING,
                    query_param(
                        "filterBy",
                        "Field to filter on. Error `filterby_invalid`.",
                        {"type": "string", "enum": ["id", "published"]},
                    ),
                    fields_query("Comma-separated PhoneCall fields to return.", PHONE_CALL_FIELDS),
                ],
                "responses": {
                    "200": {
                        "description": "A page of calls.",
                        "content": {JSON: {"schema": ref("PhoneCallCollection")}},
                    },
                    "204": {"description": "No calls."},
                    "400": _error("Invalid request.", LIST_CODES),
                    "401": ERR_401,
                    "403": ERR_403,
                    "500": ERR_500,
                },
            },
            "delete": {
                "tags": ["PhoneCalls"],
                "summary": "Hang up every live call of the extension",
                "operationId": "hangUpPhoneCalls",
                "parameters": [
                    query_param(
                        "phoneNumber",
                        "Hang up only this party. Error `pc_number_invalid`.",
                        QUERY_NUMBER,
                    )
                ],
                "responses": {
                    "200": {
                        "description": "The ids hung up.",
                        "content": {JSON: {"schema": ref("HungUpCollection")}},
                    },
                    "204": {"description": "Nothing to hang up."},
                    "400": _error("Invalid request.", [*SCOPE_CODES, "pc_number_invalid"]),
                    "401": ERR_401,
                    "403": ERR_403,
                    "500": ERR_500,
                },
            },
        },
        call_one: {
            "parameters": path_parameters(PhoneCallPath),
            "get": {
                "tags": ["PhoneCalls"],
                "summary": "Get one PhoneCall (finished calls included)",
                "operationId": "getPhoneCall",
                "parameters": [
                    fields_query("Comma-separated PhoneCall fields to return.", PHONE_CALL_FIELDS)
                ],
                "responses": {
                    "200": {
                        "description": "The call, as a one-item collection.",
                        "content": {JSON: {"schema": ref("PhoneCallCollection")}},
                    },
                    "400": _error("Invalid request.", [*SCOPE_CODES, "fields_invalid"]),
                    "401": ERR_401,
                    "403": ERR_403,
                    "404": ERR_404,
                    "500": ERR_500,
                },
            },
            "put": {
                "tags": ["PhoneCalls"],
                "summary": "Update a PhoneCall with a PhoneCallAction",
                "operationId": "updatePhoneCall",
                "requestBody": {
                    "required": True,
                    "content": {JSON: {"schema": ref("PhoneCallAction")}},
                },
                "responses": {
                    "200": {
                        "description": "The updated call, as a one-item collection.",
                        "content": {JSON: {"schema": ref("PhoneCallCollection")}},
                    },
                    "400": _error(
                        "Invalid request or action the call cannot take (the engine's codes pass through).",
                        [
                            *SCOPE_CODES,
                            "payload_invalid",
                            "pc_action_invalid",
                            "pc_sendcallto_invalid",
                            "pc_callerid_invalid",
                            "pc_timeout_invalid",
                            "pc_view_invalid",
                            "pc_number_invalid",
                            "pc_format_invalid",
                            "pc_maxinparking_invalid",
                            "pc_privatew_invalid",
                        ],
                    ),
                    "401": ERR_401,
                    "403": _error(
                        "The App may not act for this user, or the call may not be transferred to a public number.",
                        ["access_denied", "pc_transfer_invalid"],
                    ),
                    "404": ERR_404,
                    "409": _error(
                        "The call cannot take the action now (not bridged yet, or ended; or another party is joining or listening in; Park on a parked call, UnPark on one not parked, PickUp on one not ringing at an extension).",
                        [
                            "pc_not_bridged",
                            "pc_not_live",
                            "pc_action_in_progress",
                            "pc_parked",
                            "pc_not_parked",
                            "pc_not_ringing",
                        ],
                    ),
                    "413": ERR_413,
                    "500": ERR_500,
                    "501": ERR_501,
                    "503": ERR_503,
                },
            },
            "delete": {
                "tags": ["PhoneCalls"],
                "summary": "Hang up one PhoneCall",
                "operationId": "hangUpPhoneCall",
                "parameters": [
                    query_param(
                        "phoneNumber",
                        "Hang up only this party; if it is not in the call nothing is hung up. Error `pc_number_invalid`.",
                        QUERY_NUMBER,
                    )
                ],
                "responses": {
                    "200": {
                        "description": "The id hung up.",
                        "content": {JSON: {"schema": ref("HungUpCollection")}},
                    },
                    "204": {
                        "description": "Nothing to hang up (already ended, or the number is not a party)."
                    },
                    "400": _error("Invalid request.", [*SCOPE_CODES, "pc_number_invalid"]),
                    "401": ERR_401,
                    "403": ERR_403,
                    "404": ERR_404,
                    "500": ERR_500,
                },
            },
        },
        call_one + "/events": {
            "parameters": path_parameters(PhoneCallPath),
            "get": {
                "tags": ["PhoneCalls"],
                "summary": "Follow a PhoneCall as Server-Sent Events",
                "operationId": "followPhoneCall",
                "description": "Extension. One SSE message per state change (`id` = seq, `event` = name, `data` = CallEvent JSON); the stream ends after the final event. A `: keep-alive` comment is sent every 15 s of silence.",
                "parameters": [
                    {
                        "name": "Last-Event-ID",
                        "in": "header",
                        "required": False,
                        "description": "Resume after this seq.",
                        "schema": {"type": "string"},
                    },
                    query_param(
                        "lastEventId", "Same as the Last-Event-ID header.", {"type": "string"}
                    ),
                ],
                "responses": {
                    "200": {
                        "description": "The event stream: one SSE message per CallEvent (the schema describes one message, as OpenAPI 3.2's `itemSchema` does for `text/event-stream`).",
                        "content": {"text/event-stream": {"schema": ref("CallEventMessage")}},
                    },
                    "400": _error("Invalid request.", SCOPE_CODES),
                    "401": ERR_401,
                    "403": ERR_403,
                    "404": ERR_404,
                    "500": ERR_500,
                },
            },
        },
        "/uapi/cdr/{ownerId}": {
            "get": {
                "tags": ["CDR"],
                "summary": "List finished calls (PhoneCallStat)",
                "operationId": "listCdr",
                "parameters": [
                    *path_parameters(CdrPath),
                    *query_parameters(CdrQuery),
                    *PAGING,
                    query_param(
                        "filterBy",
                        "Field to filter on. Error `filterby_invalid`.",
                        {
                            "type": "string",
                            "enum": ["source", "destination", "published", "answered"],
                        },
                    ),
                    fields_query("Comma-separated PhoneCallStat fields.", STAT_FIELDS),
                ],
                "responses": {
                    "200": {
                        "description": "A page of records.",
                        "content": {JSON: {"schema": ref("PhoneCallStatCollection")}},
                    },
                    "204": {"description": "No records."},
                    "400": _error(
                        "Invalid request.",
                        [
                            "user_invalid",
                            "cdr_source_invalid",
                            "cdr_destination_invalid",
                            "cdr_startdate_invalid",
                            "cdr_enddate_invalid",
                            "cdr_disposition_invalid",
                            "cdr_flow_invalid",
                            *LIST_CODES[2:],
                        ],
                    ),
                    "401": ERR_401,
                    "403": ERR_403,
                    "500": ERR_500,
                },
            }
        },
        "/uapi/openapi.json": {
            "get": {
                "tags": ["Meta"],
                "summary": "This OpenAPI document",
                "operationId": "getOpenApi",
                "security": [],
                "responses": {
                    "200": {
                        "description": "OpenAPI 3.1 JSON.",
                        "content": {JSON: {"schema": {"type": "object"}}},
                    }
                },
            }
        },
        "/uapi/docs": {
            "get": {
                "tags": ["Meta"],
                "summary": "This document as a readable HTML page",
                "operationId": "getDocs",
                "security": [],
                "responses": {
                    "200": {
                        "description": "HTML.",
                        "content": {"text/html": {"schema": {"type": "string"}}},
                    }
                },
            }
        },
    }
