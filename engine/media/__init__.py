"""The media relay: RTP/RTCP forwarding, latching, counters, recording and tones (stdlib only)."""

from __future__ import annotations

from engine.media.control import RelayControl
from engine.media.errors import DescriptorsExhausted, MediaError, PortRangeExhausted
from engine.media.process import RelayProcess
from engine.media.recorder import RecordingInfo
from engine.media.relay import Relay
from engine.media.stats import ChannelStats, MediaEndpoint, RelayStatistics, StreamStats

__all__ = [
    "ChannelStats",
    "DescriptorsExhausted",
    "MediaEndpoint",
    "MediaError",
    "PortRangeExhausted",
    "RecordingInfo",
    "Relay",
    "RelayControl",
    "RelayProcess",
    "RelayStatistics",
    "StreamStats",
]
