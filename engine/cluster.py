"""Failover: a node that stops beating loses its live calls to exactly one survivor.

Every node writes its heartbeat (and its API address) to the shared store every
``[cluster] heartbeat`` s (``engine.heartbeat``) and watches the others' (``ClusterMonitor``).
A node whose last beat is older than ``[cluster] failover`` s is dead: each survivor tries to
claim its live calls with one atomic statement (``Store.claim_calls``: ``UPDATE calls SET node =
me WHERE node = dead AND state != 'ended' RETURNING ...``), so every call goes to one survivor
only, however many race. The claimer ends each call's record at the dead node's last beat
(``Engine.settle``: charge up to it, ``hangupCause`` saying the node failed, one final event),
hands the calls to ``on_settled`` (their final statusCallback) and BYEs every answered leg from
the dialog state the dead node stored (``engine.dialogs``). A node restarting on its own store
does the same for its own calls (``Engine.recover``, then ``bye_stored_legs``).

The store being down stops every node's beats at once: silence measured while the store was
down (or before this node could read it) counts for nothing, so heartbeats missed during an
outage make no node dead (a node is dead only when its beat is older than ``failover`` s *and*
the store has answered this node for ``failover`` s).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import trio

from engine.dialogs import send_stored_bye
from engine.model import PhoneCall

if TYPE_CHECKING:
    from engine.engine import Engine
    from engine.store.service import StoreService
    from sip.endpoint import SipEndpoint

logger = logging.getLogger(__name__)


async def bye_stored_legs(
    endpoint: SipEndpoint, store: StoreService, calls: list[PhoneCall]
) -> int:
    """BYE every answered leg stored for ``calls`` (at once), drop the rows; how many BYEs
    were sent."""
    records = []
    for call in calls:
        try:
            records.extend(await store.adialogs_of(call.id))
        except Exception:
            logger.exception("call %s: cannot read its stored legs", call.id)
    if not records:
        return 0

    async def one(record_index: int) -> None:
        record = records[record_index]
        try:
            status = await send_stored_bye(endpoint, record)
        except Exception:
            logger.exception("call %s: BYE to a stored leg failed", record.phonecall)
            status = None
        logger.info(
            "call %s: stored leg %s BYE answered %s",
            record.phonecall,
            record.sip_call_id,
            status if status is not None else "nothing",
        )
        try:
            store.remove_dialog(record.sip_call_id, record.local_tag)
        except Exception:
            logger.exception("call %s: cannot drop a stored leg", record.phonecall)

    async with trio.open_nursery() as nursery:
        for index in range(len(records)):
            nursery.start_soon(one, index)
    return len(records)


async def owner_api(engine: Engine, call_id: str, *, now: float | None = None) -> str | None:
    """The API address of the node that runs call ``call_id`` when that is another node
    alive (its last beat within ``[cluster] failover`` s); None for this node's calls,
    finished or unknown calls, and owners that are gone (failover settles their calls)."""
    call = await engine.aget_call(call_id)
    me = engine.config.cluster.node
    if call is None or call.ended is not None or call.node in ("", me):
        return None
    now = time.time() if now is None else now
    for beat in await engine.store.anodes():
        if beat.node == call.node:
            if beat.api and now - beat.at <= engine.config.cluster.failover:
                return beat.api
            return None
    return None


async def live_peers(engine: Engine, *, now: float | None = None) -> list[str]:
    """The API addresses of the other nodes alive now (last beat within ``failover`` s)."""
    now = time.time() if now is None else now
    me = engine.config.cluster.node
    failover = engine.config.cluster.failover
    return [
        beat.api
        for beat in await engine.store.anodes()
        if beat.node != me and beat.api and now - beat.at <= failover
    ]


class ClusterMonitor:
    """Watches the other nodes' heartbeats and takes over the calls of dead ones."""

    def __init__(
        self,
        engine: Engine,
        endpoint: SipEndpoint,
        *,
        on_settled: Callable[[list[PhoneCall]], None] = lambda calls: None,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.engine = engine
        self.store = engine.store
        self.endpoint = endpoint
        cluster = engine.config.cluster
        self.node = cluster.node
        self.failover = float(cluster.failover)
        self.interval = max(0.1, min(float(cluster.heartbeat), self.failover / 4))
        self.on_settled = on_settled
        self._now = wall_clock
        self._store_up_since: float | None = None  # since when the store answers us

    async def run(self) -> None:
        """Check every ``interval`` s until cancelled."""
        async with trio.open_nursery() as nursery:
            while True:
                for calls in await self.check():
                    nursery.start_soon(bye_stored_legs, self.endpoint, self.store, calls)
                await trio.sleep(self.interval)

    async def check(self) -> list[list[PhoneCall]]:
        """One look at the heartbeats: the calls taken over from each dead node (settled
        already; their legs still to BYE)."""
        now = self._now()
        try:
            nodes = await self.store.anodes()
        except Exception as exc:
            if self._store_up_since is not None:
                logger.warning("cluster: heartbeats unreadable, nobody declared dead: %s", exc)
            self._store_up_since = None
            return []
        if self._store_up_since is None:
            self._store_up_since = now
        taken: list[list[PhoneCall]] = []
        for beat in nodes:
            if beat.node == self.node:
                continue
            silent_since = max(beat.at, self._store_up_since)
            if now - silent_since <= self.failover:
                continue
            try:
                calls = await self.store.aclaim_calls(beat.node, self.node)
            except Exception:
                logger.exception("cluster: cannot claim the calls of node %s", beat.node)
                continue
            if not calls:
                continue
            logger.warning(
                "cluster: node %s silent for %.1f s (last beat %s): ending its %d live calls",
                beat.node,
                now - beat.at,
                datetime.fromtimestamp(beat.at, UTC).isoformat(),
                len(calls),
            )
            self.engine.settle(
                calls,
                datetime.fromtimestamp(beat.at, UTC),
                f"node {beat.node} failed (silent for {self.failover:g} s)",
            )
            self.on_settled(calls)
            taken.append(calls)
        return taken
