"""Signed OAuth tokens on the real ``b2bua serve``: nothing stored per token, a token outlives
a restart on the same store, and nodes on one ``[cluster] secret`` accept each other's tokens."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import httpx

from .harness import B2buaServer

LIST = "/uapi/phoneCalls/@me/210"  # the test user's calls: 204 while there are none


def _token(server: B2buaServer) -> str:
    reply = httpx.post(
        f"{server.api_url}/oauth/token.php",
        data={
            "grant_type": "client_credentials",
            "client_id": "test-user-app",
            "client_secret": "test-user-secret",
        },
        timeout=10,
    )
    assert reply.status_code == 200, reply.text
    assert reply.json()["expires_in"] == 3600
    token: str = reply.json()["access_token"]
    return token


def _list(server: B2buaServer, token: str) -> httpx.Response:
    return httpx.get(
        f"{server.api_url}{LIST}", headers={"Authorization": f"Bearer {token}"}, timeout=10
    )


def _rows(path: Path) -> dict[str, int]:
    """Rows per table of the store (read while the server runs: SQLite WAL allows it)."""
    db = sqlite3.connect(path)
    try:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return {t: db.execute(f'SELECT COUNT(*) FROM "{t}"').fetchone()[0] for t in tables}
    finally:
        db.close()


def _assert_denied(reply: httpx.Response) -> None:
    assert reply.status_code == 401, reply.text
    assert reply.json()["error"]["code"] == "access_denied"


def test_a_token_survives_a_restart_on_the_same_store_and_nothing_is_stored_for_it(
    b2bua_factory: Callable[..., B2buaServer], tmp_path: Path
) -> None:
    path = tmp_path / "shared.sqlite"
    store = {"store": {"url": f"sqlite:///{path}"}}
    first = b2bua_factory(config=store)
    token = _token(first)
    assert _list(first, token).status_code == 204
    before = _rows(path)
    for _ in range(20):
        assert _list(first, _token(first)).status_code == 204
    assert _rows(path) == before  # nothing stored per token
    assert "tokens" not in before
    assert first.stop() == 0

    restarted = b2bua_factory(config=store)
    assert _list(restarted, token).status_code == 204
    elsewhere = b2bua_factory()  # its own store, so its own generated secret
    _assert_denied(_list(elsewhere, token))
    _assert_denied(_list(restarted, _token(elsewhere)))


def test_nodes_on_one_cluster_secret_accept_each_others_tokens(
    b2bua_factory: Callable[..., B2buaServer],
) -> None:
    cluster = {"cluster": {"secret": "one long random secret of this cluster, for tests"}}
    node_a = b2bua_factory(config=cluster)  # each on a store of its own
    node_b = b2bua_factory(config=cluster)
    stranger = b2bua_factory(
        config={"cluster": {"secret": "the secret of some other cluster, for tests"}}
    )
    token = _token(node_a)
    assert _list(node_b, token).status_code == 204
    assert _list(node_a, _token(node_b)).status_code == 204
    _assert_denied(_list(stranger, token))
    tampered = token[:-3] + ("AAA" if not token.endswith("AAA") else "BBB")
    _assert_denied(_list(node_a, tampered))
