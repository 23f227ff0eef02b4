"""Media anchoring for one call: relay sides and the SDP that points phones at them.

``RelayMedia`` allocates relay endpoints per side (audio, plus video when the call asked for
it), writes SDP offers/answers with the relay's address, and drives the relay (bridge, tones,
hold, recording, counters). ``NullMedia`` is the same surface without any sockets, for an
engine that runs without a relay (sandbox-only embedding, engine unit tests).
"""

from __future__ import annotations

import contextlib
import logging
import secrets
from collections.abc import Callable, Sequence
from pathlib import Path

import trio

from engine.call_types import HOLD_MUSIC_HZ, MediaSide
from engine.media.control import RelayControl
from engine.media.errors import MediaError
from engine.media.stats import MediaEndpoint
from engine.relay_digits import RelayDigits
from sip import sdp
from sip.dtmf import event_of_digit
from sip.errors import RemoteProtocolError

logger = logging.getLogger(__name__)

SANDBOX_PAYLOAD_TYPE = 0  # a sandbox number talks PCMU (the relay's generator's default)

_NULL_SDP = (
    b"v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    b"m=audio 9 RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n"
    b"a=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n"
)


def new_session_id() -> str:
    """A fresh SDP ``o=`` session id (RFC 8866 §5.2: any unique number will do)."""
    return str(secrets.randbits(62))


class NullSide:
    """A side with no ports: offers a discard-port SDP, remembers what the party accepted."""

    def __init__(self) -> None:
        self._accepted: bytes | None = None

    async def offer(self, template: bytes | None, direction: str = "sendrecv") -> bytes:
        return _NULL_SDP.replace(b"a=sendrecv", b"a=" + direction.encode())

    async def answer(self, offer: bytes) -> bytes:
        return self.reanswer(offer)

    async def apply_remote(self, sdp: bytes | None) -> None:
        if sdp:
            self._accepted = sdp

    def reanswer(self, offer: bytes) -> bytes:
        self._accepted = offer
        return _NULL_SDP

    def reoffer(self) -> bytes:
        return _NULL_SDP

    @property
    def accepted(self) -> bytes | None:
        return self._accepted


class NullMedia:
    """``CallMedia`` without a relay."""

    def new_side(self, label: str, video: bool) -> NullSide:
        return NullSide()

    async def bridge(self, a: object, b: object) -> None:
        return None

    async def play_tone(self, side: object, frequency: float) -> None:
        return None

    async def stop_tone(self, side: object) -> None:
        return None

    async def play_music(self, side: object) -> None:
        return None

    async def start_sandbox(self, side: object, frequency: float) -> None:
        return None

    async def stop_sandbox(self, side: object) -> None:
        return None

    async def set_hold(self, side: object, held: bool) -> None:
        return None

    def send_dtmf(self, side: object, digit: str, duration_ms: int) -> bool:
        return False

    def on_dtmf(self, deliver: Callable[[MediaSide, str], None]) -> None:
        return None

    def start_mix(self, sides: Sequence[object], hears: Sequence[tuple[int, int]]) -> None:
        return None

    def stop_mix(self, side: object) -> None:
        return None

    async def start_recording(self, a: object, b: object) -> str:
        return ""

    async def stop_recording(self) -> None:
        return None

    def stats(self, sides: Sequence[object]) -> list[dict[str, dict[str, int]]]:
        return [{} for _side in sides]

    async def finish(self, sides: Sequence[object]) -> list[dict[str, dict[str, int]]]:
        return self.stats(sides)

    def close(self) -> None:
        return None

    async def watch(self) -> str:
        await trio.sleep_forever()
        raise AssertionError("unreachable")


class RelaySide:
    """Relay endpoints for one party: audio, plus video when the call offers it."""

    def __init__(self, relay: RelayControl, video: bool, sdp_cache: sdp.ParseCache) -> None:
        self._relay = relay
        self._sdp_cache = sdp_cache
        self.audio: MediaEndpoint = relay.allocate("audio")
        self.video: MediaEndpoint | None = None
        if video:
            try:
                self.video = relay.allocate("video")
            except MediaError:
                relay.release(self.audio)
                raise
        self._accepted: bytes | None = None
        self._version = 0
        self._session_id: str | None = None
        self.sandbox = False  # played by the relay (no SDP): a conference of several calls mixes it
        self.te_pt: int | None = None  # the party's telephone-event payload type (RFC 4733)

    def _ports(self) -> tuple[int, int | None]:
        return self.audio.rtp_port, None if self.video is None else self.video.rtp_port

    async def offer(self, template: bytes | None, direction: str = "sendrecv") -> bytes:
        return self._offer(template, direction)

    async def answer(self, offer: bytes) -> bytes:
        return self.reanswer(offer)

    async def apply_remote(self, data: bytes | None) -> None:
        self._apply_remote(data)

    def reoffer(self) -> bytes:
        """An offer for a party's offerless re-INVITE: what it accepted, again."""
        return self._offer(self._accepted)

    def _offer(self, template: bytes | None, direction: str = "sendrecv") -> bytes:
        audio_port, video_port = self._ports()
        audio_codecs: tuple[sdp.Codec, ...] = sdp.DEFAULT_AUDIO_CODECS
        video_codecs: tuple[sdp.Codec, ...] = sdp.DEFAULT_VIDEO_CODECS
        if template:
            try:
                parsed = self._sdp_cache.parse(template)
            except RemoteProtocolError:
                parsed = None
            if parsed is not None:
                for m in parsed.media:
                    if m.port == 0 or m.media not in ("audio", "video"):
                        continue
                    codecs = tuple(m.codecs())
                    if codecs and m.media == "audio":
                        audio_codecs = codecs
                    elif codecs:
                        video_codecs = codecs
                if not any(m.media == "video" and m.port for m in parsed.media):
                    video_port = None
        offer = sdp.make_offer(
            self.audio.address,
            audio_port,
            video_port,
            audio_codecs=audio_codecs,
            video_codecs=video_codecs,
            direction=direction,
            session_id=self._session_id or new_session_id(),
            version=self._version,
        )
        self._session_id = offer.origin.session_id
        self._version += 1  # RFC 3264 §8: each new offer of ours increments o= version
        data = offer.serialize()
        self._sdp_cache.put(data, offer)
        return data

    def reanswer(self, offer: bytes) -> bytes:
        """Our answer to a party's offer (its INVITE or re-INVITE), pointing the relay at it."""
        parsed = self._sdp_cache.parse(offer)
        ports: dict[str, int] = {"audio": self.audio.rtp_port}
        if self.video is not None:
            ports["video"] = self.video.rtp_port
        answer = sdp.make_answer(parsed, self.audio.address, ports, session_id=new_session_id())
        self._use_remote(parsed)
        data = answer.serialize()
        self._sdp_cache.put(data, answer)  # the other side's offer mirrors it
        self._accepted = data
        return data

    def _apply_remote(self, data: bytes | None) -> None:
        if not data:
            return
        try:
            parsed = self._sdp_cache.parse(data)
        except RemoteProtocolError as exc:
            logger.warning("ignoring unparsable SDP from a party: %s", exc.reason)
            return
        self._use_remote(parsed)
        self._accepted = data

    def _use_remote(self, parsed: sdp.SessionDescription) -> None:
        """Point the relay at where the party's SDP says it receives, and tell it the party's
        telephone-event payload type (RFC 4733), if any."""
        for m in parsed.media:
            endpoint = self.audio if m.media == "audio" else self.video
            conn = parsed.connection_for(m)
            if endpoint is None or m.port == 0 or conn is None or conn.is_null:
                continue
            if endpoint is self.audio:
                te_pt = telephone_event_pt(m)
                if te_pt != self.te_pt:
                    self.te_pt = te_pt
                    try:
                        self._relay.set_telephone_event(endpoint, te_pt)
                    except MediaError as exc:
                        logger.warning("cannot set the party's telephone-event: %s", exc)
            try:
                self._relay.set_remote(endpoint, conn.address, m.port, m.rtcp_port)
            except MediaError as exc:
                logger.warning("cannot use the party's media address: %s", exc)

    @property
    def accepted(self) -> bytes | None:
        return self._accepted

    def endpoints(self) -> list[MediaEndpoint]:
        return [ep for ep in (self.audio, self.video) if ep is not None]


class RelayMedia:
    """``CallMedia`` on the shared relay (a ``RelayControl``: thread or process) for one call."""

    def __init__(
        self,
        relay: RelayControl,
        recording_path: Path,
        sdp_cache: sdp.ParseCache | None = None,
        music_on_hold: Path | None = None,
        *,
        digits: RelayDigits | None = None,
    ) -> None:
        """``sdp_cache``: shared with whoever parsed the call's SDP before (the SIP service);
        by default the call's own. ``music_on_hold``: a checked 8 kHz mono 16-bit WAV file.
        ``digits``: where the relay's RFC 4733 digit reports come from (None: not heard)."""
        self._relay = relay
        self._recording_path = recording_path
        self._sdp_cache = sdp_cache if sdp_cache is not None else sdp.ParseCache(8)
        self._music_on_hold = music_on_hold
        self._digits = digits
        self._on_dtmf: Callable[[MediaSide, str], None] | None = None
        self._sides: list[RelaySide] = []
        self._bridges: dict[int, MediaEndpoint] = {}  # endpoint id -> its bridged partner
        self._recording: tuple[MediaEndpoint, MediaEndpoint] | None = None

    def new_side(self, label: str, video: bool) -> RelaySide:
        side = RelaySide(self._relay, video, self._sdp_cache)
        self._sides.append(side)
        if self._digits is not None:
            self._digits.listen(side.audio.id, lambda digit: self._heard(side, digit))
        return side

    def on_dtmf(self, deliver: Callable[[MediaSide, str], None]) -> None:
        self._on_dtmf = deliver

    def _heard(self, side: RelaySide, digit: str) -> None:
        if self._on_dtmf is not None:
            self._on_dtmf(side, digit)

    def send_dtmf(self, side: MediaSide, digit: str, duration_ms: int) -> bool:
        side = _relay_side(side)
        if side.te_pt is None:
            return False
        self._relay.send_dtmf(side.audio, event_of_digit(digit), duration_ms)
        return True

    def _pair(self, a: MediaEndpoint, b: MediaEndpoint) -> None:
        if self._bridges.get(a.id) == b:
            return
        for ep in (a, b):
            partner = self._bridges.pop(ep.id, None)
            if partner is not None:
                self._bridges.pop(partner.id, None)
                self._relay.unbridge(ep, partner)
        self._relay.bridge(a, b)
        self._bridges[a.id] = b
        self._bridges[b.id] = a

    async def bridge(self, a: MediaSide, b: MediaSide) -> None:
        a, b = _relay_side(a), _relay_side(b)
        self._pair(a.audio, b.audio)
        if a.video is not None and b.video is not None:
            self._pair(a.video, b.video)

    async def play_tone(self, side: MediaSide, frequency: float) -> None:
        side = _relay_side(side)
        self._relay.play_tone(side.audio, frequency)

    async def stop_tone(self, side: MediaSide) -> None:
        side = _relay_side(side)
        self._relay.stop_tone(side.audio)

    async def play_music(self, side: MediaSide) -> None:
        side = _relay_side(side)
        if self._music_on_hold is None:
            self._relay.play_tone(side.audio, HOLD_MUSIC_HZ)
        else:
            self._relay.play_audio(side.audio, str(self._music_on_hold))

    async def start_sandbox(self, side: MediaSide, frequency: float) -> None:
        side = _relay_side(side)
        self._relay.generate(side.audio, frequency)  # PCMU, as a sandbox's SDP would say
        side.sandbox = True

    async def stop_sandbox(self, side: MediaSide) -> None:
        side = _relay_side(side)
        self._relay.stop_generating(side.audio)

    async def set_hold(self, side: MediaSide, held: bool) -> None:
        side = _relay_side(side)
        # The held party neither hears nor is heard (the re-INVITE tells it a=sendonly).
        self._relay.set_direction(side.audio, send=not held, receive=not held)

    def start_mix(self, sides: Sequence[MediaSide], hears: Sequence[tuple[int, int]]) -> None:
        relay_sides = [_relay_side(side) for side in sides]
        payload_types = []
        for side in relay_sides:
            codec = audio_codec(side.accepted)
            if codec is not None:
                payload_types.append(codec[0])
            elif side.sandbox:  # a sandbox answers without SDP (maybe a side of another call)
                payload_types.append(SANDBOX_PAYLOAD_TYPE)
            else:
                raise MediaError("a party of the mix has no audio codec agreed")
        self._relay.start_mix([side.audio for side in relay_sides], payload_types, hears)

    def stop_mix(self, side: MediaSide) -> None:
        self._relay.stop_mix(_relay_side(side).audio)

    async def start_recording(self, a: MediaSide, b: MediaSide) -> str:
        # Opens the file in the relay (a round trip): not in the event loop's thread.
        return await trio.to_thread.run_sync(self._start_recording, a, b)

    def _start_recording(self, a: MediaSide, b: MediaSide) -> str:
        a, b = _relay_side(a), _relay_side(b)
        self._recording_path.parent.mkdir(parents=True, exist_ok=True)
        self._relay.start_recording(a.audio, b.audio, str(self._recording_path))
        self._recording = (a.audio, b.audio)
        return str(self._recording_path)

    async def stop_recording(self) -> None:
        # The relay finalises the file (a round trip that can take a while): not in the
        # event loop's thread.
        await trio.to_thread.run_sync(self._stop_recording)

    def _stop_recording(self) -> None:
        if self._recording is not None:
            a, b = self._recording
            self._recording = None
            self._relay.stop_recording(a, b)

    def stats(self, sides: Sequence[MediaSide]) -> list[dict[str, dict[str, int]]]:
        relay_sides = [_relay_side(side) for side in sides]
        endpoints = [ep for side in relay_sides for ep in side.endpoints()]
        counters = iter(self._relay.stats_many(endpoints))
        result: list[dict[str, dict[str, int]]] = []
        for side in relay_sides:
            kinds: dict[str, dict[str, int]] = {}
            for ep in side.endpoints():
                s = next(counters)
                kinds[ep.kind] = {
                    "rtp_packets_received": s.rtp.packets_received,
                    "rtp_bytes_received": s.rtp.bytes_received,
                    "rtp_packets_sent": s.rtp.packets_sent,
                    "rtp_bytes_sent": s.rtp.bytes_sent,
                    "rtcp_packets_received": s.rtcp.packets_received,
                    "rtcp_packets_sent": s.rtcp.packets_sent,
                    "rtp_lost": s.lost,
                }
            result.append(kinds)
        return result

    async def finish(self, sides: Sequence[MediaSide]) -> list[dict[str, dict[str, int]]]:
        # Waits for the relay's answers (counters, a finished recording): in a worker thread,
        # so other calls go on meanwhile.
        return await trio.to_thread.run_sync(self._finish, list(sides))

    def _finish(self, sides: list[MediaSide]) -> list[dict[str, dict[str, int]]]:
        try:
            self._stop_recording()
        except MediaError:
            logger.exception("could not finish a recording")
        try:
            return self.stats(sides) if sides else []
        except MediaError as exc:
            logger.warning("media counters lost: %s", exc)
            return [{} for _side in sides]
        finally:
            self.close()

    def close(self) -> None:
        try:
            self._stop_recording()
        except MediaError:
            logger.exception("could not finish a recording")
        for side in self._sides:
            if self._digits is not None:
                self._digits.forget(side.audio.id)
            for ep in side.endpoints():
                with contextlib.suppress(MediaError):
                    self._relay.release(ep)
        self._sides.clear()
        self._bridges.clear()

    async def watch(self) -> str:
        # A relay process that dies stops the whole server (b2bua.server): nothing per call.
        await trio.sleep_forever()
        raise AssertionError("unreachable")


def audio_codec(data: bytes | None) -> tuple[int, str] | None:
    """The payload type and name of the first audio codec an agreed SDP lists (the one the
    party talks), or None when it has no usable audio stream."""
    if not data:
        return None
    try:
        parsed = sdp.SessionDescription.parse(data)
    except RemoteProtocolError:
        return None
    for m in parsed.media:
        if m.media == "audio" and m.port:
            for codec in m.codecs():
                if codec.name.lower() not in ("telephone-event", "cn"):
                    return codec.payload_type, codec.name
    return None


def telephone_event_pt(m: sdp.MediaDescription) -> int | None:
    """The payload type of an audio stream's telephone-event/8000 (RFC 4733), or None."""
    for codec in m.codecs():
        if codec.name.lower() == "telephone-event" and codec.clock_rate == 8000:
            return codec.payload_type
    return None


def _relay_side(side: MediaSide) -> RelaySide:
    if not isinstance(side, RelaySide):
        raise TypeError(f"RelayMedia got a side it did not make: {side!r}")
    return side
