"""OAuth client-credentials tokens and bearer checks on /uapi/."""

from __future__ import annotations

import base64
import hashlib
import logging
from datetime import timedelta

import httpx
import trio
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


async def test_guessing_a_secret_gets_429_slow_down_and_the_real_client_elsewhere_gets_in(
    mock_clock, app, caplog
) -> None:
    def client_from(host: str) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=app, client=(host, 40000))
        return httpx.AsyncClient(transport=transport, base_url="http://testserver")

    def form(secret: str, client_id: str = "demo-user-app") -> dict[str, str]:
        return {"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret}

    async with client_from("192.0.2.10") as real, client_from("198.51.100.7") as attacker:
        assert (await real.post("/oauth/token.php", data=form("demo-user-secret"))).is_success
        with caplog.at_level(logging.WARNING, logger="engine.limiter"):
            statuses = []
            for i in range(100):
                response = await attacker.post("/oauth/token.php", data=form(f"guess{i}"))
                statuses.append(response.status_code)
        assert statuses == [401] * 5 + [429] * 95
        assert response.json()["error"] == "slow_down"
        assert response.json()["error_description"]
        assert response.headers["retry-after"] == "1"
        assert [r.getMessage() for r in caplog.records] == [
            "api token: blocking source 198.51.100.7 (user 'demo-user-app') for 1 s after 5 "
            "failed attempts (user at source)"
        ]
        # while the attacker waits: the real client, and other clients, get their tokens
        assert (await real.post("/oauth/token.php", data=form("demo-user-secret"))).is_success
        other = form("demo-org-secret", "demo-org-app")
        assert (await attacker.post("/oauth/token.php", data=other)).is_success
        # even the right secret waits out the block from the guessing address
        blocked = await attacker.post("/oauth/token.php", data=form("demo-user-secret"))
        assert blocked.status_code == 429
        await trio.sleep(1)  # the block is over: one more guess, then a block twice as long
        assert (await attacker.post("/oauth/token.php", data=form("x"))).status_code == 401
        again = await attacker.post("/oauth/token.php", data=form("y"))
        assert again.status_code == 429 and again.headers["retry-after"] == "2"
