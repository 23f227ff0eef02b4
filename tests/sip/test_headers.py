"""Header names, the Headers collection, Via and CSeq (RFC 3261 §7.3, §20)."""

from __future__ import annotations

import pytest

from sip.errors import LocalProtocolError, RemoteProtocolError
from sip.headers import CSeq, Headers, Via, canonical_name, parse_cseq, parse_via_list


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("v", "Via"),
        ("VIA", "Via"),
        ("i", "Call-ID"),
        ("call-id", "Call-ID"),
        ("cseq", "CSeq"),
        ("www-authenticate", "WWW-Authenticate"),
        ("m", "Contact"),
        ("l", "Content-Length"),
        ("k", "Supported"),
        ("X-Custom", "X-Custom"),
    ],
)
def test_canonical_name(name: str, expected: str) -> None:
    assert canonical_name(name) == expected


def test_headers_lookup_any_form() -> None:
    h = Headers([("v", "SIP/2.0/UDP a"), ("x-foo", "1"), ("Via", "SIP/2.0/UDP b")])
    assert list(h) == [("Via", "SIP/2.0/UDP a"), ("x-foo", "1"), ("Via", "SIP/2.0/UDP b")]
    assert h.get("VIA") == "SIP/2.0/UDP a"
    assert h.get("X-FOO") == "1"
    assert "x-Foo" in h and "Route" not in h
    assert h.get("Route") is None
    assert len(h) == 3


def test_get_all_splits_list_headers_only() -> None:
    h = Headers(
        [
            ("Route", '<sip:a;lr>, "x,y" <sip:b;lr>'),
            ("Route", "<sip:c>"),
            ("Subject", "a, b"),
            ("WWW-Authenticate", 'Digest realm="a", nonce="b"'),
        ]
    )
    assert h.get_all("route") == ["<sip:a;lr>", '"x,y" <sip:b;lr>', "<sip:c>"]
    assert h.get_all("Subject") == ["a, b"]
    assert h.get_all("WWW-Authenticate") == ['Digest realm="a", nonce="b"']


def test_replace_prepend_append_remove() -> None:
    h = Headers([("From", "f"), ("Via", "v1"), ("To", "t"), ("Via", "v2")])
    assert list(h.replace("via", "n1", "n2")) == [
        ("From", "f"),
        ("Via", "n1"),
        ("Via", "n2"),
        ("To", "t"),
    ]
    assert list(h.replace("Contact", "c")) == [*h, ("Contact", "c")]
    assert list(h.prepend("Via", "v0"))[1] == ("Via", "v0")
    assert list(h.prepend("Record-Route", "r"))[:1] == [("Record-Route", "r")]
    assert list(h.append("Via", "v3"))[-1] == ("Via", "v3")
    assert list(h.remove("VIA")) == [("From", "f"), ("To", "t")]
    assert h.remove("Nope") == h
    assert list(h) == [("From", "f"), ("Via", "v1"), ("To", "t"), ("Via", "v2")]


def test_headers_refuse_injection() -> None:
    with pytest.raises(LocalProtocolError):
        Headers([("Subject", "a\r\nVia: x")])
    with pytest.raises(LocalProtocolError):
        Headers([("Bad Name", "a")])
    with pytest.raises(LocalProtocolError):
        Headers().append("Subject", "a\nb")


def test_via_parse_and_format() -> None:
    vias = parse_via_list(
        "SIP  / 2.0  / tcp     spindle.example.com   ;  branch  =   z9hG4bK9ikj8  ,"
        " SIP/2.0/UDP [2001:db8::1]:5070;rport=5071;received=192.0.2.9"
    )
    assert vias[0] == Via("TCP", "spindle.example.com", None, (("branch", "z9hG4bK9ikj8"),))
    assert vias[1].host == "[2001:db8::1]" and vias[1].port == 5070
    assert vias[1].rport == 5071 and vias[1].received == "192.0.2.9"
    assert str(vias[1]) == "SIP/2.0/UDP [2001:db8::1]:5070;rport=5071;received=192.0.2.9"
    assert str(vias[0].with_params(received="1.2.3.4", rport="5")) == (
        "SIP/2.0/TCP spindle.example.com;branch=z9hG4bK9ikj8;received=1.2.3.4;rport=5"
    )


@pytest.mark.parametrize(
    "text",
    [
        "SIP/2.0/UDP",
        "SIP/3.0/UDP host",
        "HTTP/2.0/UDP host",
        "SIP/2.0/UDP host:70000",
        "SIP/2.0/UDP host;branch=",
        "SIP/2.0/UDP host;;branch=1",
        "SIP/2.0/UDP host junk",
        "SIP/2.0/UDP host,",
    ],
)
def test_bad_via(text: str) -> None:
    with pytest.raises(RemoteProtocolError):
        parse_via_list(text)


def test_cseq() -> None:
    assert parse_cseq("0009 \t INVITE") == CSeq(9, "INVITE")
    assert str(CSeq(2, "BYE")) == "2 BYE"
    for bad in ["1", "x INVITE", "1 INVITE x", "2147483648 INVITE", "-1 BYE", "1 IN<VITE"]:
        with pytest.raises(RemoteProtocolError):
            parse_cseq(bad)


def test_via_ipv6_received_and_maddr() -> None:
    # RFC 5118 §4.5: IPv6 addresses in Via parameters, with or without brackets.
    [via] = parse_via_list(
        "SIP/2.0/UDP [2001:db8::9:1];branch=z9hG4bKas3-111;received=[2001:db8::9:255]"
        ";maddr=2001:db8::9:2"
    )
    assert via.host == "[2001:db8::9:1]"
    assert via.received == "[2001:db8::9:255]"
    assert via.maddr == "2001:db8::9:2"
