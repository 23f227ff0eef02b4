"""Hypothesis rule-based state machines, one per transaction FSM (RFC 3261 §17, RFC 6026).

Each machine drives one transaction with random interleavings of received messages, TU sends,
transport errors and time advances (either exactly to the next deadline or part of the way),
and checks the layer's events against a small model of the RFC figures.  Invariants on top:
nothing is sent once the transaction terminated, exactly one TransactionTerminated per
transaction, retransmissions happen exactly at the RFC intervals, get_timer() is never in the
past.
"""

from __future__ import annotations

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)
from test_transaction_helpers import UAC, UAC_TCP, UAS, UAS_TCP, fixed_tags, reply, request

from sip.errors import LocalProtocolError
from sip.message import Request, Response
from sip.timers import TimerConfig
from sip.transaction import (
    CancelReceived,
    Event,
    Peer,
    RequestReceived,
    ResponseReceived,
    SendMessage,
    StrayResponse,
    TransactionLayer,
    TransactionTerminated,
    TransactionTimeout,
    TransportFailed,
    TxKey,
    TxState,
)

CONFIG = TimerConfig()  # T1 0.5, T2 4, T4 5: every interval is exact in binary floating point
T1, T2, T4 = CONFIG.t1, CONFIG.t2, CONFIG.t4
S = TxState
STATUSES = st.sampled_from([100, 180, 183, 200, 202, 400, 486, 487, 503, 603])


class TransactionMachine(RuleBasedStateMachine):
    """Time handling, event bookkeeping and the invariants shared by all four machines."""

    def __init__(self) -> None:
        super().__init__()
        self.layer = TransactionLayer(CONFIG, tag_factory=fixed_tags())
        self.now = 0.0
        self.key: TxKey | None = None
        self.peer: Peer = UAS
        self.reliable = False
        self.model = S.TERMINATED  # set by the initialize rule
        self.entered = 0.0  # when the model entered its state
        self.terminated: dict[TxKey, int] = {}
        self.done = False  # the transaction under test terminated

    # ---- bookkeeping

    def drain(self) -> list[Event]:
        events = self.layer.events()
        for event in events:
            if isinstance(event, SendMessage):
                assert not self.done, f"sent after termination: {event}"
            if isinstance(event, TransactionTerminated):
                count = self.terminated.get(event.key, 0) + 1
                assert count == 1, f"{event.key} terminated twice"
                self.terminated[event.key] = count
                if event.key == self.key:
                    self.done = True
        return events

    def enter(self, state: TxState) -> None:
        self.model = state
        self.entered = self.now

    def expect(self, expected: list[Event], *, ordered: bool = True) -> None:
        events = self.drain()
        if ordered:
            assert events == expected
        else:
            # timers of two transactions due at the same instant fire in scheduling order:
            # the events of the transaction under test keep their order, others may interleave
            def mine(event: Event) -> bool:
                return not (isinstance(event, TransactionTerminated) and event.key != self.key)

            assert [e for e in events if mine(e)] == [e for e in expected if mine(e)]
            assert sorted(repr(e) for e in events if not mine(e)) == sorted(
                repr(e) for e in expected if not mine(e)
            )
        if self.key is not None:
            assert self.layer.state(self.key) == (
                None if self.model is S.TERMINATED else self.model
            )

    def terminated_event(self) -> TransactionTerminated:
        assert self.key is not None
        self.enter(S.TERMINATED)
        return TransactionTerminated(self.key)

    def on_timer(self) -> list[Event]:
        """The events the model expects at ``self.now`` when a timer fired."""
        raise NotImplementedError

    # ---- shared rules

    @precondition(lambda self: self.layer.get_timer() is not None)
    @rule()
    def fire_next_timer(self) -> None:
        deadline = self.layer.get_timer()
        assert deadline is not None
        self.now = deadline
        self.layer.handle_timer(self.now)
        expected = self.on_timer()
        self.expect(expected, ordered=False)

    @rule(fraction=st.floats(0.0, 0.99))
    def wait_before_next_timer(self, fraction: float) -> None:
        deadline = self.layer.get_timer()
        target = self.now + (50.0 if deadline is None else (deadline - self.now)) * fraction
        if deadline is not None and target >= deadline:
            return
        self.now = target
        self.layer.handle_timer(self.now)
        self.expect([])

    @rule()
    def transport_error(self) -> None:
        self.layer.transport_error(self.peer, self.now)
        if self.model is S.TERMINATED:
            self.expect([])
        else:
            assert self.key is not None
            self.expect([TransportFailed(self.key), self.terminated_event()])

    @invariant()
    def timer_never_in_the_past(self) -> None:
        deadline = self.layer.get_timer()
        assert deadline is None or deadline > self.now

    @invariant()
    def nothing_left_after_termination(self) -> None:
        if self.done:
            assert self.key is not None and self.layer.state(self.key) is None


# ------------------------------------------------------------------------ INVITE client


class InviteClientMachine(TransactionMachine):
    @initialize(reliable=st.booleans())
    def start(self, reliable: bool) -> None:
        self.reliable = reliable
        self.peer = UAS_TCP if reliable else UAS
        self.invite = request(transport="TCP" if reliable else "UDP")
        self.key = self.layer.send_request(self.invite, self.peer, self.now)
        self.enter(S.CALLING)
        self.retransmit_at = T1  # model of Timer A
        self.interval = T1
        self.ack: Request | None = None
        self.expect([SendMessage(self.invite, self.peer)])

    def on_timer(self) -> list[Event]:
        assert self.key is not None
        if self.model is S.CALLING:
            if self.now == self.entered + 64 * T1:  # Timer B
                return [TransactionTimeout(self.key), self.terminated_event()]
            assert not self.reliable and self.now == self.retransmit_at  # Timer A, exact
            self.interval *= 2
            self.retransmit_at = self.now + self.interval
            return [SendMessage(self.invite, self.peer)]
        if self.model is S.COMPLETED:
            assert self.now == self.entered + 64 * T1 and not self.reliable  # Timer D
            return [self.terminated_event()]
        assert self.model is S.ACCEPTED and self.now == self.entered + 64 * T1  # Timer M
        return [self.terminated_event()]

    @rule(status=STATUSES, fork=st.booleans())
    def response_arrives(self, status: int, fork: bool) -> None:
        assert self.key is not None
        response = reply(self.invite, status, to_tag="fork2" if fork else "totag1")
        self.layer.receive(response, self.peer, self.now)
        passed = ResponseReceived(response, self.key)
        state = self.model
        if state is S.CALLING or state is S.PROCEEDING:
            if status < 200:
                if state is S.CALLING:
                    self.enter(S.PROCEEDING)
                self.expect([passed])
            elif status < 300:
                self.enter(S.ACCEPTED)
                self.expect([passed])
            else:
                self.enter(S.COMPLETED)
                events = self.drain()
                assert events[0] == passed
                ack = events[1]
                assert isinstance(ack, SendMessage) and isinstance(ack.message, Request)
                assert ack.message.method == "ACK"
                assert ack.message.top_via.branch == self.invite.top_via.branch
                assert ack.message.to.tag == response.to.tag
                self.ack = ack.message
                if self.reliable:
                    assert events[2:] == [self.terminated_event()]
                else:
                    assert events[2:] == []
        elif state is S.COMPLETED:
            assert self.ack is not None
            if status >= 300:
                self.expect([SendMessage(self.ack, self.peer)])
            elif status >= 200:  # another fork answered after all: the TU ACKs and BYEs it
                self.expect([StrayResponse(response, self.peer)])
            else:
                self.expect([])
        elif state is S.ACCEPTED:
            self.expect([passed] if 200 <= status < 300 else [])
        else:
            stray = 200 <= status < 300
            self.expect([StrayResponse(response, self.peer)] if stray else [])

    @invariant()
    def proceeding_waits_for_the_tu(self) -> None:
        if self.model is S.PROCEEDING:
            assert self.layer.get_timer() is None


# ------------------------------------------------------------------------ non-INVITE client


class NonInviteClientMachine(TransactionMachine):
    @initialize(reliable=st.booleans(), method=st.sampled_from(["BYE", "OPTIONS", "CANCEL"]))
    def start(self, reliable: bool, method: str) -> None:
        self.reliable = reliable
        self.peer = UAS_TCP if reliable else UAS
        self.req = request(method, transport="TCP" if reliable else "UDP")
        self.key = self.layer.send_request(self.req, self.peer, self.now)
        self.enter(S.TRYING)
        self.started = self.now
        self.interval = T1
        self.retransmit_at = T1
        self.expect([SendMessage(self.req, self.peer)])

    def on_timer(self) -> list[Event]:
        assert self.key is not None
        if self.model is S.TRYING or self.model is S.PROCEEDING:
            if self.now == self.started + 64 * T1:  # Timer F
                return [TransactionTimeout(self.key), self.terminated_event()]
            assert not self.reliable and self.now == self.retransmit_at  # Timer E, exact
            self.interval = min(2 * self.interval, T2) if self.model is S.TRYING else T2
            self.retransmit_at = self.now + self.interval
            return [SendMessage(self.req, self.peer)]
        assert self.model is S.COMPLETED and not self.reliable
        assert self.now == self.entered + T4  # Timer K
        return [self.terminated_event()]

    @rule(status=STATUSES)
    def response_arrives(self, status: int) -> None:
        assert self.key is not None
        response = reply(self.req, status)
        self.layer.receive(response, self.peer, self.now)
        passed = ResponseReceived(response, self.key)
        if self.model is S.TRYING or self.model is S.PROCEEDING:
            if status < 200:
                self.model = S.PROCEEDING
                self.expect([passed])
            else:
                self.enter(S.COMPLETED)
                if self.reliable:
                    self.expect([passed, self.terminated_event()])
                else:
                    self.expect([passed])
        else:
            self.expect([])  # absorbed in Completed; dropped (not a 2xx to INVITE) after


# ------------------------------------------------------------------------ INVITE server


class InviteServerMachine(TransactionMachine):
    @initialize(
        reliable=st.booleans(),
        trying_delay=st.sampled_from([None, 0.0, 0.2]),
        branch=st.sampled_from(["z9hG4bKbranch1", None]),  # None: an RFC 2543 peer
    )
    def start(self, reliable: bool, trying_delay: float | None, branch: str | None) -> None:
        self.layer = TransactionLayer(CONFIG, trying_delay=trying_delay, tag_factory=fixed_tags())
        self.reliable = reliable
        self.peer = UAC_TCP if reliable else UAC
        transport = "TCP" if reliable else "UDP"
        self.invite = request(transport=transport, branch=branch)
        self.ack = request("ACK", to_tag="totag1", transport=transport, branch=branch)
        self.cancel = request("CANCEL", transport=transport, branch=branch)
        self.cancel_key: TxKey | None = None
        self.cancel_done_at: float | None = None
        self.layer.receive(self.invite, self.peer, self.now)
        events = self.drain()
        assert isinstance(events[0], RequestReceived) and events[0].request == self.invite
        self.key = events[0].key
        self.enter(S.PROCEEDING)
        self.last: SendMessage | None = None
        self.trying_at: float | None = None
        if trying_delay == 0:
            assert len(events) == 2 and isinstance(events[1], SendMessage)
            self.last = events[1]
        else:
            assert len(events) == 1
            self.trying_at = trying_delay
        self.expect([])

    def on_timer(self) -> list[Event]:
        assert self.key is not None
        expected: list[Event] = []
        if self.cancel_done_at is not None and self.now == self.cancel_done_at:  # CANCEL's J
            assert self.cancel_key is not None
            expected.append(TransactionTerminated(self.cancel_key))
            self.cancel_done_at = None
        state = self.model
        if state is S.PROCEEDING and self.trying_at is not None and self.now == self.trying_at:
            trying = self.invite.response(100)
            self.last = SendMessage(trying, self.peer)
            self.trying_at = None
            expected.append(self.last)
        elif state is S.COMPLETED:
            assert self.last is not None
            if self.now == self.entered + 64 * T1:  # Timer H
                expected += [TransactionTimeout(self.key), self.terminated_event()]
            elif self.now == self.retransmit_at:  # Timer G, exact
                assert not self.reliable
                self.interval = min(2 * self.interval, T2)
                self.retransmit_at = self.now + self.interval
                expected.append(self.last)
        else:
            timer_i = state is S.CONFIRMED and self.now == self.entered + T4
            timer_l = state is S.ACCEPTED and self.now == self.entered + 64 * T1
            if timer_i or timer_l:
                expected.append(self.terminated_event())
        assert expected, f"unexpected timer at {self.now} in {state}"
        return expected

    @rule()
    def transport_error(self) -> None:
        # the CANCEL's own transaction (same peer) fails with the INVITE's; order is free
        self.layer.transport_error(self.peer, self.now)
        expected: list[Event] = []
        if self.cancel_done_at is not None:
            assert self.cancel_key is not None
            expected += [TransportFailed(self.cancel_key), TransactionTerminated(self.cancel_key)]
            self.cancel_done_at = None
        if self.model is not S.TERMINATED:
            assert self.key is not None
            expected += [TransportFailed(self.key), self.terminated_event()]
        events = self.drain()
        assert len(events) == len(expected) and set(events) == set(expected)
        self.expect([])

    @precondition(lambda self: not self.done)
    @rule()
    def invite_retransmitted(self) -> None:
        self.layer.receive(self.invite, self.peer, self.now)
        resend = self.model in (S.PROCEEDING, S.COMPLETED) and self.last is not None
        self.expect([self.last] if resend and self.last is not None else [])

    @rule()
    def ack_arrives(self) -> None:
        self.layer.receive(self.ack, self.peer, self.now)
        state = self.model
        if state is S.COMPLETED:
            self.enter(S.CONFIRMED)
            self.expect([self.terminated_event()] if self.reliable else [])
        elif state is S.ACCEPTED or state is S.TERMINATED:
            self.expect([RequestReceived(self.ack, self.peer, None)])
        else:
            self.expect([])

    @precondition(lambda self: not self.done and self.cancel_key is None)
    @rule()
    def cancel_arrives(self) -> None:
        self.layer.receive(self.cancel, self.peer, self.now)
        assert self.key is not None
        self.cancel_key = self.key._replace(method="CANCEL")
        events = self.drain()
        ok = events.pop(0)
        assert isinstance(ok, SendMessage) and isinstance(ok.message, Response)
        assert ok.message.status == 200 and ok.message.cseq.method == "CANCEL"
        if self.reliable:  # the CANCEL's own transaction ends with its 200 (Timer J = 0)
            assert events.pop(0) == TransactionTerminated(self.cancel_key)
        else:
            self.cancel_done_at = self.now + 64 * T1
        if self.model is S.PROCEEDING:
            assert events == [CancelReceived(self.cancel, self.peer, self.key)]
        else:
            assert events == []
        self.expect([])

    @rule(status=STATUSES)
    def tu_responds(self, status: int) -> None:
        assert self.key is not None
        response = reply(self.invite, status)
        allowed = self.model is S.PROCEEDING or (self.model is S.ACCEPTED and 200 <= status < 300)
        if not allowed:
            with pytest.raises(LocalProtocolError):
                self.layer.send_response(self.key, response, self.now)
            self.expect([])
            return
        self.layer.send_response(self.key, response, self.now)
        send = SendMessage(response, self.peer)
        if self.model is S.PROCEEDING:
            self.trying_at = None
            self.last = send
            if 200 <= status < 300:
                self.enter(S.ACCEPTED)
            elif status >= 300:
                self.enter(S.COMPLETED)
                self.interval = T1
                self.retransmit_at = self.now + T1
        self.expect([send])


# ------------------------------------------------------------------------ non-INVITE server


class NonInviteServerMachine(TransactionMachine):
    @initialize(
        reliable=st.booleans(),
        method=st.sampled_from(["BYE", "OPTIONS", "INFO"]),
        branch=st.sampled_from(["z9hG4bKbranch1", None]),  # None: an RFC 2543 peer
    )
    def start(self, reliable: bool, method: str, branch: str | None) -> None:
        self.reliable = reliable
        self.peer = UAC_TCP if reliable else UAC
        transport = "TCP" if reliable else "UDP"
        self.req = request(method, transport=transport, to_tag="totag1", branch=branch)
        self.layer.receive(self.req, self.peer, self.now)
        events = self.drain()
        assert len(events) == 1 and isinstance(events[0], RequestReceived)
        self.key = events[0].key
        self.enter(S.TRYING)
        self.last: SendMessage | None = None
        self.expect([])

    def on_timer(self) -> list[Event]:
        assert self.model is S.COMPLETED and not self.reliable
        assert self.now == self.entered + 64 * T1  # Timer J
        return [self.terminated_event()]

    @precondition(lambda self: not self.done)
    @rule()
    def request_retransmitted(self) -> None:
        self.layer.receive(self.req, self.peer, self.now)
        self.expect([] if self.last is None else [self.last])

    @rule(status=STATUSES)
    def tu_responds(self, status: int) -> None:
        assert self.key is not None
        response = reply(self.req, status)
        if self.model not in (S.TRYING, S.PROCEEDING):
            with pytest.raises(LocalProtocolError):
                self.layer.send_response(self.key, response, self.now)
            self.expect([])
            return
        self.layer.send_response(self.key, response, self.now)
        self.last = SendMessage(response, self.peer)
        if status < 200:
            self.model = S.PROCEEDING
            self.expect([self.last])
        else:
            self.enter(S.COMPLETED)
            self.expect([self.last, self.terminated_event()] if self.reliable else [self.last])


TestInviteClient = InviteClientMachine.TestCase
TestNonInviteClient = NonInviteClientMachine.TestCase
TestInviteServer = InviteServerMachine.TestCase
TestNonInviteServer = NonInviteServerMachine.TestCase
