"""``NameAddrCache``: the transport parses each From/To/Contact value once per dialog, and a
message parsed with it is the message parsed without it, for well-formed and broken input."""

from __future__ import annotations

import pytest

from sip.errors import RemoteProtocolError
from sip.message import parse_message
from sip.uri import NameAddrCache, parse_name_addr
from tests.sip.test_torture import INVALID, VALID, load


def request(call_id: str, contact: str = "<sip:alice@192.0.2.1:5062>") -> bytes:
    return (
        "BYE sip:bob@192.0.2.2 SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 192.0.2.1:5062;branch=z9hG4bK{call_id}\r\n"
        'From: "Alice" <sip:alice@example.com>;tag=a1\r\n'
        "To: <sip:bob@example.com>;tag=b2\r\n"
        f"Call-ID: {call_id}\r\nCSeq: 2 BYE\r\nContact: {contact}\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()


def test_the_messages_of_a_dialog_share_their_parsed_from_to_and_contact() -> None:
    names = NameAddrCache()
    first = parse_message(request("c1"), names)
    second = parse_message(request("c1"), names)
    assert first.from_ is second.from_ and first.to is second.to
    assert first.contacts == second.contacts == [parse_name_addr("<sip:alice@192.0.2.1:5062>")]
    assert len(names) == 3
    assert first == parse_message(request("c1"))  # the same message as parsed without it


def test_a_wildcard_or_a_list_of_contacts_is_parsed_as_without_the_cache() -> None:
    names = NameAddrCache()
    star = parse_message(request("c2", "*"), names)
    assert star.contacts == []
    two = parse_message(request("c3", "<sip:a@192.0.2.1>, <sip:b@192.0.2.1>;q=0.5"), names)
    assert [str(c.uri) for c in two.contacts] == ["sip:a@192.0.2.1", "sip:b@192.0.2.1"]


def test_the_cache_starts_afresh_at_its_limit() -> None:
    names = NameAddrCache(limit=2)
    names.parse("<sip:a@x>")
    names.parse("<sip:b@x>")
    assert len(names) == 2
    names.parse("<sip:c@x>")
    assert len(names) == 1
    with pytest.raises(ValueError):
        NameAddrCache(limit=0)


def test_a_value_longer_than_the_bound_is_parsed_but_not_kept() -> None:
    names = NameAddrCache(max_length=64)
    long = "<sip:alice@example.com>;x=" + "a" * 100
    assert names.parse(long) == parse_name_addr(long)
    assert len(names) == 0
    names.parse("<sip:alice@example.com>;tag=1")
    assert len(names) == 1


def test_a_bad_value_raises_every_time_and_is_not_kept() -> None:
    names = NameAddrCache()
    for _ in range(2):
        with pytest.raises(RemoteProtocolError):
            names.parse('"unterminated <sip:a@x>')
    assert len(names) == 0


@pytest.mark.parametrize("name", VALID)
def test_the_torture_messages_parse_alike_with_the_cache(name: str) -> None:
    names = NameAddrCache()
    data = load(name)
    once, again = parse_message(data, names), parse_message(data, names)
    assert once == again == parse_message(data)
    assert (once.from_, once.to, once.contacts) == (again.from_, again.to, again.contacts)


@pytest.mark.parametrize("name", sorted(INVALID))
def test_the_broken_torture_messages_are_refused_alike_with_the_cache(name: str) -> None:
    names = NameAddrCache()
    with pytest.raises(RemoteProtocolError) as without:
        parse_message(load(name))
    for _ in range(2):
        with pytest.raises(RemoteProtocolError) as cached:
            parse_message(load(name), names)
        assert cached.value.status_hint == without.value.status_hint
