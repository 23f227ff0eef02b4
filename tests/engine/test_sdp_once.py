"""Each SDP body of a call is parsed once: the SIP service's check of an inbound offer, the
answer from the caller's relay side and the destination's offer (which mirrors that answer)
share one parse through the server's ``ParseCache``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from media_ports import free_range

from engine.anchor import RelayMedia
from engine.media import Relay
from sip import sdp
from sip.errors import RemoteProtocolError
from sip.sdp import SessionDescription

HOST = "127.0.0.1"
OFFER = (
    b"v=0\r\no=caller 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    b"m=audio 6000 RTP/AVP 8 101\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\n"
)
CALLEE_ANSWER = (
    b"v=0\r\no=callee 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    b"m=audio 7000 RTP/AVP 8\r\na=rtpmap:8 PCMA/8000\r\n"
)


@pytest.fixture
def relay() -> Iterator[Relay]:
    r = Relay(HOST, free_range(8))
    r.start()
    yield r
    r.close()


@pytest.fixture
def parsed(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """Every body ``SessionDescription.parse`` is given."""
    bodies: list[bytes] = []
    real = SessionDescription.parse.__func__  # type: ignore[attr-defined]

    def counting(cls: type[SessionDescription], data: bytes) -> SessionDescription:
        bodies.append(data)
        return real(cls, data)  # type: ignore[no-any-return]

    monkeypatch.setattr(SessionDescription, "parse", classmethod(counting))
    return bodies


async def test_an_inbound_offer_and_the_callee_answer_are_parsed_once_each(
    relay: Relay, parsed: list[bytes], tmp_path: Path
) -> None:
    cache = sdp.ParseCache()
    media = RelayMedia(relay, tmp_path / "call.wav", cache)
    cache.parse(OFFER)  # the SIP service checks the offer
    caller_side, callee_side = media.new_side("caller", False), media.new_side("callee", False)
    answer = await caller_side.answer(OFFER)  # the 183/200 to the caller
    offer = await callee_side.offer(caller_side.accepted)  # the INVITE to the callee
    await callee_side.apply_remote(CALLEE_ANSWER)  # the callee's 200
    assert parsed == [OFFER, CALLEE_ANSWER]
    # and what they produced is what a parse would give: PCMA and events mirrored
    assert b"RTP/AVP 8 101" in answer
    assert b"RTP/AVP 8 101" in offer
    media.close()


def test_a_body_that_does_not_parse_is_not_kept() -> None:
    cache = sdp.ParseCache(2)
    for _ in range(2):  # raised again, not kept
        with pytest.raises(RemoteProtocolError):
            cache.parse(b"not sdp")
    assert cache.parses == 0
    for body in (OFFER, CALLEE_ANSWER, OFFER):
        cache.parse(body)
    assert cache.parses == 2
    cache.parse(OFFER.replace(b"6000", b"6002"))  # a third body: the oldest goes
    cache.parse(OFFER)
    assert cache.parses == 4
