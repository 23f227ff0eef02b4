"""What every part of the Engine shares: its configuration, directory and store, the live
calls, its clocks and random sources, and where non-sandbox legs come from.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import trio

from engine import parking_rules
from engine.call_types import CallMedia
from engine.calls import SimpleCall
from engine.conference import Conferences
from engine.config_model import Config
from engine.directory import Directory
from engine.legs import FailedLeg, Leg
from engine.model import Party, PhoneCall
from engine.store.service import StoreService
from engine.throttle import ThrottledWarning

if TYPE_CHECKING:
    from engine.engine.events import CallEvent
    from engine.store import SqlStore

# The Engine's lines keep their package's logger name, whichever of its modules logs them
# (operators filter on it: docs/OPERATIONS.md).
logger = logging.getLogger("engine.engine")


@dataclass(slots=True)
class LiveCall:
    """A call running in this engine: its runner, its events so far, who follows them."""

    runner: SimpleCall  # or a ConferenceCall (engine.conference)
    history: list[CallEvent] = field(default_factory=list)
    subscribers: list[trio.MemorySendChannel[CallEvent]] = field(default_factory=list)


class LegProvider:
    """Where non-sandbox legs come from (the SIP service); absent: such parties fail with 480."""

    def legs_for(self, call: PhoneCall, party: Party, caller_id: str | None) -> list[Leg]:
        return [FailedLeg(party.number, 480, "no SIP service")]


class EngineState:
    """The Engine's state, set once here; its parts (``engine.engine.core.Engine``) share it."""

    def __init__(
        self,
        config: Config,
        directory: Directory,
        store: SqlStore | StoreService,
        *,
        media: Callable[[PhoneCall], CallMedia],
        legs: LegProvider | None = None,
        wall_clock: Callable[[], datetime] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config
        self.directory = directory
        self.store = StoreService.of(store)
        self.legs = legs or LegProvider()
        self._media = media
        self._wall_clock = wall_clock or (lambda: datetime.now(UTC))
        self._rng = rng or random.Random()
        self._ids = random.SystemRandom() if rng is None else rng
        self._live: dict[str, LiveCall] = {}
        self._nursery: trio.Nursery | None = None
        self.draining = False
        self.listeners: list[Callable[[PhoneCall, CallEvent], None]] = []
        self._shortage_warning = ThrottledWarning(logger)
        self.recovered: list[PhoneCall] = []  # ended by recover(), for their final callbacks
        self.parking = parking_rules.ParkingLot()
        self.recording_unavailable: str | None = None  # the media backend cannot record: why
        self.mixing_unavailable: str | None = None  # the media backend cannot mix (listen-in): why
        self.conferences = Conferences()
