"""Server transactions (RFC 3261 §17.2, RFC 6026 §8.7), request matching (§17.2.3 and the RFC 2543
fallback) and CANCEL handling (§9.2): messages in, events out, time by hand."""

from __future__ import annotations

import pytest
from test_transaction_helpers import (
    UAC,
    UAC_TCP,
    fixed_tags,
    others,
    reply,
    request,
    run_timers,
    send_times,
    sent,
)

from sip.errors import LocalProtocolError, RemoteProtocolError
from sip.headers import Headers
from sip.message import Request, Response
from sip.transaction import (
    CancelReceived,
    RequestReceived,
    SendMessage,
    TransactionLayer,
    TransactionTerminated,
    TransactionTimeout,
    TransportFailed,
    TxKey,
    TxState,
)


def incoming(method: str = "INVITE", peer=UAC, layer=None, now=0.0, **kw):  # type: ignore[no-untyped-def]
    layer = TransactionLayer(tag_factory=fixed_tags()) if layer is None else layer
    req = request(method, **kw)
    layer.receive(req, peer, now)
    (event,) = layer.events()
    assert isinstance(event, RequestReceived) and event.request == req and event.peer == peer
    assert event.key is not None
    return layer, req, event.key


# ---------------------------------------------------------------- INVITE server


def test_invite_server_sends_100_trying_when_the_tu_is_silent_for_200ms() -> None:
    layer, invite, _key = incoming()
    assert layer.get_timer() == pytest.approx(0.2)
    timeline = run_timers(layer, 10.0)
    assert len(timeline) == 1
    t, event = timeline[0]
    assert t == pytest.approx(0.2) and isinstance(event, SendMessage)
    assert isinstance(event.message, Response) and event.message.status == 100
    assert event.message.to.tag is None and event.peer == UAC
    # a retransmitted INVITE gets the 100 again and is not passed to the TU twice
    layer.receive(invite, UAC, 0.5)
    assert layer.events() == [event]


def test_no_100_trying_when_the_tu_answers_in_time_or_it_is_disabled() -> None:
    layer, invite, key = incoming()
    ringing = reply(invite, 180)
    layer.send_response(key, ringing, 0.1)
    assert layer.events() == [SendMessage(ringing, UAC)]
    assert run_timers(layer, 10.0) == []
    layer.receive(invite, UAC, 0.5)  # the latest provisional is re-sent
    assert layer.events() == [SendMessage(ringing, UAC)]

    quiet, invite2, _key2 = incoming(
        layer=TransactionLayer(trying_delay=None, tag_factory=fixed_tags())
    )
    assert run_timers(quiet, 10.0) == []
    quiet.receive(invite2, UAC, 0.5)  # nothing to re-send yet: absorbed
    assert quiet.events() == []

    eager = TransactionLayer(trying_delay=0, tag_factory=fixed_tags())
    eager.receive(request(), UAC, 0.0)
    events = eager.events()
    assert isinstance(events[0], RequestReceived)
    assert [m.status for m in sent(events) if isinstance(m, Response)] == [100]


def test_invite_server_non_2xx_is_retransmitted_by_timer_g_until_timer_h() -> None:
    layer, invite, key = incoming()
    busy = reply(invite, 486)
    layer.send_response(key, busy, 1.0)
    assert layer.events() == [SendMessage(busy, UAC)]
    assert layer.state(key) is TxState.COMPLETED
    timeline = run_timers(layer, 100.0)
    assert send_times(timeline) == [1.5, 2.5, 4.5, 8.5, 12.5, 16.5, 20.5, 24.5, 28.5, 32.5]
    assert all(e.message == busy for _, e in timeline if isinstance(e, SendMessage))
    assert [(t, e) for t, e in timeline if not isinstance(e, SendMessage)] == [
        (33.0, TransactionTimeout(key)),
        (33.0, TransactionTerminated(key)),
    ]


def test_ack_confirms_and_stops_retransmissions_then_timer_i() -> None:
    layer, invite, key = incoming()
    busy = reply(invite, 486)
    layer.send_response(key, busy, 0.1)
    assert layer.events() == [SendMessage(busy, UAC)]
    assert send_times(run_timers(layer, 2.0)) == [0.6, 1.6]
    layer.receive(invite, UAC, 2.0)  # INVITE retransmission: the final response again
    assert layer.events() == [SendMessage(busy, UAC)]
    ack = request("ACK", to_tag="totag1")  # same branch as the INVITE (§17.1.1.3)
    layer.receive(ack, UAC, 2.0)
    assert layer.events() == []  # absorbed: an ACK to a non-2xx is hop-by-hop
    assert layer.state(key) is TxState.CONFIRMED
    layer.receive(ack, UAC, 2.5)
    layer.receive(invite, UAC, 2.6)
    assert layer.events() == []
    assert run_timers(layer, 100.0) == [(7.0, TransactionTerminated(key))]  # Timer I = T4


def test_invite_server_over_tcp_never_retransmits_and_ack_terminates_at_once() -> None:
    layer, invite, key = incoming(peer=UAC_TCP, transport="TCP")
    layer.send_response(key, reply(invite, 603), 0.05)
    layer.events()
    assert layer.get_timer() == pytest.approx(32.05)  # only Timer H
    layer.receive(request("ACK", to_tag="totag1", transport="TCP"), UAC_TCP, 1.0)
    assert layer.events() == [TransactionTerminated(key)]
    assert layer.get_timer() is None


def test_invite_server_2xx_goes_accepted_the_tu_retransmits_and_acks_reach_the_tu() -> None:
    layer, invite, key = incoming()
    ok = reply(invite, 200)
    layer.send_response(key, ok, 0.1)
    assert layer.events() == [SendMessage(ok, UAC)]
    assert layer.state(key) is TxState.ACCEPTED
    layer.send_response(key, ok, 0.6)  # the TU's own 2xx retransmission is sent
    assert layer.events() == [SendMessage(ok, UAC)]
    layer.receive(invite, UAC, 0.7)  # INVITE retransmission absorbed
    assert layer.events() == []
    same_branch_ack = request("ACK", to_tag="totag1")
    layer.receive(same_branch_ack, UAC, 0.8)
    assert layer.events() == [RequestReceived(same_branch_ack, UAC, None)]
    new_branch_ack = request("ACK", branch="z9hG4bKack", to_tag="totag1")
    layer.receive(new_branch_ack, UAC, 0.9)
    assert layer.events() == [RequestReceived(new_branch_ack, UAC, None)]
    with pytest.raises(LocalProtocolError):
        layer.send_response(key, reply(invite, 500), 1.0)
    assert run_timers(layer, 100.0) == [(32.1, TransactionTerminated(key))]  # Timer L
    with pytest.raises(LocalProtocolError):
        layer.send_response(key, ok, 40.0)
    layer.receive(same_branch_ack, UAC, 40.0)  # after Timer L the ACK still reaches the TU
    assert layer.events() == [RequestReceived(same_branch_ack, UAC, None)]


def test_invite_server_refuses_responses_the_state_does_not_allow() -> None:
    layer, invite, key = incoming()
    layer.send_response(key, reply(invite, 404), 0.1)
    with pytest.raises(LocalProtocolError):
        layer.send_response(key, reply(invite, 180), 0.2)
    with pytest.raises(LocalProtocolError):
        layer.send_response(key, reply(invite, 200), 0.2)


def test_server_transport_error_reports_and_terminates() -> None:
    layer, invite, key = incoming()
    layer.transport_error(UAC, 0.1)
    assert layer.events() == [TransportFailed(key), TransactionTerminated(key)]
    with pytest.raises(LocalProtocolError):
        layer.send_response(key, reply(invite, 200), 0.2)


# ---------------------------------------------------------------- non-INVITE server


def test_non_invite_server_absorbs_then_replays_and_lingers_timer_j() -> None:
    layer, bye, key = incoming("BYE", to_tag="totag1")
    assert layer.get_timer() is None  # no automatic 100 for non-INVITE
    layer.receive(bye, UAC, 0.5)  # Trying: absorbed
    assert layer.events() == []
    trying = reply(bye, 100)
    layer.send_response(key, trying, 0.6)
    assert layer.state(key) is TxState.PROCEEDING
    layer.receive(bye, UAC, 1.0)
    assert sent(layer.events()) == [trying, trying]
    ok = reply(bye, 200)
    layer.send_response(key, ok, 1.1)
    layer.receive(bye, UAC, 1.5)
    assert sent(layer.events()) == [ok, ok]
    with pytest.raises(LocalProtocolError):
        layer.send_response(key, reply(bye, 500), 1.6)
    assert run_timers(layer, 100.0) == [(pytest.approx(33.1), TransactionTerminated(key))]


def test_non_invite_server_over_tcp_terminates_on_final() -> None:
    layer, bye, key = incoming("OPTIONS", peer=UAC_TCP, transport="TCP")
    ok = reply(bye, 200)
    layer.send_response(key, ok, 0.1)
    assert layer.events() == [SendMessage(ok, UAC_TCP), TransactionTerminated(key)]


# ---------------------------------------------------------------- request matching


def test_requests_match_on_branch_sent_by_and_method() -> None:
    layer, _invite, key = incoming()
    assert key == TxKey(True, "INVITE", "z9hG4bKbranch1", "10.0.0.2:5060")
    # same branch, other sent-by: another transaction
    _, _, key2 = incoming(layer=layer, sent_by="10.0.0.3:5060")
    # same branch, other method: another transaction
    _, _, key3 = incoming("OPTIONS", layer=layer)
    assert len({key, key2, key3}) == 3 and len(layer) == 3


def test_rfc2543_requests_match_on_uri_tags_call_id_cseq_and_top_via() -> None:
    layer, invite, key = incoming(branch=None)
    assert key.branch.startswith("rfc2543")
    layer.receive(invite, UAC, 0.1)  # retransmission: absorbed
    assert layer.events() == []
    # a branch without the magic cookie is RFC 2543 too
    layer2, invite2, _ = incoming(branch="1234")
    layer2.receive(invite2, UAC, 0.1)
    assert layer2.events() == []
    # each identity field makes a new transaction
    for change in (
        {"call_id": "other@x"},
        {"cseq": 2},
        {"from_tag": "other"},
        {"uri": "sip:carol@10.0.0.1"},
        {"sent_by": "10.0.0.9:5060"},
    ):
        incoming(layer=layer, branch=None, **change)
    assert len(layer) == 6


def test_rfc2543_ack_matches_only_with_the_to_tag_we_sent() -> None:
    layer, invite, key = incoming(branch=None)
    layer.send_response(key, reply(invite, 486, to_tag="ours"), 0.1)
    layer.events()
    stranger = request("ACK", branch=None, to_tag="theirs")
    layer.receive(stranger, UAC, 0.2)
    assert layer.events() == [RequestReceived(stranger, UAC, None)]
    assert layer.state(key) is TxState.COMPLETED
    layer.receive(request("ACK", branch=None, to_tag="ours"), UAC, 0.3)
    assert layer.events() == []
    assert layer.state(key) is TxState.CONFIRMED


# ---------------------------------------------------------------- CANCEL


def test_cancel_of_a_pending_invite_is_answered_200_and_reported() -> None:
    layer, invite, key = incoming()
    ringing = reply(invite, 180, to_tag="ring")
    layer.send_response(key, ringing, 0.1)
    layer.events()
    cancel = request("CANCEL")
    layer.receive(cancel, UAC, 1.0)
    events = layer.events()
    (ok,) = sent(events)
    assert isinstance(ok, Response) and ok.status == 200 and ok.cseq.method == "CANCEL"
    assert ok.to.tag == "ring"  # §9.2: the same To tag as the INVITE's responses
    assert others(events) == [CancelReceived(cancel, UAC, key)]
    layer.send_response(key, reply(invite, 487, to_tag="ring"), 1.1)
    layer.events()
    layer.receive(cancel, UAC, 1.5)  # a retransmitted CANCEL: the 200 again, no new event
    assert layer.events() == [SendMessage(ok, UAC)]


def test_cancel_without_a_matching_invite_gets_481() -> None:
    layer = TransactionLayer(tag_factory=fixed_tags())
    layer.receive(request("CANCEL", branch="z9hG4bKnothing"), UAC, 0.0)
    events = layer.events()
    (resp,) = sent(events)
    assert isinstance(resp, Response) and resp.status == 481
    assert resp.to.tag == "layertag1"  # the layer's own answer: a tag from its caller's factory
    assert others(events) == []
    assert run_timers(layer, 100.0)[-1][1].__class__ is TransactionTerminated


def test_cancel_of_an_invite_not_answered_yet_gets_a_tag_from_the_factory() -> None:
    layer, _invite, _key = incoming()
    layer.receive(request("CANCEL"), UAC, 0.5)
    (ok,) = sent(layer.events())
    assert isinstance(ok, Response) and ok.status == 200 and ok.to.tag == "layertag1"


def test_cancel_after_the_final_response_is_answered_but_has_no_effect() -> None:
    layer, invite, key = incoming()
    layer.send_response(key, reply(invite, 200), 0.1)
    layer.events()
    layer.receive(request("CANCEL"), UAC, 0.5)
    events = layer.events()
    assert [m.status for m in sent(events) if isinstance(m, Response)] == [200]
    assert others(events) == []


def test_rfc2543_cancel_matches_the_invite() -> None:
    layer, _invite, key = incoming(branch=None)
    cancel = request("CANCEL", branch=None)
    layer.receive(cancel, UAC, 0.1)
    events = layer.events()
    assert CancelReceived(cancel, UAC, key) in events


# ---------------------------------------------------------------- bad input


def test_messages_without_the_headers_matching_needs_are_refused_cleanly() -> None:
    layer = TransactionLayer(tag_factory=fixed_tags())
    good = request()
    no_via = Request("INVITE", good.uri, good.headers.remove("Via"))
    with pytest.raises(RemoteProtocolError):
        layer.receive(no_via, UAC, 0.0)
    no_cseq = reply(good, 200).with_headers(reply(good, 200).headers.remove("CSeq"))
    with pytest.raises(RemoteProtocolError):
        layer.receive(no_cseq, UAC, 0.0)
    bare = Request("OPTIONS", good.uri, Headers([("Via", "SIP/2.0/UDP 10.0.0.2;branch=z9hG4bKx")]))
    with pytest.raises(RemoteProtocolError):
        layer.receive(bare, UAC, 0.0)
    assert layer.events() == [] and len(layer) == 0 and layer.get_timer() is None
