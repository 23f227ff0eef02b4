"""Failed-authentication limiter: a back-off that grows, per source and per user (sans-IO).

Used by SIP digest (registrations and inbound calls) and by the API's token endpoint. Time is
an argument (seconds on any clock that only moves forward), so it is tested without waiting.

Three counters see each failure:

* ``(user, source)``: one user guessed from one address (``per_pair`` failures allowed);
* ``source``: one address, whatever users it tries (``per_source``);
* ``user``: one user from every address *that never succeeded for that user* (``per_user``):
  a distributed guess of one password slows down newcomers for that user, while the address
  the real client authenticates from keeps working.

Past its threshold a counter blocks for ``first_block`` seconds, doubling with each further
failure up to ``max_block``; a blocked request is refused before any password is checked (and
counts nothing). A success clears the ``(user, source)`` counter and marks the source good for
that user. Counters are forgotten ``forget`` seconds after their last failure. Each new block
is logged once, at WARNING, naming the service, the source and the user (for fail2ban-style
tools): ``sip digest: blocking source 192.0.2.7 (user '0003*210') for 4 s after 7 failed
attempts``.

Memory is bounded: at most ``max_entries`` counters and as many good (user, source) pairs, the
least recently used dropped first; users are cut to 128 characters and IPv6 sources are
counted per /64 (one host holds a whole /64).
"""

from __future__ import annotations

import ipaddress
import logging
import math
from collections import OrderedDict
from dataclasses import dataclass

logger = logging.getLogger(__name__)

MAX_USER_CHARS = 128


@dataclass(frozen=True, slots=True)
class LimiterPolicy:
    per_pair: int = 5
    per_source: int = 20
    per_user: int = 20
    first_block: float = 1.0
    max_block: float = 300.0
    forget: float = 900.0
    remember_good: float = 7 * 86400.0
    max_entries: int = 50_000


@dataclass(frozen=True, slots=True)
class Block:
    """A block that a failure just started (what the WARNING line says)."""

    source: str
    user: str
    seconds: float
    failures: int
    scope: str  # "source", "user at source" or "user"


@dataclass(slots=True)
class _Counter:
    failures: int
    last: float
    until: float


_Key = tuple[str, str, str]  # (scope, user, source)


def source_key(host: str) -> str:
    """The address a source is counted by: the host, or its /64 for IPv6."""
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return host[:MAX_USER_CHARS]
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is None:
        return str(ipaddress.IPv6Network(f"{address}/64", strict=False))
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(address)


class FailureLimiter:
    """Counts failed authentications and says when to refuse before checking."""

    def __init__(self, service: str, policy: LimiterPolicy | None = None) -> None:
        self.service = service
        self.policy = policy or LimiterPolicy()
        self._counters: OrderedDict[_Key, _Counter] = OrderedDict()
        self._good: OrderedDict[tuple[str, str], float] = OrderedDict()

    def __len__(self) -> int:
        return len(self._counters) + len(self._good)

    # --- the three questions ------------------------------------------------------------------

    def retry_after(self, user: str, source: str, now: float) -> float | None:
        """Seconds until ``user`` may try again from ``source``; None: check the password."""
        user, source = user[:MAX_USER_CHARS], source_key(source)
        self._expire(now)
        keys: list[_Key] = [("pair", user, source), ("source", "", source)]
        if not self._is_good(user, source, now):
            keys.append(("user", user, ""))
        waits = [c.until - now for k in keys if (c := self._counters.get(k)) and c.until > now]
        return max(waits) if waits else None

    def failure(self, user: str, source: str, now: float) -> Block | None:
        """Count a failed attempt; the Block it starts, if it starts one (logged once)."""
        user, source = user[:MAX_USER_CHARS], source_key(source)
        self._expire(now)
        p = self.policy
        keys: list[tuple[_Key, int, str]] = [
            (("pair", user, source), p.per_pair, "user at source"),
            (("source", "", source), p.per_source, "source"),
        ]
        if not self._is_good(user, source, now):
            keys.append((("user", user, ""), p.per_user, "user"))
        longest: Block | None = None
        for key, threshold, scope in keys:
            seconds, failures = self._count(key, threshold, now)
            if seconds and (longest is None or seconds > longest.seconds):
                longest = Block(source, user, seconds, failures, scope)
        if longest is not None:
            logger.warning(
                "%s: blocking source %s (user %r) for %d s after %d failed attempts (%s)",
                self.service,
                longest.source,
                longest.user,
                math.ceil(longest.seconds),
                longest.failures,
                longest.scope,
            )
        return longest

    def success(self, user: str, source: str, now: float) -> None:
        """A right password: forget the pair's failures and trust the source for the user."""
        user, source = user[:MAX_USER_CHARS], source_key(source)
        self._counters.pop(("pair", user, source), None)
        good = (user, source)
        self._good[good] = now
        self._good.move_to_end(good)
        while len(self._good) > self.policy.max_entries:
            self._good.popitem(last=False)

    # --- inside ---------------------------------------------------------------------------------

    def _count(self, key: _Key, threshold: int, now: float) -> tuple[float, int]:
        counter = self._counters.get(key)
        if counter is None or (now - counter.last > self.policy.forget and now >= counter.until):
            counter = _Counter(0, now, now)
            self._counters[key] = counter
            while len(self._counters) > self.policy.max_entries:
                self._counters.popitem(last=False)
        counter.failures += 1
        counter.last = now
        self._counters.move_to_end(key)
        if counter.failures < threshold:
            return 0.0, counter.failures
        steps = min(counter.failures - threshold, 32)
        seconds = min(self.policy.max_block, self.policy.first_block * 2.0**steps)
        counter.until = now + seconds
        return seconds, counter.failures

    def _is_good(self, user: str, source: str, now: float) -> bool:
        since = self._good.get((user, source))
        return since is not None and now - since <= self.policy.remember_good

    def _expire(self, now: float) -> None:
        """Drop what is forgotten from the least recently used end (a few per call: O(1))."""
        for _ in range(2):
            if not self._counters:
                break
            key, counter = next(iter(self._counters.items()))
            if now - counter.last <= self.policy.forget or now < counter.until:
                break
            del self._counters[key]
        for _ in range(2):
            if not self._good:
                break
            good, since = next(iter(self._good.items()))
            if now - since <= self.policy.remember_good:
                break
            del self._good[good]
