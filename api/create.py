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
"""

from __future__ import annotations

import ipaddress
import logging
import math
import re
from dataclasses import dataclass
from typing import Any

from api.egress import CallbackPolicy
from api.errors import ApiError
from api.oauth import Principal
from api.scope import (
    allows_short_numbers,
    find_extension,
    is_owner_alias,
    principal_organization,
    resolve_owner,
    resolve_user,
)
from engine.directory import Directory, Extension, User
from engine.numbers import ExtensionTarget, NumberError, parse_caller_id, resolve

logger = logging.getLogger(__name__)

MAX_SECONDS = 604800  # one week: a bound VoipNow does not state, against overflow downstream
MAX_PARTIES = 20
MAX_NUMBER_LENGTH = 64
MAX_URL_LENGTH = 2048
NONCE_RE = re.compile(r"[A-Za-z0-9._~:@+=/-]{1,128}")
INTEGER_RE = re.compile(r"[0-9]{1,12}")
# a decimal as JSON or a client's float formatting writes it ("1.5", "1e-05", "2.5E+3")
NUMBER_RE = re.compile(r"[0-9]{1,12}(\.[0-9]{1,30})?([eE][+-]?[0-9]{1,4})?")
PHONE_TERMINAL = "phone_terminal"

# statusCallback: an RFC 3986 http(s) URI with a host (a name, IPv4 or [IPv6]) and an optional
# port 0-65535; no user info. The OpenAPI document publishes this very pattern.
_PCHAR = r"([A-Za-z0-9._~!$&'()*+,;=:@-]|%[0-9A-Fa-f]{2})"
_PORT = r"([0-9]{1,4}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])"
# RFC 3986 IPv6address, so the published pattern admits no literal the server then refuses
_H16 = "[0-9A-Fa-f]{1,4}"
_OCTET = "(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])"
_LS32 = rf"({_H16}:{_H16}|{_OCTET}(\.{_OCTET}){{3}})"
_IPV6 = "|".join(
    [
        rf"({_H16}:){{6}}{_LS32}",
        rf"::({_H16}:){{5}}{_LS32}",
        rf"({_H16})?::({_H16}:){{4}}{_LS32}",
        rf"(({_H16}:){{0,1}}{_H16})?::({_H16}:){{3}}{_LS32}",
        rf"(({_H16}:){{0,2}}{_H16})?::({_H16}:){{2}}{_LS32}",
        rf"(({_H16}:){{0,3}}{_H16})?::{_H16}:{_LS32}",
        rf"(({_H16}:){{0,4}}{_H16})?::{_LS32}",
        rf"(({_H16}:){{0,5}}{_H16})?::{_H16}",
        rf"(({_H16}:){{0,6}}{_H16})?::",
    ]
)
STATUS_CALLBACK_PATTERN = (
    rf"^https?://(\[({_IPV6})\]|[A-Za-z0-9.-]{{1,253}})"
    rf"(:{_PORT})?(/({_PCHAR}|/)*)?([?]({_PCHAR}|[/?])*)?(#({_PCHAR}|[/?])*)?$"
)
STATUS_CALLBACK_RE = re.compile(STATUS_CALLBACK_PATTERN)


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


def _bad(code: str, message: str) -> ApiError:
    return ApiError(400, code, message)


def parse_boolean(value: str | None, code: str, name: str) -> bool:
    if value is None:
        return False
    lowered = value.strip().lower()
    if lowered == "true":
        return True
    if lowered == "false":
        return False
    raise _bad(code, f"{name} must be true or false, got {value[:32]!r}")


def parse_positive_seconds(value: str | None, code: str, name: str, *, integer: bool) -> int | None:
    """A positive number of seconds (an integer when ``integer``), at most a week."""
    if value is None:
        return None
    text = value.strip()
    pattern = INTEGER_RE if integer else NUMBER_RE
    if not pattern.fullmatch(text):
        kind = "a positive integer" if integer else "a number higher than 0"
        raise _bad(code, f"{name} must be {kind} (seconds), got {value[:32]!r}")
    seconds = float(text)
    if seconds <= 0 or seconds > MAX_SECONDS:
        raise _bad(code, f"{name} must be higher than 0 and at most {MAX_SECONDS} seconds")
    return math.ceil(seconds)


def _first_view(body: dict[str, Any]) -> dict[str, Any]:
    views = body.get("phoneCallView")
    if views is None:
        return {}
    if isinstance(views, dict):
        return views
    if isinstance(views, list) and views and isinstance(views[0], dict):
        return views[0]
    if isinstance(views, list) and not views:
        return {}
    raise _bad("pc_source_invalid", "phoneCallView must be an array of PhoneCallView objects")


def _number_list(value: Any, code: str, name: str) -> list[str]:
    if value is None:
        raise _bad(code, f"{name} is missing: give one or more extension or public numbers")
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items:
        raise _bad(code, f"{name} must be a number or a non-empty array of numbers")
    if len(items) > MAX_PARTIES:
        raise _bad(code, f"{name} may hold at most {MAX_PARTIES} numbers")
    numbers: list[str] = []
    for item in items:
        if not isinstance(item, str) or not item.strip():
            raise _bad(code, f"{name} must hold non-empty strings")
        if len(item) > MAX_NUMBER_LENGTH:
            raise _bad(code, f"{name} holds a number longer than {MAX_NUMBER_LENGTH} characters")
        numbers.append(item.strip())
    return numbers


def _check_numbers(
    numbers: list[str],
    code: str,
    name: str,
    directory: Directory,
    organization_id: int,
    short: bool,
) -> None:
    for number in numbers:
        try:
            resolve(number, directory, organization_id, short)
            if not short and "*" not in number:
                # the engine rings bare digits as short numbers when they name an extension of
                # the organization: refuse them here, the Administrator App must be explicit
                target = resolve(number, directory, organization_id, True)
                if isinstance(target, ExtensionTarget):
                    raise NumberError(
                        "short extension numbers need a User or Organization App; "
                        f"use the extended form {target.extension.extended}"
                    )
        except NumberError as exc:
            reason = exc.reason or str(exc)
            raise _bad(code, f"{name} {number!r} cannot be called: {reason}") from None


def _caller_id(value: Any, name: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > 256:
        raise _bad("pc_callerid_invalid", f"{name} must be a string like 'John Doe <+3334444>'")
    try:
        parse_caller_id(value)
    except ValueError:
        raise _bad(
            "pc_callerid_invalid",
            f"{name} {value[:64]!r} must have the format: John Doe <+3334444>",
        ) from None
    return value


def _status_callback(value: Any, policy: CallbackPolicy) -> str | None:
    if value is None:
        return None
    message = "statusCallback must be an absolute http:// or https:// URL"
    if not isinstance(value, str) or len(value) > MAX_URL_LENGTH:
        raise _bad("pc_status_callback_invalid", message)
    match = STATUS_CALLBACK_RE.fullmatch(value)
    if match is None:
        raise _bad("pc_status_callback_invalid", message)
    host = match.group(1)
    if host.startswith("["):
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            raise _bad(
                "pc_status_callback_invalid", f"{message} (bad IPv6 address {host[:48]!r})"
            ) from None
    refusal = policy.refusal(host)
    if refusal is not None:
        raise _bad("pc_status_callback_invalid", f"statusCallback is refused: {refusal}")
    return value


def _extension_for(
    principal: Principal, directory: Directory, text: str, user: User | None
) -> Extension:
    org = user.organization if user is not None else principal_organization(principal, directory)
    extension = find_extension(principal, directory, text, org)
    if extension is None:
        hint = "" if allows_short_numbers(principal) or "*" in text else " (use the extended form)"
        raise _bad("extension_invalid", f"Unknown extension {text[:64]!r}{hint}")
    return extension


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
    owner_alias = is_owner_alias(user_text)
    user = None if owner_alias else resolve_user(principal, directory, user_text)

    view = _first_view(body)
    raw_extension = body.get("extension")
    if raw_extension is None:
        first = view.get("source")
        if isinstance(first, list):
            first = first[0] if first else None
        if not isinstance(first, str) or not first.strip():
            raise _bad("extension_invalid", "extension is missing and there is no source to use")
        raw_extension = first.strip()
    if not isinstance(raw_extension, str) or not raw_extension:
        raise _bad("extension_invalid", "extension must be an extension number")
    if raw_extension == "@self":
        raise _bad("extension_invalid", "extension cannot be set to @self")
    extension = _extension_for(principal, directory, raw_extension, user)
    if user is None:
        user = resolve_owner(principal, directory, extension)
    if str(extension.type) != PHONE_TERMINAL:
        raise _bad(
            "extension_invalid",
            f"Extension {extension.extended} is not a Phone Terminal extension",
        )
    if extension.user != user.id:
        raise _bad(
            "extension_invalid", f"Extension {extension.extended} is not owned by user {user.id}"
        )

    call_duration = parse_positive_seconds(
        query.get("callDuration"), "pc_duration_invalid", "callDuration", integer=True
    )
    wait_text = query.get("waitForPickup", query.get("waitForPickUp"))
    wait_for_pickup = parse_positive_seconds(
        wait_text, "pc_timeout_invalid", "waitForPickup", integer=False
    )
    allow_public_transfer = parse_boolean(
        query.get("allowPublicTransfer"), "pc_transfer_invalid", "allowPublicTransfer"
    )
    video = parse_boolean(query.get("video"), "pc_video_invalid", "video")

    short = allows_short_numbers(principal)
    org = extension.organization
    sources = _number_list(view.get("source"), "pc_source_invalid", "source")
    _check_numbers(sources, "pc_source_invalid", "source", directory, org, short)
    destinations = _number_list(view.get("destination"), "pc_destination_invalid", "destination")
    _check_numbers(destinations, "pc_destination_invalid", "destination", directory, org, short)

    caller_id = _caller_id(view.get("callerId"), "callerId")
    destination_id = _caller_id(view.get("callerIdDestination"), "callerIdDestination")
    synonym = _caller_id(view.get("callerDestination"), "callerDestination")
    if destination_id is not None and synonym is not None and destination_id != synonym:
        raise _bad("pc_callerid_invalid", "callerIdDestination and callerDestination disagree")
    destination_id = destination_id or synonym
    if (caller_id is not None or destination_id is not None) and not extension.allow_caller_id:
        raise _bad("pc_callerid_invalid", "You are not allowed to set the callerid field.")

    nonce = body.get("nonce", view.get("nonce"))
    if nonce is not None and (not isinstance(nonce, str) or not NONCE_RE.fullmatch(nonce)):
        raise _bad(
            "pc_nonce_invalid",
            "nonce must be 1-128 characters of letters, digits and . _ ~ : @ + = / -",
        )

    status_callback = _status_callback(
        body.get("statusCallback"), callback_policy or CallbackPolicy()
    )
    return CheckedCall(
        user=user,
        extension=extension,
        sources=sources,
        destinations=destinations,
        caller_id=caller_id,
        caller_id_destination=destination_id,
        nonce=nonce,
        wait_for_pickup=wait_for_pickup or default_wait_for_pickup,
        call_duration=call_duration,
        allow_public_transfer=allow_public_transfer,
        video=video,
        status_callback=status_callback,
    )
