"""The directory's model: organizations, users, extensions, Apps, routes and trusted peers.

A ``Directory`` is built once (by :mod:`engine.directory.loader` from a checked TOML file) and
read-only afterwards; its lookups give None (or []) for what is not there.  ``DirectoryError``
is how a bad directory file is reported: every problem of the file, each naming the entry and
key, e.g. ``extensions[2].user: unknown user 99``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum


class DirectoryError(Exception):
    """A bad directory: ``key`` is e.g. ``extensions[2].type``, ``problem`` says why.

    One error stands for every problem of a file: ``problems`` lists each as ``(key,
    problem)``, ``key``/``problem`` are the first, and the text has one line each, prefixed
    with the file's name when it came from one (``file``)."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(key, problem)
        self.key = key
        self.problem = problem
        self.problems: tuple[tuple[str, str], ...] = ((key, problem),)
        self.file: str | None = None

    @classmethod
    def of(cls, problems: Sequence[tuple[str, str]]) -> DirectoryError:
        """One error for every problem found (at least one)."""
        error = cls(*problems[0])
        error.problems = tuple(problems)
        return error

    def __str__(self) -> str:
        def where(key: str) -> str:
            return f"{self.file}: {key}" if self.file is not None and key != self.file else key

        return "\n".join(f"{where(key)}: {problem}" for key, problem in self.problems)


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
    pin: str | None = None  # conference extensions: the PIN a ConferenceInvite must give


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
