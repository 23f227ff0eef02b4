"""Query parameters are models (api/queries.py): the document's parameters come from them and
they answer the first broken rule in the documented order, with the UAPI codes."""

from __future__ import annotations

import pytest
from uapi_helpers import PUBLIC_URL, assert_error, auth, simple_body

from api.openapi import openapi_document
from api.queries import CreateQuery, query_parameters

CREATE = "/uapi/phoneCalls/@me/simple"


def test_the_create_operation_documents_the_models_parameters() -> None:
    operation = openapi_document(PUBLIC_URL)["paths"]["/uapi/phoneCalls/{userId}/simple"]["post"]
    documented = [p for p in operation["parameters"] if p["in"] == "query"]
    assert documented == query_parameters(CreateQuery)
    by_name = {p["name"]: p for p in documented}
    assert set(by_name) == {"callDuration", "waitForPickup", "allowPublicTransfer", "video"}
    assert by_name["waitForPickup"]["schema"] == {
        "type": "number",
        "exclusiveMinimum": 0,
        "maximum": 604800,
    }
    assert by_name["video"]["schema"] == {"type": "boolean", "default": False}
    assert "`pc_duration_invalid`" in by_name["callDuration"]["description"]


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"callDuration": "1.5", "waitForPickup": "0"}, "pc_duration_invalid"),
        ({"waitForPickup": "0", "allowPublicTransfer": "yes"}, "pc_timeout_invalid"),
        ({"waitForPickUp": "-1"}, "pc_timeout_invalid"),
        ({"allowPublicTransfer": "1", "video": "no"}, "pc_transfer_invalid"),
        ({"video": "no"}, "pc_video_invalid"),
    ],
)
async def test_the_first_broken_query_rule_is_answered(mock_clock, client, params, code) -> None:
    response = await client.post(
        CREATE, json=simple_body(source=5), params=params, headers=await auth(client)
    )
    assert_error(response, 400, code)


async def test_query_values_reach_the_call(mock_clock, client, engine) -> None:
    params = {"waitForPickUp": "2.5", "callDuration": "9", "video": " TRUE "}
    response = await client.post(
        CREATE, json=simple_body(), params=params, headers=await auth(client)
    )
    assert response.status_code == 202, response.text
    call = engine.get_call(response.json()[0]["id"])
    assert (call.wait_for_pickup, call.call_duration) == (3, 9)
