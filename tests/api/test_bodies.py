"""The request bodies are models (api/create_bodies.py, api/action_body.py): the document's
schemas come from them and they answer the first broken rule in the order of checks of
api/create.py, the directory's rules (numbers that resolve, caller ids an extension may set)
between the shape rules."""

from __future__ import annotations

from typing import get_args

import pytest
from uapi_helpers import PUBLIC_URL, assert_error, auth, simple_body

from api.action_body import ENGINE_ACTIONS, NOT_IMPLEMENTED_ACTIONS, ActionName, PhoneCallAction
from api.create_bodies import PhoneCallCreate
from api.errors import ApiError
from api.openapi import openapi_document
from api.openapi.schemas import request_schemas
from api.phonecalls import check_action

CREATE = "/uapi/phoneCalls/@me/simple"
SCHEMAS_OF_MODELS = request_schemas()


async def _post(client, body, params=None):
    return await client.post(CREATE, json=body, params=params, headers=await auth(client))


def test_the_document_publishes_the_models_schemas() -> None:
    published = openapi_document(PUBLIC_URL)["components"]["schemas"]
    for name, schema in request_schemas().items():
        assert published[name] == schema, name
    assert {"PhoneCallCreate", "PhoneCallViewCreate", "PhoneCallAction"} <= set(published)
    create = published["PhoneCallCreate"]
    assert create["required"] == ["phoneCallView"]
    assert create["properties"]["phoneCallView"]["items"] == {
        "$ref": "#/components/schemas/PhoneCallViewCreate"
    }
    # optional values read null as left out: the document says so as a type list
    assert published["PhoneCallAction"]["properties"]["format"] == {
        "type": ["string", "null"],
        "enum": ["wav", "wav49", None],
    }
    assert set(PhoneCallCreate.model_fields) == set(create["properties"])
    assert set(PhoneCallAction.model_fields) == set(published["PhoneCallAction"]["properties"])


async def test_a_source_that_does_not_resolve_is_answered_before_a_bad_destination(
    mock_clock, client
) -> None:
    body = simple_body(source="0003*999", destination=5)
    response = assert_error(await _post(client, body), 400, "pc_source_invalid")
    assert "'0003*999' cannot be called" in response["error"]["message"]


async def test_a_missing_destination_names_the_destination(mock_clock, client) -> None:
    body = {"extension": "0003*210", "phoneCallView": [{"source": "0003*00"}]}
    response = assert_error(await _post(client, body), 400, "pc_destination_invalid")
    assert response["error"]["message"].startswith("destination is missing")


async def test_a_forbidden_caller_id_is_answered_before_a_bad_nonce(mock_clock, client) -> None:
    # 0003*212 has allow_caller_id = false
    body = simple_body(view={"callerId": "A <123>"}, nonce="bad nonce!")
    body["extension"] = "0003*212"
    response = assert_error(await _post(client, body), 400, "pc_callerid_invalid")
    assert response["error"]["message"] == "You are not allowed to set the callerid field."


async def test_the_query_is_checked_before_the_body(mock_clock, client) -> None:
    body = simple_body(source=7)
    response = await _post(client, body, params={"callDuration": "0"})
    assert_error(response, 400, "pc_duration_invalid")


async def test_the_body_nonce_wins_over_the_views(mock_clock, client, engine) -> None:
    body = simple_body(view={"nonce": "not a nonce!"}, nonce="order-7")
    response = await _post(client, body)
    assert response.status_code == 202, response.text
    assert engine.get_call(response.json()[0]["id"]).nonce == "order-7"
    only_view = simple_body(view={"nonce": "not a nonce!"})
    assert_error(await _post(client, only_view), 400, "pc_nonce_invalid")


async def test_a_status_callback_is_checked_last(mock_clock, client) -> None:
    body = simple_body(nonce="x" * 200, statusCallback="ftp://h/")
    assert_error(await _post(client, body), 400, "pc_nonce_invalid")


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({}, 400, "pc_action_invalid"),
        ({"action": "Dance", "format": "mp3"}, 400, "pc_action_invalid"),
        ({"action": "Transfer", "format": "mp3"}, 400, "pc_action_invalid"),
        ({"action": "Transfer", "waitForPickup": 0}, 400, "pc_timeout_invalid"),
        ({"action": "Transfer"}, 400, "pc_sendcallto_invalid"),
    ],
)
def test_actions_answer_the_first_broken_rule(body, status: int, code: str) -> None:
    with pytest.raises(ApiError) as caught:
        check_action(body)
    assert (caught.value.status, caught.value.code) == (status, code)


def test_an_action_reads_both_spellings_of_wait_for_pickup() -> None:
    lower = check_action({"action": "Transfer", "sendCallTo": " 211 ", "waitForPickup": "2.5"})
    assert (lower.send_call_to, lower.wait_for_pickup) == ("211", 3)
    both = check_action({"action": "OnHold", "waitForPickUp": 4, "waitForPickup": "x"})
    assert both.wait_for_pickup == 4


def test_the_published_actions_are_the_ones_the_server_knows() -> None:
    published = SCHEMAS_OF_MODELS["PhoneCallAction"]["properties"]["action"]["enum"]
    assert sorted(published) == sorted(ENGINE_ACTIONS + NOT_IMPLEMENTED_ACTIONS)
    assert set(get_args(ActionName)) == set(published)
