"""The served document's schemas of the token request, the path values, the collection
envelopes and the DELETE answer are their models' JSON schemas (so the two cannot drift), and
the checks refuse exactly what those schemas refuse, with the same codes as before."""

from __future__ import annotations

import inspect
from typing import Any

import pytest
from pydantic import BaseModel
from schema_check import problems
from uapi_helpers import auth, simple_body

from api import jsonschema, pathparams, resources, token_request
from api.errors import ApiError

COMPONENTS: list[tuple[type[BaseModel], type[jsonschema.GenerateJsonSchema], str]] = [
    (token_request.TokenRequest, jsonschema.QuerySchema, "validation"),
    (resources.PhoneCallCollection, jsonschema.ResourceSchema, "serialization"),
    (resources.PhoneCallStatCollection, jsonschema.ResourceSchema, "serialization"),
    (resources.HungUpCollection, jsonschema.ResourceSchema, "serialization"),
    (resources.PageLinks, jsonschema.ResourceSchema, "serialization"),
    (resources.CreatedPhoneCall, jsonschema.ResourceSchema, "serialization"),
]
CALL = "/uapi/phoneCalls/{userId}/{extension}/{phoneCallId}"
PATHS: list[tuple[str, type[BaseModel]]] = [
    ("/uapi/phoneCalls/{userId}/simple", pathparams.SimplePath),
    ("/uapi/phoneCalls/{userId}/{extension}", pathparams.ExtensionPath),
    (CALL, pathparams.PhoneCallPath),
    (CALL + "/events", pathparams.PhoneCallPath),
    ("/uapi/cdr/{ownerId}", pathparams.CdrPath),
]


def _model_schema(
    model: type[BaseModel], generator: type[jsonschema.GenerateJsonSchema], mode: Any, served: dict
) -> dict[str, Any]:
    """pydantic's schema of ``model``, with what the document leaves out left out: titles,
    docstrings, and models it writes out where they are used instead of as components."""
    schema = model.model_json_schema(
        mode=mode, ref_template=jsonschema.REF_TEMPLATE, schema_generator=generator
    )
    defs = schema.pop("$defs", {})

    def plain(value: Any, owner: type[BaseModel] | None = None) -> Any:
        if isinstance(value, list):
            return [plain(item) for item in value]
        if not isinstance(value, dict):
            return value
        name = str(value.get("$ref", "")).rsplit("/", 1)[-1]
        if name and name not in served:
            return plain(defs[name])
        out = {key: plain(item) for key, item in value.items() if key != "title"}
        if owner is not None and out.get("description") == inspect.cleandoc(owner.__doc__ or ""):
            del out["description"]
        return out

    return plain(schema, model)


@pytest.mark.parametrize(
    ("model", "generator", "mode"), COMPONENTS, ids=[m.__name__ for m, *_ in COMPONENTS]
)
async def test_served_component_is_the_model_schema(
    mock_clock, client, model, generator, mode
) -> None:
    served = (await client.get("/uapi/openapi.json")).json()["components"]["schemas"]
    assert served[model.__name__] == _model_schema(model, generator, mode, served)


@pytest.mark.parametrize(("path", "model"), PATHS, ids=[p for p, _ in PATHS])
async def test_served_path_parameters_are_the_model_fields(mock_clock, client, path, model) -> None:
    item = (await client.get("/uapi/openapi.json")).json()["paths"][path]
    for operation in (
        item[method] for method in ("get", "post", "put", "delete") if method in item
    ):
        declared = [
            p
            for p in item.get("parameters", []) + operation.get("parameters", [])
            if p["in"] == "path"
        ]
        fields = model.model_json_schema(schema_generator=jsonschema.QuerySchema)["properties"]
        assert [p["name"] for p in declared] == list(fields)
        for parameter in declared:
            assert parameter["required"] is True
            described = {**parameter["schema"], "description": parameter["description"]}
            assert described == {k: v for k, v in fields[parameter["name"]].items() if k != "title"}


SAMPLES = {
    "userId": [
        "@me",
        "@viewer",
        "@owner",
        "12",
        "0",
        "9" * 18,
        "9" * 19,
        "",
        "abc",
        "-1",
        "12.0",
        "@them",
        "@self",
        "1 2",
        "١٢",
    ],
    "ownerId": ["@me", "@viewer", "@owner", "12", "9" * 19, "x", ""],
    "extension": [
        "210",
        "0003*210",
        "@self",
        "@me",
        "0003*",
        "*210",
        "21a",
        "0003**210",
        "1" * 16,
        "1" * 17,
        "0003*" + "1" * 17,
        "+210",
        "",
    ],
    "phoneCallId": ["0123456789abcdef0123", "ABCDEF", "a" * 64, "a" * 65, "not-hex!", "", "g"],
}
TYPES = {
    "userId": (pathparams.USER_OR_OWNER_REF, "user_invalid"),
    "ownerId": (pathparams.USER_REF, "user_invalid"),
    "extension": (pathparams.EXTENSION_REF, "extension_invalid"),
    "phoneCallId": (pathparams.PHONE_CALL_ID, "pc_not_found"),
}


async def test_path_types_refuse_what_their_published_schema_refuses(mock_clock, client) -> None:
    spec = (await client.get("/uapi/openapi.json")).json()
    schemas = {
        p["name"]: p["schema"]
        for path, _ in PATHS
        for p in spec["paths"][path].get("parameters", [])
        + [
            q
            for op in spec["paths"][path].values()
            if isinstance(op, dict)
            for q in op.get("parameters", [])
        ]
        if p["in"] == "path"
    }
    assert set(schemas) == set(SAMPLES)
    for name, values in SAMPLES.items():
        kind, code = TYPES[name]
        for value in values:
            documented = not problems(value, schemas[name], spec)
            try:
                pathparams.path_value(kind, value)
                accepted = True
            except ApiError as exc:
                assert exc.code == code, (name, value)
                accepted = False
            assert accepted == documented, (name, value)


async def test_path_values_are_checked_in_the_documented_order(mock_clock, client) -> None:
    user = await auth(client)
    base = "/uapi/phoneCalls"

    async def error(url: str) -> tuple[int, str]:
        response = await client.get(url, headers=user)
        return response.status_code, response.json()["error"]["code"]

    # userId first: a malformed one is user_invalid whatever follows
    assert await error(f"{base}/x1/21a/zz") == (400, "user_invalid")
    # then whether the App may act for the user: before the extension is looked at
    assert await error(f"{base}/13/21a") == (403, "access_denied")
    assert await error(f"{base}/@me/21a/zz") == (400, "extension_invalid")
    assert await error(f"{base}/@owner/21a") == (400, "extension_invalid")
    assert await error(f"{base}/@owner/@self") == (400, "user_invalid")
    # then the query, then the call id
    assert await error(f"{base}/@me/210/zz?count=0") == (400, "count_invalid")
    assert await error(f"{base}/@me/210/zz") == (404, "pc_not_found")
    assert await error("/uapi/cdr/@owner") == (400, "user_invalid")
    response = await client.post(f"{base}/x1/simple", headers=user, json=simple_body())
    assert (response.status_code, response.json()["error"]["code"]) == (400, "user_invalid")


@pytest.mark.parametrize(
    ("form", "status", "error"),
    [
        ({}, 400, "invalid_request"),
        ({"grant_type": "", "client_id": "a", "client_secret": "b"}, 400, "invalid_request"),
        ({"grant_type": "password"}, 400, "unsupported_grant_type"),
        ({"grant_type": "client_credentials"}, 401, "invalid_client"),
        ({"grant_type": "client_credentials", "client_id": "demo-user-app"}, 401, "invalid_client"),
        ({"grant_type": "client_credentials", "client_secret": "x"}, 401, "invalid_client"),
    ],
)
async def test_token_request_rules_answer_their_oauth_errors(
    mock_clock, client, form, status, error
) -> None:
    response = await client.post("/oauth/token.php", data=form)
    assert response.status_code == status
    assert response.json()["error"] == error
    assert response.headers["Cache-Control"] == "no-store"


async def test_collections_are_filled_by_their_models(mock_clock, client, engine) -> None:
    # the answers a client gets hold exactly the envelope's fields, in the model's order
    headers = await auth(client)
    created = await client.post(
        "/uapi/phoneCalls/@me/simple", headers=headers, json=simple_body(source="0003*08")
    )
    call_id = created.json()[0]["id"]
    listing = await client.get(
        "/uapi/phoneCalls/@me/@self", headers=headers, params={"fields": "id,state"}
    )
    assert list(listing.json()) == list(resources.PhoneCallCollection.model_fields)
    [entry] = listing.json()["entry"]
    assert entry["id"] == call_id and set(entry) == {"id", "state"}
    assert set(listing.json()["links"]) == {"self"}
    one = await client.get(f"/uapi/phoneCalls/@me/210/{call_id}", headers=headers)
    assert list(one.json()) == ["entry"]
    hung_up = await client.delete(f"/uapi/phoneCalls/@me/210/{call_id}", headers=headers)
    assert hung_up.json() == {"entry": [{"id": call_id}]}
