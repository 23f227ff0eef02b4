"""Client transactions (RFC 3261 §17.1, RFC 6026 §8.4): messages in, events out, time by hand."""

from __future__ import annotations

import pytest
from test_transaction_helpers import (
    UAS,
    UAS_TCP,
    fixed_tags,
    others,
    reply,
    request,
    run_timers,
    send_times,
    sent,
)

from sip.errors import LocalProtocolError
from sip.message import Request, parse_message, serialize
from sip.timers import TimerConfig
from sip.transaction import (
    ResponseReceived,
    SendMessage,
    StrayResponse,
    TransactionLayer,
    TransactionTerminated,
    TransactionTimeout,
    TransportFailed,
    TxState,
    make_ack,
    make_cancel,
)


def start(method: str = "INVITE", peer=UAS, **kw: object):  # type: ignore[no-untyped-def]
    layer = TransactionLayer(tag_factory=fixed_tags())
    req = request(method, **kw)  # type: ignore[arg-type]
    key = layer.send_request(req, peer, 0.0)
    assert sent(layer.events()) == [req]
    return layer, req, key


# ---------------------------------------------------------------- INVITE client


def test_invite_over_udp_retransmits_at_doubling_intervals_and_times_out_at_64_t1() -> None:
    layer, req, key = start()
    timeline = run_timers(layer, 100.0)
    assert send_times(timeline) == [0.5, 1.5, 3.5, 7.5, 15.5, 31.5]
    assert all(e.message == req for _, e in timeline if isinstance(e, SendMessage))
    assert [(t, e) for t, e in timeline if not isinstance(e, SendMessage)] == [
        (32.0, TransactionTimeout(key)),
        (32.0, TransactionTerminated(key)),
    ]
    assert layer.get_timer() is None and len(layer) == 0


def test_invite_over_tcp_never_retransmits_and_times_out_at_32s() -> None:
    layer, _req, key = start(peer=UAS_TCP, transport="TCP")
    timeline = run_timers(layer, 100.0)
    assert timeline == [(32.0, TransactionTimeout(key)), (32.0, TransactionTerminated(key))]


def test_provisional_stops_retransmissions_and_timer_b() -> None:
    layer, req, key = start()
    assert send_times(run_timers(layer, 1.0)) == [0.5]
    ringing = reply(req, 180)
    layer.receive(ringing, UAS, 1.0)
    assert layer.events() == [ResponseReceived(ringing, key)]
    assert layer.state(key) is TxState.PROCEEDING
    assert run_timers(layer, 1000.0) == []  # waits for the TU to CANCEL, forever
    layer.receive(ringing, UAS, 2.0)  # provisional retransmissions still reach the TU
    assert layer.events() == [ResponseReceived(ringing, key)]


def test_non_2xx_final_is_acked_by_the_transaction_with_the_same_branch() -> None:
    layer, req, key = start(routes=("<sip:proxy.example.com;lr>",))
    layer.receive(reply(req, 180), UAS, 0.2)
    layer.events()
    busy = reply(req, 486)
    layer.receive(busy, UAS, 1.0)
    events = layer.events()
    assert others(events) == [ResponseReceived(busy, key)]
    (ack,) = sent(events)
    assert isinstance(ack, Request) and ack.method == "ACK"
    assert ack.uri == req.uri
    assert ack.headers.get_all("Via") == [req.headers.get_all("Via")[0]]
    assert ack.top_via.branch == req.top_via.branch
    assert ack.to.tag == "totag1" and ack.from_ == req.from_
    assert ack.call_id == req.call_id
    assert (ack.cseq.seq, ack.cseq.method) == (1, "ACK")
    assert ack.headers.get_all("Route") == ["<sip:proxy.example.com;lr>"]
    assert parse_message(serialize(ack)) == ack  # the wire form is valid
    assert layer.state(key) is TxState.COMPLETED
    # a retransmitted final response is ACKed again and not passed up
    layer.receive(busy, UAS, 2.0)
    assert layer.events() == [SendMessage(ack, UAS)]
    # Timer D (32 s over UDP) ends the transaction
    assert run_timers(layer, 100.0) == [(33.0, TransactionTerminated(key))]


def test_non_2xx_final_over_tcp_terminates_right_after_the_ack() -> None:
    layer, req, _key = start(peer=UAS_TCP, transport="TCP")
    layer.receive(reply(req, 503), UAS_TCP, 1.0)
    events = layer.events()
    assert [type(e).__name__ for e in events] == [
        "ResponseReceived",
        "SendMessage",
        "TransactionTerminated",
    ]
    assert layer.get_timer() is None


def test_2xx_enters_accepted_and_passes_retransmissions_to_the_tu_until_timer_m() -> None:
    layer, req, key = start()
    ok = reply(req, 200)
    layer.receive(ok, UAS, 0.7)
    assert layer.events() == [ResponseReceived(ok, key)]  # no ACK: that is the TU's job
    assert layer.state(key) is TxState.ACCEPTED
    layer.receive(ok, UAS, 1.2)
    assert layer.events() == [ResponseReceived(ok, key)]
    other_fork = reply(req, 200, to_tag="fork2")
    layer.receive(other_fork, UAS, 1.3)
    assert layer.events() == [ResponseReceived(other_fork, key)]
    layer.receive(reply(req, 486), UAS, 1.4)  # a non-2xx in Accepted is dropped
    assert layer.events() == []
    assert run_timers(layer, 100.0) == [(32.7, TransactionTerminated(key))]
    # after Timer M a late 2xx is stray: still handed up so the dialog layer can ACK it
    layer.receive(ok, UAS, 40.0)
    assert layer.events() == [StrayResponse(ok, UAS)]


def test_2xx_over_tcp_still_waits_timer_m() -> None:
    layer, req, key = start(peer=UAS_TCP, transport="TCP")
    layer.receive(reply(req, 200), UAS_TCP, 1.0)
    layer.events()
    assert run_timers(layer, 100.0) == [(33.0, TransactionTerminated(key))]


def test_transport_error_fails_the_transaction() -> None:
    layer, _req, key = start()
    layer.transport_error(UAS, 0.1)
    assert layer.events() == [TransportFailed(key), TransactionTerminated(key)]
    assert layer.get_timer() is None
    layer.transport_error(UAS, 0.2)  # nothing left to fail
    assert layer.events() == []


def test_scaled_timer_config_scales_every_interval() -> None:
    layer = TransactionLayer(TimerConfig(t1=0.1, t2=0.4, t4=1.0), tag_factory=fixed_tags())
    req = request()
    key = layer.send_request(req, UAS, 10.0)
    layer.events()
    timeline = run_timers(layer, 100.0)
    assert send_times(timeline) == pytest.approx([10.1, 10.3, 10.7, 11.5, 13.1, 16.3])
    assert timeline[-1] == (pytest.approx(16.4), TransactionTerminated(key))


# ---------------------------------------------------------------- non-INVITE client


def test_non_invite_over_udp_retransmits_capped_at_t2_and_times_out() -> None:
    layer, _req, key = start("OPTIONS")
    timeline = run_timers(layer, 100.0)
    assert send_times(timeline) == [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    assert [e for _, e in timeline if not isinstance(e, SendMessage)] == [
        TransactionTimeout(key),
        TransactionTerminated(key),
    ]
    assert timeline[-1][0] == 32.0


def test_non_invite_provisional_switches_retransmissions_to_t2() -> None:
    layer, req, key = start("BYE")
    assert send_times(run_timers(layer, 0.7)) == [0.5]
    trying = reply(req, 100)
    layer.receive(trying, UAS, 0.7)
    assert layer.events() == [ResponseReceived(trying, key)]
    assert layer.state(key) is TxState.PROCEEDING
    timeline = run_timers(layer, 12.0)
    # the armed E at 1.5 still fires, then every T2
    assert send_times(timeline) == [1.5, 5.5, 9.5]
    ok = reply(req, 200)
    layer.receive(ok, UAS, 12.0)
    assert layer.events() == [ResponseReceived(ok, key)]
    layer.receive(ok, UAS, 13.0)  # retransmitted final absorbed in Completed
    assert layer.events() == []
    assert run_timers(layer, 100.0) == [(17.0, TransactionTerminated(key))]  # Timer K = T4


def test_non_invite_over_tcp_terminates_on_final_and_times_out_without_retransmitting() -> None:
    layer, req, _key = start("REGISTER", peer=UAS_TCP, transport="TCP")
    layer.receive(reply(req, 200), UAS_TCP, 0.3)
    assert [type(e).__name__ for e in layer.events()] == [
        "ResponseReceived",
        "TransactionTerminated",
    ]
    layer2, _req2, key2 = start("REGISTER", peer=UAS_TCP, transport="TCP")
    assert run_timers(layer2, 100.0) == [
        (32.0, TransactionTimeout(key2)),
        (32.0, TransactionTerminated(key2)),
    ]


# ---------------------------------------------------------------- CANCEL and stray responses


def test_make_cancel_copies_what_9_1_requires() -> None:
    invite = request(routes=("<sip:p1;lr>", "<sip:p2;lr>"), cseq=7)
    cancel = make_cancel(invite)
    assert cancel.method == "CANCEL" and cancel.uri == invite.uri
    assert cancel.headers.get_all("Via") == [invite.headers.get_all("Via")[0]]
    assert cancel.call_id == invite.call_id
    assert cancel.from_ == invite.from_ and cancel.to == invite.to
    assert (cancel.cseq.seq, cancel.cseq.method) == (7, "CANCEL")
    assert cancel.headers.get_all("Route") == ["<sip:p1;lr>", "<sip:p2;lr>"]
    with pytest.raises(LocalProtocolError):
        make_cancel(request("BYE"))


def test_cancel_runs_its_own_transaction_next_to_the_invite() -> None:
    layer, invite, key = start()
    layer.receive(reply(invite, 180), UAS, 0.1)
    layer.events()
    cancel = make_cancel(invite)
    cancel_key = layer.send_request(cancel, UAS, 1.0)
    assert cancel_key != key
    assert sent(layer.events()) == [cancel]
    ok_cancel = reply(cancel, 200)
    layer.receive(ok_cancel, UAS, 1.1)
    assert layer.events() == [ResponseReceived(ok_cancel, cancel_key)]  # not the INVITE's
    terminated = reply(invite, 487)
    layer.receive(terminated, UAS, 1.2)
    events = layer.events()
    assert ResponseReceived(terminated, key) in events
    assert [m.method for m in sent(events) if isinstance(m, Request)] == ["ACK"]


def test_make_ack_matches_what_the_transaction_sends() -> None:
    invite = request()
    assert make_ack(invite, reply(invite, 404)).to.tag == "totag1"


def test_responses_without_a_transaction() -> None:
    layer = TransactionLayer(tag_factory=fixed_tags())
    invite = request()
    ok = reply(invite, 200)
    layer.receive(ok, UAS, 0.0)
    assert layer.events() == [StrayResponse(ok, UAS)]
    layer.receive(reply(invite, 180), UAS, 0.0)
    layer.receive(reply(invite, 486), UAS, 0.0)
    layer.receive(reply(request("BYE"), 200), UAS, 0.0)
    assert layer.events() == []
    assert layer.get_timer() is None


def test_response_matching_needs_branch_and_cseq_method() -> None:
    layer, _req, key = start()
    wrong_branch = reply(request(branch="z9hG4bKother"), 180)
    layer.receive(wrong_branch, UAS, 0.1)
    wrong_method = reply(request("CANCEL", branch="z9hG4bKbranch1"), 200)
    layer.receive(wrong_method, UAS, 0.1)
    assert layer.events() == []
    assert layer.state(key) is TxState.CALLING


# ---------------------------------------------------------------- misuse


def test_send_request_refuses_what_could_never_match() -> None:
    layer = TransactionLayer(tag_factory=fixed_tags())
    with pytest.raises(LocalProtocolError):
        layer.send_request(request(branch=None), UAS, 0.0)
    with pytest.raises(LocalProtocolError):
        layer.send_request(request(branch="oldstyle"), UAS, 0.0)
    invite = request()
    mismatched = invite.with_headers(invite.headers.replace("CSeq", "1 BYE"))
    with pytest.raises(LocalProtocolError):
        layer.send_request(mismatched, UAS, 0.0)
    layer.send_request(request(), UAS, 0.0)
    with pytest.raises(LocalProtocolError):
        layer.send_request(request(), UAS, 0.0)


def test_ack_is_sent_without_a_transaction() -> None:
    layer = TransactionLayer(tag_factory=fixed_tags())
    ack = request("ACK", branch="z9hG4bKack2xx")
    layer.send_request(ack, UAS, 0.0)
    assert layer.events() == [SendMessage(ack, UAS)]
    assert len(layer) == 0 and layer.get_timer() is None


def test_a_2xx_after_a_non_2xx_final_is_handed_up_as_stray() -> None:
    layer, req, key = start()
    layer.receive(reply(req, 486), UAS, 0.1)
    layer.events()
    late_ok = reply(req, 200, to_tag="fork2")
    layer.receive(late_ok, UAS, 0.2)
    assert layer.events() == [StrayResponse(late_ok, UAS)]  # no ACK from the transaction
    assert layer.state(key) is TxState.COMPLETED
