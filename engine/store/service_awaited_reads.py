"""The awaited reads of ``StoreService`` (``aget_call``, ``alist_calls``, ``acount_calls``,
``aclaim_nonce``, ``afind_call_by_nonce``...), which the API and the cluster use: with
PostgreSQL they run in the worker thread, after the writes queued before them have landed (a
client reads what it wrote), and refuse at once while the store is unreachable. SQLite is
called in place.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TypeVar

from engine.model import PhoneCall
from engine.store.interface import DialogRecord, NodeBeat, StoreUnavailable
from engine.store.service_core import ServiceCore

T = TypeVar("T")


class AwaitedReads(ServiceCore):
    """The backend's reads, awaited in the worker thread."""

    async def _read(self, fn: Callable[[], T]) -> T:
        if not self.queued:
            return fn()
        self._check_available()
        # the writes queued before this read land first: a client reads what it did
        await self._writes.wait_landed(self._check_available, self.stuck / 2)
        try:
            result = await self._in_thread(fn)
        except StoreUnavailable as exc:
            self._mark_down(exc)
            raise
        self._mark_up()
        return result

    async def aget_call(self, call_id: str) -> PhoneCall | None:
        return await self._read(partial(self.backend.get_call, call_id))

    async def afind_call_by_nonce(self, user_id: int, nonce: str) -> PhoneCall | None:
        return await self._read(partial(self.backend.find_call_by_nonce, user_id, nonce))

    async def aclaim_nonce(self, user_id: int, nonce: str, call_id: str) -> str:
        return await self._read(partial(self.backend.claim_nonce, user_id, nonce, call_id))

    async def alist_calls(
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
        return await self._read(
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

    async def acount_calls(
        self,
        *,
        user_id: int | None = None,
        extension: str | None = None,
        organization_id: int | None = None,
        ended: bool | None = None,
    ) -> int:
        return await self._read(
            partial(
                self.backend.count_calls,
                user_id=user_id,
                extension=extension,
                organization_id=organization_id,
                ended=ended,
            )
        )

    async def anodes(self) -> list[NodeBeat]:
        return await self._read(self.backend.nodes)

    async def aclaim_calls(self, dead: str, survivor: str) -> list[PhoneCall]:
        return await self._read(partial(self.backend.claim_calls, dead, survivor))

    async def adialogs_of(self, phonecall: str) -> list[DialogRecord]:
        return await self._read(partial(self.backend.dialogs_of, phonecall))

    async def apurge_expired(self, now: float) -> int:
        return await self._read(partial(self.backend.purge_expired, now))
