"""The resources the API returns are models (api/resources.py): the renderers fill them and
the OpenAPI document's schemas are generated from them."""

from __future__ import annotations

from uapi_helpers import PUBLIC_URL, auth, create_call

from api.errors import error_body
from api.openapi import openapi_document
from api.render import PHONE_CALL_FIELDS
from api.resources import PhoneCall, PhoneCallView, component_schemas


def test_the_document_publishes_the_resource_models_schemas() -> None:
    published = openapi_document(PUBLIC_URL)["components"]["schemas"]
    generated = component_schemas()
    assert {"Error", "OAuthToken", "OAuthError", "PhoneCall", "PhoneCallView"} <= set(generated)
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
