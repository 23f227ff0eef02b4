"""Operations of the real ``b2bua serve``: ``/metrics``, ``/health``, JSON logs, the access log
and the Grafana dashboard's queries (docs/OPERATIONS.md).

One server (``--log-format json``) is shared by the tests that only read it; the health tests
that end a server (relay killed, drain) start their own.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from .harness import REPO_ROOT, B2buaServer
from .test_sip_auth import DOMAIN, Phone, credentials, status_of
from .uapi import Uapi

JSON_LOGS = ["--log-format", "json"]
DASHBOARD = REPO_ROOT / "deploy" / "grafana" / "b2bua.json"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[B2buaServer]:
    with B2buaServer(tmp_path_factory.mktemp("ops"), args=JSON_LOGS) as running:
        yield running


@pytest.fixture(scope="module")
def traffic(server: B2buaServer) -> dict[str, Any]:
    """What a phone and an App did, once for the module: a registration (challenged, then
    accepted), one wrong password, and a sandbox call answered and ended."""
    assert server.sip_udp is not None
    phone = Phone(server.sip_udp)
    try:
        challenge = phone.register()
        wrong = credentials(challenge, "REGISTER", f"sip:{DOMAIN}", "not-the-password")
        assert status_of(phone.register((f"Authorization: {wrong}",))) == 403
        challenge = phone.register()
        good = credentials(challenge, "REGISTER", f"sip:{DOMAIN}", "secret210")
        assert status_of(phone.register((f"Authorization: {good}",))) == 200
    finally:
        phone.close()
    api = Uapi(server.api_url, "test-user-app", "test-user-secret")
    call_id = api.call_id(api.create(["0003*00"], ["0003*01"], query={"callDuration": 4}))
    record = api.wait_ended(call_id, timeout=20)
    return {"call_id": call_id, "record": record}


Samples = dict[str, list[tuple[dict[str, str], float]]]


def scrape(api_url: str) -> Samples:
    """``/metrics`` as {sample name: [(labels, value)]}, parsed by prometheus_client."""
    reply = httpx.get(f"{api_url}/metrics", timeout=10)
    assert reply.status_code == 200
    assert reply.headers["content-type"].startswith("text/plain")
    samples: Samples = {}
    for family in text_string_to_metric_families(reply.text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((sample.labels, sample.value))
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    matching = [v for found, v in samples.get(name, []) if labels.items() <= found.items()]
    assert matching, f"no sample {name}{labels} in /metrics"
    return sum(matching)


def test_metrics_count_what_a_phone_and_an_app_did(
    server: B2buaServer, traffic: dict[str, Any]
) -> None:
    assert traffic["record"]["disposition"] == 0  # ANSWERED
    m = scrape(server.api_url)
    # the phone: 3 REGISTERs in, 2 challenges (401) and one refusal (403) out, one 200 out
    assert value(m, "b2bua_sip_requests_total", direction="in", method="REGISTER") == 4
    assert value(m, "b2bua_sip_responses_total", direction="out", status_class="4xx") == 3
    assert value(m, "b2bua_sip_responses_total", direction="out", status_class="2xx") == 1
    assert value(m, "b2bua_registrations") == 1
    assert value(m, "b2bua_auth_failures_total", service="sip") == 1
    assert value(m, "b2bua_auth_failures_total", service="api") == 0
    assert value(m, "b2bua_blocked_sources_total") == 0
    # the App's call: created, answered, ended; nothing live any more
    assert value(m, "b2bua_calls_created_total", origin="api") == 1
    assert value(m, "b2bua_calls_ended_total", disposition="ANSWERED") == 1
    assert value(m, "b2bua_calls_ended_total") == 1
    assert value(m, "b2bua_calls_live") == 0
    assert value(m, "b2bua_legs_live") == 0
    # two sandboxes talked through the relay for 1-2 s: their tones were relayed
    assert value(m, "b2bua_relay_packets_total", direction="received") > 50
    assert value(m, "b2bua_relay_packets_total", direction="sent") > 50
    assert value(m, "b2bua_relay_lost_packets_total") == 0
    assert value(m, "b2bua_relay_up") == 1
    assert value(m, "b2bua_store_errors_total") == 0
    # the API: by route template, not by path
    simple = "/uapi/phoneCalls/{userId}/simple"
    assert value(m, "b2bua_api_requests_total", route=simple, method="POST", status="202") == 1
    assert value(m, "b2bua_api_request_duration_seconds_count", route=simple) == 1
    assert value(m, "b2bua_api_requests_total", route="/oauth/token.php", status="200") == 1
    routes = {labels["route"] for labels, _ in m["b2bua_api_requests_total"]}
    assert not any(traffic["call_id"] in route for route in routes)
    # the event loop is probed twice a second; the process's own metrics are there too
    assert value(m, "b2bua_event_loop_lag_seconds_count") >= 1
    assert value(m, "process_cpu_seconds_total") > 0
    assert "b2bua_gc_pause_seconds_count" in m


def test_an_unknown_path_is_counted_under_one_label(server: B2buaServer) -> None:
    for n in range(3):
        assert httpx.get(f"{server.api_url}/no/such/path/{n}").status_code == 404
    m = scrape(server.api_url)
    assert value(m, "b2bua_api_requests_total", route="(unmatched)", status="404") >= 3
    routes = {labels["route"] for labels, _ in m["b2bua_api_requests_total"]}
    assert not any(route.startswith("/no/such") for route in routes)


def test_json_logs_name_the_call_and_log_each_request(
    server: B2buaServer, traffic: dict[str, Any]
) -> None:
    call_id = traffic["call_id"]
    server.wait_for_output(rf'"msg": "call {call_id} ended')
    lines = server.output().splitlines()
    last_listening = max(i for i, line in enumerate(lines) if line.startswith("listening "))
    entries = [json.loads(line) for line in lines[last_listening + 1 :]]  # each line parses
    for entry in entries:
        assert {"ts", "level", "logger", "msg"} <= entry.keys()
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00", entry["ts"])
    about = [e for e in entries if e.get("call") == call_id]
    engine = [e for e in about if e["logger"] == "engine.engine"]
    created = [e for e in engine if e["msg"].startswith(f"call {call_id} created (api)")]
    ended = [e for e in engine if e["msg"].startswith(f"call {call_id} ended")]
    assert [e["level"] for e in created + ended] == ["INFO", "INFO"]
    assert "ANSWERED" in ended[0]["msg"]
    # the API's own line about the call names it too
    assert any(e["logger"] == "api.phonecalls" for e in about)
    access = [
        e
        for e in entries
        if e["logger"] == "api.access" and e.get("route") == "/uapi/phoneCalls/{userId}/simple"
    ]
    assert len(access) == 1
    assert access[0]["method"] == "POST" and access[0]["status"] == 202
    assert access[0]["client"].startswith("127.0.0.1:") and access[0]["duration_ms"] > 0
    # nothing per SIP message at INFO: 4 REGISTERs in, 4 answers out, one line for the binding
    registrar = [e for e in entries if e["logger"].startswith(("sip", "engine.registrar"))]
    assert [e["msg"].split(" ", 2)[1] for e in registrar] == ["registered"]


def test_health_is_ok_without_a_token(server: B2buaServer) -> None:
    reply = httpx.get(f"{server.api_url}/health")
    assert reply.status_code == 200
    assert reply.json() == {"status": "ok", "sip": "ok", "media": "ok", "store": "ok"}


def test_the_dashboard_queries_only_metrics_the_server_exports(
    server: B2buaServer, traffic: dict[str, Any]
) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    queried = set(re.findall(r"\b((?:b2bua|process)_[a-z_]+)\b", " ".join(exprs)))
    assert len(queried) >= 20
    exported = set(scrape(server.api_url))
    assert queried - exported == set()


# -- health when a part fails ---------------------------------------------------------------


def relay_pid(server: B2buaServer) -> int:
    line = server.wait_for_output(r"relay process \d+")
    match = re.search(r"relay process (\d+)", line)
    assert match is not None
    return int(match.group(1))


def exit_code(server: B2buaServer, timeout: float = 15) -> int:
    """The server's exit code once it stopped by itself (no second signal: that would cut a
    drain short)."""
    deadline = time.monotonic() + timeout
    while server.running and time.monotonic() < deadline:
        time.sleep(0.05)
    return server.stop()


def poll_health(
    api_url: str, until: Callable[[int, dict[str, Any]], bool], timeout: float = 5
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        reply = httpx.get(f"{api_url}/health", timeout=2)
        if until(reply.status_code, reply.json()):
            return {"code": reply.status_code, **reply.json()}
        time.sleep(0.02)
    raise AssertionError("/health never answered as expected")


def test_health_names_media_when_the_relay_process_is_killed(
    b2bua_factory: Callable[..., B2buaServer],
) -> None:
    server = b2bua_factory(args=JSON_LOGS)
    os.kill(relay_pid(server), signal.SIGKILL)
    seen = poll_health(server.api_url, lambda code, body: code != 200)
    assert seen["code"] == 503
    assert seen["media"] == "the relay process is not running"
    assert seen["sip"] == "ok" and seen["store"] == "ok"
    assert "media" in seen["failing"]
    # and the server stops by itself (exit 1), for its supervisor to start it again
    assert exit_code(server) == 1


@pytest.fixture
def silent_receiver() -> Iterator[str]:
    """A statusCallback URL whose server takes connections and never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/hook"


def test_health_says_draining_while_the_server_drains(
    b2bua_factory: Callable[..., B2buaServer], silent_receiver: str, tmp_path: Path
) -> None:
    # the final statusCallback of a call keeps the drain open (up to [calls] drain seconds)
    server = b2bua_factory(config={"calls": {"drain": 4}})
    api = Uapi(server.api_url, "test-user-app", "test-user-secret")
    reply = api.client.post(
        "/uapi/phoneCalls/@me/simple",
        json={
            "extension": "210",
            "statusCallback": silent_receiver,
            "phoneCallView": [{"source": ["0003*08"], "destination": ["0003*01"]}],
        },
        headers=api.headers,
    )
    api.call_id(reply)
    assert httpx.get(f"{server.api_url}/health").status_code == 200
    assert server._process is not None
    server._process.send_signal(signal.SIGTERM)
    seen = poll_health(server.api_url, lambda code, body: code != 200)
    assert seen["code"] == 503 and seen["status"] == "draining"
    assert exit_code(server) == 0
    assert "draining: 1 live calls" in server.output()
    assert "drained: 0 calls still live" in server.output()
