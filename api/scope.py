"""Who may act for whom: resolve ``userId`` and ``extension`` path values for an App.

VoipNow's rules (its Create Simple PhoneCalls page, UnifiedAPI reference 2.10) as this facade
applies them:

- a **User App** acts only as its own user: ``@me``, ``@viewer``, its own id, or ``@owner`` when
  the extension is its own; any other user id is 403 ``access_denied``;
- an **Organization App** acts for the users of its organization; ``@me``/``@viewer`` mean nobody
  and are 400 ``user_invalid`` ("cannot be set to @me and must be specified");
- the **Administrator App** acts for anyone, but names extensions by their extended number only
  (``0003*210``); a short number is the relevant ``*_invalid`` error;
- an unknown or malformed user id is 400 ``user_invalid``.
"""

from __future__ import annotations

import logging

from api.errors import ApiError
from api.oauth import Principal
from api.pathparams import EXTENSION_REF, USER_OR_OWNER_REF, USER_REF, path_value
from engine.directory import Directory, Extension, User

logger = logging.getLogger(__name__)

SELF_ALIASES = ("@me", "@viewer")
OWNER_ALIAS = "@owner"
ALL_EXTENSIONS = "@self"
MAX_NUMBER_LENGTH = 64


def allows_short_numbers(principal: Principal) -> bool:
    """Short numbers (``210``) are resolved in the App's organization: User and Org Apps only."""
    return principal.owner_kind in ("user", "organization")


def principal_organization(principal: Principal, directory: Directory) -> int | None:
    """The organization short numbers are resolved in (None for the Administrator App)."""
    if principal.owner_kind == "organization":
        return principal.owner_id
    if principal.owner_kind == "user" and principal.owner_id is not None:
        user = directory.user(principal.owner_id)
        return None if user is None else int(user.organization)
    return None


def check_may_act_for(principal: Principal, user: User) -> None:
    """403 access_denied unless the App may act for ``user``."""
    if principal.owner_kind == "admin":
        return
    if principal.owner_kind == "user" and user.id == principal.owner_id:
        return
    if principal.owner_kind == "organization" and user.organization == principal.owner_id:
        return
    raise ApiError(403, "access_denied", f"This App may not act on behalf of user {user.id}")


def is_owner_alias(user_text: str) -> bool:
    return user_text == OWNER_ALIAS


def resolve_user(principal: Principal, directory: Directory, user_text: str) -> User:
    """The User named by a path ``userId`` other than ``@owner`` (see ``resolve_owner``) or a
    CDR ``ownerId``: checked as an ``api.pathparams.UserRef``, then resolved."""
    if user_text in SELF_ALIASES:
        if principal.owner_kind != "user":
            kind = (
                "an Organization" if principal.owner_kind == "organization" else "the Administrator"
            )
            raise ApiError(
                400,
                "user_invalid",
                f"userId cannot be set to {user_text} for an App registered to {kind}; "
                "it must be specified as the user's id",
            )
        owner = principal.owner_id
        user = None if owner is None else directory.user(owner)
        if user is None:
            raise ApiError(400, "user_invalid", "The App's user no longer exists")
        return user
    user = directory.user(int(path_value(USER_REF, user_text)))
    if user is None:
        raise ApiError(400, "user_invalid", f"Unknown user {int(user_text)}")
    check_may_act_for(principal, user)
    return user


def resolve_owner(principal: Principal, directory: Directory, extension: Extension) -> User:
    """The User behind ``@owner``: the owner of ``extension``, if the App may act for them."""
    user = directory.user(extension.user)
    if user is None:
        raise ApiError(400, "user_invalid", "The extension's owner does not exist")
    check_may_act_for(principal, user)
    return user


def find_extension(
    principal: Principal, directory: Directory, number: str, organization_id: int | None
) -> Extension | None:
    """An extension by extended number, or by short number in ``organization_id`` when the App
    may use short numbers; None when there is no such extension."""
    if not number or len(number) > MAX_NUMBER_LENGTH:
        return None
    if "*" not in number and not allows_short_numbers(principal):
        return None
    org = organization_id if allows_short_numbers(principal) else None
    extension = directory.find_extension(number, org)
    if extension is None:
        return None
    if principal.owner_kind == "organization" and extension.organization != principal.owner_id:
        return None
    return extension


def path_extension(
    principal: Principal, directory: Directory, user_text: str, extension_text: str
) -> tuple[User, Extension | None]:
    """(user, extension) for the ``{userId}/{extension}`` of GET/PUT/DELETE paths.

    ``extension`` is None for ``@self`` (every extension of the user). A named extension must
    exist and belong to the user, else 400 ``extension_invalid``.
    """
    if is_owner_alias(path_value(USER_OR_OWNER_REF, user_text)):
        if extension_text == ALL_EXTENSIONS:
            raise ApiError(
                400, "user_invalid", "userId @owner needs an extension number, not @self"
            )
        extension = find_extension(
            principal,
            directory,
            path_value(EXTENSION_REF, extension_text),
            principal_organization(principal, directory),
        )
        if extension is None:
            raise ApiError(400, "extension_invalid", f"Unknown extension {extension_text[:64]!r}")
        return resolve_owner(principal, directory, extension), extension
    user = resolve_user(principal, directory, user_text)
    if extension_text == ALL_EXTENSIONS:
        return user, None
    extension = find_extension(
        principal, directory, path_value(EXTENSION_REF, extension_text), user.organization
    )
    if extension is None:
        raise ApiError(400, "extension_invalid", f"Unknown extension {extension_text[:64]!r}")
    if extension.user != user.id:
        raise ApiError(
            400,
            "extension_invalid",
            f"Extension {extension.extended} is not owned by user {user.id}",
        )
    return user, extension
