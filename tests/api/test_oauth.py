"""OAuth client-credentials tokens and bearer checks on /uapi/."""

from __future__ import annotations

import base64
import dataclasses
import json
import logging
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import trio
from uapi_helpers import APPS, PUBLIC_URL, assert_error, get_token

from api.app import create_app
from engine.config_model import ClusterConfig, Config, default_config
from engine.directory import Directory, demo_directory
from engine.engine import open_engine
from engine.store import open_store

# 204 (no calls yet) for a valid token of the user, organization or administrator App
LIST = "/uapi/phoneCalls/12/0003*210"


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


async def test_tokens_are_random_and_nothing_is_stored_per_token(
    mock_clock, client, engine
) -> None:
    writes_before = engine.store.backend._db.total_changes
    tokens = {await get_token(client, "user") for _ in range(50)}
    assert len(tokens) == 50
    assert engine.store.backend._db.total_changes == writes_before
    for token in tokens:
        response = await client.get(LIST, headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 204


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


async def test_a_tampered_token_is_access_denied(mock_clock, client) -> None:
    token = await get_token(client, "user")
    claims, signature = token.split(".")
    decoded = json.loads(_unb64(claims))
    assert decoded[1:4] == ["demo-user-app", "user", 12]
    # the same signature over claims that make the App an administrator, or live longer
    admin = _b64(json.dumps([1, "demo-admin-app", "admin", None, *decoded[4:]]).encode())
    longer = _b64(json.dumps([*decoded[:4], decoded[4] + 86400, decoded[5]]).encode())
    flipped = signature[:-2] + ("A" if signature[-2] != "A" else "B") + signature[-1]
    for bad in [
        f"{admin}.{signature}",
        f"{longer}.{signature}",
        f"{claims}.{flipped}",
        f"{claims}.",
        claims,
        f"{claims}.{signature}.{signature}",
        f"{claims}x.{signature}",
        token[:-1],
    ]:
        body = assert_error(
            await client.get(LIST, headers={"Authorization": f"Bearer {bad}"}),
            401,
            "access_denied",
        )
        assert "invalid" in body["error"]["message"]
    assert_error(
        await client.get(LIST, params={"accessRequestToken": f"Bearer ÿ{token}"}),
        401,
        "access_denied",
    )
    assert (await client.get(LIST, headers={"Authorization": f"Bearer {token}"})).status_code == 204


@asynccontextmanager
async def api_client(
    store_url: str, config: Config | None = None, directory: Directory | None = None
) -> AsyncIterator[httpx.AsyncClient]:
    """Another app instance: its own engine on ``store_url`` (a new store connection)."""
    store = open_store(store_url)
    try:
        async with open_engine(
            config or default_config(),
            directory or demo_directory(),
            store,
            rng=random.Random(3),
        ) as engine:
            app = create_app(engine, public_url=PUBLIC_URL)
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
                yield http
    finally:
        store.close()


async def _status(http: httpx.AsyncClient, token: str) -> int:
    return (await http.get(LIST, headers={"Authorization": f"Bearer {token}"})).status_code


async def test_a_token_is_accepted_by_every_app_on_the_same_store(tmp_path: Path) -> None:
    """No [cluster] secret: the one generated in the shared store signs for everybody."""
    url = f"sqlite:///{tmp_path / 'shared.sqlite'}"
    async with api_client(url) as first, api_client(url) as second:
        token = await get_token(first, "user")
        assert await _status(second, token) == 204
        assert await _status(first, await get_token(second, "org")) == 204
    async with api_client(url) as after_restart:
        assert await _status(after_restart, token) == 204
    async with api_client(f"sqlite:///{tmp_path / 'other.sqlite'}") as elsewhere:
        assert_error(
            await elsewhere.get(LIST, headers={"Authorization": f"Bearer {token}"}),
            401,
            "access_denied",
        )


def _with_secret(secret: str) -> Config:
    return dataclasses.replace(default_config(), cluster=ClusterConfig(node="n", secret=secret))


async def test_a_token_is_accepted_on_the_same_secret_and_refused_on_another(
    tmp_path: Path,
) -> None:
    shared = _with_secret("one secret shared by every node of the cluster")
    async with (
        api_client(f"sqlite:///{tmp_path / 'a.sqlite'}", shared) as node_a,
        api_client(f"sqlite:///{tmp_path / 'b.sqlite'}", shared) as node_b,
        api_client(
            f"sqlite:///{tmp_path / 'c.sqlite'}",
            _with_secret("the secret of some other cluster entirely"),
        ) as stranger,
    ):
        token = await get_token(node_a, "admin")
        assert await _status(node_b, token) == 204
        assert_error(
            await stranger.get(LIST, headers={"Authorization": f"Bearer {token}"}),
            401,
            "access_denied",
        )
    # the same store without the configured secret signs with the one generated in the store
    async with api_client(f"sqlite:///{tmp_path / 'a.sqlite'}") as unconfigured:
        assert await _status(unconfigured, token) == 401


def _directory_without(client_id: str, *, owner: tuple[str, Any] | None = None) -> Directory:
    base = demo_directory()
    apps = [app for app in base.apps if app.client_id != client_id]
    if owner is not None:
        old = base.app(client_id)
        assert old is not None
        apps.append(dataclasses.replace(old, owner_kind=owner[0], owner_id=owner[1]))
    return Directory(base.organizations, base.users, base.extensions, apps, base.routes, base.peers)


async def test_an_app_removed_or_moved_in_the_directory_loses_its_tokens(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.sqlite'}"
    async with api_client(url) as before:
        user_token = await get_token(before, "user")
        org_token = await get_token(before, "org")
    removed = _directory_without("demo-user-app")
    moved = _directory_without("demo-org-app", owner=("organization", 4))
    async with api_client(url, directory=removed) as after:
        assert_error(
            await after.get(LIST, headers={"Authorization": f"Bearer {user_token}"}),
            401,
            "access_denied",
        )
        assert await _status(after, org_token) == 204
    async with api_client(url, directory=moved) as after:
        assert await _status(after, org_token) == 401
        assert await _status(after, user_token) == 204


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
