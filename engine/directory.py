"""The directory: organizations, users, extensions, Apps, routes and trusted peers.

Loaded once from a TOML file (in the format of ``DEMO_DIRECTORY_TOML``, the embedded demo
directory) or built from that text, and read-only afterwards. ``load_directory`` checks every
entry before anything starts and raises ``DirectoryError`` naming the entry and key, e.g.
``extensions[2].user: unknown user 99``.
"""

from __future__ import annotations

import logging
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from engine.config import parse_host_port, parse_transport_address
from engine.numbers import parse_caller_id

logger = logging.getLogger(__name__)


class DirectoryError(Exception):
    """A bad directory entry: ``key`` is e.g. ``extensions[2].type``, ``problem`` says why."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(key, problem)
        self.key = key
        self.problem = problem

    def __str__(self) -> str:
        return f"{self.key}: {self.problem}"


class ExtensionType(StrEnum):
    PHONE_TERMINAL = "phone_terminal"
    QUEUE = "queue"
    IVR = "ivr"
    VOICEMAIL_CENTER = "voicemail_center"
    CONFERENCE = "conference"
    CALLBACK = "callback"


@dataclass(frozen=True, slots=True)
class Organization:
    id: int
    code: str  # digits; extended numbers are CODE*LOCAL
    name: str


@dataclass(frozen=True, slots=True)
class User:
    id: int
    organization: int
    name: str


@dataclass(frozen=True, slots=True)
class Extension:
    number: str  # local part, e.g. "210"
    organization: int
    user: int  # the owner
    type: ExtensionType
    caller_id: str | None  # "John Doe <4242425>"
    password: str | None  # SIP digest password; the username is ``extended``
    allow_caller_id: bool  # may a request override the caller id?
    extended: str  # "0003*210"


@dataclass(frozen=True, slots=True)
class App:
    client_id: str
    client_secret: str
    owner_kind: str  # "user" | "organization" | "admin"
    owner_id: int | None  # None for admin


@dataclass(frozen=True, slots=True)
class Route:
    prefix: str  # digits without "+"; "" matches every public number
    gateway_transport: str  # "udp" | "tcp"
    gateway_host: str
    gateway_port: int
    rate: float  # charge per started minute


@dataclass(frozen=True, slots=True)
class TrustedPeer:
    host: str
    port: int | None  # None: any port of host
    organization: int


class Directory:
    """Read-only lookups over a checked directory. Missing entries give None (or [])."""

    def __init__(
        self,
        organizations: Iterable[Organization] = (),
        users: Iterable[User] = (),
        extensions: Iterable[Extension] = (),
        apps: Iterable[App] = (),
        routes: Iterable[Route] = (),
        peers: Iterable[TrustedPeer] = (),
    ) -> None:
        self.organizations: tuple[Organization, ...] = tuple(organizations)
        self.users: tuple[User, ...] = tuple(users)
        self.extensions: tuple[Extension, ...] = tuple(extensions)
        self.apps: tuple[App, ...] = tuple(apps)
        self.routes: tuple[Route, ...] = tuple(routes)
        self.peers: tuple[TrustedPeer, ...] = tuple(peers)
        self._orgs = {org.id: org for org in self.organizations}
        self._org_codes = {org.code: org for org in self.organizations}
        self._users = {user.id: user for user in self.users}
        self._extensions = {ext.extended: ext for ext in self.extensions}
        self._apps = {app.client_id: app for app in self.apps}
        # longest prefix first, so the first match wins
        self._routes = sorted(self.routes, key=lambda route: len(route.prefix), reverse=True)

    def organization(self, organization_id: int) -> Organization | None:
        return self._orgs.get(organization_id)

    def organization_by_code(self, code: str) -> Organization | None:
        return self._org_codes.get(code)

    def user(self, user_id: int) -> User | None:
        return self._users.get(user_id)

    def users_of(self, organization_id: int) -> list[User]:
        return [user for user in self.users if user.organization == organization_id]

    def extension(self, extended_number: str) -> Extension | None:
        """By extended number (``0003*210``)."""
        return self._extensions.get(extended_number)

    def find_extension(self, number: str, organization_id: int | None = None) -> Extension | None:
        """By extended number, or by short number within ``organization_id``."""
        if "*" in number:
            return self._extensions.get(number)
        if organization_id is None:
            return None
        org = self._orgs.get(organization_id)
        if org is None:
            return None
        return self._extensions.get(f"{org.code}*{number}")

    def extensions_of(self, organization_id: int) -> list[Extension]:
        return [ext for ext in self.extensions if ext.organization == organization_id]

    def extensions_of_user(self, user_id: int) -> list[Extension]:
        return [ext for ext in self.extensions if ext.user == user_id]

    def app(self, client_id: str) -> App | None:
        return self._apps.get(client_id)

    def route_for(self, public_number: str) -> Route | None:
        """The route with the longest prefix matching the number (a leading ``+`` is ignored)."""
        digits = public_number.removeprefix("+")
        for route in self._routes:
            if digits.startswith(route.prefix):
                return route
        return None

    def trusted_peer(self, host: str, port: int | None = None) -> TrustedPeer | None:
        """The peer entry for a sender; an entry with a port beats a host-only entry."""
        host_only = None
        for peer in self.peers:
            if peer.host != host:
                continue
            if peer.port is not None and peer.port == port:
                return peer
            if peer.port is None and host_only is None:
                host_only = peer
        return host_only


# --------------------------------------------------------------------------- loading


def _type_name(value: Any) -> str:
    names = {bool: "boolean", int: "integer", float: "number", str: "string", list: "array"}
    return names.get(type(value), "table" if isinstance(value, dict) else type(value).__name__)


class _Entry:
    """One ``[[section]]`` table being checked; every error names ``section[index].key``."""

    def __init__(self, section: str, index: int, data: Any, known: frozenset[str]) -> None:
        self.where = f"{section}[{index}]"
        if not isinstance(data, dict):
            raise DirectoryError(self.where, f"expected a table, got {_type_name(data)}")
        self.data: dict[str, Any] = data
        for key in data:
            if key not in known:
                raise DirectoryError(
                    f"{self.where}.{key}", f"unknown key (known: {', '.join(sorted(known))})"
                )

    def error(self, key: str, problem: str) -> DirectoryError:
        return DirectoryError(f"{self.where}.{key}", problem)

    def get(self, key: str, default: Any = None, *, required: bool = False) -> Any:
        if key not in self.data:
            if required:
                raise DirectoryError(self.where, f"missing key {key!r}")
            return default
        return self.data[key]

    def string(self, key: str, default: str | None = None, *, required: bool = False) -> Any:
        value = self.get(key, default, required=required)
        if value is not None and not isinstance(value, str):
            raise self.error(key, f"expected a string, got {_type_name(value)} {value!r}")
        return value

    def integer(self, key: str, *, required: bool = True) -> Any:
        value = self.get(key, None, required=required)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise self.error(key, f"expected an integer, got {_type_name(value)} {value!r}")
        return value

    def boolean(self, key: str, default: bool) -> bool:
        value = self.get(key, default)
        if not isinstance(value, bool):
            raise self.error(key, f"expected true or false, got {_type_name(value)} {value!r}")
        return value


_KNOWN = {
    "organizations": frozenset({"id", "code", "name"}),
    "users": frozenset({"id", "organization", "name"}),
    "extensions": frozenset(
        {"number", "organization", "user", "type", "caller_id", "password", "allow_caller_id"}
    ),
    "apps": frozenset({"client_id", "client_secret", "owner"}),
    "routes": frozenset({"prefix", "gateway", "rate"}),
    "peers": frozenset({"address", "organization"}),
}


def _entries(data: dict[str, Any], section: str) -> list[_Entry]:
    raw = data.get(section, [])
    if not isinstance(raw, list):
        raise DirectoryError(section, f"expected an array of tables [[{section}]]")
    return [_Entry(section, i, item, _KNOWN[section]) for i, item in enumerate(raw)]


def _organizations(data: dict[str, Any]) -> list[Organization]:
    result: list[Organization] = []
    ids: set[int] = set()
    codes: set[str] = set()
    for entry in _entries(data, "organizations"):
        org_id = entry.integer("id")
        if org_id in ids:
            raise entry.error("id", f"duplicate organization id {org_id}")
        code = entry.string("code", required=True)
        if not (code.isascii() and code.isdigit()):
            raise entry.error("code", f"must be digits, got {code!r}")
        if code in codes:
            raise entry.error("code", f"duplicate organization code {code!r}")
        name = entry.string("name", f"Organization {org_id}")
        ids.add(org_id)
        codes.add(code)
        result.append(Organization(org_id, code, name))
    return result


def _users(data: dict[str, Any], orgs: dict[int, Organization]) -> list[User]:
    result: list[User] = []
    ids: set[int] = set()
    for entry in _entries(data, "users"):
        user_id = entry.integer("id")
        if user_id in ids:
            raise entry.error("id", f"duplicate user id {user_id}")
        org_id = entry.integer("organization")
        if org_id not in orgs:
            raise entry.error("organization", f"unknown organization {org_id}")
        ids.add(user_id)
        result.append(User(user_id, org_id, entry.string("name", f"User {user_id}")))
    return result


def _extensions(
    data: dict[str, Any], orgs: dict[int, Organization], users: dict[int, User]
) -> list[Extension]:
    result: list[Extension] = []
    seen: set[str] = set()
    types = ", ".join(t.value for t in ExtensionType)
    for entry in _entries(data, "extensions"):
        number = entry.get("number", required=True)
        if isinstance(number, int) and not isinstance(number, bool):
            raise entry.error("number", f'write the number as a string: number = "{number}"')
        number = entry.string("number", required=True)
        if not (number.isascii() and number.isdigit()):
            raise entry.error("number", f"must be digits, got {number!r}")
        if len(number) == 2 and number.startswith("0"):
            raise entry.error("number", f"{number!r} is reserved: CODE*00-CODE*09 are sandboxes")
        org_id = entry.integer("organization")
        org = orgs.get(org_id)
        if org is None:
            raise entry.error("organization", f"unknown organization {org_id}")
        user_id = entry.integer("user")
        user = users.get(user_id)
        if user is None:
            raise entry.error("user", f"unknown user {user_id}")
        if user.organization != org_id:
            raise entry.error(
                "user", f"user {user_id} belongs to organization {user.organization}, not {org_id}"
            )
        type_text = entry.string("type", ExtensionType.PHONE_TERMINAL.value)
        try:
            ext_type = ExtensionType(type_text)
        except ValueError:
            raise entry.error("type", f"unknown type {type_text!r} (one of: {types})") from None
        caller_id = entry.string("caller_id")
        if caller_id is not None:
            try:
                parse_caller_id(caller_id)
            except ValueError as exc:
                raise entry.error("caller_id", str(exc)) from None
        password = entry.string("password")
        if password is not None and not password:
            raise entry.error("password", "empty password (leave the key out for none)")
        extended = f"{org.code}*{number}"
        if extended in seen:
            raise entry.error("number", f"duplicate extension {extended}")
        seen.add(extended)
        result.append(
            Extension(
                number=number,
                organization=org_id,
                user=user_id,
                type=ext_type,
                caller_id=caller_id,
                password=password,
                allow_caller_id=entry.boolean("allow_caller_id", True),
                extended=extended,
            )
        )
    return result


def _apps(data: dict[str, Any], orgs: dict[int, Organization], users: dict[int, User]) -> list[App]:
    result: list[App] = []
    seen: set[str] = set()
    for entry in _entries(data, "apps"):
        client_id = entry.string("client_id", required=True)
        if not client_id:
            raise entry.error("client_id", "empty client_id")
        if client_id in seen:
            raise entry.error("client_id", f"duplicate client_id {client_id!r}")
        secret = entry.string("client_secret", required=True)
        if not secret:
            raise entry.error("client_secret", "empty client_secret")
        owner = entry.string("owner", required=True)
        expected = f"expected 'user:ID', 'organization:ID' or 'admin', got {owner!r}"
        kind, sep, id_text = owner.partition(":")
        owner_id: int | None = None
        if owner == "admin":
            kind = "admin"
        elif sep and kind in ("user", "organization") and id_text.isascii() and id_text.isdigit():
            owner_id = int(id_text)
            if kind == "user" and owner_id not in users:
                raise entry.error("owner", f"unknown user {owner_id}")
            if kind == "organization" and owner_id not in orgs:
                raise entry.error("owner", f"unknown organization {owner_id}")
        else:
            raise entry.error("owner", expected)
        seen.add(client_id)
        result.append(App(client_id, secret, kind, owner_id))
    return result


def _routes(data: dict[str, Any]) -> list[Route]:
    result: list[Route] = []
    seen: set[str] = set()
    for entry in _entries(data, "routes"):
        prefix = entry.string("prefix", required=True)
        digits = prefix.removeprefix("+")
        if digits and not (digits.isascii() and digits.isdigit()):
            raise entry.error("prefix", f'must be digits (or "" for all), got {prefix!r}')
        if digits in seen:
            raise entry.error("prefix", f"duplicate route prefix {prefix!r}")
        gateway = entry.string("gateway", required=True)
        try:
            address = parse_transport_address(gateway)
        except ValueError as exc:
            raise entry.error("gateway", str(exc)) from None
        if address.port == 0:
            raise entry.error("gateway", f"port 0 is not a gateway port: {gateway!r}")
        rate = entry.get("rate", 0.0)
        if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0 <= rate < 1e9:
            raise entry.error("rate", f"expected a number >= 0, got {rate!r}")
        seen.add(digits)
        result.append(Route(digits, address.transport, address.host, address.port, float(rate)))
    return result


def _peers(data: dict[str, Any], orgs: dict[int, Organization]) -> list[TrustedPeer]:
    result: list[TrustedPeer] = []
    seen: set[tuple[str, int | None]] = set()
    for entry in _entries(data, "peers"):
        address = entry.string("address", required=True)
        try:
            host, port = parse_host_port(address)
        except ValueError as exc:
            raise entry.error("address", f"expected 'HOST' or 'HOST:PORT' ({exc})") from None
        if port == 0:
            raise entry.error("address", f"port 0 cannot be a sender's port: {address!r}")
        if (host, port) in seen:
            raise entry.error("address", f"duplicate peer {address!r}")
        org_id = entry.integer("organization")
        if org_id not in orgs:
            raise entry.error("organization", f"unknown organization {org_id}")
        seen.add((host, port))
        result.append(TrustedPeer(host, port, org_id))
    return result


def directory_from_dict(data: dict[str, Any]) -> Directory:
    """Check and build a Directory from parsed TOML."""
    for section in data:
        if section not in _KNOWN:
            known = ", ".join(f"[[{name}]]" for name in _KNOWN)
            raise DirectoryError(section, f"unknown section (known: {known})")
    organizations = _organizations(data)
    orgs = {org.id: org for org in organizations}
    users = _users(data, orgs)
    users_by_id = {user.id: user for user in users}
    return Directory(
        organizations=organizations,
        users=users,
        extensions=_extensions(data, orgs, users_by_id),
        apps=_apps(data, orgs, users_by_id),
        routes=_routes(data),
        peers=_peers(data, orgs),
    )


def parse_directory(text: str, source: str = "<directory>") -> Directory:
    """Build a Directory from TOML text; syntax errors name ``source``."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise DirectoryError(source, f"invalid TOML: {exc}") from None
    return directory_from_dict(data)


def load_directory(path: str | Path) -> Directory:
    """Read and check a directory file; ``DirectoryError`` on any problem."""
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as exc:
        raise DirectoryError(str(path), f"cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise DirectoryError(str(path), f"not UTF-8 text: {exc}") from None
    directory = parse_directory(text, str(path))
    logger.debug(
        "loaded directory %s: %d organizations, %d extensions",
        path,
        len(directory.organizations),
        len(directory.extensions),
    )
    return directory


DEMO_DIRECTORY_TOML = """\
# The built-in demo directory (what `b2bua serve` uses without [directory] file).

[[organizations]]
id = 3
code = "0003"
name = "Demo Org"

[[organizations]]
id = 4
code = "0004"
name = "Other Org"

[[users]]
id = 12
organization = 3
name = "John Doe"

[[users]]
id = 13
organization = 3
name = "Jane Roe"

[[users]]
id = 20
organization = 4
name = "Max Mustermann"

[[extensions]]
number = "210"
organization = 3
user = 12
type = "phone_terminal"
caller_id = "John Doe <4242425>"
password = "secret210"
allow_caller_id = true

[[extensions]]
number = "211"
organization = 3
user = 13
type = "phone_terminal"
caller_id = "Jane Roe <4242426>"
password = "secret211"
allow_caller_id = true

[[extensions]]
number = "212"
organization = 3
user = 12
type = "phone_terminal"
caller_id = "John Doe <4242427>"
password = "secret212"
allow_caller_id = false

[[extensions]]
number = "300"
organization = 3
user = 12
type = "queue"

[[extensions]]
number = "210"
organization = 4
user = 20
type = "phone_terminal"
caller_id = "Max Mustermann <5550210>"
password = "secret4210"
allow_caller_id = true

[[apps]]
client_id = "demo-user-app"
client_secret = "demo-user-secret"
owner = "user:12"

[[apps]]
client_id = "demo-org-app"
client_secret = "demo-org-secret"
owner = "organization:3"

[[apps]]
client_id = "demo-admin-app"
client_secret = "demo-admin-secret"
owner = "admin"

[[apps]]
client_id = "other-org-app"
client_secret = "other-org-secret"
owner = "organization:4"

[[routes]]
prefix = ""
gateway = "udp:127.0.0.1:5080"
rate = 0.02

[[peers]]
address = "127.0.0.1:5090"
organization = 3
"""


def demo_directory() -> Directory:
    """The built-in demo directory (``DEMO_DIRECTORY_TOML``)."""
    return parse_directory(DEMO_DIRECTORY_TOML, "<demo directory>")
