"""SIP transaction timers (RFC 3261 §17, Table 4; RFC 6026 §8.4/§8.7) and a deadline queue.

Theory of operation
-------------------
Every transaction timer derives from three base values in one :class:`TimerConfig`:
T1 (RTT estimate, 500 ms), T2 (cap on non-INVITE request and INVITE response retransmission
intervals, 4 s) and T4 (how long the network may hold a message, 5 s).  RFC 3261 Table 4:

====  ==================  ================================================
A     T1, doubling        INVITE request retransmit (unreliable only)
B     64*T1               INVITE transaction timeout (Calling)
D     >= 32 s / 0         wait for response retransmits (we use 64*T1)
E     T1, doubling to T2  non-INVITE request retransmit (unreliable only)
F     64*T1               non-INVITE transaction timeout
G     T1, doubling to T2  INVITE final response retransmit (unreliable only)
H     64*T1               wait for ACK receipt
I     T4 / 0              wait for ACK retransmits
J     64*T1 / 0           wait for non-INVITE request retransmits
K     T4 / 0              wait for response retransmits
L     64*T1               wait for accepted INVITE request retransmits (RFC 6026)
M     64*T1               wait for retransmissions of 2xx to INVITE (RFC 6026)
====  ==================  ================================================

The values after the slash are the ones for reliable transports: the properties give the
unreliable value and the transactions use 0 (and no retransmission timers) when
``peer.reliable``.  Timer D is 64*T1, which is the RFC's 32 s at the default T1 and scales
with T1 like the server's Timer H it must outlast.

:class:`TimerQueue` is the sans-IO scheduler: a binary heap of ``(deadline, token, key)``
entries.  Cancelling only forgets the token (O(1)); a cancelled entry is skipped when it
reaches the top of the heap.  When dead entries outnumber live ones the heap is rebuilt, so
memory stays proportional to the live timers and every operation is O(log n) amortised.
Time is always an argument; nothing here reads a clock.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from typing import Generic, TypeVar

__all__ = ["TimerConfig", "TimerQueue"]

K = TypeVar("K")

# Rebuild the heap when it holds more than this many entries beyond twice the live ones.
_COMPACT_SLACK = 64


@dataclass(frozen=True, slots=True)
class TimerConfig:
    """The base intervals (seconds) every transaction timer derives from."""

    t1: float = 0.5
    t2: float = 4.0
    t4: float = 5.0

    def __post_init__(self) -> None:
        if not (self.t1 > 0 and self.t2 >= self.t1 and self.t4 > 0):
            raise ValueError(
                f"TimerConfig needs 0 < t1 <= t2 and t4 > 0, got t1={self.t1} t2={self.t2} "
                f"t4={self.t4}"
            )

    @property
    def timer_a(self) -> float:
        """Initial INVITE request retransmit interval (doubles each time, no cap)."""
        return self.t1

    @property
    def timer_b(self) -> float:
        """INVITE client transaction timeout in Calling."""
        return 64 * self.t1

    @property
    def timer_d(self) -> float:
        """INVITE client Completed linger (callers use 0 over reliable transports)."""
        return 64 * self.t1

    @property
    def timer_e(self) -> float:
        """Initial non-INVITE request retransmit interval (doubles, capped at T2)."""
        return self.t1

    @property
    def timer_f(self) -> float:
        """Non-INVITE client transaction timeout."""
        return 64 * self.t1

    @property
    def timer_g(self) -> float:
        """Initial INVITE final response retransmit interval (doubles, capped at T2)."""
        return self.t1

    @property
    def timer_h(self) -> float:
        """INVITE server Completed: how long to wait for the ACK."""
        return 64 * self.t1

    @property
    def timer_i(self) -> float:
        """INVITE server Confirmed linger (callers use 0 over reliable transports)."""
        return self.t4

    @property
    def timer_j(self) -> float:
        """Non-INVITE server Completed linger (callers use 0 over reliable transports)."""
        return 64 * self.t1

    @property
    def timer_k(self) -> float:
        """Non-INVITE client Completed linger (callers use 0 over reliable transports)."""
        return self.t4

    @property
    def timer_l(self) -> float:
        """INVITE server Accepted linger (RFC 6026), all transports."""
        return 64 * self.t1

    @property
    def timer_m(self) -> float:
        """INVITE client Accepted linger (RFC 6026), all transports."""
        return 64 * self.t1


class TimerQueue(Generic[K]):
    """Deadlines keyed by an opaque ``key``; each scheduled timer is named by an int token."""

    __slots__ = ("_heap", "_live", "_next_token")

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, K]] = []
        self._live: set[int] = set()
        self._next_token = 1

    def __len__(self) -> int:
        """Number of live (scheduled, not cancelled, not fired) timers."""
        return len(self._live)

    def schedule(self, deadline: float, key: K) -> int:
        """Add a timer; return its token (never 0, so 0 can mean "no timer")."""
        token = self._next_token
        self._next_token = token + 1
        heapq.heappush(self._heap, (deadline, token, key))
        self._live.add(token)
        if len(self._heap) > 2 * len(self._live) + _COMPACT_SLACK:
            self._compact()
        return token

    def cancel(self, token: int) -> None:
        """Forget a timer; a token that already fired or was cancelled is ignored."""
        self._live.discard(token)

    def earliest(self) -> float | None:
        """The earliest live deadline, or None."""
        heap = self._heap
        live = self._live
        while heap and heap[0][1] not in live:
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    def pop_due(self, now: float) -> tuple[K, int] | None:
        """Remove and return ``(key, token)`` of the earliest live timer due at ``now``."""
        heap = self._heap
        live = self._live
        while heap:
            deadline, token, key = heap[0]
            if token not in live:
                heapq.heappop(heap)
                continue
            if deadline > now:
                return None
            heapq.heappop(heap)
            live.remove(token)
            return key, token
        return None

    def _compact(self) -> None:
        live = self._live
        self._heap = [entry for entry in self._heap if entry[1] in live]
        heapq.heapify(self._heap)
