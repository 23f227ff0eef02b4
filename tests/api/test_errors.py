"""Every failure is a UAPI error body: unknown routes, wrong methods, crashes, heads too large,
WebSocket handshakes, and the answers the HTTP server writes itself."""

from __future__ import annotations

import json

from uapi_helpers import assert_error, auth

from api.errors import MAX_HEAD_BYTES, ErrorGuard, head_size
from api.serving import server_error_body


async def test_unknown_routes_are_404_in_uapi_shape(mock_clock, client) -> None:
    for path in [
        "/",
        "/uapi/",
        "/uapi/nothing",
        "/uapi/phoneCalls",
        "/uapi/phoneCalls/@me/a/b/c/d",
    ]:
        response = await client.get(path)
        assert_error(response, 404, "not_found")
        assert response.headers["content-type"] == "application/json"


async def test_wrong_methods_are_405_in_uapi_shape(mock_clock, client) -> None:
    headers = await auth(client)
    for method, path in [
        ("GET", "/oauth/token.php"),
        ("PUT", "/uapi/phoneCalls/@me/simple"),
        ("POST", "/uapi/phoneCalls/@me/0003*210"),
        ("PUT", "/uapi/phoneCalls/@me/0003*210"),
        ("PATCH", "/uapi/phoneCalls/@me/0003*210/0123456789abcdef0123"),
        ("POST", "/uapi/cdr/@me"),
        ("DELETE", "/uapi/openapi.json"),
    ]:
        response = await client.request(method, path, headers=headers)
        assert_error(response, 405, "method_not_allowed")
        assert response.headers.get("allow")


async def test_a_crash_is_a_500_uapi_error_not_a_traceback(mock_clock, client, engine) -> None:
    headers = await auth(client)

    def broken(*args, **kwargs):
        raise RuntimeError("disk on fire")

    engine.aget_call = broken
    response = await client.get("/uapi/phoneCalls/@me/@self/0123456789abcdef0123", headers=headers)
    body = assert_error(response, 500, "internal_server_error")
    assert "fire" not in body["error"]["message"]  # internals stay in the log


async def test_odd_but_harmless_input_never_crashes(mock_clock, client) -> None:
    headers = await auth(client)
    for path in [
        "/uapi/phoneCalls/%00/simple",
        "/uapi/phoneCalls/@me/%E2%82%AC/0123",
        "/uapi/phoneCalls/@me/@self/" + "a" * 5000,
        "/uapi/cdr/" + "9" * 400,
    ]:
        for method in ["GET", "POST", "DELETE", "PUT"]:
            response = await client.request(method, path, headers=headers, content=b"{}")
            assert response.status_code < 500, (method, path, response.text)
            assert "error" in response.json()


async def test_a_trailing_slash_is_served_like_the_path_without_it(mock_clock, client) -> None:
    headers = await auth(client)
    assert (await client.get("/uapi/phoneCalls/@me/@self/", headers=headers)).status_code == 204
    assert (await client.get("/uapi/openapi.json/")).status_code == 200


async def test_a_head_over_the_limit_is_431_in_uapi_shape(mock_clock, client) -> None:
    # the same limit as hypercorn's h11_max_incomplete_size (api.serving), but whole heads
    # that arrive in one piece reach the app, which must refuse them too
    response = await client.get("/uapi/openapi.json", headers={"X-Big": "a" * MAX_HEAD_BYTES})
    body = assert_error(response, 431, "headers_too_large")
    assert response.headers["content-type"] == "application/json"
    assert str(MAX_HEAD_BYTES) in body["error"]["message"]


async def test_a_head_just_under_the_limit_is_served(mock_clock, client) -> None:
    response = await client.get("/uapi/openapi.json", headers={"X-Big": "a" * 15_000})
    assert response.status_code == 200


def test_head_size_counts_request_line_and_headers() -> None:
    scope = {
        "method": "GET",
        "raw_path": b"/uapi/x",
        "query_string": b"a=1",
        "http_version": "1.1",
        "headers": [(b"host", b"h"), (b"x-y", b"zz")],
    }
    sent = b"GET /uapi/x?a=1 HTTP/1.1\r\nhost: h\r\nx-y: zz\r\n\r\n"
    assert head_size(scope) == len(sent)


async def test_a_websocket_handshake_is_refused_with_a_uapi_error(app) -> None:
    sent: list[dict] = []

    async def receive() -> dict:
        return {"type": "websocket.connect"}

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {
        "type": "websocket",
        "path": "/uapi/openapi.json",
        "raw_path": b"/uapi/openapi.json",
        "query_string": b"",
        "headers": [],
        "extensions": {"websocket.http.response": {}},
    }
    await app(scope, receive, send)
    assert sent[0]["type"] == "websocket.http.response.start"
    assert sent[0]["status"] == 400
    assert (b"content-type", b"application/json") in sent[0]["headers"]
    body = json.loads(b"".join(m.get("body", b"") for m in sent[1:]))
    assert body["error"]["code"] == "request_invalid"


async def test_an_app_that_answers_nothing_gets_a_500_uapi_error() -> None:
    async def silent(scope, receive, send) -> None:
        return None

    sent: list[dict] = []

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": "/x", "headers": [], "query_string": b""}
    await ErrorGuard(silent)(scope, receive, send)
    assert sent[0]["status"] == 500
    assert json.loads(sent[1]["body"])["error"]["code"] == "internal_server_error"


def test_server_error_bodies_are_uapi_errors() -> None:
    for status, code in [
        (400, "request_invalid"),
        (404, "not_found"),
        (431, "headers_too_large"),
        (500, "internal_server_error"),
        (501, "request_not_implemented"),
    ]:
        body = json.loads(server_error_body(status))
        assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}
        assert body["error"]["code"] == code and body["error"]["message"]
