"""The bodies of the Callback and ConferenceInvite creates, as pydantic models (see
:mod:`api.bodies`: a model is both the check of a body and its JSON Schema).

- ``POST /uapi/phoneCalls/{userId}/callback``: a Simple PhoneCall between public numbers,
  charged to a Callback extension. Its body is the Simple one; ``source`` and ``destination``
  take public numbers only (sandbox numbers too, which stand in for public ones), never an
  extension.
- ``POST /uapi/phoneCalls/{userId}/conferenceInvite``: dial ``destination`` into the conference
  the query's ``number`` names; the view has no ``source`` (the conference is the source).
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, Field

from api.bodies import (
    CALLER_ID_EXAMPLE,
    PhoneCallCreate,
    PhoneCallViewCreate,
    _as_is,
    _caller_id_rule,
    _numbers_rule,
    _one_of,
    rule,
)
from api.bodies import Nonce as NonceType
from engine.directory import ExtensionType
from engine.numbers import ExtensionTarget


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
    nonce: Annotated[str | None, rule(_as_is, NonceType | None)] = Field(
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
