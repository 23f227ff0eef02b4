"""Per-call SIP traces: every SIP message sent and received for a PhoneCall, kept in memory.

``CallTraces`` is a ``sip.observe.MessageObserver`` on the server's transport. The engine's
SIP side tells it which SIP Call-ID belongs to which PhoneCall and party (``bind``): each
outgoing leg when it is made (before its INVITE goes out), an inbound caller's dialog when its
PhoneCall is created. Messages of a Call-ID not bound yet (an inbound INVITE and its digest
challenge come before the PhoneCall exists) wait in a small buffer and join the trace when
the Call-ID is bound.

Bounds (all memory, nothing written to the store):

* a live call keeps its last ``per_call`` messages (a ring: a very long call with many
  re-INVITEs loses its oldest ones, and the loss is logged once per call);
* ``linger`` seconds after the call's final event (its last BYE transactions and ACK
  retransmissions are still traced) the trace is frozen: its messages' bytes as they passed on
  the wire, compressed with zlib, and the Call-IDs forgotten;
* frozen traces are kept oldest-first within ``max_bytes`` compressed bytes in all: the oldest
  go when a new one does not fit. At about 1.5 KiB per 15-message call the default 256 MiB
  holds about 180,000 calls, over an hour of calls up to about 50 calls/s sustained;
* the buffer of unbound Call-IDs holds ``pending_calls`` Call-IDs of at most 16 messages each
  (REGISTER and OPTIONS traffic passes through it and falls out).
"""

from __future__ import annotations

import json
import logging
import time
import zlib
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from sip.message import Message
from sip.transaction_types import Peer

__all__ = ["CallTraces", "TraceRecord"]

logger = logging.getLogger(__name__)

_PENDING_PER_CALL_ID = 16


@dataclass(frozen=True, slots=True)
class TraceRecord:
    """One message of a trace: wall-clock time (s), ``in``/``out``, the party of its leg, the
    peer's transport address, the message's text."""

    ts: float
    direction: str
    party: str
    transport: str
    host: str
    port: int
    message: str

    @property
    def peer(self) -> str:
        """``host:port`` (an IPv6 host in brackets)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


@dataclass(slots=True)
class _Entry:
    ts: float
    direction: str
    peer: Peer
    # the bytes that passed on the wire, as the transport read or wrote them: one object
    # instead of the parsed message's dozens, which would otherwise survive young collections
    # for the call's life plus ``linger`` and make the garbage collector's older generations
    # slow; decoded only when the trace is read or frozen
    data: bytes
    party: str = ""


@dataclass(slots=True)
class _Live:
    entries: deque[_Entry]
    call_ids: set[str] = field(default_factory=set)
    dropped: int = 0


class CallTraces:
    """The SIP messages of each PhoneCall (see the module's docstring for the bounds)."""

    def __init__(
        self,
        *,
        per_call: int = 200,
        max_bytes: int = 256 << 20,
        linger: float = 32.0,
        pending_calls: int = 512,
        wall_clock: Callable[[], float] = time.time,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if per_call < 1 or max_bytes < 1:
            raise ValueError("per_call and max_bytes must be positive")
        self.per_call = per_call
        self.max_bytes = max_bytes
        self.linger = linger
        self._pending_calls = pending_calls
        self._wall_clock = wall_clock
        self._clock = clock
        self._live: dict[str, _Live] = {}
        self._by_call_id: dict[str, tuple[_Live, str]] = {}  # SIP Call-ID -> (trace, party)
        self._pending: OrderedDict[str, list[_Entry]] = OrderedDict()
        self._ending: deque[tuple[float, str]] = deque()  # (when to freeze, PhoneCall id)
        self._frozen: OrderedDict[str, bytes] = OrderedDict()
        self._frozen_bytes = 0
        self.evicted = 0  # frozen traces dropped for room

    # --- what the SIP side tells ------------------------------------------------------------

    def bind(self, sip_call_id: str, phone_call_id: str, party: str) -> None:
        """Messages with ``sip_call_id`` belong to ``phone_call_id``'s leg of ``party``."""
        trace = self._live.get(phone_call_id)
        if trace is None:
            trace = self._live[phone_call_id] = _Live(deque(maxlen=self.per_call))
        trace.call_ids.add(sip_call_id)
        self._by_call_id[sip_call_id] = (trace, party)
        waiting = self._pending.pop(sip_call_id, None)
        if waiting:
            for entry in waiting:
                entry.party = party
            self._add(trace, waiting, phone_call_id)

    def message(
        self, direction: Literal["in", "out"], message: Message, peer: Peer, data: bytes
    ) -> None:
        """The transport's observer hook: file ``message`` (its wire bytes ``data``) under
        its call."""
        try:
            call_id = message.call_id
        except Exception:  # a message without a usable Call-ID belongs to no call
            return
        entry = _Entry(self._wall_clock(), direction, peer, data)
        bound = self._by_call_id.get(call_id)
        if bound is not None:
            trace, entry.party = bound
            self._add(trace, (entry,), call_id)
        else:
            waiting = self._pending.get(call_id)
            if waiting is None:
                waiting = self._pending[call_id] = []
                if len(self._pending) > self._pending_calls:
                    self._pending.popitem(last=False)
            if len(waiting) < _PENDING_PER_CALL_ID:
                waiting.append(entry)
        if self._ending:
            self._sweep()

    def _add(self, trace: _Live, entries: Iterable[_Entry], name: str) -> None:
        for entry in entries:
            if len(trace.entries) == trace.entries.maxlen:
                if trace.dropped == 0:
                    logger.info(
                        "sip trace of %s: over %d messages, dropping the oldest",
                        name,
                        len(trace.entries),
                    )
                trace.dropped += 1
            trace.entries.append(entry)

    def call_ended(self, phone_call_id: str) -> None:
        """The PhoneCall ended: its trace is frozen ``linger`` s from now."""
        self._ending.append((self._clock() + self.linger, phone_call_id))
        self._sweep()

    def on_event(self, call: Any, event: Any) -> None:
        """An ``Engine.listeners`` entry: a final event ends the call's trace."""
        if getattr(event, "final", False):
            self.call_ended(str(call.id))

    # --- reading ------------------------------------------------------------------------------

    def trace(self, phone_call_id: str) -> list[TraceRecord] | None:
        """The call's messages in the order they passed, or None when none are kept."""
        self._sweep()
        trace = self._live.get(phone_call_id)
        if trace is not None:
            return [_record(entry) for entry in trace.entries]
        blob = self._frozen.get(phone_call_id)
        if blob is None:
            return None
        return _thaw(blob)

    def statistics(self) -> dict[str, int]:
        return {
            "live_traces": len(self._live),
            "frozen_traces": len(self._frozen),
            "frozen_bytes": self._frozen_bytes,
            "pending_call_ids": len(self._pending),
            "evicted": self.evicted,
        }

    # --- freezing -----------------------------------------------------------------------------

    def _sweep(self) -> None:
        now = self._clock()
        while self._ending and self._ending[0][0] <= now:
            _, phone_call_id = self._ending.popleft()
            self._freeze(phone_call_id)

    def _freeze(self, phone_call_id: str) -> None:
        trace = self._live.pop(phone_call_id, None)
        if trace is None:
            return
        for sip_call_id in trace.call_ids:
            if self._by_call_id.get(sip_call_id, (None,))[0] is trace:
                del self._by_call_id[sip_call_id]
        if trace.dropped:
            logger.info("sip trace of %s: %d oldest messages dropped", phone_call_id, trace.dropped)
        # the rows' fields as JSON on the first line, then the messages' bytes one after the
        # other (each row ends with its message's length): JSON would escape every CR and LF
        # of the messages, the costlier half of a freeze
        rows = [
            [e.ts, e.direction, e.party, e.peer.transport, e.peer.host, e.peer.port, len(e.data)]
            for e in trace.entries
        ]
        head = json.dumps(rows, separators=(",", ":")).encode()
        blob = zlib.compress(b"".join([head, b"\n", *(e.data for e in trace.entries)]), 1)
        self._frozen[phone_call_id] = blob
        self._frozen_bytes += len(blob)
        while self._frozen_bytes > self.max_bytes and self._frozen:
            _, old = self._frozen.popitem(last=False)
            self._frozen_bytes -= len(old)
            self.evicted += 1


def _text(data: bytes) -> str:
    return data.decode("utf-8", "replace")


def _thaw(blob: bytes) -> list[TraceRecord]:
    """The records of a frozen trace (see ``_freeze``)."""
    raw = zlib.decompress(blob)
    newline = raw.index(b"\n")  # JSON writes none of its own
    at = newline + 1
    records = []
    for ts, direction, party, transport, host, port, length in json.loads(raw[:newline]):
        text = _text(raw[at : at + length])
        records.append(TraceRecord(ts, direction, party, transport, host, port, text))
        at += length
    return records


def _record(entry: _Entry) -> TraceRecord:
    peer = entry.peer
    return TraceRecord(
        entry.ts,
        entry.direction,
        entry.party,
        peer.transport,
        peer.host,
        peer.port,
        _text(entry.data),
    )
