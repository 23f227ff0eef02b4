"""Our SDP keeps telephone-event when a party offers it, and the relay is told each party's
telephone-event payload type from the SDP the engine applies."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from media_ports import free_range

from engine.anchor import RelayMedia
from engine.media import Relay
from engine.media.stats import MediaEndpoint
from sip import sdp


def party_sdp(port: int, te_pt: int | None) -> bytes:
    formats = "0" if te_pt is None else f"0 {te_pt}"
    text = (
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
        f"m=audio {port} RTP/AVP {formats}\r\na=rtpmap:0 PCMU/8000\r\n"
    )
    if te_pt is not None:
        text += f"a=rtpmap:{te_pt} telephone-event/8000\r\na=fmtp:{te_pt} 0-16\r\n"
    return (text + "a=sendrecv\r\n").encode()


class TellingRelay(Relay):
    """The real relay, noting what it is told about telephone-events."""

    told: list[tuple[int, int | None]]

    def set_telephone_event(self, ep: MediaEndpoint, payload_type: int | None) -> None:
        self.told.append((ep.id, payload_type))
        super().set_telephone_event(ep, payload_type)


@pytest.fixture
def relay() -> Iterator[TellingRelay]:
    r = TellingRelay("127.0.0.1", free_range(20))
    r.told = []
    yield r
    r.close()


def telephone_events(data: bytes) -> list[int]:
    parsed = sdp.SessionDescription.parse(data)
    return [c.payload_type for c in parsed.media[0].codecs() if c.name == "telephone-event"]


async def test_an_offer_with_telephone_event_is_answered_with_it_and_the_relay_told(
    relay: TellingRelay, tmp_path: Path
) -> None:
    media = RelayMedia(relay, tmp_path / "x.wav")
    a = media.new_side("a", False)
    answer = await a.answer(party_sdp(4000, 96))
    assert telephone_events(answer) == [96]
    assert relay.told == [(a.audio.id, 96)]
    # the other side's offer mirrors it, so the other party may take it too
    b = media.new_side("b", False)
    assert telephone_events(await b.offer(a.accepted)) == [96]
    await b.apply_remote(party_sdp(5000, 101))
    assert relay.told[-1] == (b.audio.id, 101)
    assert media.send_dtmf(b, "#", 100) is True
    media.close()


async def test_a_party_without_telephone_event_is_not_played_digits(
    relay: TellingRelay, tmp_path: Path
) -> None:
    media = RelayMedia(relay, tmp_path / "x.wav")
    a = media.new_side("a", False)
    await a.apply_remote(party_sdp(4000, None))
    assert telephone_events(await a.answer(party_sdp(4000, None))) == []
    assert media.send_dtmf(a, "5", 100) is False
    # a later SDP with it (a re-INVITE) is taken
    await a.apply_remote(party_sdp(4000, 101))
    assert relay.told == [(a.audio.id, 101)]
    assert media.send_dtmf(a, "5", 100) is True
    media.close()
