"""The rules for single request values the API shares: numbers of seconds, booleans, party
numbers, caller ids, nonces and statusCallback URLs.

Each check raises ``ApiError`` (400 with the code it is given) naming the broken rule; the
request models of :mod:`api.create_bodies` and :mod:`api.action_body` and the query checks of
:mod:`api.create` apply them.
The regular expressions here are the ones the OpenAPI document publishes.
"""

from __future__ import annotations

import ipaddress
import math
import re
from typing import Any

from api.egress import CallbackPolicy
from api.errors import ApiError
from engine.directory import Directory
from engine.numbers import ExtensionTarget, NumberError, Target, parse_caller_id, resolve

MAX_SECONDS = 604800  # one week: a bound VoipNow does not state, against overflow downstream
MAX_PARTIES = 20
MAX_NUMBER_LENGTH = 64
MAX_URL_LENGTH = 2048
MAX_CALLER_ID_LENGTH = 256
NONCE_PATTERN = "^[A-Za-z0-9._~:@+=/-]{1,128}$"
NONCE_RE = re.compile(NONCE_PATTERN[1:-1])
INTEGER_RE = re.compile(r"[0-9]{1,12}")
# a decimal as JSON or a client's float formatting writes it ("1.5", "1e-05", "2.5E+3")
NUMBER_RE = re.compile(r"[0-9]{1,12}(\.[0-9]{1,30})?([eE][+-]?[0-9]{1,4})?")

# CODE*NNN (an extension, or CODE*0N a sandbox number), a short extension number, or a public
# number (digits, a leading + and at least three digits): engine/numbers.py resolves them.
PARTY_NUMBER_PATTERN = "^([0-9]{1,16}[*][0-9]{1,16}|[+][0-9]{3,20}|[0-9]{1,20})$"
# engine.numbers.parse_caller_id: an optional name (letters, digits, spaces, .-') then a number
# in <>, or a bare number; the number is digits and * (a leading +), 32 at most.
CALLER_ID_PATTERN = (
    "^([A-Za-z0-9 .'-]{0,64}<[+]?[*]{0,8}[0-9][0-9*]{0,22}>|[+]?[*]{0,8}[0-9][0-9*]{0,22})$"
)

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


def bad(code: str, message: str) -> ApiError:
    return ApiError(400, code, message)


def parse_boolean(value: str | None, code: str, name: str) -> bool:
    if value is None:
        return False
    lowered = value.strip().lower()
    if lowered == "true":
        return True
    if lowered == "false":
        return False
    raise bad(code, f"{name} must be true or false, got {value[:32]!r}")


def parse_positive_seconds(value: str | None, code: str, name: str, *, integer: bool) -> int | None:
    """A positive number of seconds (an integer when ``integer``), at most a week."""
    if value is None:
        return None
    text = value.strip()
    pattern = INTEGER_RE if integer else NUMBER_RE
    if not pattern.fullmatch(text):
        kind = "a positive integer" if integer else "a number higher than 0"
        raise bad(code, f"{name} must be {kind} (seconds), got {value[:32]!r}")
    seconds = float(text)
    if seconds <= 0 or seconds > MAX_SECONDS:
        raise bad(code, f"{name} must be higher than 0 and at most {MAX_SECONDS} seconds")
    return math.ceil(seconds)


def first_view(body: dict[str, Any]) -> dict[str, Any]:
    """The create body's first ``phoneCallView`` (``{}`` when there is none); only it is used."""
    views = body.get("phoneCallView")
    if views is None:
        return {}
    if isinstance(views, dict):
        return views
    if isinstance(views, list) and views and isinstance(views[0], dict):
        return views[0]
    if isinstance(views, list) and not views:
        return {}
    raise bad("pc_source_invalid", "phoneCallView must be an array of PhoneCallView objects")


def number_list(value: Any, code: str, name: str) -> list[str]:
    """A number or an array of 1-20 of them, each stripped."""
    if value is None:
        raise bad(code, f"{name} is missing: give one or more extension or public numbers")
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items:
        raise bad(code, f"{name} must be a number or a non-empty array of numbers")
    if len(items) > MAX_PARTIES:
        raise bad(code, f"{name} may hold at most {MAX_PARTIES} numbers")
    numbers: list[str] = []
    for item in items:
        if not isinstance(item, str) or not item.strip():
            raise bad(code, f"{name} must hold non-empty strings")
        if len(item) > MAX_NUMBER_LENGTH:
            raise bad(code, f"{name} holds a number longer than {MAX_NUMBER_LENGTH} characters")
        numbers.append(item.strip())
    return numbers


def check_numbers(
    numbers: list[str],
    code: str,
    name: str,
    directory: Directory,
    organization_id: int,
    short: bool,
    resolved: dict[str, Target] | None = None,
) -> None:
    """Every number resolves in the organization (short numbers only when ``short``).
    ``resolved`` gets each number's target as the engine rings it (short numbers allowed),
    so the engine need not resolve it again."""
    for number in numbers:
        try:
            target = resolve(number, directory, organization_id, short)
            if not short and "*" not in number:
                # the engine rings bare digits as short numbers when they name an extension of
                # the organization: refuse them here, the Administrator App must be explicit
                target = resolve(number, directory, organization_id, True)
                if isinstance(target, ExtensionTarget):
                    raise NumberError(
                        "short extension numbers need a User or Organization App; "
                        f"use the extended form {target.extension.extended}"
                    )
            if resolved is not None:
                resolved[number] = target
        except NumberError as exc:
            reason = exc.reason or str(exc)
            raise bad(code, f"{name} {number!r} cannot be called: {reason}") from None


def caller_id(value: Any, name: str) -> str | None:
    """``None`` or a caller id of the ``Name <number>`` form (``pc_callerid_invalid``)."""
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > MAX_CALLER_ID_LENGTH:
        raise bad("pc_callerid_invalid", f"{name} must be a string like 'John Doe <+3334444>'")
    try:
        parse_caller_id(value)
    except ValueError:
        raise bad(
            "pc_callerid_invalid",
            f"{name} {value[:64]!r} must have the format: John Doe <+3334444>",
        ) from None
    return value


def nonce(value: Any) -> str | None:
    if value is not None and (not isinstance(value, str) or not NONCE_RE.fullmatch(value)):
        raise bad(
            "pc_nonce_invalid",
            "nonce must be 1-128 characters of letters, digits and . _ ~ : @ + = / -",
        )
    return value


def status_callback(value: Any, policy: CallbackPolicy) -> str | None:
    """``None`` or an absolute http(s) URL whose host ``policy`` allows."""
    if value is None:
        return None
    message = "statusCallback must be an absolute http:// or https:// URL"
    if not isinstance(value, str) or len(value) > MAX_URL_LENGTH:
        raise bad("pc_status_callback_invalid", message)
    match = STATUS_CALLBACK_RE.fullmatch(value)
    if match is None:
        raise bad("pc_status_callback_invalid", message)
    host = match.group(1)
    if host.startswith("["):
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            raise bad(
                "pc_status_callback_invalid", f"{message} (bad IPv6 address {host[:48]!r})"
            ) from None
    refusal = policy.refusal(host)
    if refusal is not None:
        raise bad("pc_status_callback_invalid", f"statusCallback is refused: {refusal}")
    return value
