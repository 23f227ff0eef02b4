"""The ``Engine``, composed of its parts (the other modules of this package), and
``open_engine``, which runs one.

``open_engine`` runs an :class:`Engine` inside the caller's trio run; every call is a
:class:`engine.calls.SimpleCall` task in the engine's calls nursery, so a call outlives the
HTTP request that created it (the one deliberate exception to "nothing outlives its caller").
The record of a call is given to the store before ``originate`` returns, and again on every
change (SQLite writes it at once, PostgreSQL through its write-behind queue: ``StoreService``),
so ``get_call`` is always current and a restart finds every call.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import trio

from engine.call_types import CallMedia, Hangup
from engine.config_model import Config
from engine.directory import Directory
from engine.engine.actions import CallActions
from engine.engine.recovery import Recovery
from engine.engine.state import LegProvider
from engine.model import PhoneCall
from engine.store.service import StoreService

if TYPE_CHECKING:
    from engine.store import SqlStore


class Engine(Recovery, CallActions):
    """Call control for Simple PhoneCalls; see ``open_engine``.

    Its parts, a module of this package each: the shared state (``state``), creating and
    starting calls (``create``), their events (``events``), reading them (``reads``), acting
    on them (``actions``), and ending the calls a stopped process left live (``recovery``)."""

    async def drain(self, timeout: float) -> None:
        """Refuse new calls, hang up live ones cleanly, wait up to ``timeout`` for them."""
        self.draining = True
        live = list(self._live.values())
        for entry in live:
            entry.runner.control(Hangup("server shutting down"))
        with trio.move_on_after(timeout):
            for entry in live:
                await entry.runner.finished.wait()


@asynccontextmanager
async def open_engine(
    config: Config,
    directory: Directory,
    store: SqlStore | StoreService,
    *,
    media: Callable[[PhoneCall], CallMedia] | None = None,
    legs: LegProvider | None = None,
    wall_clock: Callable[[], datetime] | None = None,
    rng: random.Random | None = None,
    recording_unavailable: str | None = None,
    mixing_unavailable: str | None = None,
) -> AsyncIterator[Engine]:
    """Run an engine for the duration of the block; on exit live calls are drained.
    ``recording_unavailable``: the media backend cannot record, and this says why (the
    recording actions are then refused with ``ActionNotSupported``); ``mixing_unavailable``
    likewise for the listen-in actions (Monitor, Whisper, BargeIn)."""
    from engine.anchor import NullMedia

    engine = Engine(
        config,
        directory,
        store,
        media=media or (lambda call: NullMedia()),
        legs=legs,
        wall_clock=wall_clock,
        rng=rng,
    )
    engine.recording_unavailable = recording_unavailable
    engine.mixing_unavailable = mixing_unavailable
    engine.recover()
    async with trio.open_nursery() as nursery:
        engine._nursery = nursery
        try:
            yield engine
        finally:
            with trio.CancelScope(shield=True):
                await engine.drain(config.calls.drain)
            nursery.cancel_scope.cancel()


def recordings_dir(config: Config) -> Path:
    """Where StartRecording writes its WAV files: ``recordings/`` beside the store file."""
    url = config.store.url
    base = Path(url.removeprefix("sqlite:///")).parent if url.startswith("sqlite:///") else Path()
    return base / "recordings"
