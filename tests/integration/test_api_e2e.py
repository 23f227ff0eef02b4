"""The HTTP API end to end: the real ``b2bua serve``, a real token, real SIPp gateways.

Reading a call while it rings and after it ends, hanging up a live call, transferring one.
"""

from __future__ import annotations

from collections.abc import Callable

from .harness import DEFAULT_DIRECTORY, B2buaServer, Sipp
from .test_calls_sipp import first, routes
from .uapi import Uapi


def test_read_while_ringing_then_hang_up_a_live_call(
    gateway: Callable[..., Sipp], b2bua_factory: Callable[..., B2buaServer]
) -> None:
    a = gateway("gateway_answer.xml", variables={"ring_ms": "1500"}, rtp_echo=True)
    server = b2bua_factory(directory=DEFAULT_DIRECTORY + routes(p5354353=a))
    api = Uapi(server.api_url, "test-user-app", "test-user-secret")
    call_id = api.call_id(api.create(["5354353"], ["0003*00"], query={"callDuration": 60}))

    ringing = api.wait(call_id, lambda r: r["phoneCallView"][0].get("status") == 3, timeout=5)
    assert ringing["state"] == "calling_source"
    assert ringing["phoneCallView"][0]["ringing"]
    assert "answered" not in ringing  # null fields are left out

    bridged = api.wait(call_id, lambda r: r.get("state") == "bridged", timeout=10)
    assert bridged["phoneCallView"][0]["status"] == 5  # on call
    assert bridged["phoneCallView"][1]["status"] == 5

    reply = api.hangup(call_id)
    assert reply.status_code == 200, reply.text
    record = api.wait_ended(call_id, timeout=10)
    assert record["disposition"] == 0
    assert record["hangupCause"] == "hung up via the API"
    a.wait(timeout=10)
    assert a.received("BYE")
    # a finished call stays readable by id; hanging it up again has nothing to do
    assert api.get(call_id)["state"] == "ended"
    assert api.hangup(call_id).status_code == 204


def test_transfer_sends_the_source_to_a_new_destination(
    gateway: Callable[..., Sipp], b2bua_factory: Callable[..., B2buaServer]
) -> None:
    a = gateway("gateway_answer.xml", rtp_echo=True)
    server = b2bua_factory(directory=DEFAULT_DIRECTORY + routes(p5354353=a))
    api = Uapi(server.api_url, "test-user-app", "test-user-secret")
    call_id = api.call_id(api.create(["5354353"], ["0003*00"], query={"callDuration": 8}))
    api.wait(call_id, lambda r: r.get("state") == "bridged", timeout=10)

    refused = api.act(call_id, {"action": "Transfer", "sendCallTo": "53543539"})
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "pc_transfer_invalid"

    moved = api.act(call_id, {"action": "Transfer", "sendCallTo": "0003*01"})
    assert moved.status_code == 200, moved.text
    record = api.wait(
        call_id,
        lambda r: any(v["number"] == "0003*01" and v.get("answered") for v in r["phoneCallView"]),
        timeout=10,
    )
    views = {v["number"]: v for v in record["phoneCallView"]}
    assert views["0003*00"].get("hangupCause") == "transferred"
    assert record["state"] == "bridged"
    final = api.wait_ended(call_id, timeout=15)
    assert final["disposition"] == 0
    a.wait(timeout=10)
    # the source stayed up through the transfer: one INVITE, one BYE at the end
    assert len(a.received("INVITE")) == 1
    assert first(a.received("BYE"))


def test_unsupported_action_and_bad_requests(b2bua_factory: Callable[..., B2buaServer]) -> None:
    server = b2bua_factory()
    api = Uapi(server.api_url, "test-user-app", "test-user-secret")
    bad = api.create(["0003*00"], ["0003*01"], query={"waitForPickup": "0"})
    assert bad.status_code == 400
    assert bad.json()["error"]["code"] == "pc_timeout_invalid"
    call_id = api.call_id(api.create(["0003*00"], ["0003*01"], query={"callDuration": 4}))
    api.wait(call_id, lambda r: r.get("state") == "bridged", timeout=10)
    park = api.act(call_id, {"action": "Park", "phoneCallViewId": "00"})
    assert park.status_code == 400  # a sandbox number is not an extension that could park
    assert park.json()["error"]["code"] == "pc_view_invalid"
    api.hangup(call_id)


def test_the_create_answer_names_the_extension_as_get_does(
    b2bua_factory: Callable[..., B2buaServer],
) -> None:
    server = b2bua_factory()
    api = Uapi(server.api_url, "test-user-app", "test-user-secret")
    for given in ("210", "0003*210"):
        reply = api.create(["0003*00"], ["0003*01"], extension=given, query={"callDuration": 1})
        [created] = reply.json()
        record = api.get(api.call_id(reply))
        assert created["extension"] == record["extension"] == "0003*210", given
        link = created["link"]["self"]
        assert link == f"{server.api_url}/uapi/phoneCalls/@me/0003*210/{created['id']}"
        followed = api.client.get(link, headers=api.headers)
        assert followed.status_code == 200, followed.text
        assert followed.json()["entry"][0]["extension"] == created["extension"]
