"""The signalling of the Callback and ConferenceInvite creates through the real server, with
SIPp gateways and phones.

Callback: two carrier gateways; the source is rung first with the Callback extension's caller
id, the destination only once the source answered; the destination's BYE ends the call and the
source gets BYE.

Conference: three registered phones are invited into conference 0003*400 (each rung with the
callerId given) and a fourth dials the conference in; phones leave one by one, nobody else gets
a BYE, and the room is gone once the last one left (a new invite opens a fresh one).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx

from .harness import DEFAULT_DIRECTORY, B2buaServer, Direction, Sipp
from .test_calls_sipp import first, registered_phone, routes
from .uapi import Uapi

EXTENSIONS = """
[[extensions]]
number = "212"
organization = 3
user = 12
type = "phone_terminal"
password = "secret212"

[[extensions]]
number = "213"
organization = 3
user = 12
type = "phone_terminal"
password = "secret213"

[[extensions]]
number = "400"
organization = 3
user = 12
type = "conference"

[[extensions]]
number = "500"
organization = 3
user = 12
type = "callback"
caller_id = "Callback Desk <4242500>"
"""


def post(api: Uapi, kind: str, body: dict[str, Any], **query: Any) -> httpx.Response:
    return api.client.post(
        f"/uapi/phoneCalls/@me/{kind}", params=query, json=body, headers=api.headers
    )


def test_callback_rings_the_source_first_then_the_destination_with_the_callback_caller_id(
    gateway: Callable[..., Sipp], b2bua_factory: Callable[..., B2buaServer]
) -> None:
    source = gateway("gateway_answer.xml", rtp_echo=True, variables={"ring_ms": "1000"})
    destination = gateway(
        "gateway_answer_hangup.xml", rtp_echo=True, variables={"ring_ms": "500", "talk_ms": "2000"}
    )
    server = b2bua_factory(
        directory=DEFAULT_DIRECTORY + EXTENSIONS + routes(p4940=source, p4930=destination)
    )
    api = Uapi(server.api_url, "test-user-app", "test-user-secret")
    body = {
        "extension": "500",
        "phoneCallView": [{"source": ["+4940123456"], "destination": ["+4930654321"]}],
    }
    reply = post(api, "callback", body, callDuration=60)
    call_id = api.call_id(reply)
    assert reply.json()[0]["extension"] == "0003*500"
    record = api.wait(call_id, lambda r: r.get("state") == "ended", extension="500")
    assert record["disposition"] == 0
    assert record["hangupCause"] == "destination hung up"
    invite_a = first(source.received("INVITE"))
    invite_b = first(destination.received("INVITE"))
    answered_a = first(source.sent(200))
    assert invite_a.from_display_name == "Callback Desk"
    assert invite_b.from_display_name == "Callback Desk"
    assert "4242500" in (invite_b.header("From") or "")
    assert invite_b.timestamp >= answered_a.timestamp  # the destination only after the source
    bye = source.wait_for_message("BYE", timeout=5)
    assert bye.timestamp >= first(destination.sent("BYE")).timestamp


def test_invited_phones_and_a_caller_share_a_conference_until_the_last_one_leaves(
    gateway: Callable[..., Sipp], b2bua_factory: Callable[..., B2buaServer]
) -> None:
    server = b2bua_factory(directory=DEFAULT_DIRECTORY + EXTENSIONS)
    phones = [
        registered_phone(
            gateway,
            server,
            f"0003*{number}",
            f"secret{number}",
            stay_ms=30000,
            ooc_scenario="phone_answer_hangup.xml",
            variables={"talk_ms": talk_ms},
        )
        for number, talk_ms in (("210", "3000"), ("211", "5000"), ("212", "7000"))
    ]
    api = Uapi(server.api_url, "test-user-app", "test-user-secret")
    ids = []
    for number in ("210", "211", "212"):
        body = {"phoneCallView": [{"destination": number, "callerId": "Weekly <4242400>"}]}
        ids.append(api.call_id(post(api, "conferenceInvite", body, number="400")))
    for phone in phones:
        invite = phone.wait_for_message("INVITE", timeout=10)
        assert invite.from_display_name == "Weekly"
    # a fourth phone dials the conference itself: answered at once, it joins
    caller = gateway(
        "caller_invite.xml",
        remote=server.sip_address,
        service="400",
        keywords={"caller": "0003*213"},
        auth=("0003*213", "secret213"),
        rtp_echo=True,
        pause_ms=4000,
    )
    records = [
        api.wait(call_id, lambda r: r.get("state") == "bridged", extension="400") for call_id in ids
    ]
    for record in records:
        room, guest = record["phoneCallView"]
        assert room["status"] == guest["status"] == 5  # both on call
    assert caller.wait(timeout=20) == 0, caller.describe()
    assert caller.received(200)

    # the first invited phone leaves after 3 s: the two others stay, nobody else gets a BYE
    first_done = api.wait(ids[0], lambda r: r.get("state") == "ended", extension="400")
    assert first_done["hangupCause"] == "destination hung up"
    assert api.get(ids[1], extension="400")["state"] == "bridged"
    assert api.get(ids[2], extension="400")["state"] == "bridged"
    for phone in phones:
        assert not phone.received("BYE"), "the B2BUA sent a BYE to a conference member"
    for call_id in ids[1:]:
        ended = api.wait(call_id, lambda r: r.get("state") == "ended", 15, extension="400")
        assert ended["disposition"] == 0
    # every leg ended with its own phone's BYE
    for phone in phones:
        assert len(phone.sent("BYE")) == 1 and not phone.received("BYE")
    # the room ended with its last party ("conference ... ended" logged): a new invite opens a
    # fresh one, its first member alone
    time.sleep(0.2)
    assert "conference 0003*400 ended: its last party left" in server.output()
    body = {"phoneCallView": [{"destination": "210"}]}
    again = api.call_id(post(api, "conferenceInvite", body, number="400"))
    api.wait(again, lambda r: r.get("state") == "bridged", extension="400")
    assert len(phones[0].received("INVITE")) == 2
    assert api.hangup(again, extension="400").status_code == 200
    record = api.wait(again, lambda r: r.get("state") == "ended", 10, extension="400")
    assert record["hangupCause"] == "hung up via the API"
    phones[0].wait_for_message("BYE", direction=Direction.RECEIVED, timeout=10)
