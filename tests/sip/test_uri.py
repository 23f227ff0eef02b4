"""URIs and name-addr values (RFC 3261 §19.1, §20.10, §25.1; RFC 3966)."""

from __future__ import annotations

import pytest

from sip.errors import RemoteProtocolError
from sip.uri import (
    AbsoluteUri,
    NameAddr,
    SipUri,
    TelUri,
    parse_name_addr,
    parse_name_addr_list,
    parse_uri,
)


def test_full_sip_uri() -> None:
    uri = parse_uri("SIPS:Alice:secret@Atlanta.Example.COM:5061;Transport=TCP;lr?subject=hi&x=y")
    assert uri == SipUri(
        "sips",
        "Alice",
        "secret",
        "atlanta.example.com",
        5061,
        (("transport", "TCP"), ("lr", None)),
        (("subject", "hi"), ("x", "y")),
    )
    assert isinstance(uri, SipUri)
    assert uri.transport == "tcp"
    assert uri.has_param("LR") and uri.param("lr") is None
    assert str(uri) == "sips:Alice:secret@atlanta.example.com:5061;transport=TCP;lr?subject=hi&x=y"


def test_escaped_user_kept_and_unescaped() -> None:
    uri = parse_uri("sip:sips%3Auser%40example.com@example.net")
    assert isinstance(uri, SipUri)
    assert uri.user == "sips%3Auser%40example.com"
    assert uri.user_unescaped == "sips:user@example.com"
    assert uri.host == "example.net"


def test_ipv6_host() -> None:
    uri = parse_uri("sip:[2001:db8::10]:5070")
    assert isinstance(uri, SipUri)
    assert uri.host == "[2001:db8::10]" and uri.port == 5070
    assert str(uri) == "sip:[2001:db8::10]:5070"


def test_with_and_without_params() -> None:
    uri = parse_uri("sip:a@h;transport=udp;lr")
    assert isinstance(uri, SipUri)
    assert str(uri.with_params(transport="tcp", maddr="1.2.3.4")) == (
        "sip:a@h;transport=tcp;lr;maddr=1.2.3.4"
    )
    assert str(uri.without_params("LR")) == "sip:a@h;transport=udp"
    assert str(uri.with_params(ob=None)) == "sip:a@h;transport=udp;lr;ob"


def test_tel_and_other_schemes() -> None:
    assert parse_uri("tel:+1-201-555-0123;phone-context=example.com") == TelUri(
        "+1-201-555-0123", (("phone-context", "example.com"),)
    )
    assert parse_uri("urn:service:sos") == AbsoluteUri("urn", "urn:service:sos")
    assert parse_uri("Mailto:a@b") == AbsoluteUri("mailto", "Mailto:a@b")


@pytest.mark.parametrize(
    "text",
    [
        "",
        "sip:",
        "sip:user@",
        "sip:a b@c",
        "<sip:a@b>",
        "sip:a@b:99999",
        "sip:a@b:port",
        "sip:a@[::1",
        "sip:a@[zz::1]",
        "sip:a@b;",
        "sip:us%4ger@host",
        "1abc:x",
        "tel:",
        "nocolon",
        "x:a b",
    ],
)
def test_bad_uris(text: str) -> None:
    with pytest.raises(RemoteProtocolError):
        parse_uri(text)


def test_name_addr_forms() -> None:
    na = parse_name_addr('"Alice \\"A\\"" <sip:alice@a.example.com;lr>;tag=1;Expires=60')
    assert na.display_name == 'Alice "A"'
    assert na.tag == "1" and na.param("EXPIRES") == "60"
    assert isinstance(na.uri, SipUri) and na.uri.has_param("lr")
    assert str(na) == '"Alice \\"A\\"" <sip:alice@a.example.com;lr>;tag=1;expires=60'


def test_addr_spec_params_belong_to_header() -> None:
    na = parse_name_addr("sip:bob@b.example.com ;  tag = 88  ;transport=tcp")
    assert na.uri == SipUri("sip", "bob", None, "b.example.com", None)
    assert na.tag == "88"
    assert na.param("transport") == "tcp"
    assert na.display_name is None


def test_unquoted_display_name() -> None:
    na = parse_name_addr("Bob   Smith <sip:bob@b>")
    assert na.display_name == "Bob Smith"
    assert str(na) == '"Bob Smith" <sip:bob@b>'


def test_with_tag() -> None:
    na = parse_name_addr("<sip:bob@b>")
    assert na.with_tag("x") == NameAddr(na.uri, None, (("tag", "x"),))
    assert na.with_tag("x").with_tag("y").tag == "y"


def test_name_addr_list_quote_and_angle_aware() -> None:
    items = parse_name_addr_list('"A, B" <sip:a,b@x;p=1>, <sip:b@y>;q=0.5, sip:c@z')
    assert [i.display_name for i in items] == ["A, B", None, None]
    assert items[1].param("q") == "0.5"
    assert str(items[2].uri) == "sip:c@z"


@pytest.mark.parametrize(
    "text",
    ["<sip:a@b", '"unterminated <sip:a@b>', "<sip:a@b> junk", "<sip:a@b>;", "*", "sip:a@b?x=y"],
)
def test_bad_name_addr(text: str) -> None:
    with pytest.raises(RemoteProtocolError):
        parse_name_addr(text)


@pytest.mark.parametrize(
    ("text", "host", "port"),
    [
        ("sip:[2001:db8::10]", "[2001:db8::10]", None),  # RFC 5118 §4.1
        ("sip:[2001:db8::10:5070]", "[2001:db8::10:5070]", None),  # §4.3: no port inside
        ("sip:user@[2001:db8::10]:5070", "[2001:db8::10]", 5070),  # §4.4
        ("sip:[::ffff:192.0.2.10]", "[::ffff:192.0.2.10]", None),  # §4.7: IPv4-mapped
        ("sip:[2001:DB8::A]", "[2001:db8::a]", None),
    ],
)
def test_ipv6_references(text: str, host: str, port: int | None) -> None:
    uri = parse_uri(text)
    assert isinstance(uri, SipUri)
    assert (uri.host, uri.port) == (host, port)


@pytest.mark.parametrize(
    "text",
    [
        "sip:2001:db8::10",  # RFC 5118 §4.2: no brackets
        "sip:[2001:db8:::192.0.2.1]",  # §4.9: too many colons
        "sip:[2001:db8::10::1]",  # two "::"
        "sip:[2001:db8::10]5070",
        "sip:[]",
    ],
)
def test_bad_ipv6_references(text: str) -> None:
    with pytest.raises(RemoteProtocolError):
        parse_uri(text)
