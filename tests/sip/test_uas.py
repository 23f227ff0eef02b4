"""UAS request checks (RFC 3261 §8.2) and the OPTIONS answer (§11)."""

from __future__ import annotations

import pytest

from sip.errors import RemoteProtocolError
from sip.message import Request, parse_message
from sip.uas import check_request, options_response

ALLOWED = ("INVITE", "ACK", "CANCEL", "BYE", "OPTIONS")


def request(
    method: str = "INVITE",
    uri: str = "sip:bob@example.com",
    *extra: str,
    to_tag: str = "",
    max_forwards: str | None = "70",
    cseq_method: str | None = None,
    body: str = "",
) -> Request:
    lines = [
        f"{method} {uri} SIP/2.0",
        "Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK776",
        f"To: <sip:bob@example.com>{';tag=' + to_tag if to_tag else ''}",
        "From: <sip:alice@example.com>;tag=99",
        "Call-ID: abc@192.0.2.1",
        f"CSeq: 1 {cseq_method or method}",
    ]
    if max_forwards is not None:
        lines.append(f"Max-Forwards: {max_forwards}")
    lines.extend(extra)
    lines.append(f"Content-Length: {len(body)}")
    message = parse_message(("\r\n".join(lines) + "\r\n\r\n" + body).encode())
    assert isinstance(message, Request)
    return message


def check(req: Request, supported: tuple[str, ...] = ()) -> int | None:
    response = check_request(req, allowed_methods=ALLOWED, supported_extensions=supported)
    return None if response is None else response.status


def test_a_good_request_passes() -> None:
    assert check(request()) is None
    assert check(request("BYE", to_tag="x")) is None


def test_ack_and_responses_are_never_answered() -> None:
    assert check(request("ACK", max_forwards="0", to_tag="x")) is None
    ok = request().response(200, to_tag="t")
    assert check_request(ok, allowed_methods=ALLOWED) is None


def test_unknown_method_501_and_known_but_not_allowed_405_with_allow() -> None:
    response = check_request(request("FROBNICATE"), allowed_methods=ALLOWED)
    assert response is not None and response.status == 501
    assert response.headers.get("Allow") == "ACK, BYE, CANCEL, INVITE, OPTIONS"
    response = check_request(request("SUBSCRIBE"), allowed_methods=ALLOWED)
    assert response is not None and response.status == 405
    assert "Allow" in response.headers


def test_unsupported_uri_scheme_416() -> None:
    assert check(request(uri="http://example.com/")) == 416
    assert check(request(uri="tel:+15551234567")) is None
    assert check(request(uri="sips:bob@example.com")) is None


def test_max_forwards_zero() -> None:
    assert check(request(max_forwards="0")) == 483
    # OPTIONS with Max-Forwards 0 is a probe for us (§11): answered, not refused
    assert check(request("OPTIONS", max_forwards="0")) is None
    # an in-dialog request ends here: refusing it would only leave the call hanging
    assert check(request("BYE", max_forwards="0", to_tag="x")) is None
    assert check(request(max_forwards=None)) is None  # missing: tolerated


def test_require_420_lists_unsupported() -> None:
    response = check_request(
        request("INVITE", "sip:bob@example.com", "Require: 100rel, timer"),
        allowed_methods=ALLOWED,
        supported_extensions=("timer",),
    )
    assert response is not None and response.status == 420
    assert response.headers.get("Unsupported") == "100rel"
    assert check(request("INVITE", "sip:b@e.com", "Require: timer"), ("timer",)) is None


def test_cseq_method_mismatch_400() -> None:
    # the parser refuses this already; check_request guards requests built in code too
    good = request()
    bad = good.with_headers(good.headers.replace("CSeq", "1 BYE"))
    response = check_request(bad, allowed_methods=ALLOWED)
    assert response is not None and response.status == 400
    assert "CSeq" in response.reason


def test_body_without_content_type_400() -> None:
    assert check(request(body="v=0\r\n")) == 400
    assert (
        check(request("INVITE", "sip:b@e.com", "Content-Type: application/sdp", body="v=0")) is None
    )


def test_missing_call_id_cannot_be_answered() -> None:
    text = (
        "INVITE sip:bob@example.com SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\n"
        "To: <sip:bob@example.com>\r\nFrom: <sip:a@example.com>;tag=1\r\n"
        "CSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
    )
    try:
        message = parse_message(text.encode())
    except RemoteProtocolError:
        return  # the parser already refuses it: fine too
    assert isinstance(message, Request)
    with pytest.raises(RemoteProtocolError):
        check_request(message, allowed_methods=ALLOWED)


def test_options_response() -> None:
    response = options_response(
        request("OPTIONS"), ALLOWED, ("application/sdp",), ("replaces",), to_tag="tt"
    )
    assert response.status == 200
    assert response.to.tag == "tt"
    assert response.headers.get("Allow") == "ACK, BYE, CANCEL, INVITE, OPTIONS"
    assert response.headers.get("Accept") == "application/sdp"
    assert response.headers.get("Supported") == "replaces"
    in_dialog = options_response(request("OPTIONS", to_tag="keep"), ALLOWED)
    assert in_dialog.to.tag == "keep"
    # without a tag given none is drawn here (sans-IO): the endpoint adds its own on sending
    assert options_response(request("OPTIONS"), ALLOWED).to.tag is None
