"""Query parameters are models (api/queries.py): the document's parameters come from them and
they answer the first broken rule in the documented order, with the UAPI codes."""

from __future__ import annotations

import pytest
from uapi_helpers import PUBLIC_URL, assert_error, auth, simple_body

from api.openapi import openapi_document
from api.paging import OWN_PARAMETERS, PagingQuery
from api.queries import CdrQuery, CreateQuery, query_parameters

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


def test_the_listings_document_the_paging_models_parameters() -> None:
    paths = openapi_document(PUBLIC_URL)["paths"]
    shared = query_parameters(PagingQuery, exclude=OWN_PARAMETERS)
    assert [p["name"] for p in shared] == [
        "count",
        "startIndex",
        "filterOp",
        "filterValue",
        "sortOrder",
    ]
    assert shared[0]["schema"] == {"type": "integer", "minimum": 1, "maximum": 5000, "default": 20}
    for path in ("/uapi/phoneCalls/{userId}/{extension}", "/uapi/cdr/{ownerId}"):
        documented = paths[path]["get"]["parameters"]
        assert all(p in documented for p in shared), path
        # filterBy and fields name each collection's own fields: the operation documents them
        assert {"filterBy", "fields"} <= {p["name"] for p in documented}, path


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"count": "0", "startIndex": "x", "sortOrder": "up"}, "count_invalid"),
        ({"startIndex": "5001", "filterOp": "like"}, "startindex_invalid"),
        ({"filterOp": "like", "filterBy": "colour"}, "filterop_invalid"),
        ({"filterBy": "colour", "sortOrder": "up"}, "filterby_invalid"),
        ({"filterBy": "published", "sortOrder": "up"}, "filtervalue_invalid"),
        ({"filterBy": "published", "filterValue": "soon"}, "filtervalue_invalid"),
        ({"sortOrder": "up", "fields": "colour"}, "sortorder_invalid"),
        ({"fields": " , "}, "fields_invalid"),
    ],
)
async def test_the_first_broken_paging_rule_is_answered(mock_clock, client, params, code) -> None:
    listing = "/uapi/phoneCalls/@me/@self"
    response = await client.get(listing, params=params, headers=await auth(client))
    assert_error(response, 400, code)


async def test_a_filter_that_is_present_needs_no_value(mock_clock, client) -> None:
    headers = await auth(client)
    await client.post(CREATE, json=simple_body(), headers=headers)
    params = {"filterBy": "published", "filterOp": "present", "fields": "id, published"}
    response = await client.get("/uapi/phoneCalls/@me/@self", params=params, headers=headers)
    assert response.status_code == 200, response.text
    assert set(response.json()["entry"][0]) == {"id", "published"}


def test_the_cdr_operation_documents_the_models_filters() -> None:
    operation = openapi_document(PUBLIC_URL)["paths"]["/uapi/cdr/{ownerId}"]["get"]
    filters = query_parameters(CdrQuery)
    assert [p["name"] for p in filters] == [
        "source",
        "destination",
        "startDate",
        "endDate",
        "disposition",
        "flow",
    ]
    assert all(p in operation["parameters"] for p in filters)
    by_name = {p["name"]: p["schema"] for p in filters}
    assert by_name["startDate"] == {"type": "string", "format": "date-time"}
    assert by_name["flow"] == {"type": "integer", "enum": [2, 4, 8]}


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"source": " ", "startDate": "soon"}, "cdr_source_invalid"),
        ({"destination": "x" * 65, "startDate": "soon"}, "cdr_destination_invalid"),
        ({"startDate": "soon", "endDate": "later"}, "cdr_startdate_invalid"),
        ({"startDate": "2026-02-01", "endDate": "2026-01-01", "flow": "9"}, "cdr_enddate_invalid"),
        ({"disposition": "6", "flow": "9"}, "cdr_disposition_invalid"),
        ({"flow": "9", "count": "0"}, "cdr_flow_invalid"),
    ],
)
async def test_the_first_broken_cdr_rule_is_answered(mock_clock, client, params, code) -> None:
    response = await client.get("/uapi/cdr/@me", params=params, headers=await auth(client))
    assert_error(response, 400, code)


async def test_cdr_filters_that_hold_are_accepted(mock_clock, client) -> None:
    params = {
        "source": " 0003*00 ",
        "startDate": "2026-01-01T00:00:00Z",
        "endDate": "2026-01-01T00:00:00Z",
        "disposition": "0",
        "flow": "2",
    }
    response = await client.get("/uapi/cdr/@me", params=params, headers=await auth(client))
    assert response.status_code in (200, 204), response.text
