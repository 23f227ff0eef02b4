"""The OpenAPI document matches the routes, resolves, and names every error code the code uses."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from schema_check import response_problems
from uapi_helpers import auth, simple_body, wait_until

import api.app
from api.app import routes

METHODS = {"get", "post", "put", "delete"}


async def test_openapi_document_matches_the_routes(mock_clock, client) -> None:
    response = await client.get("/uapi/openapi.json")
    assert response.status_code == 200
    spec = response.json()
    assert spec["openapi"].startswith("3.1")
    documented = {
        (path, method.upper())
        for path, item in spec["paths"].items()
        for method in item
        if method in METHODS
    }
    routed = {
        (route.path, method)
        for route in routes()
        for method in (route.methods or set())
        if method != "HEAD"
    }
    assert documented == routed


async def test_every_ref_resolves_and_path_parameters_are_declared(mock_clock, client) -> None:
    spec = (await client.get("/uapi/openapi.json")).json()
    text = json.dumps(spec)
    for ref in re.findall(r'"\$ref": "#/components/schemas/([A-Za-z]+)"', text):
        assert ref in spec["components"]["schemas"], ref
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if method not in METHODS:
                continue
            assert operation["responses"], (path, method)
            params = item.get("parameters", []) + operation.get("parameters", [])
            declared = {p["name"] for p in params if p["in"] == "path"}
            assert declared == set(re.findall(r"{(\w+)}", path)), (path, method)


async def test_every_error_code_in_the_code_is_documented(mock_clock, client) -> None:
    spec_text = (await client.get("/uapi/openapi.json")).text
    source = "\n".join(p.read_text() for p in Path(api.app.__file__).parent.glob("*.py"))
    codes = set(re.findall(r'(?:ApiError\(\s*\d{3},\s*|_bad\(\s*)"([a-z_]+)"', source))
    suffixes = "invalid|found|denied|implemented|unavailable|large|error|allowed"
    codes |= set(re.findall(rf'"([a-z][a-z_]*_(?:{suffixes}))"', source))
    assert len(codes) > 35
    missing = sorted(code for code in codes if f"`{code}`" not in spec_text)
    assert not missing


async def test_docs_page_is_self_contained_html(mock_clock, client) -> None:
    response = await client.get("/uapi/docs")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    page = response.text
    spec = (await client.get("/uapi/openapi.json")).json()
    for path in spec["paths"]:
        assert path.replace("{", "{") in page
    assert "<script" not in page and "cdn" not in page.lower()
    assert "pc_callerid_invalid" in page


async def test_real_responses_match_the_documented_schemas(mock_clock, client, engine) -> None:
    spec = (await client.get("/uapi/openapi.json")).json()
    headers = await auth(client)
    one = "/uapi/phoneCalls/{userId}/{extension}/{phoneCallId}"
    listing = "/uapi/phoneCalls/{userId}/{extension}"
    exchanges = []

    async def check(path: str, method: str, url: str, **kw: Any) -> Any:
        response = await client.request(method, url, **kw)
        exchanges.append((path, method, url, response))
        return response

    await check(
        "/oauth/token.php",
        "POST",
        "/oauth/token.php",
        data={"grant_type": "client_credentials", "client_id": "x", "client_secret": "y"},
    )
    await check(
        "/oauth/token.php",
        "POST",
        "/oauth/token.php",
        data={
            "grant_type": "client_credentials",
            "client_id": "demo-user-app",
            "client_secret": "demo-user-secret",
        },
    )
    create = "/uapi/phoneCalls/{userId}/simple"
    created = await check(
        create,
        "POST",
        "/uapi/phoneCalls/@me/simple",
        headers=headers,
        json=simple_body(nonce="schema-1"),
        params={"callDuration": "4"},
    )
    call_id = created.json()[0]["id"]
    await check(create, "POST", "/uapi/phoneCalls/@me/simple", headers=headers, json={})
    await check(create, "POST", "/uapi/phoneCalls/13/simple", headers=headers, json=simple_body())
    await check(create, "POST", "/uapi/phoneCalls/@me/simple", json=simple_body())
    await check(one, "GET", f"/uapi/phoneCalls/@me/210/{call_id}", headers=headers)
    await check(listing, "GET", "/uapi/phoneCalls/@me/@self", headers=headers)
    await check(
        listing,
        "GET",
        "/uapi/phoneCalls/@me/@self",
        headers=headers,
        params={"fields": "id,answered"},
    )
    await check(listing, "GET", "/uapi/phoneCalls/@me/0003*212", headers=headers)
    await wait_until(lambda: engine.get_call(call_id).ended is not None)
    await check(one, "GET", f"/uapi/phoneCalls/@me/210/{call_id}", headers=headers)
    await check(one, "GET", "/uapi/phoneCalls/@me/210/0123456789abcdef0123", headers=headers)
    await check(
        one,
        "PUT",
        f"/uapi/phoneCalls/@me/210/{call_id}",
        headers=headers,
        json={"action": "OnHold"},
    )
    await check(one, "DELETE", f"/uapi/phoneCalls/@me/210/{call_id}", headers=headers)
    ringing = await check(
        create,
        "POST",
        "/uapi/phoneCalls/@me/simple",
        headers=headers,
        json=simple_body(source="0003*08"),
    )
    # a media backend that cannot mix (rtpengine) answers the listen-ins 501
    engine.mixing_unavailable = "listen-in is not available with this media backend"
    await check(
        one,
        "PUT",
        f"/uapi/phoneCalls/@me/210/{ringing.json()[0]['id']}",
        headers=headers,
        json={"action": "Monitor", "sendCallTo": "212"},
    )
    await check(listing, "DELETE", "/uapi/phoneCalls/@me/210", headers=headers)
    await check(
        one + "/events",
        "GET",
        f"/uapi/phoneCalls/@me/210/{ringing.json()[0]['id']}/events",
        headers=headers,
    )
    await check("/uapi/cdr/{ownerId}", "GET", "/uapi/cdr/@me", headers=headers)
    await check(
        "/uapi/cdr/{ownerId}", "GET", "/uapi/cdr/@me", headers=headers, params={"flow": "9"}
    )
    await check(
        "/uapi/cdr/{ownerId}", "GET", "/uapi/cdr/@me", headers=headers, params={"flow": "4"}
    )
    assert {r.status_code for *_, r in exchanges} >= {200, 202, 204, 400, 401, 403, 404, 409, 501}
    for path, method, url, response in exchanges:
        assert not response_problems(spec, path, method, response), (method, url, response.text)


async def test_the_schema_checker_sees_mistakes(mock_clock, client) -> None:
    from schema_check import problems

    spec = (await client.get("/uapi/openapi.json")).json()
    error = {"$ref": "#/components/schemas/Error"}
    assert not problems({"error": {"code": "x", "message": "y"}}, error, spec)
    assert problems({"error": {"code": "x"}}, error, spec)  # message missing
    call = {"$ref": "#/components/schemas/PhoneCall"}
    assert problems({"id": "a", "colour": "red"}, call, spec)  # undocumented field
    assert problems({"id": "a", "phoneCallView": [{"id": "00", "status": 9}]}, call, spec)
    assert problems({"id": "a", "ownerId": "3"}, call, spec)
