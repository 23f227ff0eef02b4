"""This node's heartbeat in the store: its last sign of life.

After a crash (kill -9, power off) nothing says when the process died; the last beat does, to
within one interval. ``Engine.recover`` ends the calls that were live at the crash there, so
their duration and charge count up to the last beat rather than to the restart.

A beat is one upsert of one row, committed on its own: ~43 µs (SQLite WAL) every
``[cluster] heartbeat`` seconds, the same whatever the number of calls. On PostgreSQL it goes
through the store's write-behind queue: while the database is unreachable the beats wait
there (merged into the latest) and land when it is back, so the gap in a node's beats during
an outage of the store is the store's, not the node's: whoever judges a node dead by its
last beat counts its silence only from ``StoreService.up_since`` (the store's own return).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import trio

if TYPE_CHECKING:
    from engine.store import Store

logger = logging.getLogger(__name__)


async def heartbeat(
    store: Store,
    node: str,
    interval: float,
    *,
    api: str | None = None,
    wall_clock: Callable[[], float] = time.time,
) -> None:
    """Record ``node``'s beat now and every ``interval`` seconds until cancelled, with ``api``,
    the base URL where other nodes reach its API. A store that refuses a beat is logged (once
    until it takes one again) and never stops the server."""
    failing = False
    while True:
        try:
            # a queued store keeps it (the latest) for its return
            store.beat(node, wall_clock(), api)
            if not store.available:
                raise OSError("the store is unreachable")
        except Exception as exc:
            if not failing:
                logger.warning("heartbeat of node %s not recorded: %s", node, exc)
            failing = True
        else:
            if failing:
                logger.info("heartbeat of node %s recorded again", node)
            failing = False
        await trio.sleep(interval)
