"""SDP parsing/serialising (RFC 8866) and the offer/answer helpers (RFC 3264, 3605, 6337)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sip import sdp
from sip.errors import LocalProtocolError, RemoteProtocolError
from sip.sdp import (
    Attribute,
    Codec,
    Connection,
    Direction,
    MediaDescription,
    Origin,
    SessionDescription,
    Timing,
)

# A typical offer from a softphone: audio + video, rtcp, fmtp, an unknown attribute, b= lines.
PHONE_OFFER = (
    b"v=0\r\n"
    b"o=alice 2890844526 2890844526 IN IP4 192.0.2.10\r\n"
    b"s=-\r\n"
    b"c=IN IP4 192.0.2.10\r\n"
    b"b=AS:512\r\n"
    b"t=0 0\r\n"
    b"a=tool:some-phone 1.0\r\n"
    b"m=audio 49170 RTP/AVP 8 0 18 101\r\n"
    b"b=TIAS:64000\r\n"
    b"a=rtpmap:8 PCMA/8000\r\n"
    b"a=rtpmap:0 PCMU/8000\r\n"
    b"a=rtpmap:18 G729/8000\r\n"
    b"a=fmtp:18 annexb=no\r\n"
    b"a=rtpmap:101 telephone-event/8000\r\n"
    b"a=fmtp:101 0-15\r\n"
    b"a=ptime:20\r\n"
    b"a=rtcp:49171\r\n"
    b"a=x-vendor-thing:keep me\r\n"
    b"a=sendrecv\r\n"
    b"m=video 51372 RTP/AVP 99 96\r\n"
    b"c=IN IP4 192.0.2.11\r\n"
    b"a=rtpmap:99 VP8/90000\r\n"
    b"a=rtpmap:96 H264/90000\r\n"
    b"a=fmtp:96 profile-level-id=42e01f;packetization-mode=1\r\n"
    b"a=rtcp:53020 IN IP4 192.0.2.12\r\n"
    b"a=sendonly\r\n"
)


def test_parse_typical_offer() -> None:
    sd = sdp.parse(PHONE_OFFER)
    assert sd.origin == Origin("alice", "2890844526", 2890844526, "192.0.2.10")
    assert sd.connection == Connection("192.0.2.10")
    assert sd.times == (Timing(0, 0),)
    assert sd.attribute("tool") == "some-phone 1.0"
    audio, video = sd.media
    assert (audio.media, audio.port, audio.proto) == ("audio", 49170, "RTP/AVP")
    assert audio.formats == ("8", "0", "18", "101")
    assert [c.name for c in audio.codecs()] == ["PCMA", "PCMU", "G729", "telephone-event"]
    assert audio.codecs()[2].fmtp == "annexb=no"
    assert audio.codecs()[3] == Codec(101, "telephone-event", 8000, fmtp="0-15")
    assert audio.direction is Direction.SENDRECV
    assert audio.rtcp_port == 49171
    assert audio.attribute("x-vendor-thing") == "keep me"
    assert audio.other_lines == (("b", "TIAS:64000"),)
    assert sd.connection_for(audio) == Connection("192.0.2.10")
    assert video.connection == Connection("192.0.2.11")
    assert sd.connection_for(video) == Connection("192.0.2.11")
    assert video.direction is Direction.SENDONLY
    assert video.rtcp is not None and video.rtcp.port == 53020
    assert video.rtcp.connection == Connection("192.0.2.12")
    assert [c.name for c in video.codecs()] == ["VP8", "H264"]


def test_serialize_is_byte_identical_for_canonical_input() -> None:
    assert sdp.parse(PHONE_OFFER).serialize() == PHONE_OFFER
    assert SessionDescription.parse(PHONE_OFFER).serialize() == PHONE_OFFER


def test_unknown_lines_kept_in_order() -> None:
    body = (
        b"v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=talk\r\ni=info here\r\nu=http://x/y\r\n"
        b"e=a@b.c\r\ne=d@e.f\r\np=+1 555\r\nc=IN IP4 10.0.0.1\r\nb=CT:128\r\n"
        b"t=2873397496 2873404696\r\nr=7d 1h 0 25h\r\nz=2882844526 -1h\r\nk=prompt\r\n"
        b"a=recvonly\r\na=zzz\r\na=aaa:1\r\n"
        b"m=audio 0 RTP/AVP\r\ni=muted\r\nk=clear:x\r\ny=0100000001\r\na=b:c\r\n"
    )
    sd = sdp.parse(body)
    assert sd.times == (Timing(2873397496, 2873404696, ("7d 1h 0 25h",)),)
    assert [a.name for a in sd.attributes] == ["recvonly", "zzz", "aaa"]
    assert sd.media[0].formats == ()
    assert sd.media[0].other_lines == (("i", "muted"), ("k", "clear:x"), ("y", "0100000001"))
    assert sd.serialize() == body


def test_out_of_order_lines_are_put_in_rfc_order() -> None:
    # Found by the mutation fuzzer: a u= after a= must come back in the same place on re-parse.
    body = b"v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nt=0 0\r\na=x\r\nu=late\r\ni=first\r\n"
    sd = sdp.parse(body)
    assert sd.other_lines == (("i", "first"), ("u", "late"))
    assert sd.serialize() == (
        b"v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\ni=first\r\nu=late\r\nt=0 0\r\na=x\r\n"
    )
    assert sdp.parse(sd.serialize()) == sd


def test_lenient_reading() -> None:
    # Bare LF line ends, an empty s=, no t= line, trailing blank lines: all seen from real peers.
    body = b"v=0\no=- 1 2 IN IP6 ::1\ns=\nc=IN IP6 ::1\nm=audio 4000 RTP/AVP 0\n\n"
    sd = sdp.parse(body)
    assert sd.session_name == ""
    assert sd.times == ()
    assert sd.connection == Connection("::1", addrtype="IP6")
    assert sd.media[0].codecs() == [Codec(0, "PCMU", 8000)]
    assert sd.serialize() == body.replace(b"\n", b"\r\n")[:-2]


def test_non_utf8_bytes_survive() -> None:
    body = b"v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=Caf\xe9\r\nt=0 0\r\n"
    assert sdp.parse(body).serialize() == body


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"", "v=0"),
        (b"hello world", "not <type>=<value>"),
        (b"v=1\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\n", "v=0"),
        (b"v=0\r\ns=-\r\n", "missing o="),
        (b"v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\n", "missing s="),
        (b"v=0\r\no=- 1 x IN IP4 1.2.3.4\r\ns=-\r\n", "session version"),
        (b"v=0\r\no=- 1 1 IN IP4\r\ns=-\r\n", "bad o="),
        (b"v=0\r\no=- 1 1 IN IP4 a\r\ns=-\r\nc=IN IP4\r\n", "bad c="),
        (b"v=0\r\no=- 1 1 IN IP4 a\r\ns=-\r\nt=0\r\n", "bad t="),
        (b"v=0\r\no=- 1 1 IN IP4 a\r\ns=-\r\nm=audio 70000 RTP/AVP 0\r\n", "out of range"),
        (b"v=0\r\no=- 1 1 IN IP4 a\r\ns=-\r\nm=audio x RTP/AVP 0\r\n", "bad m= port"),
        (b"v=0\r\no=- 1 1 IN IP4 a\r\ns=-\r\nm=audio 1\r\n", "bad m="),
        (b"v=0\r\no=- 1 1 IN IP4 a\r\ns=-\r\nm=audio 1 RTP/AVP 0\r\ns=x\r\n", "media section"),
        (b"v=0\r\no=- 1 1 IN IP4 a\r\ns=-\r\n\r\nt=0 0\r\n", "empty line"),
        (b"v=0\r\no=- 1 1 IN IP4 a\r\ns=-\r\na=:x\r\n", "attribute"),
        (b"v=0\r\no=- 1 1 IN IP4 a\r\ns=-\r\nr=1d\r\n", "r= line"),
        (b"v=0\r\no=- 1 1 IN IP4 a\r\ns=-\x00\r\n", "NUL"),
        (b"v=0\r\nv=0\r\n", "repeated v="),
    ],
)
def test_junk_is_a_remote_protocol_error(body: bytes, fragment: str) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        sdp.parse(body)
    assert fragment in info.value.reason
    assert info.value.status_hint == 400


# --- Hypothesis ------------------------------------------------------------------------------

_token = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-./+_*", min_size=1, max_size=12)
_digits = st.text(alphabet="0123456789", min_size=1, max_size=20)
_line_text = st.text(
    alphabet=st.characters(codec="utf-8", exclude_characters="\r\n\x00"),
    max_size=30,
)
_attribute = st.builds(
    Attribute,
    name=st.text(
        alphabet=st.characters(codec="utf-8", exclude_characters="\r\n\x00:"),
        min_size=1,
        max_size=12,
    ),
    value=st.none() | _line_text,
)
_connection = st.builds(Connection, address=_token, nettype=_token, addrtype=_token)


def _sorted_lines(
    letters: str, order: dict[str, int]
) -> st.SearchStrategy[tuple[tuple[str, str], ...]]:
    lines = st.lists(st.tuples(st.sampled_from(letters), _line_text), max_size=4)
    return lines.map(lambda ls: tuple(sorted(ls, key=lambda line: order.get(line[0], 9))))


_media = st.builds(
    MediaDescription,
    media=_token,
    port=st.integers(0, 65535),
    proto=_token,
    formats=st.lists(_token, max_size=5).map(tuple),
    connection=st.none() | _connection,
    attributes=st.lists(_attribute, max_size=5).map(tuple),
    port_count=st.none() | st.integers(0, 65535),
    other_lines=_sorted_lines("ibkxy", {"i": 0, "b": 2, "k": 3}),
)
_session = st.builds(
    SessionDescription,
    origin=st.builds(
        Origin,
        username=_token,
        session_id=_digits,
        version=st.integers(0, 2**64),
        address=_token,
        nettype=_token,
        addrtype=_token,
    ),
    session_name=_line_text,
    connection=st.none() | _connection,
    times=st.lists(
        st.builds(
            Timing,
            start=st.integers(0, 2**40),
            stop=st.integers(0, 2**40),
            repeats=st.lists(_line_text, max_size=2).map(tuple),
        ),
        max_size=2,
    ).map(tuple),
    attributes=st.lists(_attribute, max_size=5).map(tuple),
    media=st.lists(_media, max_size=3).map(tuple),
    other_lines=_sorted_lines(
        "iuepbzkxy", {"i": 0, "u": 1, "e": 2, "p": 3, "b": 5, "z": 7, "k": 8}
    ),
)


@given(_session)
def test_roundtrip(sd: SessionDescription) -> None:
    assert sdp.parse(sd.serialize()) == sd


@given(st.binary(max_size=300))
def test_arbitrary_bytes_only_raise_remote_protocol_error(data: bytes) -> None:
    try:
        sd = sdp.parse(data)
    except RemoteProtocolError:
        return
    assert sdp.parse(sd.serialize()) == sd  # whatever we accept we can pass on
    for media in sd.media:  # the helpers must not crash on whatever was accepted either
        media.codecs()
        _ = (media.direction, media.rtcp_port, sd.direction_of(media))


@given(_session, st.data())
def test_mutated_valid_sdp_only_raises_remote_protocol_error(
    sd: SessionDescription, data: st.DataObject
) -> None:
    body = bytearray(sd.serialize())
    for _ in range(data.draw(st.integers(1, 4))):
        pos = data.draw(st.integers(0, len(body) - 1))
        body[pos] = data.draw(st.integers(0, 255))
    try:
        parsed = sdp.parse(bytes(body))
    except RemoteProtocolError:
        return
    assert sdp.parse(parsed.serialize()) == parsed
    for media in parsed.media:
        media.codecs()
        _ = media.rtcp_port


@pytest.mark.parametrize(
    "change",
    [
        lambda sd: dataclasses.replace(sd, session_name="x\r\na=injected"),
        lambda sd: dataclasses.replace(sd, origin=dataclasses.replace(sd.origin, username="a b")),
        lambda sd: dataclasses.replace(sd, origin=dataclasses.replace(sd.origin, session_id="x")),
        lambda sd: dataclasses.replace(sd, connection=Connection("")),
        lambda sd: dataclasses.replace(sd, attributes=(Attribute("a:b"),)),
        lambda sd: dataclasses.replace(sd, other_lines=(("m", "audio 1 RTP/AVP 0"),)),
        lambda sd: dataclasses.replace(sd, media=(dataclasses.replace(sd.media[0], port=70000),)),
        lambda sd: dataclasses.replace(
            sd, media=(dataclasses.replace(sd.media[0], formats=("0 8",)),)
        ),
        lambda sd: dataclasses.replace(
            sd, media=(dataclasses.replace(sd.media[0], other_lines=(("c", "IN IP4 x"),)),)
        ),
    ],
)
def test_serialize_is_strict(change: Callable[[SessionDescription], SessionDescription]) -> None:
    sd = sdp.make_offer("10.0.0.1", 4000, session_id=1)
    sd.serialize()
    with pytest.raises(LocalProtocolError):
        change(sd).serialize()


# --- Offer / answer --------------------------------------------------------------------------


def test_make_offer_audio_video() -> None:
    offer = sdp.make_offer("10.0.0.5", 20000, 20002, session_id=42, version=7)
    body = offer.serialize().decode()
    assert body.startswith(
        "v=0\r\no=- 42 7 IN IP4 10.0.0.5\r\ns=-\r\nc=IN IP4 10.0.0.5\r\nt=0 0\r\n"
    )
    assert "m=audio 20000 RTP/AVP 0 8 101\r\n" in body
    assert "a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\n" in body
    assert "m=video 20002 RTP/AVP 96 97\r\n" in body
    assert "a=fmtp:96 profile-level-id=42e01f;packetization-mode=1\r\n" in body
    assert "a=rtpmap:97 VP8/90000\r\n" in body
    assert sdp.parse(offer.serialize()) == offer
    audio = offer.media[0]
    assert [c.name for c in audio.codecs()] == ["PCMU", "PCMA", "telephone-event"]
    assert audio.direction is Direction.SENDRECV and audio.rtcp_port == 20001


def test_make_offer_ipv6_and_audio_only() -> None:
    offer = sdp.make_offer("2001:db8::1", 30000, session_id="1")
    assert offer.connection == Connection("2001:db8::1", addrtype="IP6")
    assert offer.origin.addrtype == "IP6"
    assert [m.media for m in offer.media] == ["audio"]


def test_make_offer_misuse() -> None:
    with pytest.raises(LocalProtocolError):
        sdp.make_offer("10.0.0.5", 20000, audio_codecs=(), session_id=1)


def test_answer_intersects_in_offerers_order() -> None:
    offer = sdp.parse(PHONE_OFFER)
    ans = sdp.make_answer(offer, "10.0.0.9", [40000, 40002], session_id=5)
    audio, video = ans.media
    # Offer order is PCMA PCMU G729 te; we support PCMU PCMA te: offerer's order wins.
    assert audio.formats == ("8", "0", "101")
    assert [c.name for c in audio.codecs()] == ["PCMA", "PCMU", "telephone-event"]
    assert audio.codecs()[2].fmtp == "0-15"  # the offer's events, not our default 0-16
    assert audio.port == 40000 and audio.attribute("ptime") == "20"
    assert audio.direction is Direction.SENDRECV
    # Video: offerer's VP8 then H264 (same packetization-mode), offered sendonly -> recvonly.
    assert video.formats == ("99", "96") and video.port == 40002
    assert video.direction is Direction.RECVONLY
    assert ans.connection == Connection("10.0.0.9")
    assert ans.has_active_media
    assert sdp.parse(ans.serialize()) == ans


def test_answer_rejects_streams_without_common_codec() -> None:
    offer = sdp.make_offer(
        "10.0.0.5",
        20000,
        20002,
        audio_codecs=(Codec(18, "G729", 8000), Codec(101, "telephone-event", 8000)),
        video_codecs=(Codec(96, "H264", 90000, fmtp="packetization-mode=0"),),
        session_id=1,
    )
    ans = sdp.make_answer(offer, "10.0.0.9", {"audio": 40000, "video": 40002}, session_id=2)
    # telephone-event alone is not an audio codec; H264 mode 0 differs from our mode 1.
    assert [(m.media, m.port) for m in ans.media] == [("audio", 0), ("video", 0)]
    assert not ans.has_active_media
    assert b"m=audio 0 RTP/AVP 18\r\n" in ans.serialize()


def test_answer_keeps_rejected_and_unsupported_streams_rejected() -> None:
    offer = sdp.parse(
        b"v=0\r\no=- 1 1 IN IP4 1.1.1.1\r\ns=-\r\nc=IN IP4 1.1.1.1\r\nt=0 0\r\n"
        b"m=audio 0 RTP/AVP 0\r\n"
        b"m=audio 5000 RTP/SAVP 0\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:xyz\r\n"
        b"m=application 5002 UDP/BFCP *\r\n"
        b"m=audio 5004 RTP/AVP 0\r\n"
    )
    ans = sdp.make_answer(offer, "2.2.2.2", [1000, 1002, 1004, 1006], session_id=1)
    assert [m.port for m in ans.media] == [0, 0, 0, 1006]
    assert [m.media for m in ans.media] == ["audio", "audio", "application", "audio"]


@pytest.mark.parametrize(
    ("offered", "local", "expected"),
    [
        ("sendrecv", "sendrecv", Direction.SENDRECV),
        ("sendonly", "sendrecv", Direction.RECVONLY),
        ("recvonly", "sendrecv", Direction.SENDONLY),
        ("inactive", "sendrecv", Direction.INACTIVE),
        ("sendrecv", "sendonly", Direction.SENDONLY),
        ("sendonly", "sendonly", Direction.INACTIVE),
    ],
)
def test_answer_directions(offered: str, local: str, expected: Direction) -> None:
    offer = sdp.with_direction(sdp.make_offer("1.1.1.1", 5000, session_id=1), offered)
    ans = sdp.make_answer(offer, "2.2.2.2", [6000], direction=local, session_id=1)
    assert ans.media[0].direction is expected


def test_session_level_direction_and_null_address_are_honoured() -> None:
    offer = sdp.parse(
        b"v=0\r\no=- 1 1 IN IP4 1.1.1.1\r\ns=-\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\n"
        b"m=audio 5000 RTP/AVP 0\r\n"
    )
    # RFC 2543 hold (c=0.0.0.0): the offerer receives nothing, so we answer recvonly.
    assert offer.direction_of(offer.media[0]) is Direction.SENDONLY
    ans = sdp.make_answer(offer, "2.2.2.2", [6000], session_id=1)
    assert ans.media[0].direction is Direction.RECVONLY
    offer2 = sdp.parse(
        b"v=0\r\no=- 1 1 IN IP4 1.1.1.1\r\ns=-\r\nc=IN IP4 1.1.1.1\r\nt=0 0\r\na=inactive\r\n"
        b"m=audio 5000 RTP/AVP 0\r\n"
    )
    ans2 = sdp.make_answer(offer2, "2.2.2.2", [6000], session_id=1)
    assert ans2.media[0].direction is Direction.INACTIVE


def test_answer_port_count_mismatch_is_local_error() -> None:
    with pytest.raises(LocalProtocolError):
        sdp.make_answer(
            sdp.make_offer("1.1.1.1", 5000, 5002, session_id=1), "2.2.2.2", [6000], session_id=1
        )


# --- Hold, versions, anchoring ----------------------------------------------------------------


def test_with_direction_hold_and_resume() -> None:
    offer = sdp.parse(PHONE_OFFER)
    held = sdp.with_direction(offer, "sendonly", bump=True)
    assert held.origin.version == offer.origin.version + 1
    assert [m.direction for m in held.media] == [Direction.SENDONLY, Direction.SENDONLY]
    # Replaced in place: the audio attributes keep their order, one direction line each.
    audio_names = [a.name for a in held.media[0].attributes]
    assert audio_names[-2:] == ["x-vendor-thing", "sendonly"]
    assert audio_names.count("sendonly") == 1 and "sendrecv" not in audio_names
    resumed = sdp.with_direction(held, Direction.SENDRECV)
    assert [m.direction for m in resumed.media] == [Direction.SENDRECV] * 2
    assert sdp.with_direction(offer, "inactive").media[1].direction is Direction.INACTIVE


def test_hold_follows_rfc6337() -> None:
    offer = sdp.parse(PHONE_OFFER)  # audio sendrecv, video sendonly
    held = sdp.hold(offer, bump=True)
    assert [held.direction_of(m) for m in held.media] == [Direction.SENDONLY, Direction.SENDONLY]
    recvonly = sdp.with_direction(offer, "recvonly")
    assert sdp.hold(recvonly).media[0].direction is Direction.INACTIVE


def test_with_direction_drops_session_level_direction() -> None:
    sd = sdp.parse(
        b"v=0\r\no=- 1 1 IN IP4 1.1.1.1\r\ns=-\r\nt=0 0\r\na=recvonly\r\n"
        b"m=audio 5000 RTP/AVP 0\r\nc=IN IP4 1.1.1.1\r\nm=audio 0 RTP/AVP 0\r\n"
    )
    out = sdp.with_direction(sd, "sendrecv")
    assert out.attributes == ()
    assert out.direction_of(out.media[0]) is Direction.SENDRECV
    assert out.media[1].attributes == ()  # a disabled stream is left alone


def test_rewrite_connection_anchors_media() -> None:
    offer = sdp.parse(PHONE_OFFER)
    out = sdp.rewrite_connection(offer, "10.1.1.1", [20000, 20002], bump=True)
    assert out.connection == Connection("10.1.1.1")
    assert out.origin == Origin("alice", "2890844526", 2890844527, "10.1.1.1")
    audio, video = out.media
    assert (audio.port, audio.rtcp_port, audio.attribute("rtcp")) == (20000, 20001, "20001")
    assert video.connection == Connection("10.1.1.1")
    assert video.port == 20002 and video.attribute("rtcp") == "20003 IN IP4 10.1.1.1"
    # Everything else is untouched.
    assert audio.attribute("x-vendor-thing") == "keep me"
    assert audio.codecs() == offer.media[0].codecs()
    body = out.serialize()
    assert b"192.0.2" not in body
    assert sdp.parse(body) == out


def test_rewrite_connection_rtcp_mux_ipv6_and_disabled_streams() -> None:
    sd = sdp.parse(
        b"v=0\r\no=- 1 1 IN IP4 1.1.1.1\r\ns=-\r\nc=IN IP4 1.1.1.1\r\nt=0 0\r\n"
        b"m=audio 5000 RTP/AVP 0\r\na=rtcp:5000\r\na=rtcp-mux\r\n"
        b"m=video 0 RTP/AVP 96\r\n"
        b"m=audio 7000 RTP/AVP 0\r\n"
    )
    out = sdp.rewrite_connection(sd, "::1", [30000, 30002, None], origin_address=False)
    assert out.connection == Connection("::1", addrtype="IP6")
    assert out.origin == sd.origin
    assert out.media[0].attribute("rtcp") == "30000"
    assert out.media[1].port == 0  # stays disabled
    assert out.media[2].port == 7000  # None: port left as it was
    with pytest.raises(LocalProtocolError):
        sdp.rewrite_connection(sd, "::1", [1])


def test_rewrite_connection_drops_ice_by_default() -> None:
    sd = sdp.parse(
        b"v=0\r\no=- 1 1 IN IP4 1.1.1.1\r\ns=-\r\nc=IN IP4 1.1.1.1\r\nt=0 0\r\n"
        b"a=ice-lite\r\na=group:BUNDLE 0\r\n"
        b"m=audio 5000 RTP/AVP 0\r\na=ice-ufrag:abc\r\na=ice-pwd:defghijklmnopqrstuvwxyz\r\n"
        b"a=candidate:1 1 UDP 2130706431 1.1.1.1 5000 typ host\r\na=mid:0\r\n"
    )
    out = sdp.rewrite_connection(sd, "10.1.1.1", [20000])
    assert [a.name for a in out.attributes] == ["group"]
    assert [a.name for a in out.media[0].attributes] == ["mid"]
    assert b"1.1.1.1" not in out.serialize()
    kept = sdp.rewrite_connection(sd, "10.1.1.1", [20000], drop_attributes=())
    assert len(kept.media[0].attributes) == 4


def test_versions_increase_on_each_new_offer() -> None:
    offer = sdp.make_offer("10.0.0.5", 20000, session_id=1, version=3)
    second = sdp.bump_version(offer)
    third = sdp.with_direction(second, "sendonly", bump=True)
    assert (offer.origin.version, second.origin.version, third.origin.version) == (3, 4, 5)
    assert third.origin.session_id == offer.origin.session_id


def test_codec_matching_rules() -> None:
    assert Codec(0, "pcmu", 8000).matches(Codec(0, "PCMU", 8000, channels=1))
    assert not Codec(0, "PCMU", 8000).matches(Codec(0, "PCMU", 16000))
    assert not Codec(96, "opus", 48000, 2).matches(Codec(96, "opus", 48000))
    assert Codec(96, "H264", 90000).matches(Codec(100, "H264", 90000, fmtp="profile-level-id=1"))
    assert not Codec(96, "H264", 90000).matches(
        Codec(100, "H264", 90000, fmtp="packetization-mode=1")
    )


def test_rfc4317_audio_video_example() -> None:
    # RFC 4317 §2.1: Alice offers PCMU, PCMA, iLBC audio and H261, MPV video; Bob takes
    # PCMU and MPV, answering on his own ports with the offerer's payload types.
    alice = sdp.parse(
        b"v=0\r\no=alice 2890844526 2890844526 IN IP4 host.atlanta.example.com\r\ns=\r\n"
        b"c=IN IP4 host.atlanta.example.com\r\nt=0 0\r\n"
        b"m=audio 49170 RTP/AVP 0 8 97\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n"
        b"a=rtpmap:97 iLBC/8000\r\n"
        b"m=video 51372 RTP/AVP 31 32\r\na=rtpmap:31 H261/90000\r\na=rtpmap:32 MPV/90000\r\n"
    )
    bob = sdp.make_answer(
        alice,
        "host.biloxi.example.com",
        [49174, 49170],
        audio_codecs=(Codec(0, "PCMU", 8000),),
        video_codecs=(Codec(32, "MPV", 90000),),
        username="bob",
        session_id=2808844564,
        version=2808844564,
    )
    assert bob.serialize() == (
        b"v=0\r\no=bob 2808844564 2808844564 IN IP4 host.biloxi.example.com\r\ns=-\r\n"
        b"c=IN IP4 host.biloxi.example.com\r\nt=0 0\r\n"
        b"m=audio 49174 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n"
        b"m=video 49170 RTP/AVP 32\r\na=rtpmap:32 MPV/90000\r\na=sendrecv\r\n"
    )


def test_answer_uses_offerers_payload_type_numbers() -> None:
    offer = sdp.make_offer(
        "1.1.1.1",
        5000,
        audio_codecs=(Codec(8, "PCMA", 8000), Codec(96, "telephone-event", 8000, fmtp="0-15")),
        session_id=1,
    )
    ans = sdp.make_answer(offer, "2.2.2.2", [6000], session_id=1)
    assert ans.media[0].codecs() == [
        Codec(8, "PCMA", 8000),
        Codec(96, "telephone-event", 8000, fmtp="0-15"),
    ]
