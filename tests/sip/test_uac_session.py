"""The caller's INVITE session state machine, driven with plain ``now`` values (no trio)."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from sip.auth import DigestServer
from sip.errors import LocalProtocolError
from sip.headers import Headers
from sip.leg_events import LegAnswered, LegFailed, LegHungUp, LegRinging
from sip.message import Request, Response
from sip.timers import TimerConfig
from sip.transaction import Peer
from sip.uac_session import (
    AckAndBye,
    ReinviteAnswered,
    ReinviteRejected,
    SendRequest,
    SendStateless,
    UacOutput,
    UacSession,
    UacState,
)
from sip.uri import NameAddr, SipUri, parse_uri
from tests.sip.fixed_random import counting_bytes

OFFER = (
    b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    b"m=audio 4000 RTP/AVP 0\r\n"
)
ANSWER = OFFER.replace(b"4000", b"5000")
FAR = Peer("udp", "192.0.2.5", 5060)
T1 = TimerConfig().t1


def session(
    peer: Peer = FAR, credentials: tuple[str, str] | None = None, **kwargs: object
) -> UacSession:
    counter = itertools.count(1)
    return UacSession(
        peer=peer,
        request_uri=SipUri("sip", "bob", None, peer.host, peer.port),
        from_addr=NameAddr(SipUri("sip", "alice", None, "example.com", None), "Alice"),
        to_addr=NameAddr(SipUri("sip", "bob", None, peer.host, peer.port)),
        random_token=lambda: f"r{next(counter)}",
        local_address=lambda transport: ("198.51.100.1", 5070),
        credentials=credentials,
        **kwargs,  # type: ignore[arg-type]
    )


def started(peer: Peer = FAR, **kwargs: object) -> tuple[UacSession, Request]:
    uac = session(peer, **kwargs)  # type: ignore[arg-type]
    uac.start(OFFER, 0.0)
    (send,) = uac.outputs()
    assert isinstance(send, SendRequest)
    return uac, send.request


def reply(
    invite: Request,
    status: int,
    *,
    tag: str | None = "b1",
    body: bytes = b"",
    headers: list[tuple[str, str]] | None = None,
) -> Response:
    extra = list(headers or [])
    if 100 < status < 300:
        extra.append(("Contact", "<sip:bob@192.0.2.5:5060>"))
    if body:
        extra.append(("Content-Type", "application/sdp"))
    return invite.response(status, to_tag=tag if status > 100 else None, headers=extra, body=body)


def answered() -> tuple[UacSession, Request, Response]:
    uac, invite = started()
    ok = reply(invite, 200, body=ANSWER)
    uac.receive_response(ok, FAR, 1.0)
    out = uac.outputs()
    assert isinstance(out[0], SendStateless) and out[1] == LegAnswered(ANSWER)
    return uac, invite, ok


def in_dialog(uac: UacSession, method: str, seq: int, body: bytes = b"") -> Request:
    dialog = uac.dialog
    assert dialog is not None
    items = [
        ("Via", f"SIP/2.0/UDP 192.0.2.5:5060;branch=z9hG4bK{method}{seq}"),
        ("From", str(dialog.remote_addr)),
        ("To", str(dialog.local_addr)),
        ("Call-ID", dialog.call_id),
        ("CSeq", f"{seq} {method}"),
        ("Contact", "<sip:bob@192.0.2.5:5060>"),
    ]
    if body:
        items.append(("Content-Type", "application/sdp"))
    return Request(method, parse_uri("sip:alice@198.51.100.1:5070"), Headers(items), body)


def requests(out: list[UacOutput]) -> list[str]:
    return [o.request.method for o in out if isinstance(o, SendRequest)]


# -- the INVITE and its answers -------------------------------------------------------------


def test_the_invite_uses_only_the_injected_random_values() -> None:
    uac, invite = started()
    assert invite.call_id == "r2r3@198.51.100.1"
    assert invite.from_.tag == "r1"
    assert invite.vias[0].branch == "z9hG4bKr4"
    assert invite.headers.get("Contact") == "<sip:198.51.100.1:5070>"
    assert invite.body == OFFER and uac.state is UacState.CALLING


def test_ringing_and_early_media_are_reported_but_not_100() -> None:
    uac, invite = started()
    uac.receive_response(reply(invite, 100), FAR, 0.1)
    uac.receive_response(reply(invite, 180), FAR, 0.2)
    uac.receive_response(reply(invite, 183, body=ANSWER), FAR, 0.3)
    assert uac.outputs() == [LegRinging(180, None), LegRinging(183, ANSWER)]


def test_2xx_is_acked_once_and_its_retransmission_gets_the_same_ack() -> None:
    uac, _invite, ok = answered()
    assert uac.state is UacState.ESTABLISHED
    uac.receive_response(ok, FAR, 2.0)
    (again,) = uac.outputs()
    assert isinstance(again, SendStateless)
    ack = again.message
    assert isinstance(ack, Request) and ack.method == "ACK" and ack.cseq.seq == 1
    assert again.peer == FAR  # where the INVITE went (no route set)


def test_a_2xx_of_another_fork_is_acked_and_byed() -> None:
    uac, invite, _ = answered()
    other = reply(invite, 200, tag="b2", body=ANSWER)
    uac.receive_response(other, FAR, 2.0)
    assert uac.outputs() == [AckAndBye(other, FAR)]


def test_busy_fails_the_leg() -> None:
    uac, invite = started()
    uac.receive_response(reply(invite, 486), FAR, 1.0)
    assert uac.outputs() == [LegFailed(486, "Busy Here")]
    assert uac.finished and uac.get_timer() is None


def test_an_unroutable_2xx_fails_with_502() -> None:
    uac, invite = started()
    ok = invite.response(200, to_tag="b1", headers=[("Contact", "<tel:+123>")], body=ANSWER)
    uac.receive_response(ok, FAR, 1.0)
    assert uac.outputs() == [LegFailed(502, "Bad Gateway")]


def test_late_offer_the_ack_carries_our_answer() -> None:
    uac = session(on_offer=lambda offer: ANSWER if offer == OFFER else None)
    uac.start(None, 0.0)
    (send,) = uac.outputs()
    assert isinstance(send, SendRequest) and send.request.body == b""
    uac.receive_response(reply(send.request, 200, body=OFFER), FAR, 1.0)
    ack, event = uac.outputs()
    assert isinstance(ack, SendStateless) and ack.message.body == ANSWER
    assert event == LegAnswered(OFFER)


# -- CANCEL (§9.1) --------------------------------------------------------------------------


def test_cancel_waits_for_a_provisional_then_goes_out() -> None:
    uac, invite = started()
    uac.cancel(0.5)
    assert uac.outputs() == [] and uac.state is UacState.CANCEL_PENDING
    uac.receive_response(reply(invite, 100), FAR, 0.6)
    assert uac.outputs() == []  # 100 Trying does not allow a CANCEL
    uac.receive_response(reply(invite, 180), FAR, 0.7)
    out = uac.outputs()
    assert requests(out) == ["CANCEL"] and not any(isinstance(o, LegRinging) for o in out)
    uac.receive_response(reply(invite, 487), FAR, 0.8)
    assert uac.outputs() == [LegFailed(487, "Request Terminated")]


def test_without_a_final_response_the_cancel_gives_up_after_64_t1() -> None:
    uac, invite = started()
    uac.receive_response(reply(invite, 180), FAR, 1.0)
    uac.outputs()
    uac.cancel(2.0)
    assert requests(uac.outputs()) == ["CANCEL"]
    assert uac.get_timer() == 2.0 + 64 * T1
    uac.handle_timer(2.0 + 64 * T1 - 0.001)
    assert uac.outputs() == []
    uac.handle_timer(2.0 + 64 * T1)
    assert uac.outputs() == [LegFailed(487, "Request Terminated")]
    assert uac.finished


def test_a_2xx_racing_the_cancel_is_acked_and_byed() -> None:
    uac, invite = started()
    uac.receive_response(reply(invite, 180), FAR, 1.0)
    uac.cancel(1.5)
    uac.outputs()
    uac.receive_response(reply(invite, 200, body=ANSWER), FAR, 1.6)
    out = uac.outputs()
    assert isinstance(out[0], SendStateless) and requests(out) == ["BYE"]
    assert out[-1] == LegFailed(487, "Request Terminated")


def test_cancel_after_the_answer_is_bye() -> None:
    uac, _, _ = answered()
    uac.cancel(5.0)
    assert requests(uac.outputs()) == ["BYE"]
    assert uac.state is UacState.ENDED


# -- digest (§22.2) -------------------------------------------------------------------------


def test_a_407_is_answered_once_with_credentials() -> None:
    digest = DigestServer("example.com", b"secret", proxy=True, random_bytes=counting_bytes())
    uac, invite = started(credentials=("alice", "pw"))
    challenge = reply(
        invite,
        407,
        headers=[("Proxy-Authenticate", v) for v in digest.challenge_values(0.0)],
    )
    uac.receive_response(challenge, FAR, 0.1)
    (retry,) = uac.outputs()
    assert isinstance(retry, SendRequest) and retry.request.cseq.seq == 2
    assert retry.request.call_id == invite.call_id
    assert retry.request.from_.tag == invite.from_.tag
    assert retry.request.vias[0].branch != invite.vias[0].branch
    credentials = retry.request.headers.get("Proxy-Authorization") or ""
    assert digest.verify("INVITE", credentials, {"alice": "pw"}.get, 0.2).ok
    assert 'cnonce="r' in credentials  # the injected random value
    values = [("Proxy-Authenticate", v) for v in digest.challenge_values(1.0)]
    uac.receive_response(reply(retry.request, 407, headers=values), FAR, 1.0)
    assert uac.outputs() == [LegFailed(407, "Proxy Authentication Required")]


# -- in the dialog --------------------------------------------------------------------------


def test_bye_from_the_callee_hangs_up_with_its_reason() -> None:
    uac, _, _ = answered()
    bye = in_dialog(uac, "BYE", 5)
    bye = bye.with_headers(bye.headers.append("Reason", 'Q.850;cause=16;text="done"'))
    response = uac.receive_request(bye, FAR, 3.0)
    assert response is not None and response.status == 200
    assert uac.outputs() == [LegHungUp('Q.850;cause=16;text="done"')]
    assert uac.finished


def test_requests_out_of_order_get_500_and_unknown_methods_501() -> None:
    uac, _, _ = answered()
    assert (ok := uac.receive_request(in_dialog(uac, "INFO", 5), FAR, 2.0)) and ok.status == 200
    late = uac.receive_request(in_dialog(uac, "INFO", 4), FAR, 2.1)
    assert late is not None and late.status == 500
    refer = uac.receive_request(in_dialog(uac, "REFER", 6), FAR, 2.2)
    assert refer is not None and refer.status == 501


def test_a_reinvite_is_answered_and_its_2xx_retransmitted_until_the_ack() -> None:
    uac, _, _ = answered()
    uac.on_offer = lambda offer: ANSWER
    reinvite = in_dialog(uac, "INVITE", 5, OFFER)
    ok = uac.receive_request(reinvite, FAR, 10.0)
    assert ok is not None and ok.status == 200 and ok.body == ANSWER
    assert uac.get_timer() == 10.0 + T1
    uac.handle_timer(10.0 + T1)
    uac.handle_timer(10.0 + 3 * T1)
    assert uac.outputs() == [SendStateless(ok, FAR), SendStateless(ok, FAR)]  # T1, then 2*T1
    assert uac.get_timer() == 10.0 + 7 * T1
    uac.receive_request(in_dialog(uac, "ACK", 5), FAR, 12.0)
    assert uac.get_timer() is None


def test_without_the_ack_the_2xx_retransmission_stops_after_64_t1() -> None:
    uac, _, _ = answered()
    uac.receive_request(in_dialog(uac, "INVITE", 5, OFFER), FAR, 0.0)
    now = 0.0
    while (deadline := uac.get_timer()) is not None:
        now = deadline
        uac.handle_timer(now)
    assert now == 64 * T1
    sent = uac.outputs()
    assert all(isinstance(o, SendStateless) for o in sent) and len(sent) == 10  # capped at T2
    assert uac.state is UacState.ESTABLISHED


def test_over_tcp_the_2xx_to_a_reinvite_is_not_retransmitted() -> None:
    tcp = Peer("tcp", "192.0.2.5", 5060)
    uac, invite = started(tcp)
    uac.receive_response(reply(invite, 200, body=ANSWER), tcp, 1.0)
    uac.outputs()
    uac.receive_request(in_dialog(uac, "INVITE", 5, OFFER), tcp, 2.0)
    assert uac.get_timer() == 2.0 + 64 * T1


def test_our_reinvite_gets_its_answer_and_is_acked() -> None:
    uac, _, _ = answered()
    uac.reinvite(OFFER, 5.0)
    (send,) = uac.outputs()
    assert isinstance(send, SendRequest) and send.request.cseq.seq == 2
    with pytest.raises(LocalProtocolError):
        uac.reinvite(OFFER, 5.1)  # one at a time
    uac.receive_response(reply(send.request, 200, body=ANSWER), FAR, 5.2)
    ack, result = uac.outputs()
    assert isinstance(ack, SendStateless) and ack.message.cseq.seq == 2
    assert result == ReinviteAnswered(ANSWER)


def test_glare_the_callees_reinvite_gets_491_and_ours_may_too() -> None:
    uac, _, _ = answered()
    uac.reinvite(OFFER, 5.0)
    (send,) = uac.outputs()
    glare = uac.receive_request(in_dialog(uac, "INVITE", 5, OFFER), FAR, 5.1)
    assert glare is not None and glare.status == 491
    uac.receive_response(reply(send.request, 491), FAR, 5.2)
    assert uac.outputs() == [ReinviteRejected(491, "Request Pending")]


def test_a_reinvite_before_the_answer_is_refused() -> None:
    uac, _ = started()
    with pytest.raises(LocalProtocolError):
        uac.reinvite(OFFER, 1.0)


# -- rules that hold whatever happens -------------------------------------------------------

STATUSES = st.sampled_from([100, 180, 183, 200, 401, 407, 480, 486, 487, 500, 603])


class UacMachine(RuleBasedStateMachine):
    """Random responses, commands and time: the leg events keep their promised shape."""

    def __init__(self) -> None:
        super().__init__()
        self.uac, self.invite = started(credentials=("alice", "pw"))
        self.now = 0.0
        self.events: list[object] = []
        self.sent: list[str] = []
        self.provisional_seen = False
        self.cancelled_early = False

    def _drain(self) -> None:
        for output in self.uac.outputs():
            if isinstance(output, SendRequest):
                self.sent.append(output.request.method)
                if output.request.method == "CANCEL":
                    assert self.provisional_seen, "CANCEL before a provisional (§9.1)"
                if output.request.method == "INVITE" and output.request.cseq.seq > 1:
                    self.invite = output.request
                    self.provisional_seen = False
            elif isinstance(output, LegRinging | LegAnswered | LegFailed | LegHungUp):
                self.events.append(output)

    @rule(status=STATUSES, fork=st.booleans())
    def response(self, status: int, fork: bool) -> None:
        headers = []
        if status in (401, 407):
            name = "WWW-Authenticate" if status == 401 else "Proxy-Authenticate"
            headers = [(name, 'Digest realm="x", nonce="n", qop="auth", algorithm=MD5')]
        message = reply(self.invite, status, tag="b2" if fork else "b1", headers=headers)
        if 100 < status < 200:
            self.provisional_seen = True
        self.uac.receive_response(message, FAR, self.now)
        self._drain()

    @rule()
    def cancel(self) -> None:
        if self.uac.state not in (UacState.ESTABLISHED, UacState.ENDED):
            self.cancelled_early = True
        self.uac.cancel(self.now)
        self._drain()

    @rule()
    def bye(self) -> None:
        self.uac.bye(self.now)
        self._drain()

    @precondition(lambda self: self.uac.state is UacState.ESTABLISHED)
    @rule(seq=st.integers(1, 5))
    def remote_bye(self, seq: int) -> None:
        self.uac.receive_request(in_dialog(self.uac, "BYE", seq), FAR, self.now)
        self._drain()

    @rule(step=st.floats(0.0, 40.0))
    def time_passes(self, step: float) -> None:
        self.now += step
        deadline = self.uac.get_timer()
        if deadline is not None and deadline <= self.now:
            self.uac.handle_timer(self.now)
        self._drain()

    @invariant()
    def leg_events_keep_their_order(self) -> None:
        finals = [e for e in self.events if isinstance(e, LegAnswered | LegFailed)]
        assert len(finals) <= 1
        if finals:
            after = self.events[self.events.index(finals[0]) + 1 :]
            assert not any(isinstance(e, LegRinging) for e in after)
        if self.cancelled_early:  # a 2xx racing the CANCEL is BYEd, never reported answered
            assert not any(isinstance(e, LegAnswered) for e in self.events)
        hangups = [e for e in self.events if isinstance(e, LegHungUp)]
        assert len(hangups) <= 1
        if hangups:
            assert isinstance(finals[0], LegAnswered)

    @invariant()
    def an_ended_session_says_how_and_keeps_no_timer(self) -> None:
        if self.uac.state is UacState.ENDED:  # the call learnt it, or asked for it (BYE)
            assert any(isinstance(e, LegFailed | LegHungUp) for e in self.events) or (
                "BYE" in self.sent
            )
        if self.uac.state is UacState.CANCELLING:
            assert self.uac.get_timer() is not None  # it cannot wait forever (§9.1)
        if self.uac.finished:
            assert self.uac.get_timer() is None


TestUacRules = UacMachine.TestCase
