"""The field types and rules the PhoneCall bodies share (the Simple, Callback and
ConferenceInvite creates of :mod:`api.create_bodies`, the action of :mod:`api.action_body`).

Rules that need the server's state (the directory for numbers, whether the extension may set a
caller id, the statusCallback egress policy) read it from the validation context,
:class:`CreateRules`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any

from pydantic import Field, PlainValidator, ValidationInfo

from api import fields
from api.egress import CallbackPolicy
from api.validation import rule
from engine.directory import Directory
from engine.numbers import Target


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
CALLER_ID_EXAMPLE = ["John Doe <4242425>"]


def _caller_id_field(description: str) -> Any:
    return Field(default=None, description=description, examples=CALLER_ID_EXAMPLE)


def _caller_id_rule(name: str) -> PlainValidator:
    return rule(lambda value, info: fields.caller_id(value, name), CallerId | None)


def _numbers_rule(
    name: str, code: str, refuse: Callable[[Any], str | None] | None = None
) -> PlainValidator:
    """Numbers that resolve in the organization; ``refuse`` (given the resolved target) names
    why a kind of number is not taken here (the Callback and ConferenceInvite creates)."""

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
        if refuse is not None:
            for number in numbers:
                reason = refuse(rules.resolved[number])
                if reason is not None:
                    raise fields.bad(code, f"{name} {number!r} cannot be called here: {reason}")
        return numbers

    return rule(check, PartyNumbers)
