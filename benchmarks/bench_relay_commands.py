"""Relay control cost: the engine thread's CPU per command to the relay process.

The trio thread pays for every command it sends to ``RelayProcess`` (pickling, the socket
write); one-way commands (set_remote, stop_tone...) are ~7 per call, round trips (stats) one.
Prints the parent's CPU time per command, best of ``--repeat`` rounds:

    python benchmarks/bench_relay_commands.py [--count 5000] [--repeat 5]

Compare two checkouts with PYTHONPATH=DIR (the relay child is started from the same tree).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import machine_line, print_table

from engine.media.process import RelayProcess

HOST = "127.0.0.1"


def best_cpu_us(relay: RelayProcess, step: Callable[[], None], count: int, repeat: int) -> float:
    """CPU µs of this process per ``step`` call, best of ``repeat`` rounds of ``count``."""
    best = float("inf")
    for _ in range(repeat):
        start = time.process_time()
        for _ in range(count):
            step()
        relay.sync()  # the child has taken every command of the round
        best = min(best, (time.process_time() - start) / count * 1e6)
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--ports", default="41000,41099", help="relay port range LOW,HIGH")
    args = parser.parse_args()
    low, high = (int(x) for x in args.ports.split(","))
    print(machine_line())
    with RelayProcess(HOST, (low, high)) as relay:
        relay.start()
        a, b = relay.allocate(), relay.allocate()
        rows = [
            {
                "command": name,
                "kind": kind,
                "cpu_us": round(best_cpu_us(relay, step, args.count, args.repeat), 2),
            }
            for name, kind, step in [
                ("set_remote", "one-way", lambda: relay.set_remote(a, HOST, 6000)),
                ("stop_tone", "one-way", lambda: relay.stop_tone(b)),
                ("set_direction", "one-way", lambda: relay.set_direction(a, True, True)),
                ("stats", "round trip", lambda: relay.stats(a)),
            ]
        ]
    print_table(rows, ["command", "kind", "cpu_us"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
