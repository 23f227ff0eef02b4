"""POST /uapi/phoneCalls/{userId}/callback and .../conferenceInvite: the 202 answer, the rules
and error codes of each, in process (sandbox numbers answer; no SIP service)."""

from __future__ import annotations

from typing import Any

import pytest
import trio
from uapi_helpers import PUBLIC_URL, assert_error, auth

from engine.model import CallState

CALLBACK = "/uapi/phoneCalls/{}/callback"
INVITE = "/uapi/phoneCalls/{}/conferenceInvite"


def callback_body(source: Any = "+4940123456", destination: Any = "0003*01", **extra: Any):
    view: dict[str, Any] = {"source": source, "destination": destination}
    view.update(extra.pop("view", {}))
    return {"extension": "500", "phoneCallView": [view], **extra}


def invite_body(destination: Any = "0003*00", **extra: Any) -> dict[str, Any]:
    view: dict[str, Any] = {"destination": destination}
    view.update(extra.pop("view", {}))
    return {"phoneCallView": [view], **extra}


async def post(client, path, body, *, user="@me", kind="user", params=None):
    headers = await auth(client, kind)
    return await client.post(path.format(user), json=body, params=params, headers=headers)


# --- Callback ---------------------------------------------------------------------------------


async def test_callback_is_accepted_charged_to_the_callback_extension(
    mock_clock, client, engine
) -> None:
    response = await post(client, CALLBACK, callback_body(), params={"callDuration": "30"})
    assert response.status_code == 202, response.text
    [created] = response.json()
    assert created["extension"] == "0003*500"
    assert created["link"]["self"] == f"{PUBLIC_URL}/uapi/phoneCalls/@me/0003*500/{created['id']}"
    call = engine.get_call(created["id"])
    assert call.sources == ["+4940123456"] and call.destinations == ["0003*01"]
    assert call.extension == "0003*500" and call.call_duration == 30
    # the Callback extension's caller id is shown to both parties by default
    assert call.caller_id == call.caller_id_destination == "Demo Callback <4242500>"
    got = await client.get(
        created["link"]["self"].removeprefix(PUBLIC_URL), headers=await auth(client)
    )
    assert got.status_code == 200 and got.json()["entry"][0]["id"] == created["id"]


async def test_a_callback_nonce_is_idempotent(mock_clock, client, engine) -> None:
    first = await post(client, CALLBACK, callback_body(nonce="cb-1"))
    again = await post(client, CALLBACK, callback_body(nonce="cb-1"))
    assert first.status_code == again.status_code == 202
    assert again.json()[0]["id"] == first.json()[0]["id"]
    assert again.headers["idempotent-replayed"] == "true"
    assert len(engine.live_calls()) == 1


@pytest.mark.parametrize(
    ("body", "params", "code"),
    [
        (callback_body() | {"extension": "210"}, None, "extension_invalid"),  # Phone Terminal
        ({"phoneCallView": [{"source": "+491", "destination": "+492"}]}, None, "extension_invalid"),
        (callback_body() | {"extension": "999"}, None, "extension_invalid"),
        (callback_body(), {"callDuration": "0"}, "pc_duration_invalid"),
        (callback_body(), {"waitForPickup": "-1"}, "pc_timeout_invalid"),
        (callback_body(source="0003*211"), None, "pc_source_invalid"),  # an extension
        (callback_body(source="211"), None, "pc_source_invalid"),
        (callback_body(destination="0003*210"), None, "pc_destination_invalid"),
        (callback_body(view={"callerId": "no brackets"}), None, "pc_callerid_invalid"),
        (callback_body(nonce="bad nonce!"), None, "pc_nonce_invalid"),
    ],
)
async def test_callback_errors(mock_clock, client, body, params, code) -> None:
    assert_error(await post(client, CALLBACK, body, params=params), 400, code)


async def test_a_callback_extension_of_another_user_is_refused(mock_clock, client) -> None:
    response = await post(client, CALLBACK, callback_body(), user="13", kind="org")
    body = assert_error(response, 400, "extension_invalid")
    assert "not owned by user 13" in body["error"]["message"]


async def test_callback_needs_a_token_and_the_users_scope(mock_clock, client) -> None:
    response = await client.post(CALLBACK.format("@me"), json=callback_body())
    assert_error(response, 401, "access_denied")
    assert_error(
        await post(client, CALLBACK, callback_body(), kind="other-org", user="12"),
        403,
        "access_denied",
    )


# --- ConferenceInvite -------------------------------------------------------------------------


async def test_conference_invite_dials_the_number_into_the_conference(
    mock_clock, client, engine
) -> None:
    response = await post(client, INVITE, invite_body(), params={"number": "400"})
    assert response.status_code == 202, response.text
    [created] = response.json()
    assert created["extension"] == "0003*400"  # charged to the conference by default
    call = engine.get_call(created["id"])
    assert call.sources == ["0003*400"] and call.destinations == ["0003*00"]
    await trio.sleep(1.5)  # sandbox *00 answers after 1 s and joins
    assert call.state is CallState.BRIDGED
    assert engine.conferences.size("0003*400") == 1
    got = await client.get(
        created["link"]["self"].removeprefix(PUBLIC_URL), headers=await auth(client)
    )
    [view_room, view_guest] = got.json()["entry"][0]["phoneCallView"]
    assert view_room["status"] == view_guest["status"] == 5  # on call


async def test_conference_invite_with_the_pin_and_a_charged_phone_terminal(
    mock_clock, client, engine
) -> None:
    body = invite_body(extension="210", view={"callerId": "Board <4242401>"})
    params = {"number": "0003*401", "pin": "1234", "waitForPickup": "10"}
    response = await post(client, INVITE, body, params=params)
    assert response.status_code == 202, response.text
    call = engine.get_call(response.json()[0]["id"])
    assert call.extension == "0003*210" and call.wait_for_pickup == 10
    assert call.caller_id_destination == "Board <4242401>"


@pytest.mark.parametrize(
    ("body", "params", "status", "code"),
    [
        (invite_body(), {}, 400, "pc_conference_invalid"),
        (invite_body(), {"number": "210"}, 400, "pc_conference_invalid"),  # a Phone Terminal
        (invite_body(), {"number": "499"}, 400, "pc_conference_invalid"),
        (invite_body(extension="211"), {"number": "400"}, 400, "extension_invalid"),  # user 13's
        (invite_body(extension="300"), {"number": "400"}, 400, "extension_invalid"),  # a queue
        (invite_body(), {"number": "400", "callDuration": "x"}, 400, "pc_duration_invalid"),
        (invite_body(), {"number": "400", "waitForPickup": "0"}, 400, "pc_timeout_invalid"),
        (invite_body(), {"number": "401", "pin": "12a4"}, 400, "pc_pin_invalid"),
        (invite_body(), {"number": "401"}, 400, "pc_pin_invalid"),  # missing
        (invite_body(), {"number": "401", "pin": "9999"}, 400, "pc_pin_invalid"),  # wrong
        ({"phoneCallView": [{}]}, {"number": "400"}, 400, "pc_destination_invalid"),
        (invite_body("0003*401"), {"number": "400"}, 400, "pc_destination_invalid"),
        (invite_body("nope"), {"number": "400"}, 400, "pc_destination_invalid"),
        (invite_body(view={"callerId": "<>"}), {"number": "400"}, 400, "pc_callerid_invalid"),
        (invite_body(nonce=" "), {"number": "400"}, 400, "pc_nonce_invalid"),
    ],
)
async def test_conference_invite_errors(mock_clock, client, engine, body, params, status, code):
    assert_error(await post(client, INVITE, body, params=params), status, code)
    assert engine.live_calls() == []


async def test_a_full_conference_answers_409(mock_clock, client, engine) -> None:
    engine.conferences.capacity = 2
    for _ in range(2):
        ok = await post(client, INVITE, invite_body("0003*08"), params={"number": "400"})
        assert ok.status_code == 202, ok.text
    full = await post(client, INVITE, invite_body("0003*00"), params={"number": "400"})
    body = assert_error(full, 409, "pc_conference_full")
    assert "full" in body["error"]["message"]
    assert len(engine.live_calls()) == 2


async def test_the_create_paths_are_no_extension_of_the_list(mock_clock, client) -> None:
    headers = await auth(client)
    for name in ("callback", "conferenceInvite"):
        response = await client.get(f"/uapi/phoneCalls/@me/{name}", headers=headers)
        assert response.status_code == 405


async def test_the_openapi_document_describes_both_creates(mock_clock, client) -> None:
    document = (await client.get("/uapi/openapi.json")).json()
    callback = document["paths"]["/uapi/phoneCalls/{userId}/callback"]["post"]
    invite = document["paths"]["/uapi/phoneCalls/{userId}/conferenceInvite"]["post"]
    assert [p["name"] for p in callback["parameters"]] == [
        "userId",
        "callDuration",
        "waitForPickup",
    ]
    assert {p["name"] for p in invite["parameters"]} >= {"number", "pin", "waitForPickup"}
    assert "pc_pin_invalid" in invite["responses"]["400"]["description"]
    assert "pc_conference_full" in invite["responses"]["409"]["description"]
    schemas = document["components"]["schemas"]
    assert "destination" in schemas["ConferenceInviteView"]["required"]
    assert callback["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/CallbackCreate"
    }


async def test_a_null_extension_takes_the_conference_and_a_callback_needs_one(
    mock_clock, client, engine
) -> None:
    response = await post(client, INVITE, invite_body(extension=None), params={"number": "400"})
    assert response.status_code == 202, response.text
    assert response.json()[0]["extension"] == "0003*400"
    for body in (callback_body() | {"extension": None}, {"phoneCallView": [{"source": "+491"}]}):
        assert_error(await post(client, CALLBACK, body), 400, "extension_invalid")
