"""Dialog state (RFC 3261 §12): creation on both sides, in-dialog requests, route sets."""

from __future__ import annotations

import pytest

from sip.dialog import Dialog, DialogState
from sip.errors import LocalProtocolError, RemoteProtocolError
from sip.message import Request, Response, parse_message
from sip.uri import NameAddr, parse_uri


def invite(*extra: str, cseq: int = 1) -> Request:
    text = (
        "INVITE sip:bob@biloxi.example.com SIP/2.0\r\n"
        "Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bKnashds8\r\n"
        "Max-Forwards: 70\r\n"
        "To: Bob <sip:bob@biloxi.example.com>\r\n"
        "From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n"
        "Call-ID: a84b4c76e66710\r\n"
        f"CSeq: {cseq} INVITE\r\n"
        "Contact: <sip:alice@pc33.atlanta.example.com>\r\n"
        + "".join(f"{line}\r\n" for line in extra)
        + "Content-Length: 0\r\n\r\n"
    )
    message = parse_message(text.encode())
    assert isinstance(message, Request)
    return message


def response_to(request: Request, status: int, *extra: tuple[str, str]) -> Response:
    return request.response(status, to_tag="bobtag", headers=list(extra))


BOB_CONTACT = ("Contact", "<sip:bob@192.0.2.4>")


def test_uac_dialog_from_2xx() -> None:
    request = invite()
    ok = response_to(
        request,
        200,
        BOB_CONTACT,
        ("Record-Route", "<sip:p2.example.com;lr>"),
        ("Record-Route", "<sip:p1.example.com;lr>"),
    )
    dialog = Dialog.from_uac(request, ok)
    assert dialog.state is DialogState.CONFIRMED
    assert (dialog.call_id, dialog.local_tag, dialog.remote_tag) == (
        "a84b4c76e66710",
        "1928301774",
        "bobtag",
    )
    assert dialog.local_seq == 1 and dialog.remote_seq is None
    assert str(dialog.remote_target) == "sip:bob@192.0.2.4"
    # the UAC reverses Record-Route (§12.1.2)
    assert [str(r.uri) for r in dialog.route_set] == [
        "sip:p1.example.com;lr",
        "sip:p2.example.com;lr",
    ]
    assert dialog.matches_response(ok)


def test_uac_early_dialog_confirmed_by_2xx_recomputes_target_and_routes() -> None:
    request = invite()
    ringing = response_to(request, 180, ("Record-Route", "<sip:old.example.com;lr>"))
    dialog = Dialog.from_uac(request, ringing)
    assert dialog.state is DialogState.EARLY
    assert dialog.remote_target == request.uri  # no Contact in the 180
    ok = response_to(request, 200, BOB_CONTACT, ("Record-Route", "<sip:new.example.com;lr>"))
    dialog.confirm(ok)
    assert dialog.state is DialogState.CONFIRMED
    assert str(dialog.remote_target) == "sip:bob@192.0.2.4"
    assert [str(r.uri) for r in dialog.route_set] == ["sip:new.example.com;lr"]


def test_responses_without_tag_or_contact_are_refused() -> None:
    request = invite()
    no_tag = request.response(200, headers=[BOB_CONTACT])
    with pytest.raises(RemoteProtocolError):
        Dialog.from_uac(request, no_tag)
    with pytest.raises(RemoteProtocolError):
        Dialog.from_uac(request, response_to(request, 200))
    with pytest.raises(LocalProtocolError):
        Dialog.from_uac(request, response_to(request, 486))


def test_bye_with_loose_routes() -> None:
    request = invite()
    ok = response_to(request, 200, BOB_CONTACT, ("Record-Route", "<sip:p1.example.com;lr>"))
    dialog = Dialog.from_uac(request, ok)
    bye = dialog.create_request("BYE")
    assert bye.method == "BYE"
    assert str(bye.uri) == "sip:bob@192.0.2.4"
    assert [str(r.uri) for r in bye.routes] == ["sip:p1.example.com;lr"]
    assert bye.cseq.seq == 2 and bye.cseq.method == "BYE"
    assert bye.from_.tag == "1928301774" and bye.to.tag == "bobtag"
    assert bye.call_id == "a84b4c76e66710"
    assert str(dialog.next_hop()) == "sip:p1.example.com;lr"
    assert dialog.create_request("INFO").cseq.seq == 3


def test_strict_router_goes_into_the_request_uri() -> None:
    request = invite()
    ok = response_to(
        request,
        200,
        BOB_CONTACT,
        ("Record-Route", "<sip:p2.example.com;lr>"),
        ("Record-Route", "<sip:strict.example.com>"),
    )
    dialog = Dialog.from_uac(request, ok)
    bye = dialog.create_request("BYE")
    # §12.2.1.1: strict first hop -> Request-URI; remote target appended as last Route
    assert str(bye.uri) == "sip:strict.example.com"
    assert [str(r.uri) for r in bye.routes] == ["sip:p2.example.com;lr", "sip:bob@192.0.2.4"]


def test_ack_reuses_the_invite_cseq() -> None:
    request = invite(cseq=5)
    dialog = Dialog.from_uac(request, response_to(request, 200, BOB_CONTACT))
    ack = dialog.create_ack(5)
    assert ack.cseq.seq == 5 and ack.cseq.method == "ACK"
    assert dialog.local_seq == 5  # the ACK took no new number
    reinvite = dialog.create_request("INVITE", body=b"v=0\r\n", content_type="application/sdp")
    assert reinvite.cseq.seq == 6
    assert reinvite.content_type == "application/sdp"
    with pytest.raises(LocalProtocolError):
        dialog.create_request("ACK")
    with pytest.raises(LocalProtocolError):
        dialog.create_request("CANCEL")


def test_uas_dialog_and_incoming_cseq_order() -> None:
    request = invite("Record-Route: <sip:p1.example.com;lr>", cseq=10)
    contact = NameAddr(parse_uri("sip:me@127.0.0.1:5060"))
    dialog = Dialog.from_uas(request, "mytag", contact)
    assert dialog.state is DialogState.EARLY
    assert dialog.local_tag == "mytag" and dialog.remote_tag == "1928301774"
    assert dialog.remote_seq == 10
    assert [str(r.uri) for r in dialog.route_set] == ["sip:p1.example.com;lr"]  # not reversed
    dialog.confirm()
    bye = dialog.create_request("BYE")
    assert bye.from_.tag == "mytag" and bye.to.tag == "1928301774"
    assert str(bye.uri) == "sip:alice@pc33.atlanta.example.com"
    reinvite = dialog.create_request("INVITE")
    assert reinvite.contacts[0] == contact

    def incoming(method: str, seq: int) -> Request:
        text = (
            f"{method} sip:me@127.0.0.1:5060 SIP/2.0\r\n"
            "Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bKx\r\n"
            "To: <sip:bob@biloxi.example.com>;tag=mytag\r\n"
            "From: <sip:alice@atlanta.example.com>;tag=1928301774\r\n"
            f"Call-ID: a84b4c76e66710\r\nCSeq: {seq} {method}\r\n"
            "Contact: <sip:alice@198.51.100.7>\r\nContent-Length: 0\r\n\r\n"
        )
        message = parse_message(text.encode())
        assert isinstance(message, Request)
        return message

    later = incoming("INVITE", 11)
    assert dialog.matches_request(later)
    assert dialog.receive_request(later) is None
    assert dialog.remote_seq == 11
    dialog.refresh_target(later)
    assert str(dialog.remote_target) == "sip:alice@198.51.100.7"
    stale = dialog.receive_request(incoming("INFO", 9))
    assert stale is not None and stale.status == 500
    assert dialog.receive_request(incoming("ACK", 11)) is None


def test_uas_invite_without_contact_is_refused() -> None:
    text = (
        "INVITE sip:bob@b.example SIP/2.0\r\nVia: SIP/2.0/UDP a.example;branch=z9hG4bK1\r\n"
        "To: <sip:bob@b.example>\r\nFrom: <sip:a@a.example>;tag=1\r\nCall-ID: c\r\n"
        "CSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
    )
    request = parse_message(text.encode())
    assert isinstance(request, Request)
    with pytest.raises(RemoteProtocolError):
        Dialog.from_uas(request, "t")


def test_terminated_dialog_refuses_new_requests() -> None:
    request = invite()
    dialog = Dialog.from_uac(request, response_to(request, 200, BOB_CONTACT))
    dialog.terminate()
    with pytest.raises(LocalProtocolError):
        dialog.create_request("INFO")
