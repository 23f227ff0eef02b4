"""The engine as the HTTP facade sees it: ``EngineApi``, everything ``api/`` may call.

``api/`` holds an ``EngineApi``, never an ``Engine``: the facade can reach only what is listed
here, every name is typed, and a test can hand it any object of this shape. ``Engine``
satisfies it (mypy checks ``_engine_is_an_engine_api`` below). Refusals are the domain
exceptions of ``engine.errors``; the facade maps them to UAPI errors.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import Protocol

import trio

from engine.config_model import Config
from engine.directory import Directory
from engine.engine import CallAction, CallEvent, Engine, OriginateRequest
from engine.model import PhoneCall
from engine.store import ContactRecord


class EngineApi(Protocol):
    """Call control and reads for the facade (``engine.engine.Engine`` documents each)."""

    @property
    def config(self) -> Config:
        """The server's configuration ([calls] defaults, [api] callback_allow...)."""

    @property
    def directory(self) -> Directory:
        """Organizations, users, extensions and Apps, as loaded at start-up."""

    @property
    def draining(self) -> bool:
        """True once the server is shutting down: new calls raise ``EngineDraining``."""

    async def originate(self, req: OriginateRequest) -> tuple[PhoneCall, bool]:
        """Store and start a call: ``(call, False)`` when the user's nonce was seen before."""

    def get_call(self, call_id: str) -> PhoneCall | None:
        """A live call's current record, else the stored one, else None."""

    def list_calls(
        self,
        *,
        user_id: int | None = None,
        extension: str | None = None,
        limit: int | None = None,
        offset: int = 0,
        newest_first: bool = False,
        organization_id: int | None = None,
        ended: bool | None = None,
    ) -> list[PhoneCall]:
        """Calls by publish time, paged by the store (live ones current)."""

    def count_calls(
        self,
        *,
        user_id: int | None = None,
        extension: str | None = None,
        organization_id: int | None = None,
        ended: bool | None = None,
    ) -> int:
        """How many calls ``list_calls`` gives without a limit."""

    def live_calls(self) -> list[PhoneCall]:
        """The calls running in this engine now."""

    def registrations(self, extended: str) -> list[ContactRecord]:
        """The unexpired device bindings of an extension."""

    async def aget_call(self, call_id: str) -> PhoneCall | None:
        """``get_call`` without blocking on a remote store (awaited in a worker thread)."""

    async def alist_calls(
        self,
        *,
        user_id: int | None = None,
        extension: str | None = None,
        limit: int | None = None,
        offset: int = 0,
        newest_first: bool = False,
        organization_id: int | None = None,
        ended: bool | None = None,
    ) -> list[PhoneCall]:
        """``list_calls`` without blocking on a remote store."""

    async def acount_calls(
        self,
        *,
        user_id: int | None = None,
        extension: str | None = None,
        organization_id: int | None = None,
        ended: bool | None = None,
    ) -> int:
        """``count_calls`` without blocking on a remote store."""

    async def hangup(self, call_id: str, phone_number: str | None = None) -> bool:
        """Hang up a live call (only if ``phone_number`` is one of its parties)."""

    async def act(self, call_id: str, action: CallAction) -> PhoneCall:
        """Do a PhoneCallAction on a live call, or raise an ``engine.errors.EngineError``."""

    def subscribe(
        self, call_id: str
    ) -> AbstractAsyncContextManager[trio.MemoryReceiveChannel[CallEvent]]:
        """The call's events: its history so far, then live ones; closed after the final one."""

    def signing_secret(self) -> bytes:
        """The secret the OAuth token key is derived from (``engine.keys.derive_key``)."""


def _engine_is_an_engine_api(engine: Engine) -> EngineApi:
    """Never called: mypy checks here that ``Engine`` has every member of ``EngineApi``."""
    return engine
