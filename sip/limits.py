"""How many TCP connections the transport accepts, in all and per remote address (sans-IO).

``ConnectionLimits`` counts the connections peers open to us by their remote host; ``admit``
takes a slot or says why not, ``release`` gives it back.  Connections we open ourselves (to
gateways and phones the engine chose, or back to a request's Via, §18.2.2) are counted
(``open``) but never refused: a flood of incoming connections must not cut the server off from
its own gateways, and their number follows our own calls.  A refusal carries a warning to log,
at most one per remote address per ``warn_interval`` seconds (refusals for the total limit
share one), each later line counting the ones left out, so a flood of connections costs one
log line per source and interval, not one per connection.  Time is an argument: the caller
passes ``trio.current_time()`` and tests pass what they like.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ConnectionLimits", "Refusal"]

_ALL = ""  # the throttle key of refusals for the total limit
_MAX_THROTTLED = 1024  # remote addresses whose last warning is remembered


@dataclass(frozen=True, slots=True)
class Refusal:
    reason: str  # why the connection may not be (for an error or a log line)
    warning: str | None  # what to log now; None when throttled


@dataclass(slots=True)
class _Throttle:
    next_at: float
    left_out: int = 0


class ConnectionLimits:
    def __init__(self, max_total: int, max_per_source: int, *, warn_interval: float = 10.0) -> None:
        if max_total < 1 or max_per_source < 1:
            raise ValueError("connection limits must be at least 1")
        self.max_total = max_total
        self.max_per_source = max_per_source
        self.warn_interval = warn_interval
        self._open: dict[str, int] = {}  # incoming connections by remote host
        self._total = 0  # incoming connections
        self._outgoing = 0  # connections we opened
        self._refused = 0
        self._throttles: dict[str, _Throttle] = {}

    @property
    def open(self) -> int:
        """Connections open now, incoming and ours."""
        return self._total + self._outgoing

    @property
    def incoming(self) -> int:
        """Connections peers opened to us, open now (what ``max_total`` bounds)."""
        return self._total

    @property
    def refused(self) -> int:
        """Connections refused since the start."""
        return self._refused

    def open_from(self, host: str) -> int:
        return self._open.get(host, 0)

    def admit(self, host: str, now: float, *, incoming: bool = True) -> Refusal | None:
        """Take a slot for a connection with ``host``; a ``Refusal`` when over a limit.

        A connection we open (``incoming=False``) is counted, never refused."""
        if not incoming:
            self._outgoing += 1
            return None
        count = self._open.get(host, 0)
        what = f"tcp connection from {host} refused"
        if count >= self.max_per_source:
            reason = (
                f"{what}: {count} open with that address already"
                f" (max_connections_per_source {self.max_per_source})"
            )
            return self._refuse(host, reason, now)
        if self._total >= self.max_total:
            reason = f"{what}: {self._total} open already (max_connections {self.max_total})"
            return self._refuse(_ALL, reason, now)
        self._open[host] = count + 1
        self._total += 1
        return None

    def release(self, host: str, *, incoming: bool = True) -> None:
        """Give back the slot ``admit`` took for ``host``."""
        if not incoming:
            if self._outgoing <= 0:
                raise ValueError(f"no tcp connection to {host} to release")
            self._outgoing -= 1
            return
        count = self._open.get(host, 0)
        if count <= 0:
            raise ValueError(f"no tcp connection with {host} to release")
        if count == 1:
            del self._open[host]
        else:
            self._open[host] = count - 1
        self._total -= 1

    def _refuse(self, key: str, reason: str, now: float) -> Refusal:
        self._refused += 1
        throttle = self._throttles.get(key)
        if throttle is not None and now < throttle.next_at:
            throttle.left_out += 1
            return Refusal(reason, None)
        warning = reason
        if throttle is not None and throttle.left_out:
            warning += (
                f" (and {throttle.left_out} more refused like it"
                f" in the last {self.warn_interval:g} s)"
            )
        if throttle is None:
            self._make_room(now)
            throttle = self._throttles[key] = _Throttle(now + self.warn_interval)
        else:
            throttle.next_at = now + self.warn_interval
            throttle.left_out = 0
        return Refusal(reason, warning)

    def _make_room(self, now: float) -> None:
        """Keep the throttle table bounded: forget sources whose interval has passed with
        nothing left out, then (a flood from very many addresses) the oldest ones."""
        if len(self._throttles) < _MAX_THROTTLED:
            return
        for key in [k for k, t in self._throttles.items() if t.next_at <= now and not t.left_out]:
            del self._throttles[key]
        while len(self._throttles) >= _MAX_THROTTLED:
            del self._throttles[next(iter(self._throttles))]
