"""This node's heartbeat in the store: its last sign of life.

After a crash (kill -9, power off) nothing says when the process died; the last beat does, to
within one interval. ``Engine.recover`` ends the calls that were live at the crash there, so
their duration and charge count up to the last beat rather than to the restart.

A beat is one upsert of one row, committed on its own: ~43 µs (SQLite WAL) every
``[cluster] heartbeat`` seconds, the same whatever the number of calls.
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
            store.beat(node, wall_clock(), api)
        except Exception as exc:
            if not failing:
                logger.warning("heartbeat of node %s not recorded: %s", node, exc)
            failing = True
        else:
            if failing:
                logger.info("heartbeat of node %s recorded again", node)
            failing = False
        await trio.sleep(interval)
