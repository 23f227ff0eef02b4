"""The events of calls: each change saved with the record and published to the call's
subscribers (SSE), the Engine's listeners (status callbacks, metrics) and the log.

``changed`` is what a running call reports to (the Engine is its observer), per event.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import trio

from engine.engine.state import EngineState
from engine.model import PhoneCall

# The Engine's lines keep their package's logger name, whichever of its modules logs them
# (operators filter on it: docs/OPERATIONS.md).
logger = logging.getLogger("engine.engine")


@dataclass(frozen=True, slots=True)
class CallEvent:
    """One state change of a call, as published to subscribers (SSE, status callbacks)."""

    call_id: str
    seq: int
    event: str
    state: str
    at: datetime
    data: dict[str, Any]
    final: bool


class CallEvents(EngineState):
    """The Engine as the observer of its calls (``engine.call_types.CallObserver``)."""

    def shortage(self, call: PhoneCall, what: str) -> None:
        # the server's own shortage, so the operator hears of it, but not once per call: when
        # it happens, every new call hits it (engine.throttle)
        self._shortage_warning.warn(f"call {call.id}: {what}")

    def changed(self, call: PhoneCall, event: str, data: dict[str, object]) -> None:
        # The event's seq is counted in the record before it is saved, and a call with a
        # statusCallback is committed at every event: after a crash its stored count is at
        # least every seq a receiver may have seen, so the final event recover() makes for it
        # cannot reuse one (receivers drop duplicates by X-Event-Id CALLID:SEQ).
        call.events += 1
        if event in ("unparked", "park_failed", "ended"):
            self.parking.release(call.id)
        try:
            self.store.save_call(call, durable=call.status_callback is not None)
        except Exception:
            logger.exception("call %s: could not save the record", call.id)
        self._publish(call, event, dict(data), call.events)

    def _publish(self, call: PhoneCall, event: str, data: dict[str, Any], seq: int) -> None:
        entry = self._live.get(call.id)
        final = event == "ended"
        item = CallEvent(call.id, seq, event, str(call.state), self._wall_clock(), data, final)
        _log_event(call, event, data)
        if entry is not None:
            entry.history.append(item)
            for channel in list(entry.subscribers):
                try:
                    channel.send_nowait(item)
                except (trio.WouldBlock, trio.BrokenResourceError, trio.ClosedResourceError):
                    entry.subscribers.remove(channel)
                    channel.close()
        for listener in self.listeners:
            try:
                listener(call, item)
            except Exception:
                logger.exception("call %s: event listener failed", call.id)


def _log_event(call: PhoneCall, event: str, data: dict[str, Any]) -> None:
    """A call's creation and end at INFO (what an operator follows), its other events at DEBUG."""
    extra = {"call": call.id}
    if event == "created":
        logger.info(
            "call %s created (%s): %s -> %s",
            call.id,
            call.origin,
            ", ".join(call.sources),
            ", ".join(call.destinations),
            extra=extra,
        )
    elif event == "ended":
        disposition = "NONE" if call.disposition is None else call.disposition.name
        logger.info(
            "call %s ended: %s after %d s bridged (%s)",
            call.id,
            disposition,
            call.billable_seconds,
            call.hangup_cause or "no cause",
            extra=extra,
        )
    else:
        logger.debug("call %s: %s %s", call.id, event, data or "", extra=extra)
