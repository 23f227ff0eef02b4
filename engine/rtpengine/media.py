"""``CallMedia`` on rtpengine: one rtpengine call per PhoneCall, one tag (monologue) per side.

rtpengine anchors media between the tags of an offer/answer exchange. Our controller works in
third-party call control (RFC 3725): it offers to each party, then connects them. That maps
onto ng requests this way:

- an offer *to* side X is an ng ``offer`` *from* the side X is to be connected with (its
  partner, else the latest side whose party has given its SDP), with that party's SDP and
  ``to-tag`` X; with no such side yet (the first party called), from a placeholder tag whose
  SDP has the wanted codecs and rtpengine's discard port (127.0.0.1:9) as its address;
- the party's answer (or early media) is the ng ``answer`` to that offer;
- a party's own offer (an inbound caller) is an ng ``offer`` from X, answered at once from a
  placeholder, which gives the SDP for X; the next side's offer re-offers X's SDP towards it;
- a re-offer from a party (a re-INVITE) is answered at once with the SDP it already has, its
  direction mirrored, while rtpengine is told in the background;
- tones (ringback, the sandbox's) are WAV files generated here and sent as ``play media``
  blobs (so rtpengine need not share our disk), hold is ``block media`` both ways, counters
  come from ``query`` when the call ends, then ``delete``.

rtpengine does not record to a WAV file of ours: ``start_recording`` is refused (the engine
answers the action 501 before it gets here). Every ng failure is a :class:`MediaUnavailable`
whose message names the instance, which ends the call with that cause.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import logging
import math
import secrets
import struct
import wave
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from engine.call_types import HOLD_MUSIC_HZ, MediaSide, MediaUnavailable
from engine.rtpengine.client import Instance, NgClient, NgError, NgUnavailable
from sip import sdp
from sip.errors import RemoteProtocolError

__all__ = ["RtpengineMedia", "RtpengineSide", "tone_wav"]

logger = logging.getLogger(__name__)

TONE_REPEATS = 3600  # 1 s files: an hour at most (ringback and sandbox calls are shorter)
# Where rtpengine sends a party's media until its peer is known: the discard port of
# rtpengine's own loopback. Not 0.0.0.0, which rtpengine takes for an old-style hold (and
# passes on to the party as c=0.0.0.0, a=sendonly).
_PLACEHOLDER_ADDRESS = "127.0.0.1"
_PLACEHOLDER_PORT = 9

Spawn = Callable[[Callable[[], Awaitable[None]]], None]


def tone_wav(frequency: float, level_dbfs: float = -10.0) -> bytes:
    """One second of a sine at ``frequency`` (whole Hz, so it loops seamlessly): 8 kHz 16-bit
    mono WAV."""
    hertz = round(frequency)
    amplitude = 32767 * 10 ** (level_dbfs / 20)
    step = 2 * math.pi * hertz / 8000
    frames = struct.pack("<8000h", *(round(amplitude * math.sin(step * i)) for i in range(8000)))
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(frames)
    return out.getvalue()


def new_session_id() -> str:
    """A fresh SDP ``o=`` session id for a placeholder (RFC 8866 §5.2: any unique number)."""
    return str(secrets.randbits(62))


def _text(data: bytes) -> str:
    return data.decode("utf-8", "surrogateescape")


def _bytes(value: object) -> bytes:
    return str(value).encode("utf-8", "surrogateescape")


def _direction(data: bytes, direction: str) -> bytes:
    if direction == "sendrecv":
        return data
    try:
        parsed = sdp.SessionDescription.parse(data)
    except RemoteProtocolError:
        return data
    return sdp.with_direction(parsed, direction).serialize()


_MIRROR = {"sendonly": "recvonly", "recvonly": "sendonly", "inactive": "inactive"}


class RtpengineSide:
    """One party's tag in the call's rtpengine session."""

    def __init__(self, media: RtpengineMedia, tag: str, video: bool) -> None:
        self._media = media
        self.tag = tag
        self.video = video
        self.remote: bytes | None = None  # the party's own SDP (its answer, or its offer)
        self.ours: bytes | None = None  # the last SDP rtpengine gave for this party
        self.offered_from: str | None = None  # the tag of the offer made to this party
        self.known = False  # rtpengine has this tag (it answered, or offered)

    # --- the controller's offer/answer (MediaSide) ------------------------------------------

    async def offer(self, template: bytes | None, direction: str = "sendrecv") -> bytes:
        peer = self._media.peer_of(self, template)
        if peer is not None and peer.remote is not None:
            from_tag, their_sdp = peer.tag, peer.remote
        else:
            from_tag, their_sdp = f"{self.tag}~", self._placeholder_offer(template)
        reply = await self._media.ng(
            "offer",
            from_tag=from_tag,
            to_tag=self.tag,
            sdp=_text(_direction(their_sdp, direction)),
        )
        self.offered_from = from_tag
        self.ours = _bytes(reply.get("sdp", ""))
        return self.ours

    def _placeholder_offer(self, template: bytes | None) -> bytes:
        audio: tuple[sdp.Codec, ...] = sdp.DEFAULT_AUDIO_CODECS
        video: tuple[sdp.Codec, ...] = sdp.DEFAULT_VIDEO_CODECS
        want_video = self.video
        if template:
            with contextlib.suppress(RemoteProtocolError):
                parsed = sdp.SessionDescription.parse(template)
                for m in parsed.media:
                    codecs = tuple(m.codecs()) if m.port else ()
                    if codecs and m.media == "audio":
                        audio = codecs
                    elif codecs and m.media == "video":
                        video = codecs
                want_video = want_video and any(m.media == "video" and m.port for m in parsed.media)
        return sdp.make_offer(
            _PLACEHOLDER_ADDRESS,
            _PLACEHOLDER_PORT,
            _PLACEHOLDER_PORT if want_video else None,
            audio_codecs=audio,
            video_codecs=video,
            session_id=new_session_id(),  # rtpengine sees it; the party sees rtpengine's
        ).serialize()

    async def answer(self, offer: bytes) -> bytes:
        """The party offered (an inbound caller): rtpengine gets its offer, answered at once
        from a placeholder, which gives the SDP for the party."""
        parsed = sdp.SessionDescription.parse(offer)  # RemoteProtocolError: the caller gets 488
        ports = {m.media: _PLACEHOLDER_PORT for m in parsed.media if m.port}
        placeholder = sdp.make_answer(
            parsed, _PLACEHOLDER_ADDRESS, ports, session_id=new_session_id()
        ).serialize()
        await self._media.ng("offer", from_tag=self.tag, sdp=_text(offer))
        reply = await self._media.ng(
            "answer", from_tag=self.tag, to_tag=f"{self.tag}~", sdp=_text(placeholder)
        )
        self.remote = offer
        self.known = True
        self.ours = _bytes(reply.get("sdp", ""))
        return self.ours

    async def apply_remote(self, data: bytes | None) -> None:
        if not data or self.offered_from is None:
            return
        await self._media.ng("answer", from_tag=self.offered_from, to_tag=self.tag, sdp=_text(data))
        self.remote = data
        self.known = True

    @property
    def accepted(self) -> bytes | None:
        return self.remote

    # --- a party's own re-offer (OfferAnswerer): answered at once -----------------------------

    def reanswer(self, offer: bytes) -> bytes:
        if self.ours is None:
            raise ValueError("no SDP of ours for this party yet")
        try:
            parsed = sdp.SessionDescription.parse(offer)
            theirs = parsed.direction_of(parsed.media[0]).value if parsed.media else "sendrecv"
        except RemoteProtocolError:
            theirs = "sendrecv"
        answer = _direction(self.ours, _MIRROR.get(theirs, "sendrecv"))
        self._media.tell_later(self, offer)
        return answer

    def reoffer(self) -> bytes:
        if self.ours is None:
            raise ValueError("no SDP of ours for this party yet")
        return self.ours


class RtpengineMedia:
    """``CallMedia`` for one call, on the rtpengine instance ``client.choose()`` gave it."""

    def __init__(
        self, client: NgClient, call_id: str, spawn: Spawn, music_on_hold: bytes | None = None
    ) -> None:
        self._client = client
        self._music_on_hold = music_on_hold  # the WAV file's bytes, sent as a blob
        self.instance: Instance = client.choose()
        self._call_id = f"{call_id}-{id(self):x}"  # a retried create never reuses a session
        self._spawn = spawn
        self._sides: list[RtpengineSide] = []
        self._labels = itertools.count(1)
        self._partners: dict[str, RtpengineSide] = {}
        self._playing: set[str] = set()  # tags hearing a tone of ours
        self._started = False
        self._closed = False

    # --- ng -----------------------------------------------------------------------------

    async def ng(self, command: str, **fields: Any) -> dict[str, Any]:
        tried = {self.instance}
        while True:
            try:
                reply = await self._client.request(
                    self.instance, command, call_id=self._call_id, **fields
                )
            except NgUnavailable as exc:
                # Nothing of this call is on that instance yet: it may move to another one.
                nxt = None if self._started else self._client.choose()
                if nxt is None or nxt in tried:
                    raise MediaUnavailable(str(exc)) from None
                logger.warning("%s; the call moves to rtpengine %s", exc, nxt)
                self.instance = nxt
                tried.add(nxt)
                continue
            except NgError as exc:
                raise MediaUnavailable(str(exc)) from None
            self._started = True
            return reply

    async def _quietly(self, command: str, **fields: Any) -> dict[str, Any] | None:
        try:
            return await self.ng(command, **fields)
        except MediaUnavailable as exc:
            logger.warning("%s", exc)
            return None

    def tell_later(self, side: RtpengineSide, offer: bytes) -> None:
        """A party re-offered: rtpengine learns its SDP (a new address, a direction) in the
        background; its partner keeps the SDP it has."""
        peer = self._partners.get(side.tag)

        async def tell() -> None:
            if await self._quietly("offer", from_tag=side.tag, sdp=_text(offer)) is None:
                return
            side.remote = offer
            if peer is not None and peer.remote is not None:
                await self._quietly(
                    "answer", from_tag=side.tag, to_tag=peer.tag, sdp=_text(peer.remote)
                )

        self._spawn(tell)

    # --- CallMedia -----------------------------------------------------------------------

    def new_side(self, label: str, video: bool) -> RtpengineSide:
        side = RtpengineSide(self, f"{label}{next(self._labels)}", video)
        self._sides.append(side)
        return side

    def peer_of(self, side: RtpengineSide, template: bytes | None = None) -> RtpengineSide | None:
        """Whom an offer to ``side`` comes from: its partner; else the side whose party's SDP
        the controller gave as the template (the party staying in a transfer); else the
        latest side whose party gave its SDP."""
        partner = self._partners.get(side.tag)
        if partner is not None:
            return partner
        if template is not None:
            for other in self._sides:
                if other is not side and other.remote == template:
                    return other
        for other in reversed(self._sides):
            if other is not side and other.remote is not None:
                return other
        return None

    async def bridge(self, a: MediaSide, b: MediaSide) -> None:
        # rtpengine connected them when the later one's offer was answered: only remembered
        a_side, b_side = _side(a), _side(b)
        for side in (a_side, b_side):
            old = self._partners.pop(side.tag, None)
            if old is not None and self._partners.get(old.tag) is side:
                del self._partners[old.tag]
        self._partners[a_side.tag] = b_side
        self._partners[b_side.tag] = a_side

    async def play_tone(self, side: MediaSide, frequency: float) -> None:
        s = _side(side)
        if not s.known:
            return
        # A tone is a courtesy: rtpengine refusing it (built without transcoding) or not
        # answering must not end the call (a dead rtpengine is the monitor's to report).
        played = await self._quietly(
            "play media", from_tag=s.tag, blob=tone_wav(frequency), repeat_times=TONE_REPEATS
        )
        if played is not None:
            self._playing.add(s.tag)

    async def play_music(self, side: MediaSide) -> None:
        if self._music_on_hold is None:
            await self.play_tone(side, HOLD_MUSIC_HZ)
            return
        s = _side(side)
        if not s.known:
            return
        played = await self._quietly(
            "play media", from_tag=s.tag, blob=self._music_on_hold, repeat_times=TONE_REPEATS
        )
        if played is not None:
            self._playing.add(s.tag)

    async def stop_tone(self, side: MediaSide) -> None:
        s = _side(side)
        if s.tag in self._playing:
            self._playing.discard(s.tag)
            await self._quietly("stop media", from_tag=s.tag)

    async def start_sandbox(self, side: MediaSide, frequency: float) -> None:
        # The sandbox party has no media of its own: its partner hears the tone it "sends".
        partner = self._partners.get(_side(side).tag)
        if partner is not None:
            await self.play_tone(partner, frequency)

    async def stop_sandbox(self, side: MediaSide) -> None:
        partner = self._partners.get(_side(side).tag)
        if partner is not None:
            await self.stop_tone(partner)

    async def set_hold(self, side: MediaSide, held: bool) -> None:
        # The held party neither hears nor is heard: its media and its partner's are blocked.
        # The re-INVITE already told the party; a refusal here is logged, the call goes on.
        command = "block media" if held else "unblock media"
        s = _side(side)
        await self._quietly(command, from_tag=s.tag)
        partner = self._partners.get(s.tag)
        if partner is not None and partner.known:
            await self._quietly(command, from_tag=partner.tag)

    def send_dtmf(self, side: MediaSide, digit: str, duration_ms: int) -> bool:
        """Not on rtpengine yet: a SIP INFO digit is reported, not passed on (its RFC 4733
        packets pass through rtpengine as they are, but are not reported either)."""
        return False

    def on_dtmf(self, deliver: Callable[[MediaSide, str], None]) -> None:
        return None

    def start_mix(self, sides: Sequence[MediaSide], hears: Sequence[tuple[int, int]]) -> None:
        # the engine refuses the listen-in actions first (``mixing_unavailable``)
        raise MediaUnavailable("mixing is not available with the rtpengine media backend")

    def stop_mix(self, side: MediaSide) -> None:
        pass  # nothing was mixed

    async def start_recording(self, a: MediaSide, b: MediaSide) -> str:
        raise MediaUnavailable("recording is not available with the rtpengine media backend")

    async def stop_recording(self) -> None:
        return None

    def stats(self, sides: Sequence[MediaSide]) -> list[dict[str, dict[str, int]]]:
        return [{} for _side in sides]  # counters need a round trip: only ``finish`` reads them

    async def finish(self, sides: Sequence[MediaSide]) -> list[dict[str, dict[str, int]]]:
        if self._closed or not self._started:
            self._closed = True
            return [{} for _side in sides]
        self._closed = True
        if self._client.is_down(self.instance):  # it is gone: nothing to read or free
            return [{} for _side in sides]
        reply = await self._quietly("query")
        await self._quietly("delete")
        if reply is None:
            return [{} for _side in sides]
        return [self._counters(reply, _side(side)) for side in sides]

    def _counters(self, reply: dict[str, Any], side: RtpengineSide) -> dict[str, dict[str, int]]:
        tags = reply.get("tags")
        if side.remote is None or not isinstance(tags, dict) or side.tag not in tags:
            return {}  # a party without media of its own (a sandbox) has no counters
        partner = self._partners.get(side.tag)
        theirs = tags.get(partner.tag) if partner is not None else None
        kinds: dict[str, dict[str, int]] = {}
        for kind, (rtp, rtcp) in _streams(tags[side.tag]).items():
            prtp, prtcp = _streams(theirs).get(kind, ({}, {})) if theirs else ({}, {})
            kinds[kind] = {
                "rtp_packets_received": int(rtp.get("packets", 0)),
                "rtp_bytes_received": int(rtp.get("bytes", 0)),
                "rtp_packets_sent": int(prtp.get("packets", 0)),
                "rtp_bytes_sent": int(prtp.get("bytes", 0)),
                "rtcp_packets_received": int(rtcp.get("packets", 0)),
                "rtcp_packets_sent": int(prtcp.get("packets", 0)),
                "rtp_lost": 0,
            }
        return kinds

    def close(self) -> None:
        if self._closed or not self._started:
            self._closed = True
            return
        self._closed = True
        with contextlib.suppress(Exception):  # the engine stops: best effort

            async def delete() -> None:
                await self._quietly("delete")

            self._spawn(delete)

    async def watch(self) -> str:
        """Return a cause when this call's rtpengine is found not answering."""
        while True:
            instance = self.instance
            await self._client.wait_down(instance)
            # Lost only if the call has media there; before that it may still move on.
            if self._started and instance == self.instance:
                return f"media lost: rtpengine {instance} stopped answering"


def _streams(tag: Any) -> dict[str, tuple[dict[str, Any], dict[str, Any]]]:
    """A tag of a ``query`` answer -> per media kind, the RTP and RTCP stream stats."""
    result: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}
    if not isinstance(tag, dict):
        return result
    for media in tag.get("medias", []) or []:
        if not isinstance(media, dict) or media.get("type") in result:
            continue
        rtp: dict[str, Any] = {}
        rtcp: dict[str, Any] = {}
        for stream in media.get("streams", []) or []:
            flags = stream.get("flags", []) if isinstance(stream, dict) else []
            stats = stream.get("stats", {}) if isinstance(stream, dict) else {}
            if "RTCP" in flags:
                rtcp = stats
            elif "RTP" in flags:
                rtp = stats
        result[str(media.get("type"))] = (rtp, rtcp)
    return result


def _side(side: MediaSide) -> RtpengineSide:
    if not isinstance(side, RtpengineSide):
        raise TypeError(f"RtpengineMedia got a side it did not make: {side!r}")
    return side
