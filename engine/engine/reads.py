"""Reading calls: the live ones from the Engine's own copies, the others from the store;
the registered devices; following a call's events (``subscribe``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import trio

from engine.engine.events import CallEvent
from engine.engine.state import EngineState
from engine.keys import cluster_secret
from engine.model import CallState, PartyStatus, PhoneCall

if TYPE_CHECKING:
    from engine.store import ContactRecord


class CallReads(EngineState):
    """What the API and embedders read; the ``a``-prefixed reads wait in a worker thread."""

    @property
    def live_count(self) -> int:
        return len(self._live)

    @property
    def live_legs(self) -> int:
        """Parties of live calls being rung or talking (not yet ended): one leg each."""
        return sum(
            1
            for entry in self._live.values()
            for party in entry.runner.call.parties
            if party.ended is None and party.status is not PartyStatus.UNKNOWN
        )

    def get_call(self, call_id: str) -> PhoneCall | None:
        entry = self._live.get(call_id)
        if entry is not None:
            return entry.runner.call
        return self.store.get_call(call_id)

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
        """Calls by publish time (oldest first unless ``newest_first``), paged by the store;
        a live call is the engine's own current copy. ``ended``: only ended (True) or only
        unfinished (False) calls, by the stored state."""
        calls = self.store.list_calls(
            user_id=user_id,
            extension=extension,
            organization_id=organization_id,
            ended=ended,
            limit=limit,
            offset=offset,
            newest_first=newest_first,
        )
        return [self._live[c.id].runner.call if c.id in self._live else c for c in calls]

    def count_calls(
        self,
        *,
        user_id: int | None = None,
        extension: str | None = None,
        organization_id: int | None = None,
        ended: bool | None = None,
    ) -> int:
        """How many calls ``list_calls`` gives without a limit."""
        return self.store.count_calls(
            user_id=user_id, extension=extension, organization_id=organization_id, ended=ended
        )

    def live_calls(self) -> list[PhoneCall]:
        """The calls running in this engine now (current records), oldest first."""
        return [entry.runner.call for entry in self._live.values()]

    def registrations(self, extended: str) -> list[ContactRecord]:
        """The unexpired device bindings of extension ``extended``, oldest first."""
        return self.store.contacts(extended, self._wall_clock().timestamp())

    # The same reads without blocking the trio thread on a remote store (what the API uses):
    # awaited in a worker thread after this node's queued writes have landed.

    async def aget_call(self, call_id: str) -> PhoneCall | None:
        entry = self._live.get(call_id)
        if entry is not None:
            return entry.runner.call
        return await self.store.aget_call(call_id)

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
        calls = await self.store.alist_calls(
            user_id=user_id,
            extension=extension,
            organization_id=organization_id,
            ended=ended,
            limit=limit,
            offset=offset,
            newest_first=newest_first,
        )
        return [self._live[c.id].runner.call if c.id in self._live else c for c in calls]

    async def acount_calls(
        self,
        *,
        user_id: int | None = None,
        extension: str | None = None,
        organization_id: int | None = None,
        ended: bool | None = None,
    ) -> int:
        return await self.store.acount_calls(
            user_id=user_id, extension=extension, organization_id=organization_id, ended=ended
        )

    def signing_secret(self) -> bytes:
        """The secret that signing keys derive from (``engine.keys``): ``[cluster] secret``,
        or the one generated once and kept in the store."""
        return cluster_secret(self.config.cluster, self.store)

    @asynccontextmanager
    async def subscribe(self, call_id: str) -> AsyncIterator[trio.MemoryReceiveChannel[CallEvent]]:
        """Events of one call: the history so far, then live ones; closes after the final one."""
        send, receive = trio.open_memory_channel[CallEvent](1024)
        entry = self._live.get(call_id)
        if entry is not None:
            for item in entry.history:
                send.send_nowait(item)
            entry.subscribers.append(send)
        else:
            call = await self.store.aget_call(call_id)
            if call is not None and call.state is CallState.ENDED:
                send.send_nowait(
                    CallEvent(
                        call.id,
                        max(call.events, 1),  # the final event's own seq
                        "ended",
                        str(call.state),
                        call.ended or self._wall_clock(),
                        {"disposition": int(call.disposition or 0), "cause": call.hangup_cause},
                        True,
                    )
                )
            send.close()
        try:
            async with receive:
                yield receive
        finally:
            if entry is not None and send in entry.subscribers:
                entry.subscribers.remove(send)
