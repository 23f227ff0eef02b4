# ruff: noqa: E501  (long description strings: this module is data)
"""The OpenAPI 3.1 document of the facade, written by hand (served at /uapi/openapi.json).

Kept next to the handlers it describes; ``tests/api/test_openapi.py`` checks that every route
of the app is documented and every documented path is routed.
"""

from __future__ import annotations

import logging
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from api.create import STATUS_CALLBACK_PATTERN
from api.render import PHONE_CALL_FIELDS, STAT_FIELDS

logger = logging.getLogger(__name__)

JSON = "application/json"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _error(description: str, codes: list[str]) -> dict[str, Any]:
    listed = ", ".join(f"`{code}`" for code in codes)
    return {
        "description": f"{description} Codes: {listed}.",
        "content": {JSON: {"schema": _ref("Error")}},
    }


def _path_param(
    name: str, description: str, schema: dict[str, Any] | None = None
) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": schema or {"type": "string"},
    }


def _query(name: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
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

USER_ID = _path_param(
    "userId",
    "The user acting: `@me`/`@viewer` (the User App's own user), `@owner` (the owner of the "
    "extension, so not with extension `@self`: error `user_invalid`) or a numeric user id. "
    "Organization and Administrator Apps must give an id.",
    USER_REF,
)
EXTENSION = _path_param(
    "extension",
    "An extension number (`0003*210`, or short `210` for User/Organization Apps) owned by the "
    "user, or `@self` for every extension of the user.",
    EXTENSION_NUMBER,
)
PHONE_CALL_ID = _path_param(
    "phoneCallId",
    "A PhoneCall id (20 hex digits).",
    {"type": "string", "pattern": "^[0-9a-fA-F]{1,64}$"},
)
OWNER_ID = _path_param(
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

PAGING = [
    _query(
        "count",
        "Page size, 1-5000. Error `count_invalid`.",
        {"type": "integer", "minimum": 1, "maximum": 5000, "default": 20},
    ),
    _query(
        "startIndex",
        "Index of the first item, 0-5000. Error `startindex_invalid`.",
        {"type": "integer", "minimum": 0, "maximum": 5000, "default": 0},
    ),
    _query(
        "filterOp",
        "How filterValue is compared. Error `filterop_invalid`.",
        {
            "type": "string",
            "enum": [
                "contains",
                "equals",
                "greaterThan",
                "inArray",
                "lessThan",
                "present",
                "startsWith",
            ],
            "default": "equals",
        },
    ),
    _query(
        "filterValue",
        "The value compared (comma-separated for inArray; ISO 8601 for dates). Required with "
        "filterBy unless filterOp is `present`. Error `filtervalue_invalid`.",
        {"type": "string"},
    ),
    _query(
        "sortOrder",
        "Order by publish time. Error `sortorder_invalid`.",
        {"type": "string", "enum": ["ascending", "descending"], "default": "ascending"},
    ),
]

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

NONCE_PATTERN = "^[A-Za-z0-9._~:@+=/-]{1,128}$"
# Optional request fields may also be null, read as left out (a tolerant reader: some clients
# serialise unset fields as null).

DATE = {"type": "string", "format": "date-time", "description": "ISO 8601, UTC, `Z` suffix."}
# A party's number as a query value: the server strips it, so it must hold a non-space.
QUERY_NUMBER = {"type": "string", "minLength": 1, "maxLength": 64, "pattern": "\\S"}


def _fields_query(description: str, names: tuple[str, ...]) -> dict[str, Any]:
    # what api.paging reads: comma-separated names, white space around them and empty items
    # ignored, at least one name, every name known
    one = "(" + "|".join(names) + ")\\s*"
    pattern = f"^(\\s*,)*\\s*{one}(,\\s*({one})?)*$"
    return _query(
        "fields",
        f"{description} Error `fields_invalid`.",
        {"type": "string", "pattern": pattern, "examples": ["id,published"]},
    )


def _schemas() -> dict[str, Any]:
    # CODE*NNN (an extension, or CODE*0N a sandbox number), a short extension number, or a
    # public number (digits, optional leading +): engine/numbers.py resolves them.
    number = {
        "type": "string",
        "pattern": "^([0-9]{1,16}[*][0-9]{1,16}|[+][0-9]{3,20}|[0-9]{1,20})$",
        "examples": ["0003*00", "211", "+4930123456"],
    }
    numbers = {"oneOf": [number, {"type": "array", "minItems": 1, "maxItems": 20, "items": number}]}
    # engine.numbers.parse_caller_id: an optional name (letters, digits, spaces, .-') then a
    # number in <>, or a bare number; the number is digits and * (a leading +), 32 at most.
    caller_id = {
        "type": ["string", "null"],
        "maxLength": 256,
        "pattern": "^([A-Za-z0-9 .'-]{0,64}<[+]?[*]{0,8}[0-9][0-9*]{0,22}>|[+]?[*]{0,8}[0-9][0-9*]{0,22})$",
        "description": "UAPI-Caller-Id: `John Doe <+3334444>`.",
        "examples": ["John Doe <4242425>"],
    }
    action_text = {"type": ["string", "null"], "minLength": 1, "maxLength": 64, "pattern": "\\S"}
    return {
        "Error": {
            "type": "object",
            "required": ["error"],
            "properties": {
                "error": {
                    "type": "object",
                    "required": ["code", "message"],
                    "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
                }
            },
        },
        "OAuthToken": {
            "type": "object",
            "required": ["access_token", "token_type", "expires_in"],
            "properties": {
                "access_token": {"type": "string"},
                "token_type": {"type": "string", "const": "Bearer"},
                "expires_in": {"type": "integer", "description": "Seconds (3600)."},
            },
        },
        "OAuthError": {
            "type": "object",
            "required": ["error", "error_description"],
            "properties": {
                "error": {
                    "type": "string",
                    "enum": [
                        "invalid_client",
                        "invalid_request",
                        "unsupported_grant_type",
                        "slow_down",
                    ],
                },
                "error_description": {"type": "string"},
            },
        },
        "TokenRequest": {
            "type": "object",
            "description": "client_id and client_secret may come in an HTTP Basic Authorization header instead.",
            "required": ["grant_type", "client_id", "client_secret"],
            "properties": {
                "grant_type": {"type": "string", "const": "client_credentials"},
                "client_id": {"type": "string", "minLength": 1},
                "client_secret": {"type": "string", "minLength": 1},
                "type": {"type": "string", "description": "Accepted and ignored (`unifiedapi`)."},
                "redirect_uri": {"type": "string", "description": "Accepted and ignored."},
            },
        },
        "PhoneCallViewCreate": {
            "type": "object",
            "required": ["source", "destination"],
            "properties": {
                "source": {
                    **numbers,
                    "description": "Numbers rung at once; the first to answer wins. Error `pc_source_invalid`.",
                },
                "destination": {
                    **numbers,
                    "description": "Number(s) called once a source answers. Error `pc_destination_invalid`.",
                },
                "callerId": {
                    **caller_id,
                    "description": "Shown to the source. Error `pc_callerid_invalid`.",
                },
                "callerIdDestination": {
                    **caller_id,
                    "description": "Shown to the destination. Error `pc_callerid_invalid`.",
                },
                "callerDestination": {
                    **caller_id,
                    "description": "Synonym of callerIdDestination (4PSA's MCP spelling).",
                },
                "nonce": {
                    "type": ["string", "null"],
                    "pattern": NONCE_PATTERN,
                    "description": "Also accepted here; see PhoneCallCreate.nonce.",
                },
            },
        },
        "PhoneCallCreate": {
            "type": "object",
            "required": ["phoneCallView"],
            "properties": {
                "extension": {
                    "type": ["string", "null"],
                    "pattern": "^([0-9]{1,16}[*])?[0-9]{1,16}$",
                    "examples": ["210", "0003*210"],
                    "description": "A Phone Terminal extension owned by the user (not @self). Default: the first source. Error `extension_invalid`.",
                },
                "phoneCallView": {
                    "type": "array",
                    "minItems": 1,
                    "items": _ref("PhoneCallViewCreate"),
                    "description": "Only the first element is used.",
                },
                "nonce": {
                    "type": ["string", "null"],
                    "pattern": NONCE_PATTERN,
                    "description": "Identifies the call: a repeated nonce of the same user returns the first call's id and rings nobody (header `Idempotent-Replayed: true`). Error `pc_nonce_invalid`.",
                },
                "statusCallback": {
                    "type": ["string", "null"],
                    "format": "uri",
                    "maxLength": 2048,
                    "pattern": STATUS_CALLBACK_PATTERN,
                    "description": "Extension: every state change is POSTed here as a CallEvent (retried with backoff), ending with exactly one final event. The server's egress policy applies: by default a host that is, or at delivery resolves to, a link-local (169.254.0.0/16, fe80::/10), cloud metadata (169.254.169.254, fd00:ec2::254, 100.100.100.200), multicast, unspecified or broadcast address is refused, loopback and private addresses are allowed; a server with `[api] callback_allow` takes only the host names and networks listed. Host names are resolved at delivery, not at create time, and each connection goes to the address that was checked; a POST refused at delivery is logged and not retried. Error `pc_status_callback_invalid` (with the reason) for a malformed or refused URL.",
                },
            },
        },
        "CreatedPhoneCall": {
            "type": "object",
            "required": ["id", "extension", "link"],
            "properties": {
                "id": {"type": "string", "pattern": "^[0-9a-f]{20}$"},
                "extension": {
                    "type": "string",
                    "pattern": "^[0-9]{1,16}[*][0-9]{1,16}$",
                    "description": "The extension charged, in its extended form (`0003*210`) whatever form the request used: the `extension` GET returns for the call, and the one in `link.self`.",
                },
                "link": {
                    "type": "object",
                    "required": ["self"],
                    "properties": {"self": {"type": "string", "format": "uri"}},
                },
            },
        },
        "PhoneCallView": {
            "type": "object",
            "required": ["id"],
            "properties": {
                "id": {
                    "type": "string",
                    "description": "`00`, `01`, ...: give it as phoneCallViewId.",
                },
                "extension": {"type": "string"},
                "source": {"type": "array", "items": {"type": "string"}},
                "destination": {"type": "array", "items": {"type": "string"}},
                "flow": {
                    "type": "integer",
                    "enum": [2, 4, 8],
                    "description": "2 local, 4 outgoing public, 8 incoming public.",
                },
                "status": {
                    "type": "integer",
                    "minimum": 0,
                    "maximum": 5,
                    "description": "0 unknown, 1 off hook, 2 trying, 3 ringing, 4 other side ringing, 5 on call.",
                },
                "ringing": DATE,
                "callerId": {"type": "string"},
                "recording": DATE,
                "answered": DATE,
                "onHold": DATE,
                "holder": {"type": "integer"},
                "disposition": {
                    "type": "integer",
                    "minimum": 0,
                    "maximum": 5,
                    "description": "0 answered, 1 busy, 2 failed, 3 no answer, 4 unknown, 5 not allowed.",
                },
                "number": {
                    "type": "string",
                    "description": "Extension: the party's number as given.",
                },
                "role": {
                    "type": "string",
                    "enum": ["source", "destination"],
                    "description": "Extension.",
                },
                "ended": {**DATE, "description": "Extension: when this party's leg ended."},
                "sipStatus": {
                    "type": "integer",
                    "description": "Extension: the leg's final SIP status.",
                },
                "hangupCause": {"type": "string", "description": "Extension."},
                "media": {
                    "type": "object",
                    "description": "Extension: relay counters per stream (`audio`, `video`): RTP/RTCP packets and bytes each way, RTP packets lost.",
                    "additionalProperties": {
                        "type": "object",
                        "additionalProperties": {"type": "integer"},
                    },
                },
            },
        },
        "PhoneCall": {
            "type": "object",
            "required": ["id"],  # `fields` may leave out everything else
            "properties": {
                "id": {"type": "string"},
                "nonce": {"type": "string"},
                "extension": {
                    "type": "string",
                    "description": "The extension charged (extended number).",
                },
                "ownerId": {"type": "integer", "description": "The Organization owning the call."},
                "ownerName": {"type": "string"},
                "userId": {
                    "type": "integer",
                    "description": "Extension: the user the call was made for.",
                },
                "published": DATE,
                "answered": {**DATE, "description": "When a source answered."},
                "bridged": {**DATE, "description": "Extension: when the destination answered."},
                "ended": {**DATE, "description": "Extension."},
                "state": {
                    "type": "string",
                    "description": "Extension: created, calling_source, calling_destination, bridged, ended.",
                },
                "disposition": {
                    "type": "integer",
                    "minimum": 0,
                    "maximum": 5,
                    "description": "Extension (once ended).",
                },
                "hangupCause": {"type": "string", "description": "Extension."},
                "duration": {
                    "type": "integer",
                    "minimum": 0,
                    "description": "Extension, once ended: the bridged time, from `bridged` (the destination's answer) to `ended`, in whole seconds rounded up (0.2 s counts as 1); 0 when the call was never bridged. The sources' time before the bridge (ringing, ringback) is not counted.",
                },
                "charge": {"type": "number", "description": "Extension: the charge, once ended."},
                "callerId": {"type": "string"},
                "callerIdDestination": {"type": "string"},
                "phoneCallView": {"type": "array", "items": _ref("PhoneCallView")},
                "links": {
                    "type": "object",
                    "properties": {"self": {"type": "string", "format": "uri"}},
                },
            },
        },
        "PhoneCallCollection": {
            "type": "object",
            "required": ["entry"],
            "properties": {
                "entry": {"type": "array", "items": _ref("PhoneCall")},
                "totalResults": {"type": "integer"},
                "startIndex": {"type": "integer"},
                "itemsPerPage": {"type": "integer"},
                "links": _ref("PageLinks"),
            },
        },
        "PageLinks": {
            "type": "object",
            "description": "Collection links: this page, and the next/previous ones when they exist (query kept, token left out).",
            "required": ["self"],
            "properties": {
                "self": {"type": "string", "format": "uri"},
                "next": {"type": "string", "format": "uri"},
                "prev": {"type": "string", "format": "uri"},
            },
        },
        "HungUpCollection": {
            "type": "object",
            "required": ["entry"],
            "properties": {
                "entry": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["id"],
                        "properties": {"id": {"type": "string"}},
                    },
                }
            },
        },
        "PhoneCallAction": {
            "type": "object",
            "required": ["action"],
            # Transfer and TransferToVoicemail need somewhere to send the call.
            "if": {
                "required": ["action"],
                "properties": {"action": {"enum": ["Transfer", "TransferToVoicemail"]}},
            },
            "then": {"required": ["sendCallTo"], "properties": {"sendCallTo": {"type": "string"}}},
            "properties": {
                "action": {
                    "type": "string",
                    "enum": [
                        "OnHold",
                        "OffHold",
                        "StartRecording",
                        "StopRecording",
                        "Transfer",
                        "TransferToVoicemail",
                        "PickUp",
                        "BargeIn",
                        "Park",
                        "UnPark",
                        "Whisper",
                        "Monitor",
                    ],
                    "description": "PickUp, BargeIn, Park, UnPark, Whisper and Monitor answer 501.",
                },
                "sendCallTo": {
                    **action_text,
                    "description": "Where the call goes: required for Transfer and TransferToVoicemail. Error `pc_sendcallto_invalid`.",
                },
                "phoneCallViewId": {
                    "type": ["string", "null"],
                    "pattern": "^[0-9]{1,3}$",
                    "description": "Required for OnHold, OffHold, StartRecording, StopRecording.",
                },
                "transferNumber": action_text,
                "transferFromNumber": action_text,
                "format": {"type": ["string", "null"], "enum": ["wav", "wav49", None]},
                "callerId": caller_id,
                "waitForPickUp": {
                    "anyOf": [
                        {"type": "number", "exclusiveMinimum": 0, "maximum": 604800},
                        {"type": "string", "pattern": "^[1-9][0-9]{0,4}([.][0-9]{1,9})?$"},
                        {"type": "null"},
                    ],
                    "description": "Seconds, > 0 (fractions round up), at most 604800; a number or its decimal text. Also accepted as waitForPickup. Error `pc_timeout_invalid`.",
                },
            },
        },
        "PhoneCallStat": {
            "type": "object",
            "required": ["id"],  # `fields` may leave out everything else
            "properties": {
                "id": {"type": "string"},
                "extension": {"type": "string"},
                "userId": {"type": "integer"},
                "source": {
                    "type": "string",
                    "description": "The source that answered, else the first.",
                },
                "destination": {"type": "string"},
                "sources": {"type": "array", "items": {"type": "string"}},
                "destinations": {"type": "array", "items": {"type": "string"}},
                "callerId": {"type": "string"},
                "published": DATE,
                "answered": DATE,
                "bridged": DATE,
                "ended": DATE,
                "disposition": {"type": "integer", "minimum": 0, "maximum": 5},
                "flow": {"type": "integer", "enum": [2, 4, 8]},
                "duration": {
                    "type": "integer",
                    "minimum": 0,
                    "description": "The bridged time, from `bridged` to `ended`, in whole seconds rounded up; 0 when never bridged.",
                },
                "charge": {"type": "number"},
                "hangupCause": {"type": "string"},
            },
        },
        "PhoneCallStatCollection": {
            "type": "object",
            "required": ["entry"],
            "properties": {
                "entry": {"type": "array", "items": _ref("PhoneCallStat")},
                "totalResults": {"type": "integer"},
                "startIndex": {"type": "integer"},
                "itemsPerPage": {"type": "integer"},
                "links": _ref("PageLinks"),
            },
        },
        "CallEventMessage": {
            "type": "object",
            "description": "One Server-Sent Events message of `/events`: `id: SEQ`, `event: NAME`, `data: CallEvent JSON`, then a blank line.",
            "required": ["id", "event", "data"],
            "properties": {
                "id": {
                    "type": "string",
                    "pattern": "^[0-9]+$",
                    "description": "The CallEvent's seq (give it back as Last-Event-ID to resume).",
                },
                "event": {"type": "string", "description": "The CallEvent's event name."},
                "data": {
                    "type": "string",
                    "contentMediaType": "application/json",
                    "contentSchema": _ref("CallEvent"),
                },
            },
        },
        "CallEvent": {
            "type": "object",
            "required": ["phoneCallId", "seq", "event", "at", "final"],
            "description": "One state change: the SSE `data` and the statusCallback POST body.",
            "properties": {
                "phoneCallId": {"type": "string"},
                "seq": {
                    "type": "integer",
                    "description": "Per call, increasing; the SSE id and X-Event-Id suffix.",
                },
                "event": {
                    "type": "string",
                    "description": "created, ringing, answered, bridged, ended, ...",
                },
                "state": {"type": "string"},
                "at": DATE,
                "final": {
                    "type": "boolean",
                    "description": "True exactly once per call, on the last event.",
                },
                "data": {"type": "object"},
            },
        },
    }


# What a created call's id leads to (OpenAPI links: clients and fuzzers follow them).
CALL_LINKS = [
    ("GetPhoneCall", "getPhoneCall", "Read the call."),
    ("UpdatePhoneCall", "updatePhoneCall", "Act on the call (hold, record, transfer)."),
    ("HangUpPhoneCall", "hangUpPhoneCall", "Hang the call up."),
    ("FollowPhoneCall", "followPhoneCall", "Follow the call as Server-Sent Events."),
]


def _paths() -> dict[str, Any]:
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
                        "application/x-www-form-urlencoded": {"schema": _ref("TokenRequest")},
                        JSON: {"schema": _ref("TokenRequest")},
                    },
                },
                "responses": {
                    "200": {
                        "description": "A bearer token.",
                        "content": {JSON: {"schema": _ref("OAuthToken")}},
                    },
                    "400": {
                        "description": "`invalid_request` or `unsupported_grant_type`.",
                        "content": {JSON: {"schema": _ref("OAuthError")}},
                    },
                    "401": {
                        "description": "`invalid_client`: unknown client or wrong secret.",
                        "content": {JSON: {"schema": _ref("OAuthError")}},
                    },
                    "429": {
                        "description": "`slow_down`: this client id or source address failed too often; try again after `Retry-After` seconds (the wait grows with further failures). A client that gets its secret right from another address is not held up.",
                        "headers": {
                            "Retry-After": {
                                "description": "Seconds to wait before the next attempt.",
                                "schema": {"type": "integer", "minimum": 1},
                            }
                        },
                        "content": {JSON: {"schema": _ref("OAuthError")}},
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
                    USER_ID,
                    _query(
                        "waitForPickup",
                        "Seconds to wait for a pickup, > 0 (fractions round up), at most 604800. Default 25. Error `pc_timeout_invalid`.",
                        {"type": "number", "exclusiveMinimum": 0, "maximum": 604800},
                    ),
                    _query(
                        "callDuration",
                        "Maximum call duration in seconds, a positive integer, at most 604800, counted from the moment a source answers (so the destination's ringing counts); when it runs out every party gets BYE. Sandbox calls stop after 180 s at most. Default: the server's max_duration. Error `pc_duration_invalid`.",
                        {"type": "integer", "minimum": 1, "maximum": 604800},
                    ),
                    _query(
                        "allowPublicTransfer",
                        "Allow transferring a call to a public number. Error `pc_transfer_invalid`.",
                        {"type": "boolean", "default": False},
                    ),
                    _query(
                        "video",
                        "Offer video in SDP. Error `pc_video_invalid`.",
                        {"type": "boolean", "default": False},
                    ),
                ],
                "requestBody": {
                    "required": True,
                    "content": {
                        JSON: {
                            "schema": _ref("PhoneCallCreate"),
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
                            JSON: {"schema": {"type": "array", "items": _ref("CreatedPhoneCall")}}
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
            "parameters": [USER_ID, EXTENSION],
            "get": {
                "tags": ["PhoneCalls"],
                "summary": "List PhoneCalls",
                "operationId": "listPhoneCalls",
                "description": "Live and finished calls charged to the extension (or every extension of the user for @self), ordered by publish time.",
                "parameters": [
                    *PAGING,
                    _query(
                        "filterBy",
                        "Field to filter on. Error `filterby_invalid`.",
                        {"type": "string", "enum": ["id", "published"]},
                    ),
                    _fields_query("Comma-separated PhoneCall fields to return.", PHONE_CALL_FIELDS),
                ],
                "responses": {
                    "200": {
                        "description": "A page of calls.",
                        "content": {JSON: {"schema": _ref("PhoneCallCollection")}},
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
                    _query(
                        "phoneNumber",
                        "Hang up only this party. Error `pc_number_invalid`.",
                        QUERY_NUMBER,
                    )
                ],
                "responses": {
                    "200": {
                        "description": "The ids hung up.",
                        "content": {JSON: {"schema": _ref("HungUpCollection")}},
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
            "parameters": [USER_ID, EXTENSION, PHONE_CALL_ID],
            "get": {
                "tags": ["PhoneCalls"],
                "summary": "Get one PhoneCall (finished calls included)",
                "operationId": "getPhoneCall",
                "parameters": [
                    _fields_query("Comma-separated PhoneCall fields to return.", PHONE_CALL_FIELDS)
                ],
                "responses": {
                    "200": {
                        "description": "The call, as a one-item collection.",
                        "content": {JSON: {"schema": _ref("PhoneCallCollection")}},
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
                    "content": {JSON: {"schema": _ref("PhoneCallAction")}},
                },
                "responses": {
                    "200": {
                        "description": "The updated call, as a one-item collection.",
                        "content": {JSON: {"schema": _ref("PhoneCallCollection")}},
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
                        ],
                    ),
                    "401": ERR_401,
                    "403": _error(
                        "The App may not act for this user, or the call may not be transferred to a public number.",
                        ["access_denied", "pc_transfer_invalid"],
                    ),
                    "404": ERR_404,
                    "409": _error(
                        "The call cannot take the action now (not bridged yet, or ended).",
                        ["pc_not_bridged", "pc_not_live"],
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
                    _query(
                        "phoneNumber",
                        "Hang up only this party; if it is not in the call nothing is hung up. Error `pc_number_invalid`.",
                        QUERY_NUMBER,
                    )
                ],
                "responses": {
                    "200": {
                        "description": "The id hung up.",
                        "content": {JSON: {"schema": _ref("HungUpCollection")}},
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
            "parameters": [USER_ID, EXTENSION, PHONE_CALL_ID],
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
                    _query("lastEventId", "Same as the Last-Event-ID header.", {"type": "string"}),
                ],
                "responses": {
                    "200": {
                        "description": "The event stream: one SSE message per CallEvent (the schema describes one message, as OpenAPI 3.2's `itemSchema` does for `text/event-stream`).",
                        "content": {"text/event-stream": {"schema": _ref("CallEventMessage")}},
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
                    OWNER_ID,
                    _query(
                        "source",
                        "Only calls with this source number. Error `cdr_source_invalid`.",
                        QUERY_NUMBER,
                    ),
                    _query(
                        "destination",
                        "Only calls with this destination number. Error `cdr_destination_invalid`.",
                        QUERY_NUMBER,
                    ),
                    _query(
                        "startDate",
                        "Published at or after (ISO 8601). Error `cdr_startdate_invalid`.",
                        {"type": "string", "format": "date-time"},
                    ),
                    _query(
                        "endDate",
                        "Published before (ISO 8601); not before startDate. Error `cdr_enddate_invalid`.",
                        {"type": "string", "format": "date-time"},
                    ),
                    _query(
                        "disposition",
                        "0-5. Error `cdr_disposition_invalid`.",
                        {"type": "integer", "minimum": 0, "maximum": 5},
                    ),
                    _query(
                        "flow",
                        "2, 4 or 8. Error `cdr_flow_invalid`.",
                        {"type": "integer", "enum": [2, 4, 8]},
                    ),
                    *PAGING,
                    _query(
                        "filterBy",
                        "Field to filter on. Error `filterby_invalid`.",
                        {
                            "type": "string",
                            "enum": ["source", "destination", "published", "answered"],
                        },
                    ),
                    _fields_query("Comma-separated PhoneCallStat fields.", STAT_FIELDS),
                ],
                "responses": {
                    "200": {
                        "description": "A page of records.",
                        "content": {JSON: {"schema": _ref("PhoneCallStatCollection")}},
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
        ],
        "paths": _paths(),
        "components": {
            "schemas": _schemas(),
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
