# ruff: noqa: E501  (long description strings: this module is data)
"""The operators' operations: a call's SIP trace, registered devices, the console's reads and
its page (handlers in :mod:`api.operators`)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from api import jsonschema
from api.openapi.parameters import path_parameters, query_param
from api.openapi.schemas import JSON, ref
from api.operators import MAX_PAGE, OPERATOR_MODELS
from api.pathparams import PhoneCallPath

ERR_401 = {
    "description": "Missing, unknown or expired access token. Codes: `access_denied`.",
    "content": {JSON: {"schema": ref("Error")}},
}


def _error(description: str, codes: list[str]) -> dict[str, Any]:
    listed = ", ".join(f"`{code}`" for code in codes)
    return {
        "description": f"{description} Codes: {listed}.",
        "content": {JSON: {"schema": ref("Error")}},
    }


ERR_400 = _error("A malformed HTTP request.", ["request_invalid"])


def operator_schemas() -> dict[str, Any]:
    models: tuple[type[BaseModel], ...] = OPERATOR_MODELS
    return jsonschema.component_schemas(models, jsonschema.ResourceSchema, mode="serialization")


def operator_paths() -> dict[str, Any]:
    html = {"text/html": {"schema": {"type": "string"}}}
    return {
        "/uapi/phoneCalls/{userId}/{extension}/{phoneCallId}/trace": {
            "parameters": path_parameters(PhoneCallPath),
            "get": {
                "tags": ["Operations"],
                "summary": "The SIP messages of a PhoneCall",
                "operationId": "tracePhoneCall",
                "description": "Extension. Every SIP message the server sent and received for the call (each leg's dialog), in the order they passed; the last 200 per call, kept in memory at least an hour after the call ends within the server's bound (see docs/CONSOLE.md). A call whose trace is no longer kept, or that had no SIP leg (sandbox numbers only), gives `[]`. Same scopes and errors as the call's GET.",
                "parameters": [
                    query_param(
                        "format",
                        "`json` (default) or `pcap`: a libpcap file (Ethernet/IP/UDP headers made up around each message, TCP messages written as UDP) that Wireshark, tshark and sngrep open. Error `trace_format_invalid`.",
                        {"type": "string", "enum": ["json", "pcap"], "default": "json"},
                    )
                ],
                "responses": {
                    "200": {
                        "description": "The trace.",
                        "content": {
                            JSON: {"schema": {"type": "array", "items": ref("TraceMessage")}},
                            "application/vnd.tcpdump.pcap": {
                                "schema": {"type": "string", "format": "binary"}
                            },
                        },
                    },
                    "400": _error(
                        "Invalid request.",
                        ["user_invalid", "extension_invalid", "trace_format_invalid"],
                    ),
                    "401": ERR_401,
                    "403": _error("The App may not act for this user.", ["access_denied"]),
                    "404": _error(
                        "No such PhoneCall for this user and extension.", ["pc_not_found"]
                    ),
                },
            },
        },
        "/uapi/registrations": {
            "get": {
                "tags": ["Operations"],
                "summary": "Registered devices in the App's scope",
                "operationId": "listRegistrations",
                "description": "Extension. The unexpired bindings of the extensions the App may act for: a User App's user's, an Organization App's organization's, every extension for the Administrator App.",
                "responses": {
                    "200": {
                        "description": "The bindings, by extension then age.",
                        "content": {JSON: {"schema": ref("RegistrationCollection")}},
                    },
                    "400": ERR_400,
                    "401": ERR_401,
                },
            }
        },
        "/uapi/console/calls": {
            "get": {
                "tags": ["Operations"],
                "summary": "The calls in the App's scope, newest first",
                "operationId": "listConsoleCalls",
                "description": "Extension, for the operators' console: PhoneCall resources of every user the App may act for (live calls as they are now), newest first, one page at a time.",
                "parameters": [
                    query_param(
                        "state",
                        "`live` (not ended), `ended` or `all`. Error `state_invalid`.",
                        {"type": "string", "enum": ["live", "ended", "all"], "default": "all"},
                    ),
                    query_param(
                        "count",
                        f"Page size, 1-{MAX_PAGE}. Error `count_invalid`.",
                        {"type": "integer", "minimum": 1, "maximum": MAX_PAGE, "default": 50},
                    ),
                    query_param(
                        "startIndex",
                        "Calls skipped (0 = the newest). Error `startindex_invalid`.",
                        {"type": "integer", "minimum": 0, "maximum": 10**9, "default": 0},
                    ),
                ],
                "responses": {
                    "200": {
                        "description": "One page (`entry` may be empty).",
                        "content": {JSON: {"schema": ref("PhoneCallCollection")}},
                    },
                    "400": _error(
                        "Invalid query.", ["state_invalid", "count_invalid", "startindex_invalid"]
                    ),
                    "401": ERR_401,
                },
            }
        },
        "/uapi/console/summary": {
            "get": {
                "tags": ["Operations"],
                "summary": "Counters of the App's scope",
                "operationId": "getConsoleSummary",
                "responses": {
                    "200": {
                        "description": "The counters.",
                        "content": {JSON: {"schema": ref("ConsoleSummary")}},
                    },
                    "400": ERR_400,
                    "401": ERR_401,
                },
            }
        },
        "/console": {
            "get": {
                "tags": ["Operations"],
                "summary": "The operators' console (a web page)",
                "operationId": "getConsole",
                "description": "Sign in with an App's client id and secret; the page follows the calls, traces and devices of the App's scope through the operations above.",
                "security": [],
                "responses": {"200": {"description": "HTML.", "content": html}},
            }
        },
        "/console/{asset}": {
            "parameters": [
                {
                    "name": "asset",
                    "in": "path",
                    "required": True,
                    "description": "A file of the console page.",
                    "schema": {"type": "string", "enum": ["console.js", "console.css"]},
                }
            ],
            "get": {
                "tags": ["Operations"],
                "summary": "A file of the console page (script, style sheet)",
                "operationId": "getConsoleAsset",
                "security": [],
                "responses": {
                    "200": {
                        "description": "The file.",
                        "content": {
                            "text/javascript": {"schema": {"type": "string"}},
                            "text/css": {"schema": {"type": "string"}},
                        },
                    },
                    "404": _error("No such file.", ["not_found"]),
                },
            },
        },
    }
