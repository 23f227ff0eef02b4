"""GET / DELETE / PUT on /uapi/phoneCalls/{userId}/{extension}[/{phoneCallId}]."""

from __future__ import annotations

import json
import math
from datetime import datetime

import pytest
import trio
from uapi_helpers import PUBLIC_URL, assert_error, auth, create_call, simple_body, wait_until

BASE = "/uapi/phoneCalls"


def ended(engine, call_id):
    return lambda: engine.get_call(call_id).ended is not None


def bridged(engine, call_id):
    return lambda: engine.get_call(call_id).bridged is not None


async def test_get_one_call_follows_it_to_its_final_disposition(mock_clock, client, engine) -> None:
    headers = await auth(client)
    call_id = await create_call(
        client, headers, simple_body(nonce="n-1"), params={"callDuration": "5"}
    )
    response = await client.get(f"{BASE}/@me/0003*210/{call_id}", headers=headers)
    assert response.status_code == 200
    [call] = response.json()["entry"]
    assert call["id"] == call_id and call["nonce"] == "n-1"
    assert call["extension"] == "0003*210"
    assert call["ownerId"] == 3 and call["ownerName"] == "Demo Org"
    assert call["published"].endswith("Z")
    assert "answered" not in call and "ended" not in call  # null fields are left out
    assert call["links"]["self"] == f"{PUBLIC_URL}{BASE}/@me/0003*210/{call_id}"
    views = call["phoneCallView"]
    assert [v["id"] for v in views] == ["00", "01"]
    assert views[0]["source"] == ["0003*00"] and views[0]["destination"] == ["0003*01"]
    assert all(v["flow"] == 2 and 0 <= v["status"] <= 5 for v in views)

    await wait_until(bridged(engine, call_id))
    [live] = (await client.get(f"{BASE}/@me/0003*210/{call_id}", headers=headers)).json()["entry"]
    assert live["answered"].endswith("Z")
    assert [v["status"] for v in live["phoneCallView"]] == [5, 5]  # on call

    await wait_until(ended(engine, call_id))
    response = await client.get(f"{BASE}/@me/@self/{call_id}", headers=headers)
    [done] = response.json()["entry"]
    assert done["disposition"] == 0  # ANSWERED
    assert done["ended"].endswith("Z")
    assert done["duration"] >= 1 and done["charge"] == 0
    assert done["hangupCause"]
    assert all(v["disposition"] == 0 for v in done["phoneCallView"])
    assert done["links"]["self"].endswith(f"/@me/0003*210/{call_id}")


async def test_call_duration_counts_from_the_source_answer_and_duration_from_the_bridge(
    mock_clock, client, engine
) -> None:
    """What the docs say: callDuration runs from the source's answer (the destination's ringing
    included); duration is the bridged time, ended - bridged, rounded up to whole seconds."""
    headers = await auth(client)
    body = simple_body(source="0003*00", destination="0003*02")  # answer after 1 s, after 3 s
    call_id = await create_call(client, headers, body, params={"callDuration": "10"})
    await wait_until(ended(engine, call_id))
    [done] = (await client.get(f"{BASE}/@me/0003*210/{call_id}", headers=headers)).json()["entry"]
    answered, bridged_at, ended_at = (
        datetime.fromisoformat(done[name]) for name in ("answered", "bridged", "ended")
    )
    assert (ended_at - answered).total_seconds() == pytest.approx(10, abs=0.01)
    bridged_seconds = (ended_at - bridged_at).total_seconds()
    assert 5 < bridged_seconds < 10  # the destination rang about 3 s of the 10
    assert done["duration"] == math.ceil(bridged_seconds)


async def test_busy_destination_ends_with_busy_disposition(mock_clock, client, engine) -> None:
    headers = await auth(client)
    call_id = await create_call(client, headers, simple_body(destination="0003*09"))
    await wait_until(ended(engine, call_id))
    [done] = (await client.get(f"{BASE}/@me/@self/{call_id}", headers=headers)).json()["entry"]
    assert done["disposition"] == 1  # BUSY
    assert done["phoneCallView"][1].get("sipStatus") == 486


async def test_unknown_or_foreign_call_is_not_found(mock_clock, client) -> None:
    headers = await auth(client)
    assert_error(
        await client.get(f"{BASE}/@me/@self/0123456789abcdef0123", headers=headers),
        404,
        "pc_not_found",
    )
    assert_error(
        await client.get(f"{BASE}/@me/@self/not-hex!", headers=headers), 404, "pc_not_found"
    )
    call_id = await create_call(client, headers)
    # the same call through another extension of the user, or another user: not found
    assert_error(
        await client.get(f"{BASE}/@me/0003*212/{call_id}", headers=headers), 404, "pc_not_found"
    )
    org = await auth(client, "org")
    assert_error(await client.get(f"{BASE}/13/@self/{call_id}", headers=org), 404, "pc_not_found")
    assert (await client.get(f"{BASE}/12/210/{call_id}", headers=org)).status_code == 200


async def test_list_is_204_when_empty_and_pages_when_not(mock_clock, client, engine) -> None:
    headers = await auth(client)
    assert (await client.get(f"{BASE}/@me/@self", headers=headers)).status_code == 204
    ids = []
    for _ in range(3):
        ids.append(await create_call(client, headers))
        await trio.sleep(1)
    ids.append(await create_call(client, headers, simple_body(extension="0003*212")))

    everything = (await client.get(f"{BASE}/@me/@self", headers=headers)).json()
    assert [c["id"] for c in everything["entry"]] == ids
    assert everything["totalResults"] == 4 and everything["startIndex"] == 0

    only_210 = (await client.get(f"{BASE}/@me/210", headers=headers)).json()
    assert [c["id"] for c in only_210["entry"]] == ids[:3]

    page = (
        await client.get(f"{BASE}/@me/@self", params={"count": 2, "startIndex": 1}, headers=headers)
    ).json()
    assert [c["id"] for c in page["entry"]] == ids[1:3]
    assert page["itemsPerPage"] == 2 and page["totalResults"] == 4
    links = page["links"]
    assert links["self"].startswith(f"{PUBLIC_URL}{BASE}/@me/@self?")
    assert "startIndex=1" in links["self"] and "count=2" in links["self"]
    assert "startIndex=3" in links["next"] and "startIndex=0" in links["prev"]
    token = headers["Authorization"].split()[1]
    last = await client.get(
        f"{BASE}/@me/@self",
        params={
            "count": 2,
            "startIndex": 2,
            "accessRequestToken": token,
            "sortOrder": "descending",
        },
    )
    assert "next" not in last.json()["links"]
    assert token not in json.dumps(last.json()["links"])
    assert "sortOrder=descending" in last.json()["links"]["prev"]

    newest = await client.get(
        f"{BASE}/@me/@self", params={"sortOrder": "descending", "count": 1}, headers=headers
    )
    assert [c["id"] for c in newest.json()["entry"]] == [ids[-1]]

    beyond = await client.get(f"{BASE}/@me/@self", params={"startIndex": 10}, headers=headers)
    assert beyond.status_code == 204

    by_id = await client.get(
        f"{BASE}/@me/@self", params={"filterBy": "id", "filterValue": ids[2]}, headers=headers
    )
    assert [c["id"] for c in by_id.json()["entry"]] == [ids[2]]
    in_array = await client.get(
        f"{BASE}/@me/@self",
        params={"filterBy": "id", "filterOp": "inArray", "filterValue": f"{ids[0]},{ids[3]}"},
        headers=headers,
    )
    assert [c["id"] for c in in_array.json()["entry"]] == [ids[0], ids[3]]

    second = everything["entry"][1]["published"]
    later = await client.get(
        f"{BASE}/@me/@self",
        params={"filterBy": "published", "filterOp": "greaterThan", "filterValue": second},
        headers=headers,
    )
    assert [c["id"] for c in later.json()["entry"]] == ids[2:]

    slim = await client.get(f"{BASE}/@me/@self", params={"fields": "id,published"}, headers=headers)
    assert all(set(c) == {"id", "published"} for c in slim.json()["entry"])


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"count": "0"}, "count_invalid"),
        ({"count": "5001"}, "count_invalid"),
        ({"count": "ten"}, "count_invalid"),
        ({"startIndex": "-1"}, "startindex_invalid"),
        ({"startIndex": "5001"}, "startindex_invalid"),
        ({"filterBy": "colour", "filterValue": "x"}, "filterby_invalid"),
        ({"filterBy": "id", "filterOp": "like", "filterValue": "x"}, "filterop_invalid"),
        ({"filterBy": "id"}, "filtervalue_invalid"),
        ({"filterBy": "published", "filterValue": "yesterday"}, "filtervalue_invalid"),
        ({"sortOrder": "random"}, "sortorder_invalid"),
        ({"fields": "id,colour"}, "fields_invalid"),
        ({"fields": ","}, "fields_invalid"),
    ],
)
async def test_list_parameter_errors(mock_clock, client, params, code) -> None:
    headers = await auth(client)
    assert_error(await client.get(f"{BASE}/@me/@self", params=params, headers=headers), 400, code)


async def test_list_scope_errors(mock_clock, client) -> None:
    headers = await auth(client)
    assert_error(
        await client.get(f"{BASE}/@me/0003*211", headers=headers), 400, "extension_invalid"
    )
    assert_error(await client.get(f"{BASE}/@me/999", headers=headers), 400, "extension_invalid")
    assert_error(await client.get(f"{BASE}/13/@self", headers=headers), 403, "access_denied")
    assert_error(await client.get(f"{BASE}/@owner/@self", headers=headers), 400, "user_invalid")
    assert (await client.get(f"{BASE}/@owner/210", headers=headers)).status_code == 204
    admin = await auth(client, "admin")
    assert_error(await client.get(f"{BASE}/12/210", headers=admin), 400, "extension_invalid")
    assert (await client.get(f"{BASE}/12/0003*210", headers=admin)).status_code == 204


# ----------------------------------------------------------------- DELETE


async def test_delete_hangs_up_a_ringing_call(mock_clock, client, engine) -> None:
    headers = await auth(client)
    call_id = await create_call(client, headers, simple_body(source="0003*08"))  # rings 120 s
    await trio.sleep(2)
    response = await client.delete(f"{BASE}/@me/0003*210/{call_id}", headers=headers)
    assert response.status_code == 200
    assert response.json() == {"entry": [{"id": call_id}]}
    await wait_until(ended(engine, call_id))
    assert engine.get_call(call_id).disposition is not None
    again = await client.delete(f"{BASE}/@me/0003*210/{call_id}", headers=headers)
    assert again.status_code == 204


async def test_delete_with_a_number_that_is_not_a_party_hangs_up_nothing(
    mock_clock, client, engine
) -> None:
    headers = await auth(client)
    call_id = await create_call(client, headers, simple_body(source="0003*08"))
    response = await client.delete(
        f"{BASE}/@me/@self/{call_id}", params={"phoneNumber": "5550000"}, headers=headers
    )
    assert response.status_code == 204
    assert engine.get_call(call_id).ended is None
    response = await client.delete(
        f"{BASE}/@me/@self/{call_id}", params={"phoneNumber": "0003*08"}, headers=headers
    )
    assert response.status_code == 200
    assert_error(
        await client.delete(
            f"{BASE}/@me/@self/{call_id}", params={"phoneNumber": ""}, headers=headers
        ),
        400,
        "pc_number_invalid",
    )


async def test_delete_all_calls_of_an_extension(mock_clock, client, engine) -> None:
    headers = await auth(client)
    ids = {await create_call(client, headers, simple_body(source="0003*08")) for _ in range(2)}
    other = await create_call(client, headers, simple_body(extension="0003*212", source="0003*08"))
    response = await client.delete(f"{BASE}/@me/0003*210", headers=headers)
    assert response.status_code == 200
    assert {e["id"] for e in response.json()["entry"]} == ids
    assert engine.get_call(other).ended is None
    assert_error(
        await client.delete(f"{BASE}/@me/@self/0123456789abcdef0123", headers=headers),
        404,
        "pc_not_found",
    )


# ----------------------------------------------------------------- PUT (actions)


async def put(client, headers, call_id, body):
    return await client.put(f"{BASE}/@me/0003*210/{call_id}", json=body, headers=headers)


async def test_action_errors(mock_clock, client, engine) -> None:
    headers = await auth(client)
    call_id = await create_call(client, headers, simple_body(source="0003*08"))
    assert_error(await put(client, headers, call_id, {}), 400, "pc_action_invalid")
    assert_error(await put(client, headers, call_id, {"action": "Dance"}), 400, "pc_action_invalid")
    assert_error(await put(client, headers, call_id, {"action": 5}), 400, "pc_action_invalid")
    for action in ["BargeIn", "Whisper", "Monitor"]:
        response = await put(client, headers, call_id, {"action": action, "phoneCallViewId": "01"})
        assert_error(response, 400, "pc_sendcallto_invalid")
        listen = {"action": action, "sendCallTo": "212"}
        # the engine's refusal: the call is not bridged yet
        assert_error(await put(client, headers, call_id, listen), 409, "pc_not_bridged")
    for bad in (2, "yes", True, "", -1):
        body = {"action": "Whisper", "sendCallTo": "212", "privateW": bad}
        assert_error(await put(client, headers, call_id, body), 400, "pc_privatew_invalid")
    assert_error(
        await put(client, headers, call_id, {"action": "Transfer"}), 400, "pc_sendcallto_invalid"
    )
    bad_view = {"action": "OnHold", "phoneCallViewId": "first"}
    assert_error(await put(client, headers, call_id, bad_view), 400, "pc_action_invalid")
    bad_format = {"action": "StartRecording", "format": "mp3"}
    assert_error(await put(client, headers, call_id, bad_format), 400, "pc_action_invalid")
    bad_caller = {"action": "Transfer", "sendCallTo": "0003*00", "callerId": "nope"}
    assert_error(await put(client, headers, call_id, bad_caller), 400, "pc_callerid_invalid")
    bad_wait = {"action": "Transfer", "sendCallTo": "0003*00", "waitForPickUp": 0}
    assert_error(await put(client, headers, call_id, bad_wait), 400, "pc_timeout_invalid")
    # the engine's own refusals pass through with their status: the call is not bridged yet
    response = await put(client, headers, call_id, {"action": "OnHold", "phoneCallViewId": "01"})
    assert response.status_code == 409 and response.json()["error"]["code"] == "pc_not_bridged"
    assert_error(
        await put(client, headers, "0123456789abcdef0123", {"action": "OnHold"}),
        404,
        "pc_not_found",
    )
    assert_error(
        await client.put(f"{BASE}/@me/0003*210/{call_id}", content=b"{", headers=headers),
        400,
        "payload_invalid",
    )


async def test_hold_and_unhold_a_bridged_call(mock_clock, client, engine) -> None:
    headers = await auth(client)
    call_id = await create_call(client, headers, params={"callDuration": "60"})
    await wait_until(bridged(engine, call_id))
    response = await put(client, headers, call_id, {"action": "OnHold", "phoneCallViewId": "01"})
    assert response.status_code == 200, response.text
    assert response.json()["entry"][0]["id"] == call_id
    await trio.sleep(0.5)
    [call] = (await client.get(f"{BASE}/@me/@self/{call_id}", headers=headers)).json()["entry"]
    assert "onHold" in call["phoneCallView"][1]
    response = await put(client, headers, call_id, {"action": "OffHold", "phoneCallViewId": "01"})
    assert response.status_code == 200
    await trio.sleep(0.5)
    [call] = (await client.get(f"{BASE}/@me/@self/{call_id}", headers=headers)).json()["entry"]
    assert "onHold" not in call["phoneCallView"][1]


async def test_transfer_to_a_public_number_needs_allow_public_transfer(
    mock_clock, client, engine
) -> None:
    headers = await auth(client)
    call_id = await create_call(client, headers, params={"callDuration": "60"})
    await wait_until(bridged(engine, call_id))
    response = await put(
        client, headers, call_id, {"action": "Transfer", "sendCallTo": "5551234567"}
    )
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "pc_transfer_invalid"
    response = await put(client, headers, call_id, {"action": "Transfer", "sendCallTo": "0003*02"})
    assert response.status_code == 200, response.text


async def test_actions_are_refused_while_draining(mock_clock, client, engine) -> None:
    headers = await auth(client)
    call_id = await create_call(client, headers, simple_body(source="0003*08"))
    engine.draining = True
    response = await put(client, headers, call_id, {"action": "OnHold", "phoneCallViewId": "01"})
    assert_error(response, 503, "service_unavailable")
    # reading and hanging up still work while draining
    assert (await client.get(f"{BASE}/@me/@self/{call_id}", headers=headers)).status_code == 200
    assert (await client.delete(f"{BASE}/@me/@self/{call_id}", headers=headers)).status_code == 200


async def test_park_unpark_and_pickup_refusals(mock_clock, client, engine) -> None:
    headers = await auth(client)
    # *08 never answers: the source rings, nothing is bridged, parked or ringing at an extension
    ringing = await create_call(client, headers, simple_body(source="0003*08"))
    park = {"action": "Park", "phoneCallViewId": "00"}
    assert_error(await put(client, headers, ringing, park), 409, "pc_not_bridged")
    for bad in (9, 3601, "soon", 1.5, True):
        body = {**park, "maxInParking": bad}
        assert_error(await put(client, headers, ringing, body), 400, "pc_maxinparking_invalid")
    for action in ("UnPark", "PickUp"):
        body = {"action": action}
        assert_error(await put(client, headers, ringing, body), 400, "pc_sendcallto_invalid")
    unpark = {"action": "UnPark", "sendCallTo": "211", "waitForPickup": 5}
    assert_error(await put(client, headers, ringing, unpark), 409, "pc_not_parked")
    pickup = {"action": "PickUp", "sendCallTo": "211", "callerId": "Desk <0003*210>"}
    assert_error(await put(client, headers, ringing, pickup), 409, "pc_not_ringing")
    # sandbox to sandbox, bridged after 3 s: neither party is an extension that could park
    bridged = await create_call(client, headers, simple_body(source="0003*00"))
    await trio.sleep(4)
    response = await put(client, headers, bridged, park)
    assert_error(response, 400, "pc_view_invalid")
    assert "only an extension can park" in response.json()["error"]["message"]
    got = await client.get(f"{BASE}/@me/0003*210/{bridged}", headers=headers)
    view = got.json()["entry"][0]["phoneCallView"][1]
    assert "parked" not in view and "parkedPos" not in view and "parkedBy" not in view
