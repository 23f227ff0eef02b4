"""``[api] callback_allow`` on the real ``b2bua serve``: unlisted and denied statusCallback
hosts get 400 at create time, a listed name is resolved at delivery and its events arrive."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import httpx
import pytest

from .harness import B2buaServer
from .test_restart_callbacks import _Receiver, _wait
from .uapi import Uapi


@pytest.fixture
def receiver() -> Iterator[_Receiver]:
    server = _Receiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _create(api: Uapi, url: str) -> httpx.Response:
    return api.client.post(
        "/uapi/phoneCalls/@me/simple",
        json={
            "extension": "210",
            "statusCallback": url,
            "phoneCallView": [{"source": ["0003*09"], "destination": ["0003*01"]}],
        },
        headers=api.headers,
    )


def test_callback_allow_admits_listed_names_only(
    b2bua_factory: Callable[..., B2buaServer], receiver: _Receiver
) -> None:
    server = b2bua_factory(config={"api": {"callback_allow": ["localhost", "*.example.org"]}})
    api = Uapi(server.api_url, "test-user-app", "test-user-secret")
    port = receiver.server_address[1]
    for url, why in [
        (receiver.url, "address 127.0.0.1 is not in this server's statusCallback allow list"),
        (f"http://example.org:{port}/x", "host example.org is not in this server's"),
        ("http://169.254.169.254/latest/meta-data/", "169.254.169.254 is a cloud metadata"),
    ]:
        reply = _create(api, url)
        assert reply.status_code == 400, reply.text
        error = reply.json()["error"]
        assert error["code"] == "pc_status_callback_invalid"
        assert error["message"].startswith(f"statusCallback is refused: {why}")

    # localhost resolves (at delivery, in the server) to the receiver's 127.0.0.1
    reply = _create(api, f"http://localhost:{port}/events")
    assert reply.status_code == 202, reply.text
    call_id = api.call_id(reply)
    _wait(lambda: any(p["final"] for _, p in receiver.events()), timeout=20)
    events = receiver.events()
    assert {p["phoneCallId"] for _, p in events} == {call_id}
    assert events[0][1]["event"] == "created" and events[-1][1]["event"] == "ended"
    api.close()
