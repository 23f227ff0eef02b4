"""The body of ``PUT /uapi/phoneCalls/{userId}/{extension}/{phoneCallId}`` as a pydantic
model, :class:`PhoneCallAction`: the check of an action and its JSON Schema in the OpenAPI
document. Each field applies its rule (:func:`api.validation.rule`) with today's UAPI code and
message; the names of the actions the server knows, and which of them need ``sendCallTo``, are
here too.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainValidator, ValidationInfo, model_validator
from pydantic_core import PydanticCustomError

from api import fields
from api.body_fields import CALLER_ID_EXAMPLE, _caller_id_rule
from api.errors import ApiError
from api.validation import rule

ActionText = Annotated[str, Field(min_length=1, max_length=64, pattern="\\S")]
ActionName = Literal[
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
]
ENGINE_ACTIONS = (
    "Transfer",
    "TransferToVoicemail",
    "OnHold",
    "OffHold",
    "StartRecording",
    "StopRecording",
    "Monitor",
    "Whisper",
    "BargeIn",
    "Park",
    "UnPark",
    "PickUp",
)
NOT_IMPLEMENTED_ACTIONS: tuple[str, ...] = ()
TRANSFERS = ("Transfer", "TransferToVoicemail")
LISTEN_INS = ("Monitor", "Whisper", "BargeIn")
PARKING = ("UnPark", "PickUp")  # ring sendCallTo
NEEDS_SEND_CALL_TO = TRANSFERS + LISTEN_INS + PARKING
Seconds = (
    Annotated[float, Field(gt=0, le=fields.MAX_SECONDS)]
    | Annotated[str, Field(pattern="^[1-9][0-9]{0,4}([.][0-9]{1,9})?$")]
    | None
)
RECORDING_FORMATS = ("wav", "wav49")
VIEW_ID_RE = re.compile(r"[0-9]{1,3}")


def _seconds(value: Any, info: ValidationInfo) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise fields.bad("pc_timeout_invalid", "waitForPickUp must be a number of seconds")
    return fields.parse_positive_seconds(
        str(value), "pc_timeout_invalid", "waitForPickUp", integer=False
    )


ParkingSeconds = Annotated[int, Field(ge=10, le=3600)] | None


def _max_in_parking(value: Any, info: ValidationInfo) -> int | None:
    if value is None:
        return None
    text = str(value)
    if isinstance(value, bool) or not isinstance(value, int | str) or not text.isdigit():
        raise fields.bad("pc_maxinparking_invalid", "maxInParking must be whole seconds")
    if not 10 <= int(text) <= 3600:
        raise fields.bad("pc_maxinparking_invalid", "maxInParking must be 10-3600 seconds")
    return int(text)


def _action_name(value: Any, info: ValidationInfo) -> str:
    if not isinstance(value, str) or not value:
        raise fields.bad("pc_action_invalid", "action is missing")
    if value in NOT_IMPLEMENTED_ACTIONS:
        raise ApiError(
            501, "request_not_implemented", f"The {value} action is not implemented by this server"
        )
    if value not in ENGINE_ACTIONS:
        known = ", ".join(ENGINE_ACTIONS + NOT_IMPLEMENTED_ACTIONS)
        raise fields.bad("pc_action_invalid", f"Unknown action {value[:32]!r} (one of: {known})")
    return value


def _text(value: Any, name: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > fields.MAX_NUMBER_LENGTH:
        raise fields.bad(
            "pc_action_invalid", f"{name} must be a non-empty string of at most 64 characters"
        )
    return value.strip()


def _text_rule(name: str) -> PlainValidator:
    return rule(lambda value, info: _text(value, name), ActionText | None)


def _view_id(value: Any, info: ValidationInfo) -> str | None:
    text = _text(value, "phoneCallViewId")
    if text is not None and not VIEW_ID_RE.fullmatch(text):
        raise fields.bad("pc_action_invalid", "phoneCallViewId must be a view id such as 01")
    return text


def _private_w(value: Any, info: ValidationInfo) -> bool:
    if value is None:
        return False
    if not isinstance(value, bool) and value in (0, 1, "0", "1"):
        return value in (1, "1")
    raise fields.bad("pc_privatew_invalid", "privateW must be 0 or 1 (a number or a string)")


def _format(value: Any, info: ValidationInfo) -> str | None:
    text = _text(value, "format")
    if text is not None and text not in RECORDING_FORMATS:
        raise fields.bad("pc_action_invalid", "format must be wav or wav49")
    return text


class PhoneCallAction(BaseModel):
    """The body of ``PUT /uapi/phoneCalls/{userId}/{extension}/{phoneCallId}``."""

    model_config = ConfigDict(
        json_schema_extra={
            # Transfer, TransferToVoicemail and the listen-ins need somewhere to send the call.
            "if": {
                "required": ["action"],
                "properties": {"action": {"enum": list(NEEDS_SEND_CALL_TO)}},
            },
            "then": {"required": ["sendCallTo"], "properties": {"sendCallTo": {"type": "string"}}},
        }
    )

    action: Annotated[str, rule(_action_name, ActionName)] = Field(
        description=(
            "Monitor (`sendCallTo` hears both parties, "
            "nobody hears it), Whisper (it is heard only by the party that is an extension of "
            "the organization, or the one `phoneCallViewId` names when both are; `privateW=1`: "
            "it hears nobody) and BargeIn (all three hear each other) ring `sendCallTo`, a "
            "Phone Terminal extension of the call's organization, and mix it into the bridged "
            "call; they answer 501 when a party talks a codec other than G.711 (PCMU, PCMA) "
            "and 409 `pc_action_in_progress` while another party is joining. Park "
            "(`phoneCallViewId`, an extension in the call, parks it: it gets BYE, the other "
            "party hears music on hold until UnPark, or until `maxInParking` passes and the "
            "parking extension is rung back), UnPark (`sendCallTo` takes the parked party; not "
            "answered: it stays parked) and PickUp (`sendCallTo` answers a call ringing at an "
            "extension: the ringing devices get CANCEL) answer 409 `pc_not_bridged`, "
            "`pc_parked`, `pc_not_parked` or `pc_not_ringing` when the call is not in the state "
            "they need."
        )
    )
    sendCallTo: Annotated[str | None, _text_rule("sendCallTo")] = Field(
        default=None,
        description=(
            "Where the call goes: required for Transfer and TransferToVoicemail; the extension "
            "to ring for Monitor, Whisper and BargeIn, and for UnPark and PickUp (a Phone "
            "Terminal extension of the call's organization). Error `pc_sendcallto_invalid`."
        ),
    )
    phoneCallViewId: Annotated[
        str | None, rule(_view_id, Annotated[str, Field(pattern="^[0-9]{1,3}$")] | None)
    ] = Field(
        default=None,
        description=(
            "Required for OnHold, OffHold, StartRecording, StopRecording, and for Park (the "
            "extension that parks); for Whisper, the party that hears the whisperer when both "
            "parties are extensions; optional for UnPark (the parked view) and PickUp (the "
            "ringing view)."
        ),
    )
    transferNumber: Annotated[str | None, _text_rule("transferNumber")] = None
    transferFromNumber: Annotated[str | None, _text_rule("transferFromNumber")] = None
    format: Annotated[str | None, rule(_format, Literal["wav", "wav49"] | None)] = None
    callerId: Annotated[str | None, _caller_id_rule("callerId")] = Field(
        default=None,
        description=(
            "UAPI-Caller-Id: `John Doe <+3334444>`; shown to the party Monitor, Whisper or "
            "BargeIn rings (default: the call's callerId)."
        ),
        examples=CALLER_ID_EXAMPLE,
    )
    privateW: Annotated[bool, rule(_private_w, Literal[0, 1, "0", "1"] | None)] = Field(
        default=False,
        description="Whisper: 1 = the whisperer does not hear the two parties. Error "
        "`pc_privatew_invalid`.",
    )
    waitForPickUp: Annotated[int | None, rule(_seconds, Seconds)] = Field(
        default=None,
        description=(
            "Seconds, > 0 (fractions round up), at most 604800; a number or its decimal text. "
            "Also accepted as waitForPickup. Error `pc_timeout_invalid`."
        ),
    )

    maxInParking: Annotated[int | None, rule(_max_in_parking, ParkingSeconds)] = Field(
        default=None,
        description=(
            "Park: seconds (10-3600) until the extension that parked the call is rung back; "
            "default `[calls] max_in_parking` (180). Error `pc_maxinparking_invalid`."
        ),
    )

    @model_validator(mode="before")
    @classmethod
    def _wait_for_pickup_spelling(cls, data: Any) -> Any:
        if isinstance(data, dict) and "waitForPickUp" not in data and "waitForPickup" in data:
            return {**data, "waitForPickUp": data["waitForPickup"]}
        return data

    @model_validator(mode="after")
    def _transfers_go_somewhere(self) -> PhoneCallAction:
        if self.action in NEEDS_SEND_CALL_TO and self.sendCallTo is None:
            raise PydanticCustomError(
                "pc_sendcallto_invalid",
                "{message}",
                {"message": f"{self.action} needs sendCallTo", "status": 400},
            )
        return self
