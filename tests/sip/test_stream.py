"""StreamParser: SIP framing on stream transports by Content-Length (RFC 3261 §18.3)."""

from __future__ import annotations

import pytest

from sip.errors import RemoteProtocolError
from sip.message import Request, Response, StreamParser, parse_message, serialize

BODY = b"v=0\r\n\r\n\r\nnot a header block\r\n\r\n"
REQUEST = (
    b"MESSAGE sip:bob@example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/TCP a.example.com;branch=z9hG4bK1\r\n"
    b"Max-Forwards: 70\r\n"
    b"From: <sip:alice@example.com>;tag=1\r\n"
    b"To: <sip:bob@example.com>\r\n"
    b"Call-ID: s1\r\n"
    b"CSeq: 1 MESSAGE\r\n"
    b"Content-Type: text/plain\r\n"
    b"Content-Length: " + str(len(BODY)).encode() + b"\r\n\r\n" + BODY
)


def _response() -> bytes:
    req = parse_message(REQUEST)
    assert isinstance(req, Request)
    return serialize(req.response(200, to_tag="2"))


def test_body_with_blank_lines_is_framed_by_content_length() -> None:
    [msg] = StreamParser().feed(REQUEST)
    assert msg.body == BODY


def test_several_messages_in_one_read() -> None:
    out = StreamParser().feed(REQUEST + _response() + REQUEST)
    assert [type(m) for m in out] == [Request, Response, Request]


def test_split_at_every_byte() -> None:
    wire = REQUEST + _response()
    parser = StreamParser()
    out = []
    for i in range(len(wire)):
        out += parser.feed(wire[i : i + 1])
    assert out == [parse_message(REQUEST), parse_message(_response())]
    assert parser.buffered == 0


def test_keepalive_crlf_between_messages() -> None:
    # RFC 5626 §4.4.1: "\r\n\r\n" pings and "\r\n" pongs between messages are ignored.
    parser = StreamParser()
    assert parser.feed(b"\r\n\r\n") == []
    assert parser.feed(b"\r") == []
    assert parser.feed(b"\n" + REQUEST + b"\r\n") == [parse_message(REQUEST)]
    assert parser.feed(REQUEST) == [parse_message(REQUEST)]


def test_double_crlf_pings_between_messages_are_counted_for_their_pongs() -> None:
    # RFC 5626 §4.4.1: a server answers each "\r\n\r\n" ping with a "\r\n" pong; a lone
    # CRLF (a pong, or a stray line end after a message) asks for nothing.
    parser = StreamParser()
    assert parser.feed(b"\r\n") == [] and parser.take_pings() == 0
    assert parser.feed(b"\r") == [] and parser.take_pings() == 0
    assert parser.feed(b"\n") == [] and parser.take_pings() == 1  # split across three reads
    assert parser.take_pings() == 0  # taken
    assert parser.feed(b"\r\n\r\n\r\n\r\n") == [] and parser.take_pings() == 2
    assert parser.feed(b"\r\n" + REQUEST) == [parse_message(REQUEST)]
    assert parser.take_pings() == 0  # the CRLF before the message started no ping
    assert parser.feed(REQUEST + b"\r\n") == [parse_message(REQUEST)]
    assert parser.feed(b"\r\n") == [] and parser.take_pings() == 1  # a ping after a message
    head_end = REQUEST.index(b"\r\n\r\n") + 4
    # CRLFs inside a message (its blank line, its body) are no ping
    assert parser.feed(REQUEST[:head_end] + b"\r\n\r\n") == [] and parser.take_pings() == 0


def test_incomplete_message_waits() -> None:
    parser = StreamParser()
    assert parser.feed(REQUEST[:-5]) == []
    assert parser.buffered == len(REQUEST) - 5
    assert parser.feed(REQUEST[-5:]) == [parse_message(REQUEST)]


def test_missing_content_length_is_an_error_and_sticky() -> None:
    data = REQUEST.replace(b"Content-Length: " + str(len(BODY)).encode() + b"\r\n", b"")
    parser = StreamParser()
    with pytest.raises(RemoteProtocolError):
        parser.feed(data)
    with pytest.raises(RemoteProtocolError):
        parser.feed(REQUEST)


def test_malformed_head_is_an_error() -> None:
    with pytest.raises(RemoteProtocolError):
        StreamParser().feed(b"garbage\r\n\r\n")


def test_bare_lf_not_accepted_on_streams() -> None:
    head, _, body = REQUEST.partition(b"\r\n\r\n")
    with pytest.raises(RemoteProtocolError):
        StreamParser().feed(head.replace(b"\r\n", b"\n") + b"\r\n\r\n" + body)


@pytest.mark.parametrize(("kwargs", "status"), [({"max_body": 10}, 413), ({"max_head": 64}, 413)])
def test_limits(kwargs: dict[str, int], status: int) -> None:
    with pytest.raises(RemoteProtocolError) as exc:
        StreamParser(**kwargs).feed(REQUEST)
    assert exc.value.status_hint == status


def test_oversized_head_without_end_is_refused_early() -> None:
    parser = StreamParser(max_head=100)
    with pytest.raises(RemoteProtocolError) as exc:
        parser.feed(b"OPTIONS sip:a@b SIP/2.0\r\nX: " + b"y" * 200)
    assert exc.value.status_hint == 413


def test_the_bytes_of_each_message_are_kept_as_they_came_when_asked() -> None:
    """What the transport hands its observers for a TCP message: the wire bytes, framed,
    without the keep-alive CRLFs between messages."""
    wire = b"\r\n\r\n" + REQUEST + b"\r\n" + _response()
    parser = StreamParser(keep_bytes=True)
    out = []
    kept: list[bytes] = []
    for i in range(0, len(wire), 5):
        out += parser.feed(wire[i : i + 5])
        kept += parser.take_bytes()
    assert kept == [REQUEST, _response()]
    assert [parse_message(k) for k in kept] == out
    assert parser.take_bytes() == []
    assert StreamParser().feed(REQUEST) and StreamParser().take_bytes() == []
