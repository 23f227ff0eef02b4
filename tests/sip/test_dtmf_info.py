"""SIP INFO carrying DTMF inside an established dialog: what the far end gets back and what
the call is told (``LegDtmf``), on the caller's session driven with plain ``now`` values."""

from __future__ import annotations

import pytest

from sip.dtmf import DtmfInfo, DtmfInfoError, digit_of_event, event_of_digit, parse_dtmf_info
from sip.headers import Headers
from sip.leg_events import LegDtmf
from sip.message import Request, Response
from sip.uri import parse_uri
from tests.sip.test_uac_session import answered


def info(uac: object, seq: int, content_type: str | None, body: bytes) -> Request:
    dialog = uac.dialog  # type: ignore[attr-defined]
    items = [
        ("Via", f"SIP/2.0/UDP 192.0.2.5:5060;branch=z9hG4bKinfo{seq}"),
        ("From", str(dialog.remote_addr)),
        ("To", str(dialog.local_addr)),
        ("Call-ID", dialog.call_id),
        ("CSeq", f"{seq} INFO"),
    ]
    if content_type is not None:
        items.append(("Content-Type", content_type))
    return Request("INFO", parse_uri("sip:alice@198.51.100.1:5070"), Headers(items), body)


def deliver(content_type: str | None, body: bytes) -> tuple[Response, list[object]]:
    uac, _invite, _ok = answered()
    response = uac.receive_request(info(uac, 2, content_type, body), uac.peer, 2.0)
    assert isinstance(response, Response)
    return response, list(uac.outputs())


def test_a_dtmf_relay_info_gets_200_and_reports_the_digit() -> None:
    response, out = deliver("application/dtmf-relay", b"Signal=5\r\nDuration=160\r\n")
    assert response.status == 200
    assert out == [LegDtmf("5", 160)]


def test_star_hash_and_letters_are_digits_too() -> None:
    for signal, digit in ((b"*", "*"), (b"#", "#"), (b"a", "A"), (b"11", "#"), (b"E", "*")):
        response, out = deliver("application/dtmf-relay", b"Signal= " + signal + b"\nDuration=100")
        assert response.status == 200 and out == [LegDtmf(digit, 100)]


def test_application_dtmf_is_the_bare_digit() -> None:
    response, out = deliver("application/dtmf", b"9")
    assert response.status == 200 and out == [LegDtmf("9", 250)]


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"Duration=160", "DTMF body has no Signal"),
        (b"Signal=X\r\nDuration=160", "Bad DTMF Signal 'X'"),
        (b"Signal=12\r\n", "Bad DTMF Signal '12'"),
        (b"Signal=1\r\nDuration=soon", "Bad DTMF Duration 'soon'"),
        (b"Signal=1\r\nDuration=0", "Bad DTMF Duration 0"),
        (b"Signal=\xff", "DTMF body is not UTF-8 text"),
    ],
)
def test_a_bad_dtmf_body_gets_400_naming_the_problem_and_no_digit(body: bytes, reason: str) -> None:
    response, out = deliver("application/dtmf-relay", body)
    assert (response.status, response.reason) == (400, reason)
    assert out == []


def test_info_of_another_content_type_still_gets_200_and_reports_nothing() -> None:
    for content_type, body in (("text/plain", b"hello"), (None, b"")):
        response, out = deliver(content_type, body)
        assert response.status == 200 and out == []


def test_a_long_duration_is_capped() -> None:
    assert parse_dtmf_info("application/dtmf-relay", b"Signal=1\nDuration=99999") == DtmfInfo(
        "1", 8000
    )


def test_event_codes_follow_rfc_4733() -> None:
    assert [event_of_digit(d) for d in "09*#AD"] == [0, 9, 10, 11, 12, 15]
    assert digit_of_event(11) == "#" and digit_of_event(16) is None
    with pytest.raises(ValueError):
        event_of_digit("x")
    with pytest.raises(DtmfInfoError):
        parse_dtmf_info("Application/DTMF-Relay; charset=utf-8", b"Signal=")


def test_the_callee_side_takes_a_callers_dtmf_info_too() -> None:
    """An inbound caller's INFO (our UAS session) after its ACK: 200 and the digit."""
    from tests.sip.test_uas_session import ANSWER, CALLER, from_caller, session

    uas = session()
    uas.answer(ANSWER, 0.0)
    uas.receive_request(from_caller(uas, "ACK", 1), CALLER, 0.1)
    uas.outputs()
    request = from_caller(uas, "INFO", 2, b"Signal=7\r\nDuration=120\r\n")
    request = request.with_headers(
        request.headers.prepend("Content-Type", "application/dtmf-relay")
    )
    response = uas.receive_request(request, CALLER, 1.0)
    assert response is not None and response.status == 200
    assert uas.outputs() == [LegDtmf("7", 120)]
