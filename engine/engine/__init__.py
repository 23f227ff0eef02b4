"""The engine's public API: what the HTTP facade and embedders call.

The package's front door: ``from engine.engine import Engine, OriginateRequest, open_engine``.
``open_engine`` runs an ``Engine`` inside the caller's trio run; every call is an
``engine.calls.SimpleCall`` task in the engine's calls nursery.

- :mod:`engine.engine.core`: ``Engine``, composed of the parts below, ``open_engine``;
- :mod:`engine.engine.state`: what the parts share (``LegProvider``: where legs come from);
- :mod:`engine.engine.create`: creating and starting calls (``OriginateRequest``);
- :mod:`engine.engine.events`: saving and publishing each change (``CallEvent``);
- :mod:`engine.engine.reads`: reading calls and following their events;
- :mod:`engine.engine.actions`: hang-ups and PhoneCallActions (``CallAction``);
- :mod:`engine.engine.recovery`: the restart path.
"""

from __future__ import annotations

from engine.engine.actions import CallAction
from engine.engine.core import Engine, open_engine, recordings_dir
from engine.engine.create import OriginateRequest
from engine.engine.events import CallEvent
from engine.engine.state import LegProvider

__all__ = [
    "CallAction",
    "CallEvent",
    "Engine",
    "LegProvider",
    "OriginateRequest",
    "open_engine",
    "recordings_dir",
]
