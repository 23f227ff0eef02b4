"""The restart path: the calls this node left live when it stopped are ended, timed and
charged up to its last heartbeat (``settle`` also ends a dead node's calls: ``engine.cluster``).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from engine.call_end import call_charge
from engine.engine.create import CallCreation
from engine.model import CallState, Disposition, PartyStatus, PhoneCall

# The Engine's lines keep their package's logger name, whichever of its modules logs them
# (operators filter on it: docs/OPERATIONS.md).
logger = logging.getLogger("engine.engine")


class Recovery(CallCreation):
    """Ending the records of calls whose process stopped."""

    def recover(self) -> int:
        """Mark this node's calls that were live when it stopped as ended; return how many.

        They end at this node's last heartbeat before the stop (``engine.heartbeat``), when
        the store has one: their duration and charge count up to it (a call bridged after it
        lasted 0 s). Without a beat they end now, uncharged. Each gets its final ``ended``
        event (seq one past the last it had: see ``changed``), which ``subscribe`` replays;
        ``recovered`` lists them, so the server can deliver that event to their
        ``statusCallback`` and BYE their answered legs (``engine.cluster``). Calls of other
        nodes sharing the store are theirs (or, when they die, ``ClusterMonitor``'s)."""
        node = self.config.cluster.node
        beat = self.store.last_beat(node)
        last_alive = None if beat is None else datetime.fromtimestamp(beat, UTC)
        calls = self.store.live_calls_of(node)
        self.settle(calls, last_alive, "engine restarted while the call was live")
        self.recovered.extend(calls)
        if calls:
            logger.warning("marked %d calls live at the last stop as ended", len(calls))
        return len(calls)

    def settle(self, calls: list[PhoneCall], last_alive: datetime | None, cause: str) -> None:
        """End the records of ``calls`` whose node stopped (this one before a restart, or a
        dead one) at ``last_alive`` (None: now, uncharged) with ``cause``, and save them."""
        for call in calls:
            call.state = CallState.ENDED
            if last_alive is None:
                call.ended = self._wall_clock()
            else:  # not before anything the record says happened
                call.ended = max(last_alive, _latest_time(call))
            call.disposition = Disposition.ANSWERED if call.bridged else Disposition.FAILED
            call.hangup_cause = cause
            for party in call.parties:
                if party.ended is None:
                    party.ended = call.ended
                party.status = PartyStatus.UNKNOWN
            if last_alive is not None:
                call.charge = call_charge(call, self._rate_for)
            call.events += 1  # the final event, made now
            self.store.save_call(call)


def _latest_time(call: PhoneCall) -> datetime:
    """The last moment the record of ``call`` knows of."""
    times = [call.published, call.answered, call.bridged]
    for party in call.parties:
        times += [party.ringing, party.answered, party.ended]
    return max(t for t in times if t is not None)
