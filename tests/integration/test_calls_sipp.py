"""Simple PhoneCalls through the real ``b2bua serve`` with real SIPp gateways and phones.

Each test asserts what the phones saw: who got INVITE, CANCEL and BYE and when, the caller id
each side was shown, and RTP flowing through the relay.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from .harness import DEFAULT_DIRECTORY, B2buaServer, SipLogEntry, Sipp
from .uapi import Uapi


def routes(**prefixes: Sipp) -> str:
    """Directory [[routes]] sending each prefix (given as p<digits>=sipp) to that SIPp."""
    text = ""
    for key, sipp in prefixes.items():
        text += (
            f'\n[[routes]]\nprefix = "{key.removeprefix("p")}"\n'
            f'gateway = "udp:{sipp.address}"\nrate = 0.02\n'
        )
    return text


def first(entries: list[SipLogEntry]) -> SipLogEntry:
    assert entries, "expected a message, saw none"
    return entries[0]


def media_counters(record: dict[str, Any], index: int) -> dict[str, int]:
    view = record["phoneCallView"][index]
    return dict(view.get("media", {}).get("audio", {}))


@pytest.mark.parametrize("media", ["relay", "rtpengine"], indirect=True)
def test_seed_example_two_public_sources_one_public_destination(
    media: dict[str, object],
    gateway: Callable[..., Sipp],
    b2bua_factory: Callable[..., B2buaServer],
) -> None:
    winner = gateway("gateway_answer_tone.xml", variables={"ring_ms": "1000"})
    loser = gateway("gateway_noanswer.xml")
    dest = gateway("gateway_answer.xml", variables={"ring_ms": "500"}, rtp_echo=True)
    server = b2bua_factory(
        directory=DEFAULT_DIRECTORY + routes(p5354353=winner, p5302040=loser, p3235742879=dest)
    )
    api = Uapi(server.api_url, "test-user-app", "test-user-secret")
    reply = api.create(
        ["5354353", "5302040"],
        ["3235742879"],
        query={"callDuration": 4},
        callerId="John Doe <4242425>",
        callerIdDestination="Jane Roe <5550100>",
    )
    call_id = api.call_id(reply)
    # the request named extension "210": the answer gives its extended form, as GET does
    assert reply.json()[0]["extension"] == "0003*210"
    assert reply.json()[0]["link"]["self"].endswith(f"/uapi/phoneCalls/@me/0003*210/{call_id}")
    record = api.wait_ended(call_id, timeout=30)
    for sipp in (winner, loser, dest):
        sipp.wait(timeout=15)

    # both sources rang at once; the loser got CANCEL once the winner answered
    invite_a = first(winner.received("INVITE"))
    invite_b = first(loser.received("INVITE"))
    assert abs(invite_a.timestamp - invite_b.timestamp) < 0.5
    answer_a = first(winner.sent(200))
    cancel_b = first(loser.received("CANCEL"))
    # two SIPp processes stamp their logs: the winner notes its 200 just after sending it, so
    # the server's CANCEL can reach the loser a fraction of a millisecond "before" it
    assert -0.005 <= cancel_b.timestamp - answer_a.timestamp < 1.0
    assert not loser.received("BYE")
    # each side was shown the right caller id
    assert invite_a.from_display_name == "John Doe"
    assert "sip:4242425@" in (invite_a.header("From") or "")
    invite_dest = first(dest.received("INVITE"))
    assert invite_dest.from_display_name == "Jane Roe"
    assert "sip:5550100@" in (invite_dest.header("From") or "")
    # the destination is called only after the source answered
    assert invite_dest.timestamp >= answer_a.timestamp
    # BYE on both sides when callDuration (counted from the source's answer) ran out
    bye_a = first(winner.received("BYE"))
    bye_dest = first(dest.received("BYE"))
    assert 3.0 <= bye_a.timestamp - answer_a.timestamp <= 5.5
    assert abs(bye_a.timestamp - bye_dest.timestamp) < 1.0
    # the record
    assert record["disposition"] == 0
    assert record["hangupCause"] == "call duration reached"
    views = {v["number"]: v for v in record["phoneCallView"]}
    assert views["5354353"]["answered"]
    assert views["5302040"].get("hangupCause") == "answered elsewhere"
    assert views["3235742879"]["answered"]
    # media went both ways through the relay (its counters on the record): the winner's tone
    # reached the destination, which echoed it (sipp -rtp_echo), and the echo came back
    source_media = media_counters(record, 0)
    dest_media = media_counters(record, 2)
    assert source_media["rtp_packets_received"] > 50  # the winner's tone, into the relay
    assert dest_media["rtp_packets_sent"] > 50  # ... out to the destination
    assert dest_media["rtp_packets_received"] > 50  # the destination's echo, back in
    assert source_media["rtp_packets_sent"] > 50  # ... out to the source
    api.close()


def registered_phone(
    gateway: Callable[..., Sipp], server: B2buaServer, extended: str, password: str, **kw: Any
) -> Sipp:
    """A SIPp phone registered for ``extended`` that answers calls (echoing RTP)."""
    phone = gateway(
        "phone_register.xml",
        remote=server.sip_address,
        service=extended,
        auth=(extended, password),
        ooc_scenario=kw.pop("ooc_scenario", "phone_answer.xml"),
        rtp_echo=True,
        pause_ms=kw.pop("stay_ms", 10000),
        **kw,
    )
    phone.wait_for_message(200, timeout=10)  # the REGISTER went through
    return phone


def test_seed_example_as_administrator(
    gateway: Callable[..., Sipp], b2bua_factory: Callable[..., B2buaServer]
) -> None:
    a = gateway("gateway_answer.xml", rtp_echo=True)
    b = gateway("gateway_noanswer.xml")
    dest = gateway("gateway_answer.xml", rtp_echo=True)
    server = b2bua_factory(
        directory=DEFAULT_DIRECTORY + routes(p5354353=a, p5302040=b, p3235742879=dest)
    )
    api = Uapi(server.api_url, "test-admin-app", "test-admin-secret")
    reply = api.create(
        ["5354353", "5302040"],
        ["3235742879"],
        user="12",
        extension="0003*210",
        query={"callDuration": 2},
        callerId="John Doe <4242425>",
    )
    assert reply.status_code == 202, reply.text
    body = reply.json()[0]
    assert body["extension"] == "0003*210"
    assert body["link"]["self"].endswith(f"/uapi/phoneCalls/12/0003*210/{body['id']}")
    record = api.wait(
        body["id"], lambda r: r.get("state") == "ended", user="12", extension="0003*210"
    )
    assert record["disposition"] == 0
    for sipp in (a, b, dest):
        sipp.wait(timeout=15)
    assert b.received("CANCEL") and not b.received("BYE")
    assert a.received("BYE") and dest.received("BYE")
    # the destination was shown the extension's caller id (the default of callerIdDestination)
    assert first(dest.received("INVITE")).from_display_name == "John Doe"


def test_sandbox_example_with_a_registered_phone(
    gateway: Callable[..., Sipp], b2bua_factory: Callable[..., B2buaServer]
) -> None:
    server = b2bua_factory()
    phone = registered_phone(gateway, server, "0003*210", "secret210")
    api = Uapi(server.api_url, "test-user-app", "test-user-secret")
    call_id = api.call_id(
        api.create(
            ["0003*210"], ["0003*00"], query={"callDuration": 3}, callerId="John Doe <4242425>"
        )
    )
    record = api.wait_ended(call_id, timeout=20)
    assert record["disposition"] == 0
    invite = first(phone.received("INVITE"))
    assert invite.from_display_name == "John Doe"
    answered = first(phone.sent(200)) if phone.sent(200) else invite
    bye = first(phone.received("BYE"))
    assert 2.0 <= bye.timestamp - invite.timestamp <= 5.5
    views = record["phoneCallView"]
    assert views[1]["number"] == "0003*00" and views[1]["answered"]
    # the sandbox's tone reached the phone through the relay and the phone's echo came back
    phone_side = media_counters(record, 0)
    assert phone_side["rtp_packets_sent"] > 50
    assert phone_side["rtp_packets_received"] > 50
    assert answered is not None


def test_wait_for_pickup_expiry_cancels_every_fork(
    gateway: Callable[..., Sipp], b2bua_factory: Callable[..., B2buaServer]
) -> None:
    a = gateway("gateway_noanswer.xml")
    b = gateway("gateway_noanswer.xml")
    dest = gateway("gateway_answer.xml", timeout=8)
    server = b2bua_factory(
        directory=DEFAULT_DIRECTORY + routes(p5354353=a, p5302040=b, p3235742879=dest)
    )
    api = Uapi(server.api_url, "test-user-app", "test-user-secret")
    call_id = api.call_id(
        api.create(["5354353", "5302040"], ["3235742879"], query={"waitForPickup": 3})
    )
    record = api.wait_ended(call_id, timeout=15)
    assert record["disposition"] == 3  # NO ANSWER
    for sipp in (a, b):
        sipp.wait(timeout=10)
        invite = first(sipp.received("INVITE"))
        cancel = first(sipp.received("CANCEL"))
        assert 2.5 <= cancel.timestamp - invite.timestamp <= 4.0  # at waitForPickup, within 1 s
    assert not dest.received("INVITE")


def test_source_busy(
    gateway: Callable[..., Sipp], b2bua_factory: Callable[..., B2buaServer]
) -> None:
    a = gateway("gateway_busy.xml")
    dest = gateway("gateway_answer.xml", timeout=6)
    server = b2bua_factory(directory=DEFAULT_DIRECTORY + routes(p5354353=a, p3235742879=dest))
    api = Uapi(server.api_url, "test-user-app", "test-user-secret")
    record = api.wait_ended(api.call_id(api.create(["5354353"], ["3235742879"])))
    assert record["disposition"] == 1  # BUSY
    assert record["phoneCallView"][0]["sipStatus"] == 486
    assert not dest.received("INVITE")


def test_destination_busy_and_no_answer(
    gateway: Callable[..., Sipp], b2bua_factory: Callable[..., B2buaServer]
) -> None:
    a = gateway("gateway_answer.xml", rtp_echo=True)
    busy = gateway("gateway_busy.xml")
    a2 = gateway("gateway_answer.xml", rtp_echo=True)
    silent = gateway("gateway_noanswer.xml")
    server = b2bua_factory(
        directory=DEFAULT_DIRECTORY
        + routes(p5354353=a, p3235742879=busy, p5354354=a2, p3235742870=silent)
    )
    api = Uapi(server.api_url, "test-user-app", "test-user-secret")
    busy_call = api.call_id(api.create(["5354353"], ["3235742879"]))
    silent_call = api.call_id(api.create(["5354354"], ["3235742870"], query={"waitForPickup": 2}))
    record = api.wait_ended(busy_call)
    assert record["disposition"] == 1
    a.wait(timeout=10)
    assert a.received("BYE"), "the source must get BYE when the destination is busy"
    record = api.wait_ended(silent_call)
    assert record["disposition"] == 3
    silent.wait(timeout=10)
    a2.wait(timeout=10)
    assert silent.received("CANCEL")
    assert a2.received("BYE")
    bye = first(a2.received("BYE"))
    invite_dest = first(silent.received("INVITE"))
    assert 1.5 <= bye.timestamp - invite_dest.timestamp <= 3.5


@pytest.mark.parametrize("media", ["relay", "rtpengine"], indirect=True)
def test_video_is_offered_and_answered(
    media: dict[str, object],
    gateway: Callable[..., Sipp],
    b2bua_factory: Callable[..., B2buaServer],
) -> None:
    a = gateway("phone_answer_video.xml", rtp_echo=True)
    dest = gateway("phone_answer_video.xml", rtp_echo=True)
    server = b2bua_factory(directory=DEFAULT_DIRECTORY + routes(p5354353=a, p3235742879=dest))
    api = Uapi(server.api_url, "test-user-app", "test-user-secret")
    call_id = api.call_id(
        api.create(["5354353"], ["3235742879"], query={"video": "true", "callDuration": 2})
    )
    record = api.wait_ended(call_id)
    assert record["disposition"] == 0
    for sipp in (a, dest):
        sipp.wait(timeout=10)
        offer = first(sipp.received("INVITE")).body
        assert "m=audio" in offer and "m=video" in offer
        assert "m=video" in first(sipp.sent(200)).body


def test_no_video_unless_asked(
    gateway: Callable[..., Sipp], b2bua_factory: Callable[..., B2buaServer]
) -> None:
    a = gateway("phone_answer_video.xml", rtp_echo=True)
    server = b2bua_factory(directory=DEFAULT_DIRECTORY + routes(p5354353=a))
    api = Uapi(server.api_url, "test-user-app", "test-user-secret")
    api.wait_ended(api.call_id(api.create(["5354353"], ["0003*00"], query={"callDuration": 1})))
    a.wait(timeout=10)
    assert "m=video" not in first(a.received("INVITE")).body


def test_nonce_retry_rings_once(
    gateway: Callable[..., Sipp], b2bua_factory: Callable[..., B2buaServer]
) -> None:
    a = gateway("gateway_answer.xml", rtp_echo=True, calls=None, timeout=10)
    server = b2bua_factory(directory=DEFAULT_DIRECTORY + routes(p5354353=a))
    api = Uapi(server.api_url, "test-user-app", "test-user-secret")
    first_id = api.call_id(
        api.create(["5354353"], ["0003*00"], query={"callDuration": 2}, nonce="order-42")
    )
    again = api.call_id(
        api.create(["5354353"], ["0003*00"], query={"callDuration": 2}, nonce="order-42")
    )
    assert again == first_id
    api.wait_ended(first_id)
    other = api.call_id(
        api.create(["5354353"], ["0003*00"], query={"callDuration": 1}, nonce="order-43")
    )
    assert other != first_id
    api.wait_ended(other)
    a.kill()
    assert len(a.received("INVITE")) == 2  # order-42 once, order-43 once


@pytest.mark.parametrize("media", ["relay", "rtpengine"], indirect=True)
def test_inbound_call_between_two_registered_phones(
    media: dict[str, object],
    gateway: Callable[..., Sipp],
    b2bua_factory: Callable[..., B2buaServer],
) -> None:
    server = b2bua_factory()
    callee = registered_phone(gateway, server, "0003*211", "secret211")
    caller = gateway(
        "caller_invite.xml",
        remote=server.sip_address,
        service="211",
        keywords={"caller": "0003*210"},
        auth=("0003*210", "secret210"),
        rtp_echo=True,
        pause_ms=2000,
    )
    assert caller.wait(timeout=20) == 0, caller.describe()
    invite = first(callee.received("INVITE"))
    assert "0003*210" in (invite.header("From") or "") or invite.from_display_name == "John Doe"
    assert callee.received("BYE")  # the caller's BYE reached the callee through the B2BUA
    # the caller had to authenticate: a 407 challenge, then the INVITE with credentials
    assert caller.received(407)


def test_unauthenticated_invite_never_reaches_a_gateway(
    gateway: Callable[..., Sipp], b2bua_factory: Callable[..., B2buaServer]
) -> None:
    gw = gateway("gateway_answer.xml", timeout=6)
    server = b2bua_factory(directory=DEFAULT_DIRECTORY + routes(p5354353=gw))
    stranger = gateway(
        "caller_invite.xml",
        remote=server.sip_address,
        service="5354353",
        keywords={"caller": "intruder"},
        timeout=10,
    )
    stranger.wait(timeout=15)
    assert stranger.received(407)
    assert not gw.received("INVITE")


def test_restart_marks_a_live_call_ended(
    gateway: Callable[..., Sipp], b2bua_factory: Callable[..., B2buaServer]
) -> None:
    import signal

    a = gateway("gateway_answer.xml", rtp_echo=True, timeout=20)
    server = b2bua_factory(directory=DEFAULT_DIRECTORY + routes(p5354353=a))
    api = Uapi(server.api_url, "test-user-app", "test-user-secret")
    call_id = api.call_id(api.create(["5354353"], ["0003*00"], query={"callDuration": 60}))
    api.wait(call_id, lambda r: r.get("state") == "bridged", timeout=10)
    server.stop(signal.SIGKILL)  # no drain, no BYE: the process just dies
    # a new process on the same store file
    store = {"url": f"sqlite:///{server.workdir / 'b2bua.sqlite'}"}
    restarted = b2bua_factory(
        directory=DEFAULT_DIRECTORY + routes(p5354353=a), config={"store": store}
    )
    api2 = Uapi(restarted.api_url, "test-user-app", "test-user-secret")
    record = api2.get(call_id)
    assert record["state"] == "ended"
    assert "restart" in record["hangupCause"]
    assert record["disposition"] == 0


def test_a_late_2xx_from_a_losing_fork_gets_ack_and_bye(
    gateway: Callable[..., Sipp], b2bua_factory: Callable[..., B2buaServer]
) -> None:
    winner = gateway("gateway_answer.xml", variables={"ring_ms": "300"}, rtp_echo=True)
    late = gateway("gateway_late_answer.xml")
    server = b2bua_factory(directory=DEFAULT_DIRECTORY + routes(p5354353=winner, p5302040=late))
    api = Uapi(server.api_url, "test-user-app", "test-user-secret")
    call_id = api.call_id(
        api.create(["5354353", "5302040"], ["0003*00"], query={"callDuration": 3})
    )
    record = api.wait_ended(call_id, timeout=20)
    assert record["disposition"] == 0
    assert late.wait(timeout=15) == 0, late.describe()  # its scenario needs ACK then BYE
    cancel = first(late.received("CANCEL"))
    ack = first(late.received("ACK"))
    bye = first(late.received("BYE"))
    assert cancel.timestamp <= ack.timestamp <= bye.timestamp
    assert bye.timestamp - cancel.timestamp < 2.0  # ended at once, not at callDuration
    views = {v["number"]: v for v in record["phoneCallView"]}
    assert views["5354353"]["answered"]
    assert "answered" not in views["5302040"]
