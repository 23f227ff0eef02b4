"""The callee's INVITE session state machine, driven with plain ``now`` values (no trio)."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from sip.errors import LocalProtocolError
from sip.headers import Headers
from sip.invite_dialog import Acked, RespondInvite, SendRequest, SendStateless, SessionState
from sip.leg_events import LegHungUp
from sip.message import Request
from sip.timers import TimerConfig
from sip.transaction import Peer
from sip.uas_session import UasSession
from sip.uri import parse_uri

OFFER = (
    b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    b"m=audio 4000 RTP/AVP 0\r\n"
)
ANSWER = OFFER.replace(b"4000", b"5000")
CALLER = Peer("udp", "192.0.2.7", 40000)  # where the INVITE came from (behind NAT)
T1 = TimerConfig().t1


def invite(body: bytes = OFFER, record_route: str | None = None) -> Request:
    items = [
        ("Via", "SIP/2.0/UDP 10.0.0.7:5060;branch=z9hG4bKinv;rport"),
        ("Max-Forwards", "70"),
        ("From", "<sip:alice@example.com>;tag=a1"),
        ("To", "<sip:bob@example.com>"),
        ("Call-ID", "call-1@10.0.0.7"),
        ("CSeq", "1 INVITE"),
        ("Contact", "<sip:alice@10.0.0.7:5060>"),
    ]
    if record_route:
        items.append(("Record-Route", record_route))
    if body:
        items.append(("Content-Type", "application/sdp"))
    return Request("INVITE", parse_uri("sip:bob@198.51.100.1:5070"), Headers(items), body)


def session(
    request: Request | None = None, peer: Peer = CALLER, flow_open: bool = True
) -> UasSession:
    counter = itertools.count(1)
    return UasSession(
        request or invite(),
        peer,
        random_token=lambda: f"r{next(counter)}",
        local_address=lambda transport: ("198.51.100.1", 5070),
        flow_open=lambda peer: flow_open,
    )


def from_caller(uas: UasSession, method: str, seq: int, body: bytes = b"") -> Request:
    items = [
        ("Via", f"SIP/2.0/UDP 10.0.0.7:5060;branch=z9hG4bK{method}{seq}"),
        ("From", "<sip:alice@example.com>;tag=a1"),
        ("To", f"<sip:bob@example.com>;tag={uas.local_tag}"),
        ("Call-ID", "call-1@10.0.0.7"),
        ("CSeq", f"{seq} {method}"),
    ]
    return Request(method, parse_uri("sip:198.51.100.1:5070"), Headers(items), body)


def responses(uas: UasSession) -> list[int]:
    return [o.response.status for o in uas.outputs() if isinstance(o, RespondInvite)]


def test_ringing_makes_the_early_dialog_and_copies_record_route() -> None:
    uas = session(invite(record_route="<sip:proxy.example.com;lr>"))
    uas.progress(180, None, 0.0)
    (out,) = uas.outputs()
    assert isinstance(out, RespondInvite)
    ringing = out.response
    assert ringing.to.tag == "r1" == uas.local_tag
    assert ringing.headers.get("Record-Route") == "<sip:proxy.example.com;lr>"
    assert ringing.headers.get("Contact") == "<sip:198.51.100.1:5070>"
    assert uas.dialog is not None
    with pytest.raises(LocalProtocolError):
        uas.progress(200, None, 0.1)


def test_our_2xx_goes_again_until_the_ack_which_reports_its_answer() -> None:
    uas = session(invite(body=b""))  # late offer: our 200 offers, the ACK answers
    assert uas.answer(OFFER, 0.0)
    (ok,) = uas.outputs()
    assert isinstance(ok, RespondInvite) and ok.response.status == 200
    uas.handle_timer(T1)
    uas.handle_timer(3 * T1)
    assert uas.outputs() == [SendStateless(ok.response, CALLER)] * 2
    assert uas.receive_request(from_caller(uas, "ACK", 1, ANSWER), CALLER, 2.0) is None
    assert uas.outputs() == [Acked(ANSWER)]
    assert uas.get_timer() is None and uas.state is SessionState.ESTABLISHED


def test_without_an_ack_we_send_bye_after_64_t1() -> None:
    uas = session()
    uas.answer(ANSWER, 0.0)
    uas.outputs()
    now = 0.0
    while (deadline := uas.get_timer()) is not None and deadline < 64 * T1:
        now = deadline
        uas.handle_timer(now)
    uas.outputs()
    uas.handle_timer(64 * T1)
    bye, event = uas.outputs()
    assert isinstance(bye, SendRequest) and bye.request.method == "BYE"
    assert bye.peer == CALLER  # along the flow the INVITE came on (no route set)
    assert event == LegHungUp("no ACK")
    assert uas.finished


def test_over_tcp_a_closed_flow_sends_the_bye_to_the_contact() -> None:
    tcp = Peer("tcp", "192.0.2.7", 40000)
    uas = session(peer=tcp, flow_open=False)
    uas.answer(ANSWER, 0.0)
    assert uas.get_timer() == 64 * T1  # no retransmission over TCP
    uas.receive_request(from_caller(uas, "ACK", 1), tcp, 0.1)
    uas.outputs()
    uas.bye(5.0)
    (bye,) = uas.outputs()
    assert isinstance(bye, SendRequest) and bye.peer == Peer("tcp", "10.0.0.7", 5060)


def test_cancel_before_the_answer_hangs_up_and_nothing_more_goes_out() -> None:
    uas = session()
    uas.progress(180, None, 0.0)
    uas.outputs()
    uas.cancel_received()
    assert uas.outputs() == [LegHungUp("caller cancelled")]
    assert not uas.answer(ANSWER, 1.0)
    uas.reject(486)
    assert uas.outputs() == [] and uas.finished


def test_a_bye_in_the_early_dialog_ends_the_invite_with_487() -> None:
    uas = session()
    uas.progress(180, None, 0.0)
    uas.outputs()
    ok = uas.receive_request(from_caller(uas, "BYE", 2), CALLER, 1.0)
    assert ok is not None and ok.status == 200
    out = uas.outputs()
    assert [o.response.status for o in out if isinstance(o, RespondInvite)] == [487]
    assert out[-1] == LegHungUp("caller cancelled")


def test_bye_after_the_answer_hangs_up() -> None:
    uas = session()
    uas.answer(ANSWER, 0.0)
    uas.receive_request(from_caller(uas, "ACK", 1), CALLER, 0.1)
    uas.outputs()
    ok = uas.receive_request(from_caller(uas, "BYE", 2), CALLER, 3.0)
    assert ok is not None and ok.status == 200
    assert uas.outputs() == [LegHungUp("caller hung up")]
    again = uas.receive_request(from_caller(uas, "BYE", 3), CALLER, 3.1)
    assert again is not None and again.status == 481


def test_reject_answers_once_and_refuses_a_2xx() -> None:
    uas = session()
    with pytest.raises(LocalProtocolError):
        uas.reject(200)
    uas.reject(486, headers=[("Retry-After", "5")])
    uas.reject(603)
    assert responses(uas) == [486]


def test_bye_before_the_answer_is_480() -> None:
    uas = session()
    uas.bye(1.0)
    assert responses(uas) == [480]


# -- rules that hold whatever happens -------------------------------------------------------


class UasMachine(RuleBasedStateMachine):
    """Random commands, caller requests and time: the INVITE gets one final response, the
    call hears of the end at most once, and an ended session keeps no timer."""

    def __init__(self) -> None:
        super().__init__()
        self.uas = session()
        self.now = 0.0
        self.finals: list[int] = []
        self.provisionals_after_final = 0
        self.hangups: list[LegHungUp] = []
        self.seq = 1

    def _drain(self) -> None:
        for output in self.uas.outputs():
            if isinstance(output, RespondInvite):
                if output.response.status >= 200:
                    self.finals.append(output.response.status)
                elif self.finals:
                    self.provisionals_after_final += 1
            elif isinstance(output, LegHungUp):
                self.hangups.append(output)

    @rule(status=st.sampled_from([100, 180, 183]))
    def progress(self, status: int) -> None:
        self.uas.progress(status, None, self.now)
        self._drain()

    @rule()
    def answer(self) -> None:
        self.uas.answer(ANSWER, self.now)
        self._drain()

    @rule(status=st.sampled_from([404, 480, 486, 603]))
    def reject(self, status: int) -> None:
        self.uas.reject(status)
        self._drain()

    @rule()
    def bye(self) -> None:
        self.uas.bye(self.now)
        self._drain()

    @rule()
    def cancel(self) -> None:
        self.uas.cancel_received()
        self._drain()

    @rule(method=st.sampled_from(["ACK", "BYE", "INFO", "INVITE"]))
    def caller_sends(self, method: str) -> None:
        if method != "ACK":
            self.seq += 1
        request = from_caller(self.uas, method, 1 if method == "ACK" else self.seq)
        self.uas.receive_request(request, CALLER, self.now)
        self._drain()

    @rule(step=st.floats(0.0, 40.0))
    def time_passes(self, step: float) -> None:
        self.now += step
        deadline = self.uas.get_timer()
        if deadline is not None and deadline <= self.now:
            self.uas.handle_timer(self.now)
        self._drain()

    @invariant()
    def one_final_response_and_one_end(self) -> None:
        assert len(self.finals) <= 1
        assert self.provisionals_after_final == 0
        assert len(self.hangups) <= 1
        if self.uas.state is SessionState.ENDED and self.finals and self.finals[0] >= 300:
            assert not self.hangups or self.hangups[0].reason == "caller cancelled"
        if self.uas.finished:
            assert self.uas.get_timer() is None


TestUasRules = UasMachine.TestCase
