"""Digest nonce counts kept in the store, so every node of a cluster refuses a replay.

Nonces are signed with a key derived from ``[cluster] secret`` (``engine.keys``), so a nonce
issued by one node is valid on all of them; the count (``nc``) each nonce has reached must then
be shared too, or a credential replayed to another node would pass. ``StoreNonceCounts`` is
the ``sip.auth.NonceCounts`` of the store: one atomic statement per authenticated request
(``Store.advance_nonce``: insert the count, or raise it only if the new one is higher), and
expired rows are purged with expired registrations.
"""

from __future__ import annotations

import logging

from engine.store import Store

logger = logging.getLogger(__name__)


class StoreNonceCounts:
    """A ``sip.auth.NonceCounts`` shared through ``store``."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def advance(self, nonce: str, nc: int, *, issued: float, expires: float, now: float) -> bool:
        if expires < now:
            return False
        try:
            return self.store.advance_nonce(nonce, nc, expires)
        except Exception as exc:  # the store is down: refuse (the phone is challenged again)
            logger.warning("digest nonce count not checked, store failed: %s", exc)
            return False
