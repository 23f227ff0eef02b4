"""SIP digest nonce counts kept in the store, so every node sharing it refuses a replay.

``StoreNonceCounts`` is a ``sip.auth.NonceCounts``: a nonce's highest accepted count (``nc``)
is one row of ``nonce_counts``, advanced by one atomic upsert, so a credential replayed to
another node is refused there too. While the store is unreachable it falls back to a memory
of this process (still no replay to this node; the nonces it accepts meanwhile are not known
to the others). The rows go at ``expires`` (``purge_expired``).

Each check is a round trip to the database on the caller's thread (the trio thread, for the
SIP path): give it a store of its own (``open_store(url)`` again: its own connection), not the
one the write-behind queue uses, so that a check never waits for a batch being written.
"""

from __future__ import annotations

import logging

from engine.store.interface import Store, StoreError
from sip.auth import MemoryNonceCounts, NonceCounts

logger = logging.getLogger(__name__)


class StoreNonceCounts:
    def __init__(self, store: Store, *, fallback: NonceCounts | None = None) -> None:
        self.store = store
        self.fallback: NonceCounts = fallback or MemoryNonceCounts()
        self._failing = False

    def advance(self, nonce: str, nc: int, *, issued: float, expires: float, now: float) -> bool:
        if expires < now:
            return False
        if self.store.available:
            try:
                accepted = self.store.advance_nonce_count(nonce, nc, expires)
            except StoreError as exc:
                if not self._failing:
                    logger.warning("digest nonce counts: store failed (%s); in memory now", exc)
                self._failing = True
            else:
                if self._failing:
                    logger.info("digest nonce counts: in the store again")
                self._failing = False
                return accepted
        return self.fallback.advance(nonce, nc, issued=issued, expires=expires, now=now)
