"""The resources the API returns are models (api/resources.py): the renderers fill them and
the OpenAPI document's schemas are generated from them."""

from __future__ import annotations

from datetime import UTC, datetime

from uapi_helpers import PUBLIC_URL, auth, create_call, wait_until

from api.errors import error_body
from api.events import event_payload
from api.openapi import openapi_document
from api.render import PHONE_CALL_FIELDS
from api.resources import CallEvent, PhoneCall, PhoneCallStat, PhoneCallView, component_schemas
from engine.engine import CallEvent as EngineEvent


def test_the_document_publishes_the_resource_models_schemas() -> None:
    published = openapi_document(PUBLIC_URL)["components"]["schemas"]
    generated = component_schemas()
    names = {"Error", "OAuthToken", "OAuthError", "PhoneCall", "PhoneCallView", "PhoneCallStat"}
    assert names | {"CallEvent"} <= set(generated)
    assert published["CallEvent"]["description"].startswith("One state change")
    for name, schema in generated.items():
        assert published[name] == schema, name
    # optional fields are left out while null, so the document gives their type alone
    assert published["PhoneCall"]["properties"]["answered"]["type"] == "string"
    assert published["PhoneCall"]["required"] == ["id"]
    # the error shape is written out where it is used, not as a component of its own
    assert published["Error"]["properties"]["error"]["required"] == ["code", "message"]
    assert "ErrorDetail" not in published and "SelfLink" not in published


def test_fields_names_are_the_resources_fields() -> None:
    assert tuple(PhoneCall.model_fields) == PHONE_CALL_FIELDS
    assert "phoneCallView" in PHONE_CALL_FIELDS and "links" in PHONE_CALL_FIELDS


def test_the_error_body_is_the_error_shape() -> None:
    assert error_body("pc_not_found", "No PhoneCall") == {
        "error": {"code": "pc_not_found", "message": "No PhoneCall"}
    }


async def test_a_rendered_call_reads_back_as_the_model(mock_clock, client) -> None:
    headers = await auth(client)
    call_id = await create_call(client, headers)
    response = await client.get(f"/uapi/phoneCalls/@me/210/{call_id}", headers=headers)
    [entry] = response.json()["entry"]
    assert PhoneCall.model_validate(entry).id == call_id
    assert None not in entry.values()  # null fields are left out
    views = [PhoneCallView.model_validate(view) for view in entry["phoneCallView"]]
    assert [view.id for view in views] == ["00", "01"]
    assert {view.role for view in views} == {"source", "destination"}
    only = await client.get(
        f"/uapi/phoneCalls/@me/210/{call_id}", params={"fields": "answered"}, headers=headers
    )
    assert set(only.json()["entry"][0]) <= {"id", "answered"}


def test_a_call_event_payload_is_the_model_with_every_field() -> None:
    at = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    event = EngineEvent("abc", 3, "ringing", "calling_source", at, {"party": "0003*00"}, False)
    payload = event_payload(event)
    assert payload == {
        "phoneCallId": "abc",
        "seq": 3,
        "event": "ringing",
        "state": "calling_source",
        "at": "2026-01-02T03:04:05Z",
        "final": False,
        "data": {"party": "0003*00"},
    }
    assert CallEvent.model_validate(payload).seq == 3


async def test_a_cdr_record_reads_back_as_the_model(mock_clock, client, engine) -> None:
    headers = await auth(client)
    call_id = await create_call(client, headers, params={"callDuration": "1"})
    await wait_until(lambda: engine.get_call(call_id).ended is not None)
    response = await client.get("/uapi/cdr/@me", headers=headers)
    assert response.status_code == 200, response.text
    [record] = [r for r in response.json()["entry"] if r["id"] == call_id]
    assert None not in record.values()
    assert PhoneCallStat.model_validate(record).destinations == ["0003*01"]
    only = await client.get("/uapi/cdr/@me", params={"fields": "flow"}, headers=headers)
    assert all(set(entry) <= {"id", "flow"} for entry in only.json()["entry"])
