"""Memory benchmark: RSS per live bridged call at 1,000 and 5,000 concurrent calls.

A SIPp UAC (built-in ``uac``, from the trusted-peer port) places N long calls (``-d``) at a
steady rate through the B2BUA to a SIPp UAS (built-in ``uas``) and holds them; no RTP flows, but
ours anchors every call in its relay anyway (2 RTP/RTCP port pairs = 4 sockets per call).

Figures, from ``/proc/PID/status`` VmRSS of the B2BUA process (and, as ``tree_*``, the PSS of
the process and its children: the relay may run in a child process):

    base     RSS after start-up and 20 warm-up calls have ended
    setup    RSS right after the last call was answered: the N calls are live and the INVITE
             transactions of the last ~32 s still linger (RFC 6026 Accepted state, Timer L/M)
    steady   RSS 35 s later: only the N live dialogs/calls (the transactions have ended)
    per call (steady - base) / N and (setup - base) / N, in KiB

What limits N: 4 sockets per call in the relay process (RLIMIT_NOFILE: the harness asks for
65,536; where even root may not raise the hard limit, as in a container without
CAP_SYS_RESOURCE, the relay gets the hard limit: the ``fd_limit`` column, and a note when N calls
need more), the media port range (2 even/odd pairs per call: the harness gives 34000-59999,
13,000 pairs = 6,500 calls), and the ramp rate.

Usage: python benchmarks/bench_memory.py [--calls 1000,5000] [--rate 200] [--systems ours,sippy]
       [--settle 35] [--gc-freeze]
Writes benchmarks/out/memory.csv.
"""

from __future__ import annotations

import argparse
import collections
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    OUT,
    OursServer,
    Sipp,
    SippyServer,
    descendants,
    free_port,
    machine_line,
    nofile_limit,
    print_table,
    rss_kib,
    said_since,
    tree_rss_kib,
    write_csv,
)

from engine.media.fdlimit import endpoints_within

SERVICE = "5551234"
COLUMNS = [
    "system",
    "calls",
    "held",
    "held_steady",
    "failed",
    "fd_limit",
    "base_mib",
    "setup_mib",
    "steady_mib",
    "kib_per_call_setup",
    "kib_per_call_steady",
    "tree_base_mib",
    "tree_kib_per_call_setup",
    "tree_kib_per_call",
]


def current_calls(uac: Sipp) -> int:
    rows = uac.rows()
    if not rows:
        return 0
    try:
        return int(float(rows[-1].get("CurrentCall", "0") or 0))
    except ValueError:
        return 0


def uac_args(target: str, calls: int, rate: int, hold_ms: int) -> list[str]:
    return [
        target,
        "-sn",
        "uac",
        "-s",
        SERVICE,
        "-r",
        str(rate),
        "-m",
        str(calls),
        "-l",
        str(calls),
        "-d",
        str(hold_ms),
        "-recv_timeout",
        "30000",
        "-timeout",
        f"{hold_ms // 1000 + 120}s",
    ]


def measure(system_name: str, calls: int, args: argparse.Namespace) -> dict[str, Any]:
    uac_port = free_port()
    uas = Sipp(["-sn", "uas", "-timeout", "3600s"], "uas")
    uas.start()
    env = {"BENCH_GC_FREEZE": "1"} if args.gc_freeze else {}
    sut: Any = (
        OursServer(uac_port, uas.port, env=env, src=args.src)
        if system_name == "ours"
        else SippyServer(uas.port)
    )
    try:
        with sut as system:
            assert system.pid is not None
            # warm-up: import-on-first-use code paths, caches, store tables
            warm = Sipp(uac_args(system.target, 20, 20, 0), "warm")
            warm.start()
            warm.wait(60)
            warm.cleanup()
            time.sleep(args.settle)  # the warm-up's transactions end
            base = rss_kib(system.pid)
            base_tree = tree_rss_kib(system.pid)
            # the tightest descriptor limit among the server and its relay process
            limits = [x for x in map(nofile_limit, descendants(system.pid)) if x is not None]
            fd_limit = min(limits) if limits else None
            ramp = calls / args.rate
            # every call is still up at the steady reading even if the ramp runs late
            hold_ms = int((2 * ramp + args.settle + 60) * 1000)
            uac = Sipp(uac_args(system.target, calls, args.rate, hold_ms), "uac")
            uac.start()
            try:
                deadline = time.monotonic() + ramp + 30
                held = 0
                while time.monotonic() < deadline:
                    time.sleep(1)
                    held = current_calls(uac)
                    if held >= calls or (uac.proc is not None and uac.proc.poll() is not None):
                        break
                time.sleep(2)
                held = current_calls(uac)
                setup = rss_kib(system.pid)
                setup_tree = tree_rss_kib(system.pid)
                print(f"   {system_name}: {held} calls held, RSS {setup / 1024:.1f} MiB; settling")
                time.sleep(args.settle)
                held_steady = current_calls(uac)
                steady = rss_kib(system.pid)
                steady_tree = tree_rss_kib(system.pid)
                rows = uac.rows()
                failed = int(float(rows[-1].get("FailedCall(C)", "0") or 0)) if rows else 0
                errors = uac.result(0).errors.strip().splitlines()
                # why the server failed calls, in its own words (ours counts its warnings)
                server_warnings = said_since(getattr(sut, "drain", None), collections.Counter())
            finally:
                uac.cleanup()
    finally:
        uas.stop()
        uas.cleanup()
    return {
        "system": system_name,
        "calls": calls,
        "held": held,
        "held_steady": held_steady,
        "failed": failed,
        "fd_limit": fd_limit,
        "base_mib": round(base / 1024, 1),
        "setup_mib": round(setup / 1024, 1),
        "steady_mib": round(steady / 1024, 1),
        "kib_per_call_setup": round((setup - base) / max(1, held), 1),
        "kib_per_call_steady": round((steady - base) / max(1, held_steady), 1),
        "tree_base_mib": round(base_tree / 1024, 1),
        "tree_kib_per_call": round((steady_tree - base_tree) / max(1, held_steady), 1),
        "tree_kib_per_call_setup": round((setup_tree - base_tree) / max(1, held), 1),
        "first_error": errors[1][:160] if len(errors) > 1 else "",
        "server_warnings": server_warnings,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", default="1000,5000")
    parser.add_argument("--rate", type=int, default=200, help="ramp-up calls/s")
    parser.add_argument("--systems", default="ours")
    parser.add_argument("--settle", type=float, default=35.0, help="seconds for Timer L/M/J")
    parser.add_argument("--gc-freeze", action="store_true", help="gc.freeze() ours after imports")
    parser.add_argument("--src", type=Path, default=None, help="run ours from this checkout")
    parser.add_argument("--tag", default="")
    args = parser.parse_args()
    print(machine_line())
    rows = []
    for system in args.systems.split(","):
        for calls in (int(x) for x in args.calls.split(",")):
            row = measure(system, calls, args)
            rows.append(row)
            print_table([row], COLUMNS)
            if row["first_error"]:
                print("   first error:", row["first_error"])
            for line in row.pop("server_warnings"):
                print("   server:", line[:200])
            fits = endpoints_within(row["fd_limit"]) // 2 if row["fd_limit"] else None
            if fits is not None and fits < calls:
                print(
                    f"   note: {calls} calls need {4 * calls} relay sockets; the relay may open "
                    f"{row['fd_limit']} descriptors (RLIMIT_NOFILE), so about {fits} calls fit"
                )
    suffix = f"-{args.tag}" if args.tag else ""
    write_csv(OUT / f"memory{suffix}.csv", rows)
    print()
    print_table(rows, COLUMNS)
    print(f"wrote {OUT / f'memory{suffix}.csv'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
