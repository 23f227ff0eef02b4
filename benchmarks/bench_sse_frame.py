"""CPU per Server-Sent Events message of ``GET .../events``: the model's renderer against the
hand-written f-string it replaced, and against a pydantic round trip per event, for scale.

All three write the same bytes for the same CallEvent JSON object (checked before timing):

- ``f-string``: the former ``api.events.sse_frame``, copied here as the reference;
- ``CallEventMessage.frame``: what the stream runs now (``api.sse``);
- ``pydantic round trip``: a ``CallEventMessage`` built and validated per event, the way the
  renderer does not go.

Run: ``python benchmarks/bench_sse_frame.py [--events N] [--rounds R]``. The three run
interleaved, ``R`` rounds of ``N`` renders each; it prints the best and the median round per
message, in µs of process time (one core).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from api.resources import CallEvent, dump_event
from api.sse import CallEventMessage

PAYLOAD = dump_event(
    CallEvent(
        phoneCallId="6f599653d2dfa06d7265",
        seq=5,
        event="source_answered",
        state="calling_source",
        at="2026-12-07T19:45:05.274176Z",
        final=False,
        data={"party": "0003*00"},
    )
)


def f_string(payload: dict[str, Any]) -> bytes:
    data = json.dumps(payload, separators=(",", ":"))
    return f"id: {payload['seq']}\nevent: {payload['event']}\ndata: {data}\n\n".encode()


def round_trip(payload: dict[str, Any]) -> bytes:
    data = json.dumps(payload, separators=(",", ":"))
    message = CallEventMessage.model_validate(
        {"id": str(payload["seq"]), "event": payload["event"], "data": data}
    )
    return f"id: {message.id}\nevent: {message.event}\ndata: {data}\n\n".encode()


RENDERERS: dict[str, Callable[[dict[str, Any]], bytes]] = {
    "f-string (before)": f_string,
    "CallEventMessage.frame (now)": CallEventMessage.frame,
    "pydantic round trip": round_trip,
}


def one_round(render: Callable[[dict[str, Any]], bytes], events: int) -> float:
    """µs of process time per message over ``events`` renders."""
    payload = PAYLOAD
    start = time.process_time()
    for _ in range(events):
        render(payload)
    return (time.process_time() - start) / events * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000, help="renders per round")
    parser.add_argument("--rounds", type=int, default=7, help="interleaved rounds")
    args = parser.parse_args()
    expected = f_string(PAYLOAD)
    for name, render in RENDERERS.items():
        if render(PAYLOAD) != expected:
            raise SystemExit(f"{name} writes other bytes than the f-string")
    rounds: dict[str, list[float]] = {name: [] for name in RENDERERS}
    for _ in range(args.rounds):
        for name, render in RENDERERS.items():
            rounds[name].append(one_round(render, args.events))
    print(f"# benchmarks/bench_sse_frame.py --events {args.events} --rounds {args.rounds}")
    print(
        f"# {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, load average {os.getloadavg()[0]:.1f}; "
        f"one {len(expected)}-byte message"
    )
    for name, times in rounds.items():
        rendered = ", ".join(f"{t:.2f}" for t in times)
        print(
            f"{name}: best {min(times):.2f} µs, median {statistics.median(times):.2f} µs "
            f"per message (rounds {rendered})"
        )


if __name__ == "__main__":
    main()
