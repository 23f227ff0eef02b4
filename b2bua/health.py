"""``GET /health``: whether this server can take calls, part by part.

200 ``{"status": "ok", "sip": "ok", "media": "ok", "store": "ok"}`` when the SIP endpoint
serves, the relay process runs and the store is reachable: SQLite answers a cheap query (this
node's last heartbeat); PostgreSQL, which a query could block on, counts as reachable while
the store service's own probe and writes succeed (``StoreService.available``). 503
otherwise, with ``status`` ``"draining"`` while the server drains (SIGTERM, Ctrl-C, a dead
relay) or ``"failing"``, and each failing part saying why in its own key, so a load balancer
takes the node out and an operator sees which part to look at.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from engine.engine import Engine
from engine.store import Store
from engine.store.service import StoreService
from sip.endpoint import SipEndpoint

__all__ = ["HealthCheck"]

logger = logging.getLogger(__name__)


class HealthCheck:
    def __init__(
        self,
        *,
        engine: Engine,
        endpoint: SipEndpoint,
        store: Store | StoreService,
        media_alive: Callable[[], bool],
        node: str,
        query_store: bool = True,
    ) -> None:
        self.engine = engine
        self.endpoint = endpoint
        self.store = store
        self.media_alive = media_alive
        self.node = node
        self.query_store = query_store

    def parts(self) -> dict[str, str]:
        """Each part: "ok" or what is wrong with it."""
        sip = "ok" if self.endpoint.serving else "the SIP endpoint is not serving"
        media = "ok" if self.media_alive() else "the relay process is not running"
        store = "ok" if self.store.available else "the store is unreachable"
        if store == "ok" and self.query_store:
            try:
                self.store.last_beat(self.node)
            except Exception as exc:
                store = f"the store does not answer: {exc}"
        return {"sip": sip, "media": media, "store": store}

    def health(self) -> tuple[int, dict[str, Any]]:
        parts = self.parts()
        failing = [name for name, state in parts.items() if state != "ok"]
        if self.engine.draining:
            status = "draining"
        elif failing:
            status = "failing"
        else:
            return 200, {"status": "ok", **parts}
        return 503, {"status": status, **parts, "failing": failing}
