# ruff: noqa: E501  (long description strings: this module is data)
"""The OpenAPI document's component schemas: every request and response body of the facade.

Operations (:mod:`api.openapi.paths`) refer to them with ``ref(name)``.
"""

from __future__ import annotations

from typing import Any

from api.create import STATUS_CALLBACK_PATTERN

JSON = "application/json"


def ref(name: str) -> dict[str, str]:
    """A reference to the component schema ``name``."""
    return {"$ref": f"#/components/schemas/{name}"}


NONCE_PATTERN = "^[A-Za-z0-9._~:@+=/-]{1,128}$"
# Optional request fields may also be null, read as left out (a tolerant reader: some clients
# serialise unset fields as null).

DATE = {"type": "string", "format": "date-time", "description": "ISO 8601, UTC, `Z` suffix."}


def component_schemas() -> dict[str, Any]:
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
                    "items": ref("PhoneCallViewCreate"),
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
