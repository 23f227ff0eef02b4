"""Properties of the message layer (Hypothesis): round trips and h11's fuzz invariant."""

from __future__ import annotations

import contextlib
from pathlib import Path

from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st
from strategies import messages, name_addrs, sip_uris, vias

from sip.errors import RemoteProtocolError
from sip.headers import Via, parse_via_list
from sip.message import Message, StreamParser, parse_message, serialize
from sip.uri import NameAddr, SipUri, parse_name_addr, parse_uri

TORTURE = sorted((Path(__file__).parent / "data" / "rfc4475").glob("*.dat"))
SEEDS = [p.read_bytes() for p in TORTURE]


@given(messages())
def test_parse_serialize_roundtrip(message: Message) -> None:
    assert parse_message(serialize(message)) == message


@given(messages())
def test_serialize_is_stable(message: Message) -> None:
    wire = serialize(message)
    assert serialize(parse_message(wire)) == wire


@given(sip_uris())
def test_uri_roundtrip(uri: SipUri) -> None:
    assert parse_uri(str(uri)) == uri


@given(name_addrs())
def test_name_addr_roundtrip_fast_and_general_paths_agree(na: NameAddr) -> None:
    text = str(na)
    assert parse_name_addr(text) == na
    # Whitespace around the header params' ';' and '=' forces the general parser: same result.
    head, gt, tail = text.rpartition(">")
    spaced = head + gt + tail.replace(";", " ;  ").replace("=", " = ")
    assert parse_name_addr(" " + spaced + " ") == na


@given(st.lists(vias(), min_size=1, max_size=3))
def test_via_list_roundtrip(values: list[Via]) -> None:
    assert parse_via_list(", ".join(str(v) for v in values)) == values


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=600))
@example(b"")
@example(b"\r\n\r\n")
@example(b"INVITE sip:a@b SIP/2.0\r\n\r\n")
def test_arbitrary_bytes_only_raise_remote_protocol_error(data: bytes) -> None:
    with contextlib.suppress(RemoteProtocolError):
        parse_message(data)
    with contextlib.suppress(RemoteProtocolError):
        StreamParser().feed(data)


@st.composite
def _mutated(draw: st.DrawFn) -> bytes:
    """A torture message with a few bytes replaced, inserted or deleted."""
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 4))):
        pos = draw(st.integers(0, len(data)))
        op = draw(st.sampled_from(["replace", "insert", "delete"]))
        byte = draw(st.sampled_from(b'\r\n \t:;,<>"\\@%=/\x00\xff0aZ'))
        if op == "insert":
            data.insert(pos, byte)
        elif pos < len(data):
            if op == "replace":
                data[pos] = byte
            else:
                del data[pos]
    return bytes(data)


@given(_mutated())
def test_mutated_messages_only_raise_remote_protocol_error(data: bytes) -> None:
    for parse in (parse_message, lambda d: StreamParser().feed(d)):
        try:
            msg = parse(data)
        except RemoteProtocolError:
            continue
        # Whatever parsed must expose its common fields without crashing.
        for message in msg if isinstance(msg, list) else [msg]:
            _ = (message.top_via, message.call_id, message.cseq, message.from_, message.to)
            with contextlib.suppress(RemoteProtocolError):
                _ = (message.contacts, message.routes, message.record_routes)
                _ = message.max_forwards


@given(st.lists(messages(), min_size=1, max_size=4), st.lists(st.integers(0, 5000), max_size=8))
def test_stream_split_anywhere_gives_same_messages(sent: list[Message], cuts: list[int]) -> None:
    wire = b"".join(serialize(m) for m in sent)
    points = sorted({c % (len(wire) + 1) for c in cuts})
    chunks = [wire[a:b] for a, b in zip([0, *points], [*points, len(wire)], strict=True)]
    parser = StreamParser()
    received: list[Message] = []
    for chunk in chunks:
        received += parser.feed(chunk)
    assert received == sent
    assert parser.buffered == 0


@given(messages())
def test_headers_replace_then_get(message: Message) -> None:
    assume(message.headers.get("Subject") is None)
    headers = message.headers.replace("Subject", "hello")
    assert headers.get("s") == "hello"
    assert headers.remove("Subject") == message.headers
