"""The ng protocol's bencode codec: round trips, the canonical form, malformed input refused."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.rtpengine.bencode import MAX_DEPTH, BencodeError, decode, encode

texts = st.text(st.characters(exclude_categories=("Cs",)), max_size=20)
values = st.recursive(
    st.integers() | texts,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(texts, children, max_size=4),
    max_leaves=20,
)


@given(values)
def test_value_round_trips(value: object) -> None:
    assert decode(encode(value)) == value  # type: ignore[arg-type]


@given(values)
def test_encoding_is_canonical(value: object) -> None:
    data = encode(value)  # type: ignore[arg-type]
    assert encode(decode(data)) == data


@given(st.binary(max_size=40))
def test_any_bytes_string_survives(raw: bytes) -> None:
    """SDP is bytes on the wire: undecodable bytes come back unchanged."""
    data = encode(raw)
    assert encode(decode(data)) == data


def test_known_ng_message() -> None:
    assert encode({"sdp": "v=0", "command": "offer", "call-id": "c1"}) == (
        b"d7:call-id2:c17:command5:offer3:sdp3:v=0e"
    )
    assert decode(b"d6:result4:ponge") == {"result": "pong"}
    assert decode(b"li-3ei0el1:xee") == [-3, 0, ["x"]]
    # rtpengine does not sort the keys of its answers
    assert decode(b"d6:result2:ok3:sdp3:v=01:ai1ee") == {"result": "ok", "sdp": "v=0", "a": 1}


@pytest.mark.parametrize(
    ("data", "says"),
    [
        (b"", "truncated"),
        (b"i12", "truncated integer"),
        (b"i1x2e", "bad integer"),
        (b"ie", "bad integer"),
        (b"i03e", "leading zero"),
        (b"i-0e", "leading zero"),
        (b"5:abc", "truncated string"),
        (b"03:abc", "bad string length"),
        (b"l1:a", "truncated list"),
        (b"d1:a", "truncated"),
        (b"d1:ai1e", "truncated dictionary"),
        (b"di1ei2ee", "not a string"),
        (b"d1:ai1e1:ai2ee", "repeated"),
        (b"i1ei2e", "trailing bytes"),
        (b"x", "not bencode"),
        (b"l" * (MAX_DEPTH + 2) + b"e" * (MAX_DEPTH + 2), "nested deeper"),
    ],
)
def test_malformed_input_is_refused_saying_why(data: bytes, says: str) -> None:
    with pytest.raises(BencodeError, match=says):
        decode(data)


@given(st.binary(max_size=60))
def test_random_bytes_decode_or_raise_bencode_error(data: bytes) -> None:
    with contextlib.suppress(BencodeError):
        decode(data)


@pytest.mark.parametrize("value", [True, 1.5, None, {1: 2}])
def test_values_bencode_cannot_hold_are_refused(value: object) -> None:
    with pytest.raises(BencodeError):
        encode(value)  # type: ignore[arg-type]
