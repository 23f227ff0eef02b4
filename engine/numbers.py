"""Number resolution (README, "Numbers") and caller-id text.

``resolve`` turns a dialled number into where it rings, checked in this order:

1. ``CODE*0N`` (two digits after the star, the first 0): a sandbox number of organization CODE
   (UAPI "PhoneCalls Sandbox"; extended form only).
2. ``CODE*NNN``: an extension in extended form.
3. Digits only, when short numbers are allowed and an organization is known: an extension of
   that organization, if it has one by that local number.
4. Digits with an optional leading ``+`` (at least ``MIN_PUBLIC_DIGITS``): a public number, sent
   to the gateway of the longest matching route.

Anything else raises ``NumberError`` with a reason a user can act on.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:  # engine.directory imports parse_caller_id from here
    from engine.directory import Directory, Extension, Organization, Route

logger = logging.getLogger(__name__)

MIN_PUBLIC_DIGITS = 3
MAX_PUBLIC_DIGITS = 20
MAX_CALLER_NAME = 64
MAX_CALLER_NUMBER = 32

_SANDBOX = re.compile(r"([0-9]+)\*(0[0-9])")
_EXTENDED = re.compile(r"([0-9]+)\*([0-9]+)")
_PUBLIC = re.compile(r"\+?[0-9]+")
_CALLER_NUMBER = re.compile(r"\+?[0-9*]*[0-9][0-9*]*")
_NAME_PUNCTUATION = frozenset(" .-'")


class NumberError(ValueError):
    """A number that cannot be called; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason

    def __str__(self) -> str:
        return self.reason


@dataclass(frozen=True, slots=True)
class ExtensionTarget:
    extension: Extension


@dataclass(frozen=True, slots=True)
class PublicTarget:
    number: str  # as dialled (leading + kept)
    route: Route


@dataclass(frozen=True, slots=True)
class SandboxTarget:
    organization: Organization
    index: int  # 0..9: CODE*00 .. CODE*09
    number: str  # extended form, e.g. "0003*05"


Target = ExtensionTarget | PublicTarget | SandboxTarget


class HasTarget(Protocol):
    number: str
    target: Target | NumberError | None


def target_of(party: HasTarget, directory: Directory, organization_id: int | None) -> Target:
    """Where ``party`` rings: the target resolved when it was made, else resolved now (and
    kept); raises its ``NumberError`` when it rings nowhere."""
    target = party.target
    if target is None:
        try:
            target = resolve(party.number, directory, organization_id)
        except NumberError as exc:
            party.target = exc
            raise
        party.target = target
    if isinstance(target, NumberError):
        raise target
    return target


def resolve(
    number: str,
    directory: Directory,
    organization_id: int | None = None,
    allow_short: bool = True,
) -> Target:
    """Where ``number`` rings. ``organization_id`` is the caller's organization (for short
    numbers); ``allow_short=False`` treats bare digits as public numbers only."""
    if not isinstance(number, str):
        raise NumberError(f"expected a phone number string, got {number!r}")
    text = number.strip()
    if not text:
        raise NumberError("empty phone number")
    if "*" in text:
        return _resolve_extended(text, directory)
    if not _PUBLIC.fullmatch(text) or not text.isascii():
        raise NumberError(
            f"invalid number {number!r}: expected CODE*NNN, a short extension number "
            "or a public number (digits, optional leading +)"
        )
    if not text.startswith("+"):
        target = _resolve_short(text, directory, organization_id, allow_short)
        if target is not None:
            return target
    digits = text.removeprefix("+")
    if len(digits) < MIN_PUBLIC_DIGITS:
        if allow_short and organization_id is not None and not text.startswith("+"):
            org = directory.organization(organization_id)
            code = org.code if org is not None else str(organization_id)
            raise NumberError(f"unknown extension {code}*{text}")
        raise NumberError(
            f"number {text} is too short for a public number (at least {MIN_PUBLIC_DIGITS} digits)"
        )
    if len(digits) > MAX_PUBLIC_DIGITS:
        raise NumberError(f"number {text} is too long (at most {MAX_PUBLIC_DIGITS} digits)")
    route = directory.route_for(text)
    if route is None:
        raise NumberError(f"no route for public number {text}")
    return PublicTarget(text, route)


def _resolve_extended(text: str, directory: Directory) -> Target:
    sandbox = _SANDBOX.fullmatch(text)
    if sandbox is not None:
        code, local = sandbox.groups()
        org = directory.organization_by_code(code)
        if org is None:
            raise NumberError(f"unknown organization code {code} in {text}")
        return SandboxTarget(org, int(local), text)
    extended = _EXTENDED.fullmatch(text)
    if extended is None or not text.isascii():
        raise NumberError(f"invalid extended number {text!r}: expected CODE*NNN, e.g. 0003*210")
    code = extended.group(1)
    if directory.organization_by_code(code) is None:
        raise NumberError(f"unknown organization code {code} in {text}")
    extension = directory.extension(text)
    if extension is None:
        raise NumberError(f"unknown extension {text}")
    return ExtensionTarget(extension)


def _resolve_short(
    text: str, directory: Directory, organization_id: int | None, allow_short: bool
) -> Target | None:
    if not allow_short:
        return None
    if organization_id is None:
        if any(ext.number == text for ext in directory.extensions):
            raise NumberError(f"short number {text} needs an organization context")
        return None
    extension = directory.find_extension(text, organization_id)
    return None if extension is None else ExtensionTarget(extension)


# --------------------------------------------------------------------------- caller id


def parse_caller_id(text: str) -> tuple[str | None, str]:
    """``"John Doe <4242425>"`` -> ``("John Doe", "4242425")``; ``"<4242425>"`` and a bare
    ``"4242425"`` give no name. Names: letters, digits, spaces and ``.-'``; numbers: digits,
    ``*`` and a leading ``+``. Raises ``ValueError`` saying what is wrong."""
    if not isinstance(text, str):
        raise ValueError(f"caller id must be a string, got {text!r}")
    stripped = text.strip()
    expected = f"expected 'Name <number>' (e.g. 'John Doe <4242425>'), got {text!r}"
    if not stripped:
        raise ValueError(f"empty caller id: {expected}")
    name: str | None
    if stripped.endswith(">"):
        open_at = stripped.rfind("<")
        if open_at < 0:
            raise ValueError(expected)
        name = " ".join(stripped[:open_at].split()) or None
        number = stripped[open_at + 1 : -1].strip()
    elif "<" in stripped or ">" in stripped:
        raise ValueError(expected)
    else:
        name, number = None, stripped
    if not number or not _CALLER_NUMBER.fullmatch(number) or not number.isascii():
        raise ValueError(
            f"bad caller id number {number!r} in {text!r}: digits, '*' and a leading '+' only"
        )
    if len(number) > MAX_CALLER_NUMBER:
        raise ValueError(f"caller id number too long (at most {MAX_CALLER_NUMBER}) in {text!r}")
    if name is not None:
        bad = sorted({c for c in name if not (c.isalnum() or c in _NAME_PUNCTUATION)})
        if bad:
            shown = "".join(bad)
            raise ValueError(
                f"bad character(s) {shown!r} in caller id name {name!r}: "
                "letters, digits, spaces and .-' only"
            )
        if len(name) > MAX_CALLER_NAME:
            raise ValueError(f"caller id name too long (at most {MAX_CALLER_NAME}) in {text!r}")
    return name, number


def format_caller_id(name: str | None, number: str) -> str:
    """Inverse of ``parse_caller_id``: ``"John Doe <4242425>"``, or the bare number."""
    return f"{name} <{number}>" if name else number
