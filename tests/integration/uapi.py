"""A small synchronous UAPI client for integration tests (token, create, read, hang up, act)."""

from __future__ import annotations

import time
from typing import Any

import httpx


class Uapi:
    def __init__(self, base_url: str, client_id: str, client_secret: str) -> None:
        self.client = httpx.Client(base_url=base_url, timeout=10)
        reply = self.client.post(
            "/oauth/token.php",
            data={
                "grant_type": "client_credentials",
                "client_id": client_id,
                "client_secret": client_secret,
            },
        )
        reply.raise_for_status()
        self.headers = {"Authorization": f"Bearer {reply.json()['access_token']}"}

    def create(
        self,
        source: list[str],
        destination: list[str],
        *,
        user: str = "@me",
        extension: str = "210",
        query: dict[str, Any] | None = None,
        **fields: Any,
    ) -> httpx.Response:
        view = {"source": source, "destination": destination, **fields}
        return self.client.post(
            f"/uapi/phoneCalls/{user}/simple",
            params=query or {},
            json={"extension": extension, "phoneCallView": [view]},
            headers=self.headers,
        )

    def call_id(self, reply: httpx.Response) -> str:
        assert reply.status_code == 202, reply.text
        return str(reply.json()[0]["id"])

    def get(self, call_id: str, *, user: str = "@me", extension: str = "210") -> dict[str, Any]:
        reply = self.client.get(
            f"/uapi/phoneCalls/{user}/{extension}/{call_id}", headers=self.headers
        )
        assert reply.status_code == 200, reply.text
        entry: dict[str, Any] = reply.json()["entry"][0]
        return entry

    def wait(
        self,
        call_id: str,
        predicate: Any,
        timeout: float = 30.0,
        *,
        user: str = "@me",
        extension: str = "210",
    ) -> dict[str, Any]:
        """Poll the call until ``predicate(record)`` holds; return that record."""
        deadline = time.monotonic() + timeout
        record = self.get(call_id, user=user, extension=extension)
        while not predicate(record):
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting; last record: {record}")
            time.sleep(0.1)
            record = self.get(call_id, user=user, extension=extension)
        return record

    def wait_ended(self, call_id: str, timeout: float = 30.0) -> dict[str, Any]:
        return self.wait(call_id, lambda r: r.get("state") == "ended", timeout)

    def hangup(self, call_id: str, *, extension: str = "210") -> httpx.Response:
        return self.client.delete(
            f"/uapi/phoneCalls/@me/{extension}/{call_id}", headers=self.headers
        )

    def act(self, call_id: str, body: dict[str, Any], *, extension: str = "210") -> httpx.Response:
        return self.client.put(
            f"/uapi/phoneCalls/@me/{extension}/{call_id}", json=body, headers=self.headers
        )

    def close(self) -> None:
        self.client.close()
