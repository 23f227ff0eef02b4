"""The bodies of the PhoneCall creates as pydantic models, defined once.

A model is both the check of a body and its JSON Schema in the OpenAPI document. Each field
applies the rule of :mod:`api.fields` that gives today's UAPI code and message (through
:func:`api.validation.rule`, with the shared types and rules of :mod:`api.body_fields`); the
type it declares is what the document publishes, so the two cannot drift apart. Fields are
checked in their declared order and the first broken rule is answered.

- ``POST /uapi/phoneCalls/{userId}/simple``: :class:`PhoneCallCreate`, whose view
  (:class:`PhoneCallViewCreate`) names who is rung and what they are shown.
- ``POST /uapi/phoneCalls/{userId}/callback``: a Simple PhoneCall between public numbers,
  charged to a Callback extension. Its body is the Simple one; ``source`` and ``destination``
  take public numbers only (sandbox numbers too, which stand in for public ones), never an
  extension.
- ``POST /uapi/phoneCalls/{userId}/conferenceInvite``: dial ``destination`` into the conference
  the query's ``number`` names; the view has no ``source`` (the conference is the source).
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, Field, ValidationInfo, model_validator
from pydantic_core import PydanticCustomError

from api import fields
from api.body_fields import (
    CALLER_ID_EXAMPLE,
    Nonce,
    _as_is,
    _caller_id_field,
    _caller_id_rule,
    _numbers_rule,
    _one_of,
    _rules,
)
from api.errors import ApiError
from api.validation import rule
from engine.directory import ExtensionType
from engine.numbers import ExtensionTarget


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


def _public_only(target: Any) -> str | None:
    if isinstance(target, ExtensionTarget):
        return f"it is extension {target.extension.extended}; a callback joins public numbers"
    return None


def _no_conference(target: Any) -> str | None:
    if isinstance(target, ExtensionTarget) and target.extension.type is ExtensionType.CONFERENCE:
        return f"{target.extension.extended} is a conference, not a party"
    return None


class CallbackViewCreate(PhoneCallViewCreate):
    """One view of a Callback create: two public numbers."""

    source: Annotated[
        list[str],
        _numbers_rule("source", "pc_source_invalid", _public_only),
        Field(
            description=(
                "Public numbers called back first, at once; the first to answer wins. Not an "
                "extension. Error `pc_source_invalid`."
            ),
            json_schema_extra=_one_of,
        ),
    ]
    destination: Annotated[
        list[str],
        _numbers_rule("destination", "pc_destination_invalid", _public_only),
        Field(
            description=(
                "Public number(s) called once a source answers. Not an extension. Error "
                "`pc_destination_invalid`."
            ),
            json_schema_extra=_one_of,
        ),
    ]


class CallbackCreate(PhoneCallCreate):
    """The body of ``POST /uapi/phoneCalls/{userId}/callback``.

    ``extension`` is checked against the directory before the model: a Callback extension
    owned by the user."""

    extension: Annotated[
        str,
        rule(_as_is, Annotated[str, Field(pattern="^([0-9]{1,16}[*])?[0-9]{1,16}$")]),
    ] = Field(
        examples=["500", "0003*500"],
        description=(
            "A Callback extension owned by the user: it is charged, and its caller id is shown "
            "to both parties unless callerId / callerIdDestination say otherwise. Required. "
            "Error `extension_invalid`."
        ),
    )
    # the subclass narrows the view's model (pydantic validates with this one)
    phoneCallView: Annotated[  # type: ignore[assignment]
        list[CallbackViewCreate],
        Field(min_length=1, description="Only the first element is used."),
    ]


class ConferenceInviteView(BaseModel):
    """One view of a ConferenceInvite: who is dialled into the conference."""

    destination: Annotated[
        list[str],
        _numbers_rule("destination", "pc_destination_invalid", _no_conference),
        Field(
            description=(
                "Number(s) rung at once (extension, public or sandbox); the first to answer "
                "joins the conference. Error `pc_destination_invalid`."
            ),
            json_schema_extra=_one_of,
        ),
    ]
    callerId: Annotated[str | None, _caller_id_rule("callerId")] = Field(
        default=None,
        description=(
            "Shown to the invited party (default: the conference's caller id, else the "
            "charged extension's). Error `pc_callerid_invalid`."
        ),
        examples=CALLER_ID_EXAMPLE,
    )
    nonce: Annotated[str | None, rule(_as_is, Nonce | None)] = Field(
        default=None, description="Also accepted here; see ConferenceInviteCreate.nonce."
    )


class ConferenceInviteCreate(PhoneCallCreate):
    """The body of ``POST /uapi/phoneCalls/{userId}/conferenceInvite``.

    ``extension`` is checked against the directory before the model: the extension charged,
    owned by the user, a Phone Terminal or the conference itself (the default)."""

    extension: Annotated[
        str | None,
        rule(_as_is, Annotated[str, Field(pattern="^([0-9]{1,16}[*])?[0-9]{1,16}$")] | None),
    ] = Field(
        default=None,
        examples=["210", "0003*400"],
        description=(
            "The extension charged, owned by the user: a Phone Terminal, or the conference "
            "itself. Default: the conference (query `number`). Error `extension_invalid`."
        ),
    )
    phoneCallView: Annotated[  # type: ignore[assignment]
        list[ConferenceInviteView],
        Field(min_length=1, description="Only the first element is used."),
    ]

    @property
    def invite(self) -> ConferenceInviteView:
        view = self.phoneCallView[0]
        assert isinstance(view, ConferenceInviteView)
        return view


CREATE_MODELS: tuple[type[BaseModel], ...] = (CallbackCreate, ConferenceInviteCreate)
