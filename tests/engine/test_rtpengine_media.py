"""``RtpengineMedia`` against a scripted ng client: which ng requests a call's steps make, and
how the answers become SDP and counters."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import trio

from engine.call_types import HOLD_MUSIC_HZ, MediaUnavailable
from engine.rtpengine.client import Instance, NgRefused, NgUnavailable
from engine.rtpengine.media import RtpengineMedia, tone_wav

A_SDP = (
    b"v=0\r\no=a 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n"
    b"m=audio 4000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n"
)
B_SDP = A_SDP.replace(b"10.0.0.1", b"10.0.0.2").replace(b"4000", b"5000")

ONE = Instance("127.0.0.1", 2223)
TWO = Instance("127.0.0.1", 2224)


class FakeNg:
    """Answers like rtpengine: every offer/answer gets an SDP naming a port of its own."""

    def __init__(self, instances: list[Instance] | None = None) -> None:
        self.instances = instances or [ONE]
        self.requests: list[tuple[Instance, str, dict[str, Any]]] = []
        self.dead: set[Instance] = set()
        self.refuse: set[str] = set()
        self.query_reply: dict[str, Any] = {"result": "ok", "tags": {}}
        self._ports = iter(range(30000, 40000, 2))
        self._next = 0
        self.down = trio.Event()

    def choose(self) -> Instance:
        live = [i for i in self.instances if i not in self.dead] or self.instances
        self._next += 1
        return live[(self._next - 1) % len(live)]

    def is_down(self, instance: Instance) -> bool:
        return instance in self.dead

    async def wait_down(self, instance: Instance) -> None:
        await self.down.wait()

    async def request(self, instance: Instance, command: str, **fields: Any) -> dict[str, Any]:
        self.requests.append((instance, command, fields))
        if instance in self.dead:
            raise NgUnavailable(f"rtpengine {instance} did not answer {command}")
        if command in self.refuse:
            raise NgRefused(f"rtpengine {instance} refused {command}: no")
        if command in ("offer", "answer"):
            port = next(self._ports)
            sdp = str(fields["sdp"])
            sdp = re.sub(r"c=IN IP4 \S+", "c=IN IP4 127.0.0.1", sdp)
            sdp = re.sub(r"m=audio \d+", f"m=audio {port}", sdp)
            return {"result": "ok", "sdp": sdp}
        if command == "query":
            return self.query_reply
        return {"result": "ok"}

    def commands(self) -> list[str]:
        return [command for _i, command, _f in self.requests]


def media_on(ng: FakeNg) -> tuple[RtpengineMedia, list[Callable[[], Awaitable[None]]]]:
    spawned: list[Callable[[], Awaitable[None]]] = []
    return RtpengineMedia(ng, "call1", spawned.append), spawned  # type: ignore[arg-type]


async def test_an_outbound_call_is_an_offer_and_answer_per_party() -> None:
    ng = FakeNg()
    media, _ = media_on(ng)
    a = media.new_side("a", False)
    to_a = await a.offer(None)
    assert b"c=IN IP4 127.0.0.1" in to_a  # rtpengine's address, not ours
    # the first offer comes from a placeholder tag at rtpengine's discard port
    _i, command, fields = ng.requests[0]
    assert command == "offer" and fields["from_tag"] == "a1~" and fields["to_tag"] == "a1"
    assert "c=IN IP4 127.0.0.1" in fields["sdp"] and "m=audio 9 " in fields["sdp"]
    await a.apply_remote(A_SDP)
    assert ng.requests[1][1:] == ("answer", {**ng.requests[1][2], "to_tag": "a1"})
    b = media.new_side("b", False)
    await b.offer(a.accepted)
    # the destination's offer comes from the source's tag with the source's own SDP
    _i, command, fields = ng.requests[2]
    assert (command, fields["from_tag"], fields["to_tag"]) == ("offer", "a1", "b2")
    assert fields["sdp"] == A_SDP.decode()
    await b.apply_remote(B_SDP)
    assert ng.requests[3][2]["from_tag"] == "a1" and ng.requests[3][2]["to_tag"] == "b2"
    await media.bridge(a, b)
    assert {i for i, _c, _f in ng.requests} == {ONE}  # one instance for the whole call
    assert len({f["call_id"] for _i, _c, f in ng.requests}) == 1


async def test_ringback_is_a_wav_blob_played_to_the_party_and_stopped() -> None:
    ng = FakeNg()
    media, _ = media_on(ng)
    a = media.new_side("a", False)
    await a.offer(None)
    await media.play_tone(a, 425)  # not before the party answered: nothing to play to
    assert "play media" not in ng.commands()
    await a.apply_remote(A_SDP)
    await media.play_tone(a, 425)
    _i, command, fields = ng.requests[-1]
    assert command == "play media" and fields["from_tag"] == "a1"
    assert fields["blob"] == tone_wav(425) and fields["blob"][:4] == b"RIFF"
    await media.stop_tone(a)
    assert ng.requests[-1][1:] == ("stop media", {"call_id": fields["call_id"], "from_tag": "a1"})


async def test_hold_blocks_the_party_and_its_partner_and_unhold_unblocks() -> None:
    ng = FakeNg()
    media, _ = media_on(ng)
    a, b = media.new_side("a", False), media.new_side("b", False)
    for side, sdp in ((a, A_SDP), (b, B_SDP)):
        await side.offer(None)
        await side.apply_remote(sdp)
    await media.bridge(a, b)
    await media.set_hold(b, True)
    assert [(c, f["from_tag"]) for _i, c, f in ng.requests[-2:]] == [
        ("block media", "b2"),
        ("block media", "a1"),
    ]
    hold_offer = await b.offer(b.accepted, "sendonly")
    assert b"a=sendonly" in hold_offer
    assert "a=sendonly" in ng.requests[-1][2]["sdp"]  # rtpengine got the direction
    await media.set_hold(b, False)
    assert [c for _i, c, _f in ng.requests[-2:]] == ["unblock media", "unblock media"]


async def test_a_party_re_offer_is_answered_at_once_and_told_later() -> None:
    ng = FakeNg()
    media, spawned = media_on(ng)
    a, b = media.new_side("a", False), media.new_side("b", False)
    for side, sdp in ((a, A_SDP), (b, B_SDP)):
        await side.offer(None)
        await side.apply_remote(sdp)
    await media.bridge(a, b)
    before = len(ng.requests)
    answer = a.reanswer(A_SDP.replace(b"a=sendrecv", b"a=sendonly"))
    assert b"a=recvonly" in answer  # the direction mirrored, the ports kept
    assert len(ng.requests) == before  # nothing waited for
    await spawned[-1]()
    assert [(c, f.get("from_tag")) for _i, c, f in ng.requests[before:]] == [
        ("offer", "a1"),
        ("answer", "a1"),
    ]


async def test_counters_come_from_query_in_the_record_fields() -> None:
    ng = FakeNg()
    media, _ = media_on(ng)
    a, b = media.new_side("a", False), media.new_side("b", False)
    for side, sdp in ((a, A_SDP), (b, B_SDP)):
        await side.offer(None)
        await side.apply_remote(sdp)
    await media.bridge(a, b)

    def tag(rtp: int, rtcp: int) -> dict[str, Any]:
        stream = {"flags": ["RTP"], "stats": {"packets": rtp, "bytes": rtp * 172}}
        control = {"flags": ["RTCP"], "stats": {"packets": rtcp, "bytes": rtcp * 80}}
        return {"medias": [{"type": "audio", "streams": [stream, control]}]}

    ng.query_reply = {"result": "ok", "tags": {"a1": tag(250, 5), "b2": tag(240, 4)}}
    counters = await media.finish([a, b])
    assert counters[0]["audio"] == {
        "rtp_packets_received": 250,
        "rtp_bytes_received": 250 * 172,
        "rtp_packets_sent": 240,
        "rtp_bytes_sent": 240 * 172,
        "rtcp_packets_received": 5,
        "rtcp_packets_sent": 4,
        "rtp_lost": 0,
    }
    assert counters[1]["audio"]["rtp_packets_received"] == 240
    assert ng.commands()[-2:] == ["query", "delete"]


async def test_a_call_moves_to_the_next_instance_only_before_anything_is_there() -> None:
    ng = FakeNg([ONE, TWO])
    ng.dead.add(ONE)
    ng._next = 0
    media = RtpengineMedia(ng, "call1", lambda task: None)  # type: ignore[arg-type]
    media.instance = ONE
    a = media.new_side("a", False)
    await a.offer(None)
    assert [i for i, _c, _f in ng.requests] == [ONE, TWO]
    assert media.instance == TWO
    ng.dead.add(TWO)  # now the call has state on TWO: no moving, the call fails naming it
    with pytest.raises(MediaUnavailable, match=r"rtpengine udp:127\.0\.0\.1:2224 did not answer"):
        await a.apply_remote(A_SDP)


async def test_a_tone_or_hold_refused_is_logged_and_the_call_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    ng = FakeNg()
    media, _ = media_on(ng)
    a = media.new_side("a", False)
    await a.offer(None)
    await a.apply_remote(A_SDP)
    ng.refuse |= {"play media", "block media"}
    await media.play_tone(a, 425)
    await media.set_hold(a, True)
    await media.stop_tone(a)  # nothing playing: nothing to stop
    assert ng.commands()[-2:] == ["play media", "block media"]
    assert "refused play media" in caplog.text and "refused block media" in caplog.text


async def test_a_sandbox_party_has_no_counters() -> None:
    ng = FakeNg()
    media, _ = media_on(ng)
    phone, sandbox = media.new_side("a", False), media.new_side("b", False)
    await phone.offer(None)
    await phone.apply_remote(A_SDP)
    await sandbox.offer(phone.accepted)
    await sandbox.apply_remote(None)  # a sandbox answers without SDP
    await media.bridge(phone, sandbox)
    stream = {"flags": ["RTP"], "stats": {"packets": 7, "bytes": 7}}
    streams = {"medias": [{"type": "audio", "streams": [stream]}]}
    ng.query_reply = {"result": "ok", "tags": {"a1": streams, "b2": streams}}
    counters = await media.finish([phone, sandbox])
    assert counters[0]["audio"]["rtp_packets_received"] == 7
    assert counters[1] == {}


async def test_a_refusal_is_a_media_failure_naming_the_reason() -> None:
    ng = FakeNg()
    ng.refuse.add("offer")
    media, _ = media_on(ng)
    with pytest.raises(MediaUnavailable, match="refused offer: no"):
        await media.new_side("a", False).offer(None)


async def test_recording_is_not_available() -> None:
    media, _ = media_on(FakeNg())
    a, b = media.new_side("a", False), media.new_side("b", False)
    with pytest.raises(MediaUnavailable, match="recording is not available"):
        await media.start_recording(a, b)


async def test_watch_names_the_instance_once_it_is_dead() -> None:
    ng = FakeNg()
    media, _ = media_on(ng)
    await media.new_side("a", False).offer(None)
    ng.down.set()
    assert await media.watch() == "media lost: rtpengine udp:127.0.0.1:2223 stopped answering"


async def test_music_on_hold_is_the_configured_file_or_the_built_in_tone() -> None:
    music = b"RIFF....WAVEfmt music on hold"
    for configured, blob in ((None, tone_wav(HOLD_MUSIC_HZ)), (music, music)):
        ng = FakeNg()
        spawned: list[Callable[[], Awaitable[None]]] = []
        media = RtpengineMedia(ng, "call1", spawned.append, configured)  # type: ignore[arg-type]
        a = media.new_side("a", False)
        await a.offer(None)
        await a.apply_remote(A_SDP)
        await media.play_music(a)
        _i, command, fields = ng.requests[-1]
        assert (command, fields["from_tag"], fields["blob"]) == ("play media", "a1", blob)
        await media.stop_tone(a)
        assert ng.commands()[-1] == "stop media"
