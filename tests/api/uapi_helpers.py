"""Helpers shared by the UAPI facade tests."""

from __future__ import annotations

from typing import Any

import httpx

PUBLIC_URL = "https://uapi.example.com"

APPS = {
    "user": ("demo-user-app", "demo-user-secret"),  # user 12, organization 3
    "org": ("demo-org-app", "demo-org-secret"),  # organization 3
    "admin": ("demo-admin-app", "demo-admin-secret"),
    "other-org": ("other-org-app", "other-org-secret"),  # organization 4
}


async def get_token(client: httpx.AsyncClient, kind: str) -> str:
    client_id, secret = APPS[kind]
    response = await client.post(
        "/oauth/token.php",
        data={"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret},
    )
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


async def auth(client: httpx.AsyncClient, kind: str = "user") -> dict[str, str]:
    return {"Authorization": f"Bearer {await get_token(client, kind)}"}


def simple_body(
    source: Any = "0003*00", destination: Any = "0003*01", **extra: Any
) -> dict[str, Any]:
    view: dict[str, Any] = {"source": source, "destination": destination}
    view.update(extra.pop("view", {}))
    return {"extension": "0003*210", "phoneCallView": [view], **extra}


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}, body
    assert body["error"]["code"] == code, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return body


async def create_call(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    body: dict[str, Any] | None = None,
    *,
    user: str = "@me",
    params: dict[str, str] | None = None,
) -> str:
    response = await client.post(
        f"/uapi/phoneCalls/{user}/simple",
        json=body or simple_body(),
        params=params,
        headers=headers,
    )
    assert response.status_code == 202, response.text
    call_id: str = response.json()[0]["id"]
    return call_id


async def wait_until(predicate: Any, step: float = 0.25, limit: float = 600) -> None:
    """Sleep (MockClock time) until ``predicate()`` holds."""
    import trio

    with trio.fail_after(limit):
        while not predicate():
            await trio.sleep(step)
