"""Media anchoring for one call: relay sides and the SDP that points phones at them.

``RelayMedia`` allocates relay endpoints per side (audio, plus video when the call asked for
it), writes SDP offers/answers with the relay's address, and drives the relay (bridge, tones,
hold, recording, counters). ``NullMedia`` is the same surface without any sockets, for an
engine that runs without a relay (sandbox-only embedding, engine unit tests).
"""

from __future__ import annotations

import logging

logger = logging.getLogger(__name__)

_NULL_SDP = (
    b"v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    b"m=audio 9 RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n"
    b"a=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n"
)


class NullSide:
    """A side with no ports: offers a discard-port SDP, remembers what the party accepted."""

    def __init__(self) -> None:
        self._accepted: bytes | None = None

    def offer(self, template: bytes | None, direction: str = "sendrecv") -> bytes:
        return _NULL_SDP.replace(b"a=sendrecv", b"a=" + direction.encode())

    def answer(self, offer: bytes) -> bytes:
        self._accepted = offer
        return _NULL_SDP

    def apply_remote(self, sdp: bytes | None) -> None:
        if sdp:
            self._accepted = sdp

    @property
    def accepted(self) -> bytes | None:
        return self._accepted


class NullMedia:
    """``CallMedia`` without a relay."""

    def new_side(self, label: str, video: bool) -> NullSide:
        return NullSide()

    def bridge(self, a: object, b: object) -> None:
        return None

    def play_tone(self, side: object, frequency: float) -> None:
        return None

    def stop_tone(self, side: object) -> None:
        return None

    def set_hold(self, side: object, held: bool) -> None:
        return None

    def start_recording(self, a: object, b: object) -> str:
        return ""

    def stop_recording(self) -> None:
        return None

    def stats(self, side: object) -> dict[str, dict[str, int]]:
        return {}

    def close(self) -> None:
        return None
