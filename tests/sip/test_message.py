"""Parsing, serialising and building SIP messages (RFC 3261 §7, §8.2.6, §18.3)."""

from __future__ import annotations

import time

import pytest

from sip.errors import LocalProtocolError, RemoteProtocolError
from sip.headers import CSeq, Headers
from sip.message import (
    Request,
    Response,
    parse_message,
    reason_phrase,
    serialize,
)
from sip.uri import AbsoluteUri, SipUri, parse_uri

SDP = b"v=0\r\no=alice 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n"

INVITE = (
    b"INVITE sip:bob@biloxi.example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP client.atlanta.example.com:5060;branch=z9hG4bK74bf9;rport\r\n"
    b"Max-Forwards: 70\r\n"
    b"From: Alice <sip:alice@atlanta.example.com>;tag=9fxced76sl\r\n"
    b"To: Bob <sip:bob@biloxi.example.com>\r\n"
    b"Call-ID: 3848276298220188511@atlanta.example.com\r\n"
    b"CSeq: 1 INVITE\r\n"
    b"Contact: <sip:alice@client.atlanta.example.com;transport=tcp>\r\n"
    b"Content-Type: application/sdp\r\n"
    b"Content-Length: " + str(len(SDP)).encode() + b"\r\n\r\n" + SDP
)


def _request(**overrides: object) -> Request:
    msg = parse_message(INVITE)
    assert isinstance(msg, Request)
    return msg.replace(**overrides) if overrides else msg


def test_parse_invite_common_fields() -> None:
    req = _request()
    assert req.method == "INVITE"
    assert req.uri == SipUri("sip", "bob", None, "biloxi.example.com", None)
    assert req.top_via.branch == "z9hG4bK74bf9"
    assert req.top_via.transport == "UDP"
    assert req.top_via.port == 5060
    assert req.top_via.has_rport and req.top_via.rport is None
    assert req.from_.tag == "9fxced76sl"
    assert req.from_.display_name == "Alice"
    assert req.to.tag is None
    assert req.call_id == "3848276298220188511@atlanta.example.com"
    assert req.cseq == CSeq(1, "INVITE")
    assert req.max_forwards == 70
    assert req.content_type == "application/sdp"
    assert [c.uri for c in req.contacts] == [
        parse_uri("sip:alice@client.atlanta.example.com;transport=tcp")
    ]
    assert req.body == SDP
    assert req.uri_scheme_supported


def test_content_length_is_framing_and_rewritten_on_send() -> None:
    req = _request()
    assert "Content-Length" not in req.headers
    wire = serialize(req.replace(body=b"x"))
    assert b"\r\nContent-Length: 1\r\n\r\nx" in wire


def test_roundtrip_equal() -> None:
    req = _request()
    assert parse_message(serialize(req)) == req
    resp = req.response(200, to_tag="t1", body=b"abc")
    assert parse_message(serialize(resp)) == resp


def test_response_copies_dialog_headers_and_adds_tag() -> None:
    req = _request()
    resp = req.response(180, to_tag="xyz", headers=[("Contact", "<sip:b@192.0.2.4>")])
    assert resp.status == 180 and resp.reason == "Ringing"
    assert [name for name, _ in resp.headers] == [
        "Via",
        "From",
        "To",
        "Call-ID",
        "CSeq",
        "Contact",
    ]
    assert resp.to.tag == "xyz"
    assert resp.from_ == req.from_
    assert resp.cseq == req.cseq
    assert resp.call_id == req.call_id
    assert resp.top_via == req.top_via
    wire = serialize(resp)
    assert wire.startswith(b"SIP/2.0 180 Ringing\r\n")
    assert b"To: Bob <sip:bob@biloxi.example.com>;tag=xyz\r\n" in wire


def test_response_keeps_existing_to_tag() -> None:
    req = _request()
    req = req.with_headers(req.headers.replace("To", "<sip:bob@b.example.com>;tag=old"))
    assert req.response(200, to_tag="new").to.tag == "old"


def test_response_custom_reason_and_status_range() -> None:
    req = _request()
    assert req.response(486, "Not Now").reason == "Not Now"
    with pytest.raises(LocalProtocolError):
        req.response(99)


def test_reason_phrases() -> None:
    assert reason_phrase(200) == "OK"
    assert reason_phrase(487) == "Request Terminated"
    assert reason_phrase(499) == "Client Error"


@pytest.mark.parametrize("missing", ["Via", "From", "To", "Call-ID", "CSeq"])
def test_serialize_refuses_missing_mandatory(missing: str) -> None:
    req = _request()
    with pytest.raises(LocalProtocolError):
        serialize(req.with_headers(req.headers.remove(missing)))


def test_serialize_refuses_cseq_method_mismatch() -> None:
    req = _request()
    with pytest.raises(LocalProtocolError):
        serialize(req.replace(method="BYE"))


@pytest.mark.parametrize("missing", [b"Via", b"From", b"To", b"Call-ID", b"CSeq"])
def test_parse_rejects_missing_mandatory(missing: bytes) -> None:
    lines = INVITE.split(b"\r\n")
    data = b"\r\n".join(line for line in lines if not line.startswith(missing + b":"))
    with pytest.raises(RemoteProtocolError) as exc:
        parse_message(data)
    assert exc.value.status_hint == 400


def test_wrong_version_is_505() -> None:
    with pytest.raises(RemoteProtocolError) as exc:
        parse_message(INVITE.replace(b"SIP/2.0\r\n", b"SIP/3.0\r\n", 1))
    assert exc.value.status_hint == 505


def test_unknown_scheme_parses_but_is_flagged() -> None:
    req = parse_message(INVITE.replace(b"sip:bob@biloxi.example.com SIP", b"urn:x:y SIP", 1))
    assert isinstance(req, Request)
    assert req.uri == AbsoluteUri("urn", "urn:x:y")
    assert not req.uri_scheme_supported


def test_datagram_body_longer_than_content_length_is_truncated() -> None:
    req = parse_message(INVITE + b"garbage")
    assert req.body == SDP


def test_datagram_body_shorter_than_content_length_is_error() -> None:
    with pytest.raises(RemoteProtocolError):
        parse_message(INVITE[:-3])


def test_datagram_without_content_length_takes_rest() -> None:
    data = INVITE.replace(b"Content-Length: " + str(len(SDP)).encode() + b"\r\n", b"")
    assert parse_message(data).body == SDP


def test_leading_crlf_skipped() -> None:
    assert parse_message(b"\r\n\r\n" + INVITE) == parse_message(INVITE)


def test_bare_lf_accepted_in_datagram() -> None:
    # Leniency: hand-written test tools send LF-only lines.
    head, _, body = INVITE.partition(b"\r\n\r\n")
    msg = parse_message(head.replace(b"\r\n", b"\n") + b"\n\n" + body)
    assert msg == parse_message(INVITE)


def test_status_line_without_reason_accepted() -> None:
    resp = _request().response(200, to_tag="a")
    wire = serialize(resp).replace(b"SIP/2.0 200 OK\r\n", b"SIP/2.0 200\r\n")
    parsed = parse_message(wire)
    assert isinstance(parsed, Response)
    assert parsed.status == 200 and parsed.reason == ""


def test_response_parse() -> None:
    resp = _request().response(200, to_tag="a", body=b"v=0\r\n")
    parsed = parse_message(serialize(resp))
    assert isinstance(parsed, Response)
    assert parsed.status == 200 and parsed.to.tag == "a" and parsed.body == b"v=0\r\n"


def test_missing_max_forwards_accepted() -> None:
    req = parse_message(INVITE.replace(b"Max-Forwards: 70\r\n", b""))
    assert isinstance(req, Request)
    assert req.max_forwards is None


def test_locally_built_request() -> None:
    headers = Headers(
        [
            ("Via", "SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKabc"),
            ("Max-Forwards", "70"),
            ("From", "<sip:a@127.0.0.1>;tag=1"),
            ("To", "<sip:b@127.0.0.1>"),
            ("Call-ID", "c1"),
            ("CSeq", "1 OPTIONS"),
        ]
    )
    req = Request("OPTIONS", parse_uri("sip:b@127.0.0.1"), headers)
    assert req.top_via.branch == "z9hG4bKabc"
    assert req.cseq == CSeq(1, "OPTIONS")
    assert parse_message(serialize(req)) == req
    assert hash(req) == hash(parse_message(serialize(req)))


def test_routes_and_record_routes_in_order() -> None:
    req = _request()
    req = req.with_headers(
        req.headers.append("Record-Route", "<sip:p1.example.com;lr>, <sip:p2.example.com;lr>")
        .append("Record-Route", "<sip:p3.example.com;lr>")
        .append("Route", "<sip:r1.example.com;lr>")
    )
    assert [str(r.uri) for r in req.record_routes] == [
        "sip:p1.example.com;lr",
        "sip:p2.example.com;lr",
        "sip:p3.example.com;lr",
    ]
    assert [str(r.uri) for r in req.routes] == ["sip:r1.example.com;lr"]
    req.routes.clear()  # callers get copies: the cache is not mutated
    assert len(req.routes) == 1


def test_malformed_lazy_header_raises_on_access() -> None:
    req = _request()
    req = req.with_headers(req.headers.append("Route", "<sip:broken"))
    with pytest.raises(RemoteProtocolError):
        _ = req.routes


def test_compact_forms_and_folding() -> None:
    data = (
        b"OPTIONS sip:b@example.com SIP/2.0\r\n"
        b"v: SIP/2.0/UDP h.example.com;branch=z9hG4bK1\r\n"
        b"f: <sip:a@example.com>\r\n"
        b" ;tag=1\r\n"
        b"t: <sip:b@example.com>\r\n"
        b"i: c1\r\n"
        b"CSeq: 1\r\n\tOPTIONS\r\n"
        b"m: <sip:a@h.example.com>\r\n"
        b"k: timer,\r\n 100rel\r\n"
        b"l: 0\r\n\r\n"
    )
    req = parse_message(data)
    assert req.from_.tag == "1"
    assert req.call_id == "c1"
    assert req.cseq == CSeq(1, "OPTIONS")
    assert req.headers.get_all("Supported") == ["timer", "100rel"]
    assert [name for name, _ in req.headers] == [
        "Via",
        "From",
        "To",
        "Call-ID",
        "CSeq",
        "Contact",
        "Supported",
    ]


def test_repeated_and_comma_joined_vias() -> None:
    data = INVITE.replace(
        b"Max-Forwards: 70\r\n",
        b"Via: SIP/2.0/TCP p1.example.com;branch=z9hG4bKa, SIP/2.0/UDP [2001:db8::1]:5070"
        b";branch=z9hG4bKb\r\nMax-Forwards: 70\r\n",
    )
    req = parse_message(data)
    assert [v.host for v in req.vias] == [
        "client.atlanta.example.com",
        "p1.example.com",
        "[2001:db8::1]",
    ]
    resp = req.response(200, to_tag="x")
    assert resp.vias == req.vias
    assert resp.headers.get_all_raw("Via") == req.headers.get_all_raw("Via")


def test_unknown_method_and_headers_kept_intact() -> None:
    data = (
        INVITE.replace(b"INVITE sip:", b"FROBNICATE sip:", 1)
        .replace(b"CSeq: 1 INVITE", b"CSeq: 1 FROBNICATE")
        .replace(b"Max-Forwards: 70\r\n", b'X-Weird-Header:  ;;,,<>"  \r\n')
    )
    req = parse_message(data)
    assert isinstance(req, Request) and req.method == "FROBNICATE"
    assert req.headers.get("x-weird-header") == ';;,,<>"'
    assert b'X-Weird-Header: ;;,,<>"\r\n' in serialize(req)


def test_tel_uri_request() -> None:
    data = INVITE.replace(b"sip:bob@biloxi.example.com SIP", b"tel:+15551234567;npdi SIP", 1)
    req = parse_message(data)
    assert isinstance(req, Request)
    assert str(req.uri) == "tel:+15551234567;npdi"
    assert req.uri_scheme == "tel" and req.uri_scheme_supported


def test_lowercase_sip_version_accepted() -> None:
    # The ABNF literal "SIP" is case-insensitive (RFC 5234 §2.3).
    req = parse_message(INVITE.replace(b"SIP/2.0\r\n", b"sip/2.0\r\n", 1))
    assert req == parse_message(INVITE)


def test_underscore_in_host_accepted() -> None:
    # Leniency: "_" in host names (seen in deployments) is accepted in URIs and Via.
    data = INVITE.replace(b"client.atlanta.example.com:5060", b"my_host.example.com:5060", 1)
    req = parse_message(data)
    assert req.top_via.host == "my_host.example.com"


def test_unquoted_utf8_display_name_accepted() -> None:
    # Leniency: non-ASCII words in an unquoted display name.
    data = INVITE.replace(b"From: Alice <", "From: Алиса Б <".encode(), 1)
    assert parse_message(data).from_.display_name == "Алиса Б"


def test_call_id_leniency_and_limits() -> None:
    # Leniency: Call-ID characters outside RFC 3261 "word" (here "=" and "$") are accepted.
    data = INVITE.replace(b"Call-ID: 3848276298220188511@", b"Call-ID: a=b$c@", 1)
    assert parse_message(data).call_id == "a=b$c@atlanta.example.com"
    with pytest.raises(RemoteProtocolError):
        parse_message(INVITE.replace(b"Call-ID: 3848276298220188511@", b"Call-ID: a b@", 1))


def test_empty_list_elements_skipped() -> None:
    # Leniency: "a,,b" in a list header yields ["a", "b"].
    assert Headers([("Allow", "INVITE,, BYE,")]).get_all("Allow") == ["INVITE", "BYE"]


def test_invalid_utf8_forwarded_unchanged() -> None:
    # Leniency: undecodable octets in header values are kept (surrogateescape) and re-sent.
    data = INVITE.replace(b"Max-Forwards: 70\r\n", b"Subject: caf\xe9\r\nMax-Forwards: 70\r\n")
    req = parse_message(data)
    assert b"Subject: caf\xe9\r\n" in serialize(req)


def test_max_forwards_validation() -> None:
    for bad in (b"256", b"-1", b"x", b"1 2"):
        with pytest.raises(RemoteProtocolError):
            parse_message(INVITE.replace(b"Max-Forwards: 70", b"Max-Forwards: " + bad))
    req = parse_message(INVITE.replace(b"Max-Forwards: 70", b"Max-Forwards: 0"))
    assert req.max_forwards == 0


def test_duplicate_single_headers_rejected() -> None:
    for line in (b"To: <sip:x@y>\r\n", b"Call-ID: other\r\n", b"CSeq: 2 INVITE\r\n"):
        with pytest.raises(RemoteProtocolError):
            parse_message(INVITE.replace(b"Max-Forwards", line + b"Max-Forwards", 1))


def test_message_is_hashable_and_frozen() -> None:
    req = _request()
    with pytest.raises(AttributeError):
        req.method = "BYE"  # type: ignore[misc]
    assert {req: 1}[parse_message(INVITE)] == 1


def test_content_length_in_headers_is_replaced_on_send() -> None:
    req = _request()
    req = req.with_headers(req.headers.append("Content-Length", "999"))
    wire = serialize(req)
    assert wire.count(b"Content-Length") == 1
    assert b"Content-Length: " + str(len(SDP)).encode() + b"\r\n" in wire
    assert wire.endswith(SDP)


def test_serialize_refuses_unencodable_text() -> None:
    req = _request()
    req = req.with_headers(req.headers.append("Subject", "\ud800"))
    with pytest.raises(LocalProtocolError):
        serialize(req)


def test_contact_star_and_content_type_params() -> None:
    data = (
        INVITE.replace(b"INVITE sip:", b"REGISTER sip:", 1)
        .replace(b"CSeq: 1 INVITE", b"CSeq: 1 REGISTER")
        .replace(b"Contact: <sip:alice@client.atlanta.example.com;transport=tcp>", b"Contact: *")
        .replace(b"Content-Type: application/sdp", b"Content-Type: Application/SDP ; charset=x")
    )
    req = parse_message(data)
    assert req.contacts == []  # "Contact: *": the registrar checks the raw value
    assert req.headers.get("Contact") == "*"
    assert req.content_type == "application/sdp"


@pytest.mark.parametrize(
    "data",
    [
        b"OPTIONS sip:a@b SIP/2.0\r\n" + b"a" * 200_000 + b"\r\n\r\n",
        b"OPTIONS sip:a@b SIP/2.0\r\nX:" + b" a" * 100_000 + b" " * 100_000 + b"\r\n\r\n",
        b"OPTIONS sip:" + b"a." * 100_000 + b"- SIP/2.0\r\n\r\n",
        b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h" + b";a=b" * 50_000 + b";\r\n\r\n",
    ],
    ids=["no-colon", "trailing-spaces", "long-host", "many-params"],
)
def test_pathological_input_is_rejected_in_linear_time(data: bytes) -> None:
    # A quadratic regex took ~40 s on the first case; linear parsing takes milliseconds.
    start = time.process_time()
    with pytest.raises(RemoteProtocolError):
        parse_message(data)
    assert time.process_time() - start < 5.0


def test_serialize_refuses_bad_start_lines() -> None:
    req = _request()
    with pytest.raises(LocalProtocolError):
        serialize(req.replace(method="IN VITE"))
    resp = req.response(200, to_tag="a")
    for bad in (resp.replace(status=700), resp.replace(reason="OK\r\nVia: x")):
        with pytest.raises(LocalProtocolError):
            serialize(bad)
