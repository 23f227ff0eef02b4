"""What every store backend offers the engine: the ``Store`` protocol and its records."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from engine.errors import ServiceUnavailable
from engine.model import PhoneCall


class StoreError(Exception):
    """The store cannot be opened or used (bad URL, unreadable file, newer schema...)."""


class StoreUnavailable(StoreError, ServiceUnavailable):
    """The store's server cannot be reached right now (connection refused or lost); the
    operation may succeed when it is back."""


@dataclass(frozen=True, slots=True)
class ContactRecord:
    """One registered device of an extension (RFC 3261 section 10 binding)."""

    extended: str  # "0003*210"
    contact_uri: str  # the Contact URI as registered
    received: str  # where the REGISTER came from: "HOST:PORT TRANSPORT", e.g. "127.0.0.1:5062 udp"
    expires_at: float  # wall-clock epoch seconds
    call_id: str
    cseq: int
    path: tuple[str, ...] = ()  # RFC 3327 Path values of the REGISTER, first hop first


@dataclass(frozen=True, slots=True)
class DialogRecord:
    """The stored dialog state of one answered leg (``engine.dialogs``): enough for any node
    to end it with a BYE when the node that owns its call is gone."""

    sip_call_id: str
    local_tag: str
    phonecall: str  # the PhoneCall the leg belongs to
    node: str  # the node that owns the call
    data: str  # JSON, see engine.dialogs.LegDialog


@dataclass(frozen=True, slots=True)
class NodeBeat:
    """A node's last heartbeat and the base URL of its API (None: unknown)."""

    node: str
    at: float
    api: str | None


class Store(Protocol):
    @property
    def available(self) -> bool: ...
    def save_call(self, call: PhoneCall, *, durable: bool = False) -> None: ...
    def flush(self) -> None: ...
    def get_call(self, call_id: str) -> PhoneCall | None: ...
    def find_call_by_nonce(self, user_id: int, nonce: str) -> PhoneCall | None: ...
    def claim_nonce(self, user_id: int, nonce: str, call_id: str) -> str: ...
    def list_calls(
        self,
        *,
        user_id: int | None = None,
        extension: str | None = None,
        organization_id: int | None = None,
        ended: bool | None = None,
        limit: int | None = None,
        offset: int = 0,
        newest_first: bool = False,
    ) -> list[PhoneCall]: ...
    def count_calls(
        self,
        *,
        user_id: int | None = None,
        extension: str | None = None,
        organization_id: int | None = None,
        ended: bool | None = None,
    ) -> int: ...
    def live_calls(self) -> list[PhoneCall]: ...
    def save_contact(
        self,
        extended: str,
        contact_uri: str,
        received: str,
        expires_at: float,
        call_id: str,
        cseq: int,
        path: tuple[str, ...] = (),
    ) -> None: ...
    def remove_contact(self, extended: str, contact_uri: str) -> None: ...
    def remove_contacts(self, extended: str) -> None: ...
    def contacts(self, extended: str, now: float) -> list[ContactRecord]: ...
    def purge_expired(self, now: float) -> int: ...
    def advance_nonce_count(self, nonce: str, nc: int, expires: float) -> bool: ...
    def setting(self, name: str) -> str | None: ...
    def setting_default(self, name: str, value: str) -> str: ...
    def beat(self, node: str, at: float, api: str | None = None) -> None: ...
    def last_beat(self, node: str) -> float | None: ...
    def nodes(self) -> list[NodeBeat]: ...
    def live_calls_of(self, node: str) -> list[PhoneCall]: ...
    def claim_calls(self, dead: str, survivor: str) -> list[PhoneCall]: ...
    def save_dialog(self, record: DialogRecord) -> None: ...
    def remove_dialog(self, sip_call_id: str, local_tag: str) -> None: ...
    def dialogs_of(self, phonecall: str) -> list[DialogRecord]: ...
    def close(self) -> None: ...
