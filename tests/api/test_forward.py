"""Owner routing (``api.forward``) in process: which requests hop, the hop mark, and what a
client gets when the owner does not answer. (The hop itself, between real nodes, is in
tests/integration/test_cluster.py.)"""

from __future__ import annotations

import socket

import httpx
from starlette.types import Receive, Scope, Send

from api.forward import HOP_HEADER, OwnerRouting, forwarded_call, is_list_delete

CALL = "/uapi/phoneCalls/@me/210/0123456789abcdef0123"


def test_only_owner_only_requests_hop() -> None:
    assert forwarded_call("DELETE", CALL) == ("0123456789abcdef0123", False)
    assert forwarded_call("PUT", CALL) == ("0123456789abcdef0123", False)
    assert forwarded_call("GET", CALL + "/events") == ("0123456789abcdef0123", True)
    assert forwarded_call("GET", CALL) is None  # reads come from the shared store
    assert forwarded_call("POST", "/uapi/phoneCalls/@me/simple") is None
    assert forwarded_call("DELETE", "/uapi/phoneCalls/@me/210") is None
    assert is_list_delete("DELETE", "/uapi/phoneCalls/@me/210")
    assert not is_list_delete("GET", "/uapi/phoneCalls/@me/210")


async def local_app(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 299, "headers": []})
    await send({"type": "http.response.body", "body": b"local", "more_body": False})


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def routing(owner: str | None, asked: list[str]) -> OwnerRouting:
    async def owner_of(call_id: str) -> str | None:
        asked.append(call_id)
        return owner

    async def peers() -> list[str]:
        return []

    return OwnerRouting(local_app, owner_of=owner_of, peers=peers, node="node-a", hop_key=b"k" * 32)


async def test_a_call_of_this_node_is_served_here() -> None:
    asked: list[str] = []
    app = routing(None, asked)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://n") as c:
        reply = await c.delete(CALL)
    assert (reply.status_code, reply.text, asked) == (299, "local", ["0123456789abcdef0123"])


async def test_an_owner_that_does_not_answer_gets_the_client_a_503_in_the_uapi_shape() -> None:
    app = routing(f"http://127.0.0.1:{closed_port()}", [])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://n") as c:
        reply = await c.put(CALL, json={"action": "OnHold"})
    assert reply.status_code == 503
    assert reply.json()["error"]["code"] == "service_unavailable"
    assert reply.headers["retry-after"] == "1"


async def test_a_request_with_a_valid_hop_mark_is_never_forwarded_again() -> None:
    asked: list[str] = []
    app = routing(f"http://127.0.0.1:{closed_port()}", asked)
    mark = app.hop_value("node-b")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://n") as c:
        marked = await c.delete(CALL, headers={HOP_HEADER: mark})
        forged = await c.delete(CALL, headers={HOP_HEADER: "node-b:" + "0" * 64})
    assert (marked.status_code, marked.text) == (299, "local")
    assert forged.status_code == 503  # a forged mark counts for nothing: forwarded (and failed)
    assert asked == ["0123456789abcdef0123"]
