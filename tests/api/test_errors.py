"""Every failure is a UAPI error body: unknown routes, wrong methods, crashes."""

from __future__ import annotations

from uapi_helpers import assert_error, auth


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

    engine.get_call = broken
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
