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
least recently used dropped first (but not a counter that is blocking, while a few of the
least recently used can be dropped instead); users are cut to 128 characters and IPv6 sources
are counted per /64 (one host holds a whole /64). Failures for a user that does not exist
(``known_user=False``) count for their source only: there is no password to guess, and an
attacker inventing users must not be able to crowd a real user's counters out of memory (the
per-user counters are kept apart, one per real user at most).
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
        self._counters: OrderedDict[_Key, _Counter] = OrderedDict()  # pair and source
        self._users: dict[str, _Counter] = {}  # per real user, across sources
        self._good: OrderedDict[tuple[str, str], float] = OrderedDict()
        self.failures = 0  # failed attempts counted since the start (metrics)
        self.blocks = 0  # blocks started since the start (metrics)

    def __len__(self) -> int:
        return len(self._counters) + len(self._users) + len(self._good)

    # --- the three questions ------------------------------------------------------------------

    def retry_after(self, user: str, source: str, now: float) -> float | None:
        """Seconds until ``user`` may try again from ``source``; None: check the password."""
        user, source = user[:MAX_USER_CHARS], source_key(source)
        self._expire(now)
        counters = [
            self._counters.get(("pair", user, source)),
            self._counters.get(("source", "", source)),
        ]
        if not self._is_good(user, source, now):
            counters.append(self._users.get(user))
        waits = [c.until - now for c in counters if c is not None and c.until > now]
        return max(waits) if waits else None

    def failure(
        self, user: str, source: str, now: float, *, known_user: bool = True
    ) -> Block | None:
        """Count a failed attempt; the Block it starts, if it starts one (logged once).

        ``known_user=False``: no such user (nothing to guess), only the source counts."""
        user, source = user[:MAX_USER_CHARS], source_key(source)
        self._expire(now)
        self.failures += 1
        p = self.policy
        counted: list[tuple[_Counter, int, str]] = [
            (self._counter(("source", "", source), now), p.per_source, "source")
        ]
        if known_user:
            counted.append(
                (self._counter(("pair", user, source), now), p.per_pair, "user at source")
            )
            if not self._is_good(user, source, now):
                counted.append((self._user_counter(user, now), p.per_user, "user"))
        longest: Block | None = None
        for counter, threshold, scope in counted:
            seconds, failures = self._count(counter, threshold, now)
            if seconds and (longest is None or seconds > longest.seconds):
                longest = Block(source, user, seconds, failures, scope)
        if longest is not None:
            self.blocks += 1
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
        self.trust(user, source, now)

    def trust(self, user: str, source: str, now: float) -> None:
        """Take ``source`` as one where ``user`` succeeded (e.g. where its phone registered
        from, read back from the store after a restart)."""
        user, source = user[:MAX_USER_CHARS], source_key(source)
        good = (user, source)
        self._good[good] = now
        self._good.move_to_end(good)
        while len(self._good) > self.policy.max_entries:
            self._good.popitem(last=False)

    # --- inside ---------------------------------------------------------------------------------

    def _fresh(self, counter: _Counter | None, now: float) -> bool:
        """Whether ``counter`` still counts (not forgotten, or still blocking)."""
        return counter is not None and (
            now - counter.last <= self.policy.forget or now < counter.until
        )

    def _counter(self, key: _Key, now: float) -> _Counter:
        counter = self._counters.get(key)
        if not self._fresh(counter, now):
            counter = self._counters[key] = _Counter(0, now, now)
            self._make_room(now)
        else:
            self._counters.move_to_end(key)
        assert counter is not None
        return counter

    def _user_counter(self, user: str, now: float) -> _Counter:
        counter = self._users.get(user)
        if not self._fresh(counter, now):
            counter = self._users[user] = _Counter(0, now, now)
        assert counter is not None
        return counter

    def _make_room(self, now: float) -> None:
        """Over ``max_entries``: drop least recently used counters, but not one that blocks
        (a flood of new sources must not lift a block); a blocking one goes to the other end
        and the next is tried, a few times at most, so each failure costs O(1)."""
        tries = 8
        while len(self._counters) > self.policy.max_entries:
            key, counter = next(iter(self._counters.items()))
            if counter.until > now and tries > 0:
                self._counters.move_to_end(key)
                tries -= 1
                continue
            del self._counters[key]

    def _count(self, counter: _Counter, threshold: int, now: float) -> tuple[float, int]:
        counter.failures += 1
        counter.last = now
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
