"""The control surface shared by :class:`Relay` (a thread) and :class:`RelayProcess` (a child
process), so the engine can be typed against either and switch with one line."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from engine.media.recorder import RecordingInfo
from engine.media.stats import MediaEndpoint, RelayStatistics, StreamStats
from engine.media.telephone_event import DigitReport


class RelayControl(Protocol):
    """What the engine calls on a relay."""

    @property
    def address(self) -> str: ...

    def start(self) -> None: ...

    def close(self) -> None: ...

    def allocate(self, kind: str = "audio") -> MediaEndpoint: ...

    def release(self, ep: MediaEndpoint) -> None: ...

    def set_remote(
        self, ep: MediaEndpoint, host: str, rtp_port: int, rtcp_port: int | None = None
    ) -> None: ...

    def bridge(self, a: MediaEndpoint, b: MediaEndpoint) -> None: ...

    def unbridge(self, a: MediaEndpoint, b: MediaEndpoint) -> None: ...

    def set_direction(self, ep: MediaEndpoint, send: bool, receive: bool = True) -> None: ...

    def set_echo(self, ep: MediaEndpoint, on: bool = True) -> None: ...

    def stats(self, ep: MediaEndpoint) -> StreamStats: ...

    def stats_many(self, eps: Sequence[MediaEndpoint]) -> list[StreamStats]: ...

    def statistics(self) -> RelayStatistics: ...

    def play_tone(
        self,
        ep: MediaEndpoint,
        frequency: float = 440.0,
        payload_type: int = 0,
        *,
        level_dbfs: float = -10.0,
        duration: float | None = None,
    ) -> None: ...

    def play_audio(self, ep: MediaEndpoint, path: str, payload_type: int = 0) -> None: ...

    def stop_tone(self, ep: MediaEndpoint) -> None: ...

    def generate(
        self,
        ep: MediaEndpoint,
        frequency: float = 440.0,
        payload_type: int = 0,
        *,
        level_dbfs: float = -10.0,
    ) -> None: ...

    def stop_generating(self, ep: MediaEndpoint) -> None: ...

    def start_mix(
        self,
        eps: Sequence[MediaEndpoint],
        payload_types: Sequence[int],
        hears: Sequence[tuple[int, int]],
    ) -> None: ...

    def stop_mix(self, ep: MediaEndpoint) -> None: ...

    def start_recording(self, a: MediaEndpoint, b: MediaEndpoint, path: str) -> None: ...

    def stop_recording(self, a: MediaEndpoint, b: MediaEndpoint | None = None) -> RecordingInfo: ...

    def set_telephone_event(self, ep: MediaEndpoint, payload_type: int | None) -> None:
        """The payload type ``ep``'s phone uses for RFC 4733 telephone-events (None: none)."""
        ...

    def send_dtmf(self, ep: MediaEndpoint, event: int, duration_ms: int) -> None:
        """Play telephone-event ``event`` to ``ep``'s phone (with its payload type)."""
        ...

    def event_fileno(self) -> int:
        """The file descriptor that becomes readable when digit reports wait."""
        ...

    def read_events(self) -> list[DigitReport] | None:
        """The digit reports waiting (never blocks); None once the relay is gone."""
        ...
