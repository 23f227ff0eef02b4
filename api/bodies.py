"""The request bodies of the PhoneCalls service as pydantic models, defined once.

A model is both the check of a body and its JSON Schema in the OpenAPI document
(:func:`component_schemas`). Each field applies the rule of :mod:`api.fields` that gives
today's UAPI code and message; the type it declares (``json_schema_input_type``) is what the
document publishes, so the two cannot drift apart. Fields are checked in their declared order
and the first broken rule is answered (:func:`validated`).

Rules that need the server's state (the directory for numbers, whether the extension may set a
caller id, the statusCallback egress policy) read it from the validation context,
:class:`CreateRules`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    model_validator,
)
from pydantic_core import PydanticCustomError

from api import fields, jsonschema
from api.egress import CallbackPolicy
from api.errors import ApiError
from engine.directory import Directory
from engine.numbers import Target

M = TypeVar("M", bound=BaseModel)
V = TypeVar("V")

# what a missing required field answers (pydantic reports it before any rule runs)
MISSING: dict[str, tuple[str, str]] = {
    "source": (
        "pc_source_invalid",
        "source is missing: give one or more extension or public numbers",
    ),
    "destination": (
        "pc_destination_invalid",
        "destination is missing: give one or more extension or public numbers",
    ),
    "action": ("pc_action_invalid", "action is missing"),
}


@dataclass(frozen=True, slots=True)
class CreateRules:
    """What the create body's rules need of the server: the validation context."""

    directory: Directory
    organization_id: int
    short_numbers: bool
    allow_caller_id: bool
    callback_policy: CallbackPolicy
    # filled by the checks: each number's target, for the engine (resolved once per call)
    resolved: dict[str, Target] = field(default_factory=dict)


def _rules(info: ValidationInfo) -> CreateRules:
    rules = info.context
    if not isinstance(rules, CreateRules):
        raise TypeError("validate the create body with a CreateRules context")
    return rules


def rule(check: Callable[[Any, ValidationInfo], Any], published: Any) -> PlainValidator:
    """A field validator running ``check``, whose ``ApiError`` becomes the field's error;
    ``published`` is the type the OpenAPI document shows for the field."""

    def run(value: Any, info: ValidationInfo) -> Any:
        try:
            return check(value, info)
        except ApiError as exc:
            context = {"message": exc.message, "status": exc.status}
            raise PydanticCustomError(exc.code, "{message}", context) from None

    return PlainValidator(run, json_schema_input_type=published)


def _one_of(schema: dict[str, Any]) -> None:
    # a number or an array of numbers: exactly one applies, which oneOf says
    schema["oneOf"] = schema.pop("anyOf")


def _as_is(value: Any, info: ValidationInfo) -> Any:
    return value


PartyNumber = Annotated[
    str, Field(pattern=fields.PARTY_NUMBER_PATTERN, examples=["0003*00", "211", "+4930123456"])
]
PartyNumbers = PartyNumber | Annotated[list[PartyNumber], Field(min_length=1, max_length=20)]
CallerId = Annotated[
    str, Field(max_length=fields.MAX_CALLER_ID_LENGTH, pattern=fields.CALLER_ID_PATTERN)
]
Nonce = Annotated[str, Field(pattern=fields.NONCE_PATTERN)]
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
CALLER_ID_EXAMPLE = ["John Doe <4242425>"]
RECORDING_FORMATS = ("wav", "wav49")
VIEW_ID_RE = re.compile(r"[0-9]{1,3}")


def _caller_id_field(description: str) -> Any:
    return Field(default=None, description=description, examples=CALLER_ID_EXAMPLE)


def _caller_id_rule(name: str) -> PlainValidator:
    return rule(lambda value, info: fields.caller_id(value, name), CallerId | None)


def _numbers_rule(name: str, code: str) -> PlainValidator:
    def check(value: Any, info: ValidationInfo) -> list[str]:
        numbers = fields.number_list(value, code, name)
        rules = _rules(info)
        fields.check_numbers(
            numbers,
            code,
            name,
            rules.directory,
            rules.organization_id,
            rules.short_numbers,
            rules.resolved,
        )
        return numbers

    return rule(check, PartyNumbers)


class PhoneCallViewCreate(BaseModel):
    """One view of a create body: who is rung, and what they are shown."""

    source: Annotated[
        list[str],
        _numbers_rule("source", "pc_source_invalid"),
        Field(
            description=(
                "Numbers rung at once; the first to answer wins. Error `pc_source_invalid`."
            ),
            json_schema_extra=_one_of,
        ),
    ]
    destination: Annotated[
        list[str],
        _numbers_rule("destination", "pc_destination_invalid"),
        Field(
            description="Number(s) called once a source answers. Error `pc_destination_invalid`.",
            json_schema_extra=_one_of,
        ),
    ]
    callerId: Annotated[str | None, _caller_id_rule("callerId")] = _caller_id_field(
        "Shown to the source. Error `pc_callerid_invalid`."
    )
    callerIdDestination: Annotated[str | None, _caller_id_rule("callerIdDestination")] = (
        _caller_id_field("Shown to the destination. Error `pc_callerid_invalid`.")
    )
    callerDestination: Annotated[str | None, _caller_id_rule("callerDestination")] = (
        _caller_id_field("Synonym of callerIdDestination (4PSA's MCP spelling).")
    )
    # checked as the body's nonce (PhoneCallCreate lifts it there), so not here
    nonce: Annotated[str | None, rule(_as_is, Nonce | None)] = Field(
        default=None, description="Also accepted here; see PhoneCallCreate.nonce."
    )

    @model_validator(mode="after")
    def _caller_ids_allowed(self, info: ValidationInfo) -> PhoneCallViewCreate:
        destination, synonym = self.callerIdDestination, self.callerDestination
        if destination is not None and synonym is not None and destination != synonym:
            raise PydanticCustomError(
                "pc_callerid_invalid",
                "{message}",
                {"message": "callerIdDestination and callerDestination disagree", "status": 400},
            )
        shown = self.callerId is not None or self.caller_id_destination is not None
        if shown and not _rules(info).allow_caller_id:
            raise PydanticCustomError(
                "pc_callerid_invalid",
                "{message}",
                {"message": "You are not allowed to set the callerid field.", "status": 400},
            )
        return self

    @property
    def caller_id_destination(self) -> str | None:
        return self.callerIdDestination or self.callerDestination


class PhoneCallCreate(BaseModel):
    """The body of ``POST /uapi/phoneCalls/{userId}/simple``.

    ``extension`` is checked against the directory before the model (it comes first in the
    order of checks, ahead of the query); the model keeps it as given.
    """

    extension: Annotated[
        str | None,
        rule(
            _as_is,
            Annotated[str, Field(pattern="^([0-9]{1,16}[*])?[0-9]{1,16}$")] | None,
        ),
    ] = Field(
        default=None,
        examples=["210", "0003*210"],
        description=(
            "A Phone Terminal extension owned by the user (not @self). Default: the first "
            "source. Error `extension_invalid`."
        ),
    )
    phoneCallView: Annotated[
        list[PhoneCallViewCreate],
        Field(min_length=1, description="Only the first element is used."),
    ]
    nonce: Annotated[str | None, rule(lambda value, info: fields.nonce(value), Nonce | None)] = (
        Field(
            default=None,
            description=(
                "Identifies the call: a repeated nonce of the same user returns the first "
                "call's id and rings nobody (header `Idempotent-Replayed: true`). Error "
                "`pc_nonce_invalid`."
            ),
        )
    )
    statusCallback: Annotated[
        str | None,
        rule(
            lambda value, info: fields.status_callback(value, _rules(info).callback_policy),
            Annotated[
                str,
                Field(
                    max_length=fields.MAX_URL_LENGTH,
                    pattern=fields.STATUS_CALLBACK_PATTERN,
                    json_schema_extra={"format": "uri"},
                ),
            ]
            | None,
        ),
    ] = Field(
        default=None,
        description=(
            "Extension: every state change is POSTed here as a CallEvent (retried with "
            "backoff), ending with exactly one final event. The server's egress policy "
            "applies: by default a host that is, or at delivery resolves to, a link-local "
            "(169.254.0.0/16, fe80::/10), cloud metadata (169.254.169.254, fd00:ec2::254, "
            "100.100.100.200), multicast, unspecified or broadcast address is refused, "
            "loopback and private addresses are allowed; a server with `[api] callback_allow` "
            "takes only the host names and networks listed. Host names are resolved at "
            "delivery, not at create time, and each connection goes to the address that was "
            "checked; a POST refused at delivery is logged and not retried. Error "
            "`pc_status_callback_invalid` (with the reason) for a malformed or refused URL."
        ),
    )

    @model_validator(mode="before")
    @classmethod
    def _first_view_and_its_nonce(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        try:
            view = fields.first_view(data)
        except ApiError as exc:
            raise PydanticCustomError(
                exc.code, "{message}", {"message": exc.message, "status": exc.status}
            ) from None
        lifted = {**data, "phoneCallView": [view]}
        if "nonce" not in data:
            lifted["nonce"] = view.get("nonce")
        return lifted

    @property
    def view(self) -> PhoneCallViewCreate:
        return self.phoneCallView[0]


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


def validated(model: type[M], data: dict[str, Any], context: object = None) -> M:
    """``data`` checked by ``model``; ``ApiError`` answers the first rule broken."""
    try:
        return model.model_validate(data, context=context)
    except ValidationError as exc:
        raise _api_error(exc) from None


def validated_value(kind: TypeAdapter[V], value: Any) -> V:
    """``value`` checked by the type ``kind`` (a path value...); ``ApiError`` as above."""
    try:
        return kind.validate_python(value)
    except ValidationError as exc:
        raise _api_error(exc) from None


def _api_error(exc: ValidationError) -> ApiError:
    first = exc.errors(include_url=False, include_input=False)[0]
    context = first.get("ctx") or {}
    if "status" in context:
        return ApiError(int(context["status"]), first["type"], str(context["message"]))
    name = next((str(part) for part in reversed(first["loc"]) if isinstance(part, str)), "")
    if first["type"] == "missing" and name in MISSING:
        return fields.bad(*MISSING[name])
    # not reached by a JSON object body: every field's rule answers with its own code
    return fields.bad("payload_invalid", f"{name or 'The request body'}: {first['msg']}")


REQUEST_MODELS: tuple[type[BaseModel], ...] = (PhoneCallCreate, PhoneCallAction)


def component_schemas() -> dict[str, Any]:
    """The components.schemas entries of the request models (and the models they use)."""
    return jsonschema.component_schemas(REQUEST_MODELS, jsonschema.RequestSchema)
