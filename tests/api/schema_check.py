"""A small JSON Schema checker for the subset the OpenAPI document uses (type, required,
properties, additionalProperties, items, enum, const, minimum/maximum, pattern, $ref, oneOf,
anyOf), so tests can hold real responses against the published document without a new
dependency."""

from __future__ import annotations

import re
from typing import Any

TYPES = {
    "object": dict,
    "array": list,
    "string": str,
    "integer": int,
    "number": (int, float),
    "boolean": bool,
    "null": type(None),
}


def _is(value: Any, kind: str) -> bool:
    if kind in ("integer", "number") and isinstance(value, bool):
        return False
    return isinstance(value, TYPES[kind])


def problems(
    value: Any, schema: dict[str, Any], spec: dict[str, Any], where: str = "$"
) -> list[str]:
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return problems(value, spec["components"]["schemas"][name], spec, where)
    if "oneOf" in schema:
        matching = [s for s in schema["oneOf"] if not problems(value, s, spec, where)]
        return [] if len(matching) == 1 else [f"{where}: matches {len(matching)} of oneOf"]
    if "anyOf" in schema:
        if any(not problems(value, s, spec, where) for s in schema["anyOf"]):
            return []
        return [f"{where}: matches none of anyOf"]
    found: list[str] = []
    kinds = schema.get("type")
    if kinds is not None:
        kinds = [kinds] if isinstance(kinds, str) else kinds
        if not any(_is(value, k) for k in kinds):
            return [f"{where}: {value!r} is not {kinds}"]
    if "const" in schema and value != schema["const"]:
        found.append(f"{where}: {value!r} != {schema['const']!r}")
    if "enum" in schema and value not in schema["enum"]:
        found.append(f"{where}: {value!r} not in {schema['enum']}")
    if isinstance(value, int | float) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            found.append(f"{where}: {value} < {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            found.append(f"{where}: {value} > {schema['maximum']}")
    if isinstance(value, str) and "pattern" in schema and not re.search(schema["pattern"], value):
        found.append(f"{where}: {value!r} does not match {schema['pattern']}")
    if isinstance(value, dict):
        for name in schema.get("required", []):
            if name not in value:
                found.append(f"{where}: missing {name}")
        properties = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        for name, item in value.items():
            if name in properties:
                found += problems(item, properties[name], spec, f"{where}.{name}")
            elif isinstance(extra, dict):
                found += problems(item, extra, spec, f"{where}.{name}")
            elif properties:
                found.append(f"{where}: undocumented field {name}")
    if isinstance(value, list) and "items" in schema:
        for index, item in enumerate(value):
            found += problems(item, schema["items"], spec, f"{where}[{index}]")
    return found


def response_problems(spec: dict[str, Any], path: str, method: str, response: Any) -> list[str]:
    """Check a httpx response against the documented response of ``method path``."""
    operation = spec["paths"][path][method.lower()]
    documented = operation["responses"].get(str(response.status_code))
    if documented is None:
        return [f"status {response.status_code} is not documented for {method} {path}"]
    content = documented.get("content")
    if not content:
        return [] if not response.content else ["a body where none is documented"]
    media = response.headers["content-type"].split(";")[0]
    if media not in content:
        return [f"content type {media} is not documented"]
    if media != "application/json":
        return []
    return problems(response.json(), content[media]["schema"], spec)
