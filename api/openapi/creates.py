"""The OpenAPI operations of the Callback and ConferenceInvite creates.

Both answer as Simple does (202 with the created PhoneCall, its links, a replayed nonce), so
each is the Simple operation with its own summary, query (from its query model), body (from its
request model) and error codes.
"""

from __future__ import annotations

import copy
from typing import Any

from api.openapi.parameters import path_parameters
from api.openapi.schemas import JSON, ref
from api.pathparams import SimplePath
from api.queries import CallbackQuery, ConferenceInviteQuery, query_parameters

COMMON_400 = [
    "payload_invalid",
    "user_invalid",
    "extension_invalid",
    "pc_duration_invalid",
    "pc_timeout_invalid",
]


def _codes(description: str, codes: list[str]) -> dict[str, Any]:
    listed = ", ".join(f"`{code}`" for code in codes)
    return {
        "description": f"{description} Codes: {listed}.",
        "content": {JSON: {"schema": ref("Error")}},
    }


def create_paths(simple: dict[str, Any]) -> dict[str, Any]:
    """The two path items, given the Simple create's POST operation."""
    callback = copy.deepcopy(simple)
    callback.update(
        summary="Create Callback PhoneCalls",
        operationId="createCallbackPhoneCalls",
        description=(
            "A call between public numbers charged to a Callback extension of the user: calls "
            "the source numbers at once; when one answers, calls the destination and bridges "
            "them (as Simple). Sandbox numbers stand in for public ones. Checks run in this "
            "order: userId, extension (a Callback extension owned by the user), callDuration, "
            "waitForPickup, source, destination (public numbers, never an extension), "
            "callerId(s), nonce, statusCallback; the first failure is answered."
        ),
        parameters=[*path_parameters(SimplePath), *query_parameters(CallbackQuery)],
    )
    callback["requestBody"]["content"][JSON] = {
        "schema": ref("CallbackCreate"),
        "example": {
            "extension": "500",
            "phoneCallView": [{"source": ["+4940123456"], "destination": ["+4930654321"]}],
        },
    }
    callback["responses"]["400"] = _codes(
        "Invalid request.",
        [
            *COMMON_400,
            "pc_source_invalid",
            "pc_destination_invalid",
            "pc_callerid_invalid",
            "pc_nonce_invalid",
            "pc_status_callback_invalid",
        ],
    )
    invite = copy.deepcopy(simple)
    invite.update(
        summary="Create ConferenceInvite PhoneCalls",
        operationId="createConferenceInvitePhoneCalls",
        description=(
            "Dials the destination numbers at once into the conference extension `number`; "
            "the first to answer joins the conference's mix (it hears every other party, and "
            "they hear it). The PhoneCall's source is the conference, its destination the "
            "invited party. A conference holds at most 16 parties (those being rung count). "
            "Checks run in this order: userId, number, extension, callDuration, waitForPickup, "
            "pin (its form), destination, callerId, nonce, statusCallback, then the PIN itself "
            "and the room left; the first failure is answered."
        ),
        parameters=[*path_parameters(SimplePath), *query_parameters(ConferenceInviteQuery)],
    )
    invite["requestBody"]["content"][JSON] = {
        "schema": ref("ConferenceInviteCreate"),
        "example": {"phoneCallView": [{"destination": ["0003*211"]}]},
    }
    invite["responses"]["400"] = _codes(
        "Invalid request.",
        [
            *COMMON_400,
            "pc_conference_invalid",
            "pc_pin_invalid",
            "pc_destination_invalid",
            "pc_callerid_invalid",
            "pc_nonce_invalid",
            "pc_status_callback_invalid",
        ],
    )
    invite["responses"]["409"] = _codes(
        "The conference holds (or is ringing) as many parties as it takes.",
        ["pc_conference_full"],
    )
    return {
        "/uapi/phoneCalls/{userId}/callback": {"post": callback},
        "/uapi/phoneCalls/{userId}/conferenceInvite": {"post": invite},
    }
