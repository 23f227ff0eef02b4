"""The OpenAPI document matches the routes, resolves, and names every error code the code uses."""

from __future__ import annotations

import json
import re
from pathlib import Path

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
