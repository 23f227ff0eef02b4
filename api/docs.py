"""``GET /uapi/docs``: the OpenAPI document rendered as one plain HTML page (no CDN, no script)."""

from __future__ import annotations

import html
import json
import logging
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

logger = logging.getLogger(__name__)

STYLE = """
body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}
h2{border-bottom:1px solid #ccc;margin-top:2.5rem}
h3 code{background:#eef;padding:.1rem .4rem;border-radius:.2rem}
table{border-collapse:collapse;width:100%;margin:.5rem 0}
td,th{border:1px solid #ddd;padding:.3rem .5rem;text-align:left;vertical-align:top}
th{background:#f5f5f5}pre{background:#f7f7f7;padding:.5rem;overflow:auto;font-size:.85rem}
"""


def _e(value: Any) -> str:
    return html.escape(str(value))


def _code_text(text: str) -> str:
    """Escape, then show `backticked` words as code."""
    parts = _e(text).split("`")
    return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))


MAX_PATTERN_SHOWN = 80  # longer ones (statusCallback's) stay in the JSON document


def _schema_text(schema: dict[str, Any]) -> str:
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return f'<a href="#schema-{_e(name)}">{_e(name)}</a>'
    for combined in ("oneOf", "anyOf"):
        if combined in schema:
            return " or ".join(_schema_text(s) for s in schema[combined])
    kind = schema.get("type", "object")
    kind_text = kind if isinstance(kind, str) else " | ".join(kind)
    if kind == "array":
        return f"array of {_schema_text(schema.get('items', {}))}"
    choices = schema.get("enum", [schema["const"]] if "const" in schema else None)
    if choices is not None:  # a const is a one-value enum
        values = ", ".join(
            f"<code>{_e(v if isinstance(v, str) else json.dumps(v))}</code>" for v in choices
        )
        return f"{_e(kind_text)}: {values}"
    if 0 < len(schema.get("pattern", "")) <= MAX_PATTERN_SHOWN:
        return f"{_e(kind_text)} matching <code>{_e(schema['pattern'])}</code>"
    return _e(kind_text)


def _parameters(params: list[dict[str, Any]]) -> str:
    if not params:
        return ""
    rows = "".join(
        f"<tr><td><code>{_e(p['name'])}</code></td><td>{_e(p['in'])}</td>"
        f"<td>{_schema_text(p.get('schema', {}))}</td>"
        f"<td>{'yes' if p.get('required') else 'no'}</td>"
        f"<td>{_code_text(p.get('description', ''))}</td></tr>"
        for p in params
    )
    return (
        "<table><tr><th>Parameter</th><th>In</th><th>Type</th><th>Required</th>"
        f"<th>Description</th></tr>{rows}</table>"
    )


def _responses(responses: dict[str, Any]) -> str:
    rows = []
    for status, response in responses.items():
        content = response.get("content", {})
        kinds = ", ".join(
            f"{_e(media)}: {_schema_text(body.get('schema', {}))}"
            for media, body in content.items()
        )
        rows.append(
            f"<tr><td>{_e(status)}</td><td>{_code_text(response.get('description', ''))}</td>"
            f"<td>{kinds}</td></tr>"
        )
    return (
        "<table><tr><th>Status</th><th>Meaning</th><th>Body</th></tr>" + "".join(rows) + "</table>"
    )


def render_docs(spec: dict[str, Any]) -> str:
    info = spec.get("info", {})
    out = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{_e(info.get('title', 'API'))}</title><style>{STYLE}</style></head><body>",
        f"<h1>{_e(info.get('title', 'API'))}</h1><p>{_code_text(info.get('description', ''))}</p>",
        "<p>Machine-readable: <a href='/uapi/openapi.json'>/uapi/openapi.json</a></p>",
        "<h2>Operations</h2>",
    ]
    for path, item in spec.get("paths", {}).items():
        shared = item.get("parameters", [])
        for method in ("get", "post", "put", "delete"):
            operation = item.get(method)
            if operation is None:
                continue
            out.append(f"<h3><code>{method.upper()} {_e(path)}</code></h3>")
            out.append(f"<p><b>{_e(operation.get('summary', ''))}</b></p>")
            if operation.get("description"):
                out.append(f"<p>{_code_text(operation['description'])}</p>")
            out.append(_parameters(shared + operation.get("parameters", [])))
            body = operation.get("requestBody")
            if body:
                kinds = ", ".join(
                    f"{_e(media)}: {_schema_text(b.get('schema', {}))}"
                    for media, b in body.get("content", {}).items()
                )
                out.append(f"<p>Request body: {kinds}</p>")
            out.append(_responses(operation.get("responses", {})))
    out.append("<h2>Schemas</h2>")
    for name, schema in spec.get("components", {}).get("schemas", {}).items():
        out.append(f"<h3 id='schema-{_e(name)}'><code>{_e(name)}</code></h3>")
        if schema.get("description"):
            out.append(f"<p>{_code_text(schema['description'])}</p>")
        required = set(schema.get("required", []))
        rows = "".join(
            f"<tr><td><code>{_e(field)}</code>{' (required)' if field in required else ''}</td>"
            f"<td>{_schema_text(sub)}</td><td>{_code_text(sub.get('description', ''))}</td></tr>"
            for field, sub in schema.get("properties", {}).items()
        )
        if rows:
            out.append(f"<table><tr><th>Field</th><th>Type</th><th>Notes</th></tr>{rows}</table>")
    out.append("<h2>Raw document</h2><details><summary>JSON</summary><pre>")
    out.append(_e(json.dumps(spec, indent=2)))
    out.append("</pre></details></body></html>")
    return "".join(out)


async def docs_page(request: Request) -> Response:
    return HTMLResponse(render_docs(request.app.state.openapi))
