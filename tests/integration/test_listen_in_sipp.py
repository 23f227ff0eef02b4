"""The signalling of the listen-in actions through the real server, with SIPp phones.

Alice (0003*210) calls Bob (0003*211) through the App. A Monitor rings Carol (0003*212),
who answers and hangs up 1.5 s later: the call stays bridged and neither party gets a BYE.
A BargeIn then rings Dave (0003*213), who stays; Bob hangs up: Alice and Dave get BYE and
the call ends answered.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from .harness import DEFAULT_DIRECTORY, B2buaServer, Direction, Sipp
from .test_calls_sipp import first, registered_phone
from .uapi import Uapi

SUPERVISORS = """
[[extensions]]
number = "212"
organization = 3
user = 12
type = "phone_terminal"
password = "secret212"
allow_caller_id = true

[[extensions]]
number = "213"
organization = 3
user = 13
type = "phone_terminal"
password = "secret213"
allow_caller_id = true
"""


def test_supervisor_rung_leaving_keeps_the_call_a_party_leaving_ends_all(
    gateway: Callable[..., Sipp], b2bua_factory: Callable[..., B2buaServer]
) -> None:
    server = b2bua_factory(directory=DEFAULT_DIRECTORY + SUPERVISORS)
    alice = registered_phone(gateway, server, "0003*210", "secret210", stay_ms=30000)
    bob = registered_phone(
        gateway,
        server,
        "0003*211",
        "secret211",
        stay_ms=30000,
        ooc_scenario="phone_answer_hangup.xml",
        variables={"talk_ms": "9000"},
    )
    carol = registered_phone(
        gateway,
        server,
        "0003*212",
        "secret212",
        stay_ms=30000,
        ooc_scenario="phone_answer_hangup.xml",
        variables={"talk_ms": "1500"},
    )
    dave = registered_phone(gateway, server, "0003*213", "secret213", stay_ms=30000)
    api = Uapi(server.api_url, "test-user-app", "test-user-secret")
    call_id = api.call_id(api.create(["0003*210"], ["0003*211"], query={"callDuration": 60}))
    api.wait(call_id, lambda r: r.get("state") == "bridged", timeout=15)

    # Monitor: Carol is rung with the callerId given, answers, leaves 1.5 s later
    reply = api.act(
        call_id, {"action": "Monitor", "sendCallTo": "212", "callerId": "Quality <4242499>"}
    )
    assert reply.status_code == 200, reply.text
    invite = carol.wait_for_message("INVITE", timeout=10)
    assert invite.from_display_name == "Quality"
    carol.wait_for_message("BYE", direction=Direction.SENT, timeout=10)
    record = api.wait(call_id, lambda r: r["phoneCallView"][2].get("ended") is not None)
    assert record["state"] == "bridged"
    assert record["phoneCallView"][2]["role"] == "monitor"
    assert record["phoneCallView"][2]["hangupCause"] == "supervisor hung up"
    time.sleep(0.5)
    assert not alice.received("BYE") and not bob.received("BYE")

    # BargeIn: Dave answers and stays; Bob's BYE ends the call for Alice and Dave
    reply = api.act(call_id, {"action": "BargeIn", "sendCallTo": "0003*213"})
    assert reply.status_code == 200, reply.text
    dave.wait_for_message("INVITE", timeout=10)
    api.wait(
        call_id, lambda r: len(r["phoneCallView"]) == 4 and r["phoneCallView"][3]["status"] == 5
    )
    # a second supervisor while Dave listens is refused
    busy = api.act(call_id, {"action": "Monitor", "sendCallTo": "212"})
    assert busy.status_code == 409 and busy.json()["error"]["code"] == "pc_action_in_progress"
    record = api.wait_ended(call_id, timeout=20)
    assert record["disposition"] == 0
    assert record["hangupCause"] == "destination hung up"
    bye_from_bob = first(bob.sent("BYE"))
    for phone in (alice, dave):
        bye = phone.wait_for_message("BYE", timeout=5)
        # each SIPp process stamps its own log: Bob notes his BYE just after sending it, so
        # the server's BYE can reach Alice a fraction of a millisecond "before" it
        assert -0.005 <= bye.timestamp - bye_from_bob.timestamp < 2.0
    assert len(carol.received("INVITE")) == 1  # rung once, for the Monitor only
