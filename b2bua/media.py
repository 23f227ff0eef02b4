"""The media backend ``b2bua serve`` runs, as ``[media] backend`` says.

``relay``: the built-in relay process (``engine.media``), a ``RelayMedia`` per call.
``rtpengine``: an ng client to the configured rtpengine instances (each pinged every second,
so that a dead one ends its calls and new calls avoid it), an ``RtpengineMedia`` per call.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from engine.anchor import RelayMedia
from engine.call_types import CallMedia
from engine.config_model import Config
from engine.media.process import RelayProcess
from engine.model import PhoneCall
from engine.relay_digits import RelayDigits
from engine.rtpengine import open_ng_client, parse_instance
from engine.rtpengine.media import RtpengineMedia
from sip.sdp import ParseCache

__all__ = ["MediaBackend", "open_media"]

PING_INTERVAL = 1.0


@dataclass(slots=True)
class MediaBackend:
    media_for: Callable[[PhoneCall], CallMedia]
    relay: RelayProcess | None  # the relay process, watched by the server (None: rtpengine)
    recording_unavailable: str | None  # why StartRecording answers 501, if it does
    alive: Callable[[], bool]  # the media part works (for /health and /metrics)
    mixing_unavailable: str | None = None  # why Monitor, Whisper and BargeIn answer 501, if so
    digits: RelayDigits | None = None  # the relay's RFC 4733 digit reports, run by the server


@asynccontextmanager
async def open_media(
    config: Config, records: Path, sdp_cache: ParseCache | None = None
) -> AsyncIterator[MediaBackend]:
    if config.media.backend == "rtpengine":
        instances = [parse_instance(text) for text in config.media.rtpengine]
        # the music on hold file (checked by the config) goes to rtpengine as a blob
        hold = config.calls.music_on_hold
        music = None if hold is None else hold.read_bytes()
        async with open_ng_client(instances, ping_interval=PING_INTERVAL) as ng:
            yield MediaBackend(
                lambda call: RtpengineMedia(ng, call.id, ng.spawn, music),
                None,
                "recording is not available with the rtpengine media backend",
                lambda: any(not ng.is_down(instance) for instance in instances),
                "listen-in (Monitor, Whisper, BargeIn) is not available with the rtpengine "
                "media backend",
            )
        return
    # The relay forwards in its own process: in a thread it would wait for the GIL whenever
    # signalling is busy (benchmarks/bench_relay.py --gil-load shows p99 near 1 s).
    relay = RelayProcess(config.media.address, config.media.ports)
    relay.start()
    digits = RelayDigits(relay)
    try:
        yield MediaBackend(
            lambda call: RelayMedia(
                relay,
                records / f"{call.id}.wav",
                sdp_cache,
                config.calls.music_on_hold,
                digits=digits,
            ),
            relay,
            None,
            lambda: relay.alive,
            digits=digits,
        )
    finally:
        relay.close()
