"""OAuth client-credentials tokens and bearer checks on /uapi/."""

from __future__ import annotations

import base64
import hashlib
from datetime import timedelta

from uapi_helpers import APPS, assert_error, get_token


async def test_token_is_issued_for_good_credentials_and_extra_fields_are_ignored(
    mock_clock, client
) -> None:
    response = await client.post(
        "/oauth/token.php",
        data={
            "grant_type": "client_credentials",
            "client_id": "demo-user-app",
            "client_secret": "demo-user-secret",
            "type": "unifiedapi",
            "redirect_uri": "https://x/ouath/token.php",
        },
    )
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 3600
    assert len(body["access_token"]) >= 40
    assert response.headers["cache-control"] == "no-store"


async def test_tokens_are_random_and_stored_only_hashed(mock_clock, client, engine) -> None:
    first = await get_token(client, "user")
    second = await get_token(client, "user")
    assert first != second
    record = engine.store.get_token(hashlib.sha256(first.encode()).hexdigest())
    assert record is not None and record.client_id == "demo-user-app"
    assert engine.store.get_token(first) is None


async def test_bad_credentials_are_invalid_client(mock_clock, client) -> None:
    for client_id, secret in [
        ("demo-user-app", "wrong"),
        ("nobody", "demo-user-secret"),
        ("demo-user-app", ""),
        ("", ""),
    ]:
        response = await client.post(
            "/oauth/token.php",
            data={
                "grant_type": "client_credentials",
                "client_id": client_id,
                "client_secret": secret,
            },
        )
        assert response.status_code == 401
        assert response.json()["error"] == "invalid_client"
        assert response.json()["error_description"]


async def test_grant_type_missing_or_unsupported(mock_clock, client) -> None:
    response = await client.post("/oauth/token.php", data={"client_id": "demo-user-app"})
    assert response.status_code == 400 and response.json()["error"] == "invalid_request"
    response = await client.post(
        "/oauth/token.php", data={"grant_type": "password", "client_id": "demo-user-app"}
    )
    assert response.status_code == 400
    assert response.json()["error"] == "unsupported_grant_type"


async def test_http_basic_client_authentication(mock_clock, client) -> None:
    basic = base64.b64encode(b"demo-org-app:demo-org-secret").decode()
    response = await client.post(
        "/oauth/token.php",
        data={"grant_type": "client_credentials"},
        headers={"Authorization": f"Basic {basic}"},
    )
    assert response.status_code == 200


async def test_every_app_kind_gets_a_token(mock_clock, client) -> None:
    for kind in APPS:
        assert await get_token(client, kind)


async def test_uapi_needs_a_valid_token(mock_clock, client) -> None:
    path = "/uapi/phoneCalls/@me/@self"
    assert_error(await client.get(path), 401, "access_denied")
    assert_error(
        await client.get(path, headers={"Authorization": "Bearer nope"}), 401, "access_denied"
    )
    assert_error(
        await client.get(path, headers={"Authorization": "Basic abc"}), 401, "access_denied"
    )
    assert_error(
        await client.get(path, params={"accessRequestToken": "Bearer x"}), 401, "access_denied"
    )


async def test_token_in_header_or_query(mock_clock, client) -> None:
    token = await get_token(client, "user")
    path = "/uapi/phoneCalls/@me/@self"
    for response in [
        await client.get(path, headers={"Authorization": f"Bearer {token}"}),
        await client.get(path, headers={"Authorization": f"bearer {token}"}),
        await client.get(path, params={"accessRequestToken": f"Bearer {token}"}),
        await client.get(path, params={"accessRequestToken": token}),
    ]:
        assert response.status_code == 204, response.text  # no calls yet


async def test_token_expires_after_an_hour(mock_clock, client, wall_clock) -> None:
    token = await get_token(client, "user")
    headers = {"Authorization": f"Bearer {token}"}
    path = "/uapi/phoneCalls/@me/@self"
    wall_clock.offset = timedelta(seconds=3599)
    assert (await client.get(path, headers=headers)).status_code == 204
    wall_clock.offset = timedelta(seconds=3601)
    body = assert_error(await client.get(path, headers=headers), 401, "access_denied")
    assert "expired" in body["error"]["message"]


async def test_json_token_requests_are_accepted_too(mock_clock, client) -> None:
    fields = {"grant_type": "client_credentials", "client_id": "demo-admin-app"}
    response = await client.post(
        "/oauth/token.php", json={**fields, "client_secret": "demo-admin-secret"}
    )
    assert response.status_code == 200
    response = await client.post("/oauth/token.php", json={**fields, "client_secret": "x"})
    assert response.status_code == 401
    response = await client.post(
        "/oauth/token.php", content=b"[1", headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400 and response.json()["error"] == "invalid_request"
