"""The relay's digit reports, routed to the calls whose endpoints they name.

The relay reports each RFC 4733 digit it sees end (``engine.media.telephone_event``) on an
event socket of its own. ``RelayDigits.run`` is one task of the server's nursery: it waits
until that socket is readable (no thread, no polling), reads every report waiting and hands
each to whoever listens for its endpoint (a call's ``engine.anchor.RelayMedia``), in the trio
thread. Reports for an endpoint nobody listens to (a call that just ended) are dropped.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import trio

from engine.media.control import RelayControl
from sip.dtmf import digit_of_event

logger = logging.getLogger(__name__)

__all__ = ["RelayDigits"]


class RelayDigits:
    """Endpoint id -> the listener of its digits (see the module docstring)."""

    def __init__(self, relay: RelayControl) -> None:
        self._relay = relay
        self._listeners: dict[int, Callable[[str], None]] = {}

    def listen(self, endpoint_id: int, deliver: Callable[[str], None]) -> None:
        self._listeners[endpoint_id] = deliver

    def forget(self, endpoint_id: int) -> None:
        self._listeners.pop(endpoint_id, None)

    async def run(self) -> None:
        """Until cancelled, or until the relay's event socket closes (the relay is gone)."""
        fd = self._relay.event_fileno()
        while True:
            await trio.lowlevel.wait_readable(fd)
            reports = self._relay.read_events()
            if reports is None:
                logger.info("the relay's digit reports ended")
                return
            for report in reports:
                self.deliver(report.endpoint_id, report.event)

    def deliver(self, endpoint_id: int, event: int) -> None:
        deliver = self._listeners.get(endpoint_id)
        digit = digit_of_event(event)
        if deliver is None or digit is None:
            return
        try:
            deliver(digit)
        except Exception:
            logger.exception("a DTMF listener failed")
