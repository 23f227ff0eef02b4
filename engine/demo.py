"""``b2bua demo``: the main job in one command, with no phones and no set-up.

Starts the server in this process on the embedded default (free ports, a temporary store),
gets an OAuth token like an App would, places a Simple PhoneCall between two sandbox numbers
through the HTTP API, shows each party's progress as it happens, prints the final record and
checks the call behaved as the sandbox numbers promise (exit 0) or not (exit 1).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import sys
import tempfile
from pathlib import Path
from typing import Any, TextIO

import httpx
import trio

from engine.config import ApiConfig, ListenAddress, StoreConfig, default_config
from engine.server import Running, serve

logger = logging.getLogger(__name__)

STATUS_NAMES = {
    0: "idle",
    1: "off hook",
    2: "trying",
    3: "ringing",
    4: "hears ringback (other side ringing)",
    5: "on call",
}
DISPOSITIONS = {
    0: "ANSWERED",
    1: "BUSY",
    2: "FAILED",
    3: "NO ANSWER",
    4: "UNKNOWN",
    5: "NOT ALLOWED",
}
_SANDBOX = re.compile(r"^\d+\*0(\d)$")
ANSWER_DELAY = {0: 1.0, 1: 2.0, 2: 3.0, 3: 4.0, 4: 5.0}  # the documented sandbox delays


async def run_demo(source: str, destination: str, duration: int, out: TextIO | None = None) -> int:
    out = out or sys.stdout

    def say(line: str) -> None:
        print(line, file=out, flush=True)

    with tempfile.TemporaryDirectory(prefix="b2bua-demo-") as tmp:
        base = default_config()
        config = dataclasses.replace(
            base,
            sip=dataclasses.replace(
                base.sip,
                listen=(ListenAddress("udp", "127.0.0.1", 0), ListenAddress("tcp", "127.0.0.1", 0)),
            ),
            api=ApiConfig(host="127.0.0.1", port=0),
            store=StoreConfig(url=f"sqlite:///{Path(tmp) / 'demo.sqlite'}"),
        )
        async with trio.open_nursery() as nursery:
            running: Running = await nursery.start(
                lambda task_status: serve(
                    config,
                    announce=lambda line: say(f"  server: {line}"),
                    handle_signals=False,
                    task_status=task_status,
                )
            )
            try:
                return await _place_call(running, source, destination, duration, say)
            finally:
                running.shutdown.set()


async def _place_call(
    running: Running, source: str, destination: str, duration: int, say: Any
) -> int:
    api = running.api_url
    async with httpx.AsyncClient(base_url=api, timeout=10) as client:
        token_reply = await client.post(
            "/oauth/token.php",
            data={
                "grant_type": "client_credentials",
                "client_id": "demo-user-app",
                "client_secret": "demo-user-secret",
            },
        )
        token_reply.raise_for_status()
        token = token_reply.json()["access_token"]
        say("token: demo-user-app got a bearer token for user 12 (expires in 3600 s)")
        headers = {"Authorization": f"Bearer {token}"}
        body = {
            "extension": "210",
            "phoneCallView": [
                {
                    "source": [source],
                    "destination": [destination],
                    "callerId": "John Doe <4242425>",
                }
            ],
        }
        started = trio.current_time()
        reply = await client.post(
            f"/uapi/phoneCalls/@me/simple?callDuration={duration}", json=body, headers=headers
        )
        if reply.status_code != 202:
            say(f"create failed: {reply.status_code} {reply.text}")
            return 1
        created = reply.json()[0]
        call_id = created["id"]
        say(f"POST /uapi/phoneCalls/@me/simple -> 202 Accepted, id {call_id}")
        say(f"calling {source} (source), then {destination} (destination)")
        say(f"callDuration {duration} s, counted from the source's answer")
        seen: dict[str, tuple[int, str | None]] = {}
        answered_at: dict[str, float] = {}
        record: dict[str, Any] = {}
        with trio.move_on_after(duration + 60):
            while True:
                got = await client.get(f"/uapi/phoneCalls/@me/210/{call_id}", headers=headers)
                if got.status_code == 200:
                    record = got.json()["entry"][0]
                    now = trio.current_time() - started
                    for view in record.get("phoneCallView", []):
                        number = view.get("number") or view.get("id")
                        key = (view.get("status", 0), view.get("disposition"))
                        if seen.get(number) != key:
                            seen[number] = key
                            role = view.get("role", "party")
                            label = STATUS_NAMES.get(key[0], str(key[0]))
                            if record.get("state") == "ended":
                                label = "hung up"
                            elif key[0] == 0:
                                label = "waiting to be called"
                            say(f"  +{now:5.1f}s  {role:<11} {number}: {label}")
                        if view.get("answered") and number not in answered_at:
                            answered_at[number] = now
                    if record.get("state") == "ended":
                        break
                await trio.sleep(0.2)
        if record.get("state") != "ended":
            say("the call did not end in time")
            return 1
        say("final record:")
        say(json.dumps(record, indent=2))
        return _verdict(record, source, destination, answered_at, duration, say)


def _verdict(
    record: dict[str, Any],
    source: str,
    destination: str,
    answered_at: dict[str, float],
    duration: int,
    say: Any,
) -> int:
    disposition = int(record.get("disposition", 4))
    name = DISPOSITIONS.get(disposition, disposition)
    say(f"disposition: {name}; cause: {record.get('hangupCause')}")
    src, dst = _sandbox_index(source), _sandbox_index(destination)
    problems: list[str] = []
    if src in ANSWER_DELAY and dst in ANSWER_DELAY:
        if disposition != 0:
            problems.append(f"expected ANSWERED, got {DISPOSITIONS.get(disposition)}")
        src_t = answered_at.get(source)
        dst_t = answered_at.get(destination)
        if src_t is None or abs(src_t - ANSWER_DELAY[src]) > 0.8:
            problems.append(f"{source} should answer after {ANSWER_DELAY[src]:.0f} s, saw {src_t}")
        if dst_t is None or src_t is None or abs(dst_t - src_t - ANSWER_DELAY[dst]) > 0.8:
            problems.append(
                f"{destination} should answer {ANSWER_DELAY[dst]:.0f} s after being called"
            )
        if record.get("hangupCause") != "call duration reached":
            problems.append("the call should end when callDuration runs out")
    elif (src == 9 or (src in ANSWER_DELAY and dst == 9)) and disposition != 1:
        problems.append(f"expected BUSY, got {DISPOSITIONS.get(disposition)}")
    if problems:
        for problem in problems:
            say(f"NOT AS PROMISED: {problem}")
        return 1
    say("OK: the call behaved as the sandbox numbers promise")
    return 0


def _sandbox_index(number: str) -> int | None:
    match = _SANDBOX.match(number)
    return int(match.group(1)) if match else None
