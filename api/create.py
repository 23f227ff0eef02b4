"""Validation of ``POST /uapi/phoneCalls/{userId}/simple`` (VoipNow's Create Simple
PhoneCalls page, rule by rule).

Checks run in this order and the first failure is answered (all 400 unless noted):

1. ``userId`` (``user_invalid``; 403 ``access_denied`` outside the App's scope), except
   ``@owner``, which is checked once the extension is known;
2. ``extension`` (``extension_invalid``): missing means the first ``source``; it must exist (short
   numbers only for User/Organization Apps, resolved in the user's organization), be a Phone
   Terminal and be owned by the user;
3. query ``callDuration`` (``pc_duration_invalid``: a positive integer, at most 604800),
   ``waitForPickup`` (``pc_timeout_invalid``: a number > 0, at most 604800; fractions round up),
   ``allowPublicTransfer`` (``pc_transfer_invalid``: true/false), ``video``
   (``pc_video_invalid``: true/false, this facade's own code);
4. ``source`` then ``destination`` (``pc_source_invalid``/``pc_destination_invalid``): a string or
   an array of 1-20 strings, each resolvable in the extension's organization;
5. ``callerId`` and ``callerIdDestination``/``callerDestination`` (``pc_callerid_invalid``):
   the ``Name <number>`` form; setting either when the extension does not allow it is refused;
6. ``nonce`` (``pc_nonce_invalid``): 1-128 characters of ``A-Z a-z 0-9 . _ ~ : @ + = / -``;
7. ``statusCallback`` (``pc_status_callback_invalid``, this facade's own code): an absolute
   http(s) URL whose host the server's egress policy allows (``api.egress``: by default no
   link-local, cloud metadata, multicast, unspecified or broadcast address; with
   ``[api] callback_allow`` only the hosts listed). Host names are not resolved here, only
   at delivery.

Steps 1-2 are checked here; the query's rules (3) are the ``CreateQuery`` model's
(``api.queries``), the body's own rules (4-7) the ``PhoneCallCreate`` model's
(``api.create_bodies``), which apply them in this order.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from api import fields
from api.body_fields import CreateRules
from api.create_bodies import CallbackCreate, ConferenceInviteCreate, PhoneCallCreate
from api.egress import CallbackPolicy
from api.fields import bad
from api.oauth import Principal
from api.pathparams import USER_OR_OWNER_REF, path_value
from api.queries import CallbackQuery, ConferenceInviteQuery, CreateQuery
from api.scope import (
    allows_short_numbers,
    find_extension,
    is_owner_alias,
    principal_organization,
    resolve_owner,
    resolve_user,
)
from api.validation import validated
from engine.directory import Directory, Extension, ExtensionType, User
from engine.numbers import Target

logger = logging.getLogger(__name__)

PHONE_TERMINAL = "phone_terminal"
KIND_NAMES = {
    ExtensionType.PHONE_TERMINAL: "Phone Terminal",
    ExtensionType.CALLBACK: "Callback",
    ExtensionType.CONFERENCE: "Conference",
}


@dataclass(frozen=True, slots=True)
class CheckedCall:
    """A checked create request, ready for ``OriginateRequest``."""

    user: User
    extension: Extension
    sources: list[str]
    destinations: list[str]
    caller_id: str | None
    caller_id_destination: str | None
    nonce: str | None
    wait_for_pickup: int
    call_duration: int | None
    allow_public_transfer: bool
    video: bool
    status_callback: str | None
    targets: dict[str, Target]  # where each number rings (checked here, resolved once)
    conference: str | None = None  # ConferenceInvite: the conference, extended
    pin: str | None = None


def _extension_for(
    principal: Principal, directory: Directory, text: str, user: User | None
) -> Extension:
    org = user.organization if user is not None else principal_organization(principal, directory)
    extension = find_extension(principal, directory, text, org)
    if extension is None:
        hint = "" if allows_short_numbers(principal) or "*" in text else " (use the extended form)"
        raise bad("extension_invalid", f"Unknown extension {text[:64]!r}{hint}")
    return extension


def _extension_text(body: dict[str, Any], default: str | None) -> str:
    raw = body.get("extension")
    if raw is None:  # left out or null: the create's default, if it has one
        raw = default
    if raw is None:
        raise bad("extension_invalid", "extension is missing")
    if not isinstance(raw, str) or not raw:
        raise bad("extension_invalid", "extension must be an extension number")
    if raw == "@self":
        raise bad("extension_invalid", "extension cannot be set to @self")
    return raw


def _owned(extension: Extension, user: User, kinds: tuple[ExtensionType, ...]) -> None:
    if extension.type not in kinds:
        names = " or ".join(KIND_NAMES[kind] for kind in kinds)
        raise bad("extension_invalid", f"Extension {extension.extended} is not a {names} extension")
    if extension.user != user.id:
        raise bad(
            "extension_invalid", f"Extension {extension.extended} is not owned by user {user.id}"
        )


def _user_and_extension(
    principal: Principal,
    directory: Directory,
    user_text: str,
    body: dict[str, Any],
    default_extension: str | None,
    kinds: tuple[ExtensionType, ...],
    user: User | None,
) -> tuple[User, Extension]:
    extension = _extension_for(principal, directory, _extension_text(body, default_extension), user)
    if user is None:
        user = resolve_owner(principal, directory, extension)
    _owned(extension, user, kinds)
    return user, extension


def _rules(
    principal: Principal,
    directory: Directory,
    extension: Extension,
    callback_policy: CallbackPolicy | None,
) -> CreateRules:
    """What a create's body is checked against: the extension's organization and caller-id
    right, the App's short-number right, where statusCallbacks may go."""
    return CreateRules(
        directory=directory,
        organization_id=extension.organization,
        short_numbers=allows_short_numbers(principal),
        allow_caller_id=extension.allow_caller_id,
        callback_policy=callback_policy or CallbackPolicy(),
    )


def check_callback(
    principal: Principal,
    directory: Directory,
    user_text: str,
    query: dict[str, str],
    body: dict[str, Any],
    default_wait_for_pickup: int,
    callback_policy: CallbackPolicy | None = None,
) -> CheckedCall:
    """Create Callback PhoneCalls: as Simple (same order of checks), but ``extension`` is a
    Callback extension owned by the user (required) and both parties are public numbers."""
    owner_alias = is_owner_alias(path_value(USER_OR_OWNER_REF, user_text))
    user = None if owner_alias else resolve_user(principal, directory, user_text)
    user, extension = _user_and_extension(
        principal, directory, user_text, body, None, (ExtensionType.CALLBACK,), user
    )
    options = validated(CallbackQuery, query)
    rules = _rules(principal, directory, extension, callback_policy)
    create = validated(CallbackCreate, body, rules)
    view = create.view
    return CheckedCall(
        user=user,
        extension=extension,
        sources=view.source,
        destinations=view.destination,
        caller_id=view.callerId,
        caller_id_destination=view.caller_id_destination,
        nonce=create.nonce,
        wait_for_pickup=options.waitForPickup or default_wait_for_pickup,
        call_duration=options.callDuration,
        allow_public_transfer=False,
        video=False,
        status_callback=create.statusCallback,
        targets=rules.resolved,
    )


def check_conference_invite(
    principal: Principal,
    directory: Directory,
    user_text: str,
    query: dict[str, str],
    body: dict[str, Any],
    default_wait_for_pickup: int,
    callback_policy: CallbackPolicy | None = None,
) -> CheckedCall:
    """Create ConferenceInvite PhoneCalls. Checks in this order: ``userId``; the query's
    ``number`` (``pc_conference_invalid``: a conference extension, short numbers resolved in
    the user's organization); ``extension`` (``extension_invalid``: default the conference;
    a Phone Terminal or the conference, owned by the user); the query's ``callDuration``,
    ``waitForPickup``, ``pin`` (its form; whether it is right is the engine's check, as is
    whether the conference has room); the body's ``destination``, ``callerId``, ``nonce``,
    ``statusCallback``."""
    owner_alias = is_owner_alias(path_value(USER_OR_OWNER_REF, user_text))
    user = None if owner_alias else resolve_user(principal, directory, user_text)
    number = query.get("number")
    if number is None or not number.strip():
        raise bad("pc_conference_invalid", "number is missing: give the conference extension")
    org = user.organization if user is not None else principal_organization(principal, directory)
    conference = find_extension(principal, directory, number.strip()[:64], org)
    if conference is None or conference.type is not ExtensionType.CONFERENCE:
        raise bad("pc_conference_invalid", f"{number[:64]!r} is not a conference extension")
    user, extension = _user_and_extension(
        principal,
        directory,
        user_text,
        body,
        conference.extended,
        (ExtensionType.PHONE_TERMINAL, ExtensionType.CONFERENCE),
        user,
    )
    if extension.organization != conference.organization:
        raise bad("pc_conference_invalid", f"{conference.extended} is in another organization")
    options = validated(ConferenceInviteQuery, query)
    rules = _rules(principal, directory, extension, callback_policy)
    create = validated(ConferenceInviteCreate, body, rules)
    invite = create.invite
    shown = invite.callerId or conference.caller_id
    return CheckedCall(
        user=user,
        extension=extension,
        sources=[conference.extended],
        destinations=invite.destination,
        caller_id=shown,
        caller_id_destination=shown,
        nonce=create.nonce,
        wait_for_pickup=options.waitForPickup or default_wait_for_pickup,
        call_duration=options.callDuration,
        allow_public_transfer=False,
        video=False,
        status_callback=create.statusCallback,
        targets=rules.resolved,
        conference=conference.extended,
        pin=options.pin,
    )


def check_simple_call(
    principal: Principal,
    directory: Directory,
    user_text: str,
    query: dict[str, str],
    body: dict[str, Any],
    default_wait_for_pickup: int,
    callback_policy: CallbackPolicy | None = None,
) -> CheckedCall:
    """Apply every rule of the Create Simple PhoneCalls page; ``ApiError`` names the first
    one broken. ``callback_policy``: where a statusCallback may point (default:
    ``CallbackPolicy()``)."""
    owner_alias = is_owner_alias(path_value(USER_OR_OWNER_REF, user_text))
    user = None if owner_alias else resolve_user(principal, directory, user_text)

    raw_view = fields.first_view(body)
    raw_extension = body.get("extension")
    if raw_extension is None:
        first = raw_view.get("source")
        if isinstance(first, list):
            first = first[0] if first else None
        if not isinstance(first, str) or not first.strip():
            raise bad("extension_invalid", "extension is missing and there is no source to use")
        raw_extension = first.strip()
    if not isinstance(raw_extension, str) or not raw_extension:
        raise bad("extension_invalid", "extension must be an extension number")
    if raw_extension == "@self":
        raise bad("extension_invalid", "extension cannot be set to @self")
    extension = _extension_for(principal, directory, raw_extension, user)
    if user is None:
        user = resolve_owner(principal, directory, extension)
    if str(extension.type) != PHONE_TERMINAL:
        raise bad(
            "extension_invalid",
            f"Extension {extension.extended} is not a Phone Terminal extension",
        )
    if extension.user != user.id:
        raise bad(
            "extension_invalid", f"Extension {extension.extended} is not owned by user {user.id}"
        )

    options = validated(CreateQuery, query)

    rules = _rules(principal, directory, extension, callback_policy)
    create = validated(PhoneCallCreate, body, rules)
    view = create.view
    return CheckedCall(
        user=user,
        extension=extension,
        sources=view.source,
        destinations=view.destination,
        caller_id=view.callerId,
        caller_id_destination=view.caller_id_destination,
        nonce=create.nonce,
        wait_for_pickup=options.waitForPickup or default_wait_for_pickup,
        call_duration=options.callDuration,
        allow_public_transfer=options.allowPublicTransfer,
        video=options.video,
        status_callback=create.statusCallback,
        targets=rules.resolved,
    )
