# ruff: noqa: E501  (long description strings: this module is data)
"""The OpenAPI document's component schemas: every request and response body of the facade.

Operations (:mod:`api.openapi.paths`) refer to them with ``ref(name)``.
"""

from __future__ import annotations

from typing import Any

from api.bodies import component_schemas as request_schemas

JSON = "application/json"


def ref(name: str) -> dict[str, str]:
    """A reference to the component schema ``name``."""
    return {"$ref": f"#/components/schemas/{name}"}


DATE = {"type": "string", "format": "date-time", "description": "ISO 8601, UTC, `Z` suffix."}


def component_schemas() -> dict[str, Any]:
    # the request bodies come from their models (api.bodies), which also check them
    return {
        **request_schemas(),
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
                "phoneCallView": {"type": "array", "items": ref("PhoneCallView")},
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
                "entry": {"type": "array", "items": ref("PhoneCall")},
                "totalResults": {"type": "integer"},
                "startIndex": {"type": "integer"},
                "itemsPerPage": {"type": "integer"},
                "links": ref("PageLinks"),
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
                "entry": {"type": "array", "items": ref("PhoneCallStat")},
                "totalResults": {"type": "integer"},
                "startIndex": {"type": "integer"},
                "itemsPerPage": {"type": "integer"},
                "links": ref("PageLinks"),
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
                    "contentSchema": ref("CallEvent"),
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
