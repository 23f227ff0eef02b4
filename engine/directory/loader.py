"""Loading the directory: a TOML file (or text, or a parsed dict) checked key by key.

The format is that of the built-in demo directory (:mod:`engine.directory.demo`);
``examples/directory.toml`` explains every key.  ``load_directory`` checks every entry before
anything starts and raises ``DirectoryError`` listing every problem of the file, each naming the
entry and key, e.g. ``extensions[2].user: unknown user 99``.
"""

from __future__ import annotations

import logging
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.config_values import parse_host_port, parse_transport_address
from engine.directory.model import (
    App,
    Directory,
    DirectoryError,
    Extension,
    ExtensionType,
    Organization,
    Route,
    TrustedPeer,
    User,
)
from engine.numbers import parse_caller_id

logger = logging.getLogger(__name__)


def _type_name(value: Any) -> str:
    names = {bool: "boolean", int: "integer", float: "number", str: "string", list: "array"}
    return names.get(type(value), "table" if isinstance(value, dict) else type(value).__name__)


class _Problems:
    """Every problem of one file, so that all of them are reported at once."""

    def __init__(self) -> None:
        self.found: list[tuple[str, str]] = []

    def raise_any(self) -> None:
        if self.found:
            raise DirectoryError.of(self.found)


class _Entry:
    """One ``[[section]]`` table being checked. A problem is noted (naming
    ``section[index].key``) and the value read as None; an entry with any problem is not built,
    but the others still are, so that every problem of the file is found in one pass."""

    def __init__(
        self,
        section: str,
        index: int,
        data: dict[str, Any],
        known: frozenset[str],
        found: _Problems,
    ) -> None:
        self.where = f"{section}[{index}]"
        self.data = data
        self.ok = True
        self._found = found
        for key in data:
            if key not in known:
                self.note(key, f"unknown key (known: {', '.join(sorted(known))})")

    def note(self, key: str | None, problem: str) -> None:
        self.ok = False
        self._found.found.append((self.where if key is None else f"{self.where}.{key}", problem))

    def get(self, key: str, default: Any = None, *, required: bool = False) -> Any:
        if key not in self.data:
            if required:
                self.note(None, f"missing key {key!r}")
            return default
        return self.data[key]

    def string(self, key: str, default: str | None = None, *, required: bool = False) -> str | None:
        value = self.get(key, default, required=required)
        if value is not None and not isinstance(value, str):
            self.note(key, f"expected a string, got {_type_name(value)} {value!r}")
            return None
        return value

    def integer(self, key: str) -> int | None:
        value = self.get(key, None, required=True)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            self.note(key, f"expected an integer, got {_type_name(value)} {value!r}")
            return None
        return value

    def boolean(self, key: str, default: bool) -> bool:
        value = self.get(key, default)
        if not isinstance(value, bool):
            self.note(key, f"expected true or false, got {_type_name(value)} {value!r}")
            return default
        return value


KNOWN_KEYS: dict[str, frozenset[str]] = {
    "organizations": frozenset({"id", "code", "name"}),
    "users": frozenset({"id", "organization", "name"}),
    "extensions": frozenset(
        {"number", "organization", "user", "type", "caller_id", "password", "allow_caller_id"}
    ),
    "apps": frozenset({"client_id", "client_secret", "owner"}),
    "routes": frozenset({"prefix", "gateway", "rate"}),
    "peers": frozenset({"address", "organization"}),
}


def _entries(data: dict[str, Any], section: str, found: _Problems) -> list[_Entry]:
    raw = data.get(section, [])
    if not isinstance(raw, list):
        found.found.append((section, f"expected an array of tables [[{section}]]"))
        return []
    entries: list[_Entry] = []
    for index, item in enumerate(raw):
        if isinstance(item, dict):
            entries.append(_Entry(section, index, item, KNOWN_KEYS[section], found))
        else:
            found.found.append((f"{section}[{index}]", f"expected a table, got {_type_name(item)}"))
    return entries


@dataclass(slots=True)
class _Declared:
    """Ids that entries declare, even entries with other problems: a reference to one of them
    is not reported again as unknown (one mistake, one message)."""

    organizations: set[int] = field(default_factory=set)
    users: set[int] = field(default_factory=set)


def _organizations(
    data: dict[str, Any], found: _Problems, declared: _Declared
) -> list[Organization]:
    result: list[Organization] = []
    codes: set[str] = set()
    for entry in _entries(data, "organizations", found):
        org_id = entry.integer("id")
        if org_id is not None:
            if org_id in declared.organizations:
                entry.note("id", f"duplicate organization id {org_id}")
            declared.organizations.add(org_id)
        code = entry.string("code", required=True)
        if code is not None:
            if not (code.isascii() and code.isdigit()):
                entry.note("code", f"must be digits, got {code!r}")
            elif code in codes:
                entry.note("code", f"duplicate organization code {code!r}")
            codes.add(code)
        name = entry.string("name", f"Organization {org_id}")
        if entry.ok and org_id is not None and code is not None and name is not None:
            result.append(Organization(org_id, code, name))
    return result


def _organization_ref(entry: _Entry, key: str, declared: _Declared) -> int | None:
    """An organization id that must exist; None (with a problem if it is not declared)."""
    org_id = entry.integer(key)
    if org_id is not None and org_id not in declared.organizations:
        entry.note(key, f"unknown organization {org_id}")
        return None
    return org_id


def _users(data: dict[str, Any], found: _Problems, declared: _Declared) -> list[User]:
    result: list[User] = []
    for entry in _entries(data, "users", found):
        user_id = entry.integer("id")
        if user_id is not None:
            if user_id in declared.users:
                entry.note("id", f"duplicate user id {user_id}")
            declared.users.add(user_id)
        org_id = _organization_ref(entry, "organization", declared)
        name = entry.string("name", f"User {user_id}")
        if entry.ok and user_id is not None and org_id is not None and name is not None:
            result.append(User(user_id, org_id, name))
    return result


def _extension_number(entry: _Entry) -> str | None:
    number = entry.get("number", required=True)
    if isinstance(number, int) and not isinstance(number, bool):
        entry.note("number", f'write the number as a string: number = "{number}"')
        return None
    text = entry.string("number")
    if text is None:
        return None
    if not (text.isascii() and text.isdigit()):
        entry.note("number", f"must be digits, got {text!r}")
        return None
    if len(text) == 2 and text.startswith("0"):
        entry.note("number", f"{text!r} is reserved: CODE*00-CODE*09 are sandboxes")
        return None
    return text


def _extensions(
    data: dict[str, Any],
    found: _Problems,
    declared: _Declared,
    orgs: dict[int, Organization],
    users: dict[int, User],
) -> list[Extension]:
    result: list[Extension] = []
    seen: set[str] = set()
    types = ", ".join(t.value for t in ExtensionType)
    for entry in _entries(data, "extensions", found):
        number = _extension_number(entry)
        org_id = _organization_ref(entry, "organization", declared)
        user_id = entry.integer("user")
        user = users.get(user_id) if user_id is not None else None
        if user_id is not None and user_id not in declared.users:
            entry.note("user", f"unknown user {user_id}")
        elif user is not None and org_id is not None and user.organization != org_id:
            entry.note(
                "user", f"user {user_id} belongs to organization {user.organization}, not {org_id}"
            )
        type_text = entry.string("type", ExtensionType.PHONE_TERMINAL.value)
        ext_type: ExtensionType | None = None
        if type_text is not None:
            try:
                ext_type = ExtensionType(type_text)
            except ValueError:
                entry.note("type", f"unknown type {type_text!r} (one of: {types})")
        caller_id = entry.string("caller_id")
        if caller_id is not None:
            try:
                parse_caller_id(caller_id)
            except ValueError as exc:
                entry.note("caller_id", str(exc))
        password = entry.string("password")
        if password is not None and not password:
            entry.note("password", "empty password (leave the key out for none)")
        allow_caller_id = entry.boolean("allow_caller_id", True)
        org = orgs.get(org_id) if org_id is not None else None
        if org is None or number is None:
            continue  # its problems are noted (here or at the organization)
        extended = f"{org.code}*{number}"
        if extended in seen:
            entry.note("number", f"duplicate extension {extended}")
        seen.add(extended)
        if entry.ok and user_id is not None and ext_type is not None:
            result.append(
                Extension(
                    number=number,
                    organization=org.id,
                    user=user_id,
                    type=ext_type,
                    caller_id=caller_id,
                    password=password,
                    allow_caller_id=allow_caller_id,
                    extended=extended,
                )
            )
    return result


def _apps(data: dict[str, Any], found: _Problems, declared: _Declared) -> list[App]:
    result: list[App] = []
    seen: set[str] = set()
    for entry in _entries(data, "apps", found):
        client_id = entry.string("client_id", required=True)
        if client_id is not None:
            if not client_id:
                entry.note("client_id", "empty client_id")
            elif client_id in seen:
                entry.note("client_id", f"duplicate client_id {client_id!r}")
            seen.add(client_id)
        secret = entry.string("client_secret", required=True)
        if secret is not None and not secret:
            entry.note("client_secret", "empty client_secret")
        owner = entry.string("owner", required=True)
        kind, owner_id = "admin", None
        if owner is not None and owner != "admin":
            kind, sep, id_text = owner.partition(":")
            if sep and kind in ("user", "organization") and id_text.isascii() and id_text.isdigit():
                owner_id = int(id_text)
                if kind == "user" and owner_id not in declared.users:
                    entry.note("owner", f"unknown user {owner_id}")
                if kind == "organization" and owner_id not in declared.organizations:
                    entry.note("owner", f"unknown organization {owner_id}")
            else:
                entry.note(
                    "owner", f"expected 'user:ID', 'organization:ID' or 'admin', got {owner!r}"
                )
        if entry.ok and client_id is not None and secret is not None and owner is not None:
            result.append(App(client_id, secret, kind, owner_id))
    return result


def _routes(data: dict[str, Any], found: _Problems) -> list[Route]:
    result: list[Route] = []
    seen: set[str] = set()
    for entry in _entries(data, "routes", found):
        prefix = entry.string("prefix", required=True)
        digits = None if prefix is None else prefix.removeprefix("+")
        if prefix is not None and digits is not None:
            if digits and not (digits.isascii() and digits.isdigit()):
                entry.note("prefix", f'must be digits (or "" for all), got {prefix!r}')
            elif digits in seen:
                entry.note("prefix", f"duplicate route prefix {prefix!r}")
            seen.add(digits)
        gateway = entry.string("gateway", required=True)
        address = None
        if gateway is not None:
            try:
                address = parse_transport_address(gateway)
            except ValueError as exc:
                entry.note("gateway", str(exc))
            else:
                if address.port == 0:
                    entry.note("gateway", f"port 0 is not a gateway port: {gateway!r}")
        rate = entry.get("rate", 0.0)
        if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0 <= rate < 1e9:
            entry.note("rate", f"expected a number >= 0, got {rate!r}")
        if entry.ok and digits is not None and address is not None:
            result.append(Route(digits, address.transport, address.host, address.port, float(rate)))
    return result


def _peers(data: dict[str, Any], found: _Problems, declared: _Declared) -> list[TrustedPeer]:
    result: list[TrustedPeer] = []
    seen: set[tuple[str, int | None]] = set()
    for entry in _entries(data, "peers", found):
        address = entry.string("address", required=True)
        host_port: tuple[str, int | None] | None = None
        if address is not None:
            try:
                host_port = parse_host_port(address)
            except ValueError as exc:
                entry.note("address", f"expected 'HOST' or 'HOST:PORT' ({exc})")
            else:
                if host_port[1] == 0:
                    entry.note("address", f"port 0 cannot be a sender's port: {address!r}")
                elif host_port in seen:
                    entry.note("address", f"duplicate peer {address!r}")
                seen.add(host_port)
        org_id = _organization_ref(entry, "organization", declared)
        if entry.ok and host_port is not None and org_id is not None:
            result.append(TrustedPeer(host_port[0], host_port[1], org_id))
    return result


def directory_from_dict(data: dict[str, Any]) -> Directory:
    """Check and build a Directory from parsed TOML.

    Every problem of the file is found before it raises: the ``DirectoryError`` lists them all.
    """
    found = _Problems()
    for section in data:
        if section not in KNOWN_KEYS:
            known = ", ".join(f"[[{name}]]" for name in KNOWN_KEYS)
            found.found.append((section, f"unknown section (known: {known})"))
    declared = _Declared()
    organizations = _organizations(data, found, declared)
    users = _users(data, found, declared)
    orgs = {org.id: org for org in organizations}
    users_by_id = {user.id: user for user in users}
    directory = Directory(
        organizations=organizations,
        users=users,
        extensions=_extensions(data, found, declared, orgs, users_by_id),
        apps=_apps(data, found, declared),
        routes=_routes(data, found),
        peers=_peers(data, found, declared),
    )
    found.raise_any()
    return directory


def parse_directory(text: str, source: str = "<directory>") -> Directory:
    """Build a Directory from TOML text; syntax errors name ``source``."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise DirectoryError(source, f"invalid TOML: {exc}") from None
    return directory_from_dict(data)


def load_directory(path: str | Path) -> Directory:
    """Read and check a directory file; ``DirectoryError`` (naming the file) on any problem."""
    path = Path(path)
    try:
        try:
            text = path.read_bytes().decode("utf-8")
        except OSError as exc:
            raise DirectoryError(str(path), f"cannot read: {exc.strerror or exc}") from None
        except UnicodeDecodeError as exc:
            raise DirectoryError(str(path), f"not UTF-8 text: {exc}") from None
        directory = parse_directory(text, str(path))
    except DirectoryError as exc:
        exc.file = str(path)
        raise
    logger.debug(
        "loaded directory %s: %d organizations, %d extensions",
        path,
        len(directory.organizations),
        len(directory.extensions),
    )
    return directory
