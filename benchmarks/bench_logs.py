"""CPU of the calling thread per log line: ``serve``'s hand-over to the log thread
(``b2bua.logs``) against a StreamHandler writing in place, both to a pipe that another thread
drains (what stderr read by a supervisor is).

    .venv/bin/python benchmarks/bench_logs.py --lines 20000 --rounds 3
"""

from __future__ import annotations

import argparse
import logging
import logging.handlers
import os
import queue
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from b2bua.logs import TEXT_FORMAT, _Handoff


def per_line(log: logging.Logger, handler: logging.Handler, lines: int) -> float:
    """µs of this thread's CPU per INFO line like a call's creation line."""
    log.handlers[:] = [handler]
    started = time.thread_time()
    for _ in range(lines):
        log.info(
            "call %s created (%s): %s -> %s",
            "0123456789abcdef0123",
            "api",
            "0003*210",
            "0003*05",
            extra={"call": "0123456789abcdef0123"},
        )
    return (time.thread_time() - started) / lines * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    read_end, write_end = os.pipe()

    def drain() -> None:
        while os.read(read_end, 65536):
            pass

    threading.Thread(target=drain, daemon=True).start()
    stream = logging.StreamHandler(os.fdopen(write_end, "w"))
    stream.setFormatter(logging.Formatter(TEXT_FORMAT))
    log = logging.getLogger("engine.engine")
    log.propagate = False
    log.setLevel(logging.INFO)
    print(f"{args.lines} lines per round; load average {os.getloadavg()[0]:.2f}")
    for round_ in range(1, args.rounds + 1):
        in_place = per_line(log, stream, args.lines)
        records: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
        writer = logging.handlers.QueueListener(records, stream)
        writer.start()
        handed = per_line(log, _Handoff(records), args.lines)
        writer.stop()
        print(f"round {round_}: in place {in_place:.1f} µs, handed over {handed:.1f} µs per line")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
