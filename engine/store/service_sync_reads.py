"""The synchronous reads of ``StoreService`` (the ``Store`` protocol's ``get_call``,
``list_calls``...): for start-up (recovery, the signing secret) and embedders. They hold the
backend's lock; on PostgreSQL they block on the database. The contacts, read synchronously on
the SIP path, are in ``service_contacts``.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TypeVar

from engine.model import PhoneCall
from engine.store.interface import DialogRecord, NodeBeat
from engine.store.service_core import ServiceCore

T = TypeVar("T")


class SyncReads(ServiceCore):
    """The backend's reads, called in place under its lock."""

    def _blocking(self, fn: Callable[[], T]) -> T:
        with self._lock:
            return fn()

    def get_call(self, call_id: str) -> PhoneCall | None:
        return self._blocking(partial(self.backend.get_call, call_id))

    def find_call_by_nonce(self, user_id: int, nonce: str) -> PhoneCall | None:
        return self._blocking(partial(self.backend.find_call_by_nonce, user_id, nonce))

    def claim_nonce(self, user_id: int, nonce: str, call_id: str) -> str:
        return self._blocking(partial(self.backend.claim_nonce, user_id, nonce, call_id))

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
    ) -> list[PhoneCall]:
        return self._blocking(
            partial(
                self.backend.list_calls,
                user_id=user_id,
                extension=extension,
                organization_id=organization_id,
                ended=ended,
                limit=limit,
                offset=offset,
                newest_first=newest_first,
            )
        )

    def count_calls(
        self,
        *,
        user_id: int | None = None,
        extension: str | None = None,
        organization_id: int | None = None,
        ended: bool | None = None,
    ) -> int:
        return self._blocking(
            partial(
                self.backend.count_calls,
                user_id=user_id,
                extension=extension,
                organization_id=organization_id,
                ended=ended,
            )
        )

    def live_calls(self) -> list[PhoneCall]:
        return self._blocking(self.backend.live_calls)

    def purge_expired(self, now: float) -> int:
        return self._blocking(partial(self.backend.purge_expired, now))

    def advance_nonce_count(self, nonce: str, nc: int, expires: float) -> bool:
        return self._blocking(partial(self.backend.advance_nonce_count, nonce, nc, expires))

    def setting(self, name: str) -> str | None:
        return self._blocking(partial(self.backend.setting, name))

    def setting_default(self, name: str, value: str) -> str:
        return self._blocking(partial(self.backend.setting_default, name, value))

    def last_beat(self, node: str) -> float | None:
        return self._blocking(partial(self.backend.last_beat, node))

    def nodes(self) -> list[NodeBeat]:
        return self._blocking(self.backend.nodes)

    def live_calls_of(self, node: str) -> list[PhoneCall]:
        return self._blocking(partial(self.backend.live_calls_of, node))

    def claim_calls(self, dead: str, survivor: str) -> list[PhoneCall]:
        return self._blocking(partial(self.backend.claim_calls, dead, survivor))

    def dialogs_of(self, phonecall: str) -> list[DialogRecord]:
        return self._blocking(partial(self.backend.dialogs_of, phonecall))
