"""A crash mid-call: after a restart the App's statusCallback still gets the call's one final
event, with an event id it has not seen (the real ``b2bua serve``, killed with SIGKILL)."""

from __future__ import annotations

import json
import signal
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from .harness import B2buaServer
from .uapi import Uapi


class _Receiver(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.posts: list[tuple[str, dict[str, Any]]] = []  # (X-Event-Id, JSON body)
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/events"

    def events(self) -> list[tuple[str, dict[str, Any]]]:
        with self.lock:
            return list(self.posts)


class _Handler(BaseHTTPRequestHandler):
    server: _Receiver

    def do_POST(self) -> None:  # http.server calls it by this name
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        with self.server.lock:
            self.server.posts.append((self.headers.get("X-Event-Id", ""), json.loads(body)))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass


@pytest.fixture
def receiver() -> Iterator[_Receiver]:
    server = _Receiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _wait(what: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not what():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        time.sleep(0.05)


def test_a_call_live_at_a_crash_gets_its_final_callback_after_the_restart(
    b2bua_factory: Callable[..., B2buaServer], receiver: _Receiver, tmp_path: Any
) -> None:
    store = {"store": {"url": f"sqlite:///{tmp_path / 'calls.sqlite'}"}}
    first = b2bua_factory(config=store)
    api = Uapi(first.api_url, "test-user-app", "test-user-secret")
    reply = api.client.post(
        "/uapi/phoneCalls/@me/simple",
        params={"callDuration": 120},
        json={
            "extension": "210",
            "statusCallback": receiver.url,
            "phoneCallView": [{"source": ["0003*00"], "destination": ["0003*01"]}],
        },
        headers=api.headers,
    )
    call_id = api.call_id(reply)
    # both sandbox numbers answer within seconds: wait until the App heard "bridged"
    _wait(lambda: any(p["state"] == "bridged" for _, p in receiver.events()), timeout=20)
    # then an event that changes no state recovery reads (hold): the App hears it before the
    # crash, so the store must have counted it too
    held = api.act(call_id, {"action": "OnHold", "phoneCallViewId": "01"})
    assert held.status_code == 200, held.text
    _wait(lambda: any(p["event"] == "hold" for _, p in receiver.events()), timeout=10)
    before = receiver.events()
    assert not any(p["final"] for _, p in before)

    assert first.stop(signal.SIGKILL) == -signal.SIGKILL  # a crash: no drain, no BYE

    second = b2bua_factory(config=store)
    _wait(lambda: any(p["final"] for _, p in receiver.events()), timeout=20)
    after = receiver.events()[len(before) :]
    assert len(after) == 1  # exactly one final event, nothing replayed
    event_id, final = after[0]
    assert final["event"] == "ended" and final["final"]
    assert final["phoneCallId"] == call_id
    assert final["data"]["cause"] == "engine restarted while the call was live"
    # a receiver that drops duplicates by X-Event-Id keeps it: its seq follows the last one
    seen_ids = {eid for eid, _ in before}
    assert event_id not in seen_ids
    assert final["seq"] == max(p["seq"] for _, p in before) + 1
    assert event_id == f"{call_id}:{final['seq']}"
    # and the API says the same
    api2 = Uapi(second.api_url, "test-user-app", "test-user-secret")
    record = api2.get(call_id)
    assert record["state"] == "ended"
    assert record["hangupCause"] == "engine restarted while the call was live"
