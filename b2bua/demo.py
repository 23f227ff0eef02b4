"""``b2bua demo``: the main job in one command, with no phones and no set-up.

Starts the server in this process on the embedded default (free ports, a temporary store),
gets an OAuth token like an App would, places a Simple PhoneCall between two sandbox numbers
through the HTTP API, shows each party's progress as it happens, prints the final record and
checks the call behaved as the sandbox numbers promise (exit 0) or not (exit 1): each number
answered on time, was busy or never answered as documented (``engine.sandbox.promise_for``),
and a call that both answered ended when callDuration ran out. It takes sandbox numbers only
(``0003*00``-``0003*09``). Ctrl-C hangs the call up and drains the server (exit 0).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import signal
import sys
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

import httpx
import trio

from b2bua.server import Running, serve
from engine.config_model import ApiConfig, ListenAddress, StoreConfig, default_config
from engine.sandbox import SandboxPromise, promise_for

logger = logging.getLogger(__name__)

STATUS_NAMES = {
    0: "idle",
    1: "off hook",
    2: "trying",
    3: "ringing",
    4: "hears ringback (other side ringing)",
    5: "on call",
}
ANSWERED, BUSY, NO_ANSWER = 0, 1, 3
DISPOSITIONS = {
    0: "ANSWERED",
    1: "BUSY",
    2: "FAILED",
    3: "NO ANSWER",
    4: "UNKNOWN",
    5: "NOT ALLOWED",
}
DEMO_ORGANIZATION = "0003"  # the demo directory's organization, whose sandboxes the demo calls
DEMO_NUMBERS = f"the sandbox numbers {DEMO_ORGANIZATION}*00 to {DEMO_ORGANIZATION}*09"
_DEMO_NUMBER = re.compile(rf"{DEMO_ORGANIZATION}\*0(\d)")
# An answer counts as on time from this much before the promised delay (the record's start
# is taken a little before the sandbox starts ringing) to this much after (a busy machine).
EARLY, LATE = 0.3, 1.0


def sandbox_index(number: str) -> int:
    """``0003*05`` -> 5; ``ValueError`` naming the number for anything the demo cannot call."""
    match = _DEMO_NUMBER.fullmatch(number)
    if match is None:
        raise ValueError(f"{number!r} is not a sandbox number: the demo calls {DEMO_NUMBERS}")
    return int(match.group(1))


async def run_demo(source: str, destination: str, duration: int, out: TextIO | None = None) -> int:
    """The demo; 0 when the call behaved as promised, 1 when not. A SIGINT or SIGTERM (Ctrl-C)
    hangs the call up, drains the server and returns 0; a second one stops at once."""
    out = out or sys.stdout

    def say(line: str) -> None:
        print(line, file=out, flush=True)

    for number in (source, destination):
        sandbox_index(number)  # a ValueError before anything starts
    work = trio.CancelScope()  # starting the server and the call, not the server's drain
    outcome: int | None = None  # None: interrupted
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as watcher:

            async def on_signals(task_status: trio.TaskStatus[None]) -> None:
                task_status.started()
                async for _ in signals:
                    if not work.cancel_called:
                        say("interrupted: hanging up and stopping the server (again: at once)")
                        work.cancel()
                    else:
                        say("interrupted again: stopping at once")
                        watcher.cancel_scope.cancel()

            await watcher.start(on_signals)
            outcome = await _run(source, destination, duration, work, say)
            watcher.cancel_scope.cancel()  # the call is over: stop listening for signals
    if outcome is None:
        say("stopped")
        return 0
    return outcome


async def _run(
    source: str, destination: str, duration: int, work: trio.CancelScope, say: Any
) -> int | None:
    """The server and the call; the demo's exit code, None when ``work`` was cancelled (the
    server is drained either way)."""
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
        result = 1
        async with trio.open_nursery() as nursery:
            running: Running | None = None
            try:
                with work:
                    running = await nursery.start(
                        lambda task_status: serve(
                            config,
                            announce=lambda line: say(f"  server: {line}"),
                            handle_signals=False,
                            task_status=task_status,
                        )
                    )
                    say(promised(source, destination, config.calls.wait_for_pickup, duration))
                    result = await _place_call(running, source, destination, duration, say)
            finally:
                if running is not None:
                    running.shutdown.set()  # the server drains: a live call is hung up
        return None if work.cancelled_caught else result


def promised(source: str, destination: str, wait_for_pickup: int, duration: int) -> str:
    """What the two numbers promise, in words, with the ends the demo's timers put to it."""

    def text(number: str, cut_off: int | None) -> str:
        promise = promise_for(sandbox_index(number))
        if not promise.answers and not promise.busy:
            limit = wait_for_pickup if cut_off is None else min(wait_for_pickup, cut_off)
            return f"{number} {promise.text} (NO ANSWER after {limit} s)"
        if cut_off is None or not promise.answers or promise.latest < cut_off:
            return f"{number} {promise.text}"
        ends = f"callDuration ({cut_off} s from the source's answer) runs out"
        if promise.earliest > cut_off:
            outcome = "BUSY or NO ANSWER" if promise.busy else "NO ANSWER"
            return f"{number} {promise.text}, but {ends} before that: {outcome}"
        return f"{number} {promise.text}, unless {ends} first"

    if not promise_for(sandbox_index(source)).answers:
        return f"promised: {text(source, None)}, so {destination} is never called"
    return f"promised: {text(source, None)}; when it answers, {text(destination, duration)}"


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
        record: dict[str, Any] = {}
        # the slowest promise: *07 (up to 20 s), then *08 (waitForPickup, 25 s), then the talk
        with trio.move_on_after(duration + 90):
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
                    if record.get("state") == "ended":
                        break
                await trio.sleep(0.2)
        if record.get("state") != "ended":
            say("the call did not end in time")
            return 1
        say("final record:")
        say(json.dumps(record, indent=2))
        return _verdict(record, source, destination, duration, say)


def _verdict(record: dict[str, Any], source: str, destination: str, duration: int, say: Any) -> int:
    disposition = int(record.get("disposition", 4))
    name = DISPOSITIONS.get(disposition, disposition)
    say(f"disposition: {name}; cause: {record.get('hangupCause')}")
    problems = check_promise(record, source, destination, duration)
    if problems:
        for problem in problems:
            say(f"NOT AS PROMISED: {problem}")
        return 1
    say("OK: the call behaved as the sandbox numbers promise")
    return 0


def check_promise(
    record: dict[str, Any], source: str, destination: str, duration: int
) -> list[str]:
    """What the final ``record`` of a demo call shows that its sandbox numbers do not promise
    (nothing: the call behaved). The source rings first; when it answers, the destination;
    when both answer they talk until ``duration`` (callDuration) runs out."""
    views = {view.get("role"): view for view in record.get("phoneCallView", [])}
    source_view, dest_view = views.get("source", {}), views.get("destination", {})
    disposition = int(record.get("disposition", 4))
    problems: list[str] = []
    source_answered = _timestamp(source_view.get("answered"))
    dest_answered = _timestamp(dest_view.get("answered"))
    _check_answer(source, source_answered, _timestamp(record.get("published")), problems)
    if source_answered is None:
        _check_failure(source, disposition, problems)
        if dest_answered is not None:
            problems.append(f"{destination} answered, but it is called only once {source} has")
        return problems
    _check_answer(destination, dest_answered, source_answered, problems)
    if dest_answered is None:
        # callDuration counts from the source's answer: it may run out while this one rings
        cut_off = record.get("hangupCause") == "call duration reached"
        _check_failure(destination, disposition, problems, duration if cut_off else None)
        return problems
    if disposition != ANSWERED:
        problems.append(f"both answered, but the call ended {DISPOSITIONS.get(disposition)}")
    if record.get("hangupCause") != "call duration reached":
        problems.append(
            f"the call should end when callDuration ({duration} s) runs out, "
            f"not with {record.get('hangupCause')!r}"
        )
    return problems


def _check_answer(
    number: str, answered: datetime | None, called: datetime | None, problems: list[str]
) -> None:
    if answered is None:
        return
    promise = promise_for(sandbox_index(number))
    if not promise.answers:
        problems.append(f"{number} answered, but it {promise.text}")
    elif called is not None:
        delay = (answered - called).total_seconds()
        if not promise.earliest - EARLY <= delay <= promise.latest + LATE:
            problems.append(f"{number} answered after {delay:.1f} s, but it {promise.text}")


def _check_failure(
    number: str, disposition: int, problems: list[str], cut_off_after: float | None = None
) -> None:
    """``number`` did not answer and the call ended with ``disposition``; ``cut_off_after``:
    callDuration ran out that many seconds after ``number`` was called."""
    promise: SandboxPromise = promise_for(sandbox_index(number))
    allowed = set()
    if promise.busy:
        allowed.add(BUSY)
    if not promise.answers and not promise.busy:
        allowed.add(NO_ANSWER)
    if promise.answers and cut_off_after is not None and cut_off_after <= promise.latest + LATE:
        allowed.add(NO_ANSWER)  # it could still have been ringing
    if disposition not in allowed:
        outcome = "did not answer" if disposition == NO_ANSWER else "ended the call"
        problems.append(
            f"{number} {outcome} ({DISPOSITIONS.get(disposition, disposition)}), "
            f"but it {promise.text}"
        )


def _timestamp(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None
