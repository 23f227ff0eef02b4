"""What the per-call SIP trace and the operators' console cost the server.

``--part trace`` (default ``both``): two ``b2bua serve`` started side by side in one run, the
same but for ``[sip] trace_messages`` (200, the default, and 0: no trace, no observer on the
transport). Each takes SIPp calls in turn (built-in ``uac`` through the server as a trusted peer
to a built-in ``uas`` on its default route; 0 s calls, ``--rate`` calls/s for ``--window`` s),
alternating ``--rounds`` times so that a busy moment of the shared machine falls on both. Per
step: the server's main-thread CPU (``/proc/PID/task/PID``: signalling, the engine, HTTP)
divided by the calls SIPp completed. Also, in this process, the trace's own work per call
(``CallTraces``: bind two legs, file 14 messages, freeze and compress after the end), timed
over ``--micro`` calls: the part of the difference that is the trace itself.

``--part console``: one server (traces on) holding ``--live`` long calls (SIPp ``uac`` with
``-d`` of 10 minutes: every call stays bridged), then the server's CPU (all threads) over
``--window`` s three ways: no browser, headless Chromium signed in to ``/console`` as the
calls' App (polling its page of 50 calls and the counters every second), and Chromium with one
call open (its trace polled too). Also the console's two reads timed from here (p50/p99 over
``--samples`` requests each at that load) and Chromium's own CPU.

Prints the tables; ``--out FILE`` also writes them (raw rows as CSV next to it).

    python benchmarks/bench_console.py --part trace --rate 100 --window 10 --rounds 2
    python benchmarks/bench_console.py --part console --live 1000 --window 20
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common import (
    OursServer,
    Sipp,
    cpu_seconds,
    descendants,
    machine_line,
    thread_cpu,
    tree_cpu_seconds,
)

SERVICE = "5551234"


class TracedServer(OursServer):
    """``b2bua serve`` of the benchmarks, with ``[sip] trace_messages`` set."""

    def __init__(self, trace_messages: int, **kw: Any) -> None:
        super().__init__(**kw)
        self.trace_messages = trace_messages

    def write_files(self) -> Path:
        config = super().write_files()
        text = config.read_text()
        text = text.replace(
            'domain = "bench.example.com"\n',
            f'domain = "bench.example.com"\ntrace_messages = {self.trace_messages}\n',
        )
        config.write_text(text)
        return config


def main_thread_cpu(pid: int) -> float:
    return thread_cpu(pid).get(pid, 0.0)


def run_calls(target: str, rate: int, window: float, hold_ms: int = 0, calls: int = 0) -> Sipp:
    count = calls or int(rate * window)
    args = [
        target,
        "-sn",
        "uac",
        "-s",
        SERVICE,
        "-r",
        str(rate),
        "-m",
        str(count),
        "-d",
        str(hold_ms),
        "-l",
        str(max(2000, count + 10)),
        "-recv_timeout",
        "20000",
        "-timeout",
        f"{int(window + hold_ms / 1000 + 60)}s",
        "-default_behaviors",
        "all,-abortunexp",
    ]
    return Sipp(args, "uac").start()


# ------------------------------------------------------------------------------ the trace


def micro_trace_cost(calls: int) -> float:
    """CPU microseconds of CallTraces work per call (two legs, 14 messages, frozen after)."""
    from engine.trace import CallTraces
    from sip.message import parse_message, serialize
    from sip.transaction_types import Peer

    sdp = (
        "v=0\r\no=- 4192191047761683719 0 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\n"
        "t=0 0\r\nm=audio 29990 RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\n"
        "a=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n"
    )

    def message(first: str, call_id: str, cseq: str) -> Any:
        # an offer in the INVITE and an answer in its 200, as a real call has
        body = sdp if first.startswith(("INVITE", "SIP/2.0 200")) and "INVITE" in cseq else ""
        kind = "Content-Type: application/sdp\r\n" if body else ""
        return parse_message(
            (
                f"{first}\r\nVia: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bK{call_id}\r\n"
                "Max-Forwards: 70\r\n"
                f'From: "Bench" <sip:4242425@bench.example.com>;tag=a1\r\n'
                f"To: <sip:5551234@bench.example.com>;tag=b2\r\nCall-ID: {call_id}\r\n"
                f"CSeq: {cseq}\r\nContact: <sip:127.0.0.1:5062>\r\nUser-Agent: bench\r\n"
                f"{kind}Content-Length: {len(body)}\r\n\r\n{body}"
            ).encode()
        )

    peer = Peer("udp", "127.0.0.1", 5062)
    flow = [
        ("in", "INVITE sip:5551234@bench SIP/2.0", "1 INVITE"),
        ("out", "SIP/2.0 100 Trying", "1 INVITE"),
        ("out", "SIP/2.0 180 Ringing", "1 INVITE"),
        ("out", "SIP/2.0 200 OK", "1 INVITE"),
        ("in", "ACK sip:5551234@bench SIP/2.0", "1 ACK"),
        ("in", "BYE sip:5551234@bench SIP/2.0", "2 BYE"),
        ("out", "SIP/2.0 200 OK", "2 BYE"),
    ]
    # the messages and their wire bytes exist already in the server (parsed from the datagram,
    # or serialised to send it): not timed here
    legs = [
        [(d, m := message(first, f"{n}-{leg}", cseq), serialize(m)) for d, first, cseq in flow]
        for n in range(calls)
        for leg in ("a", "b")
    ]
    now = [0.0]
    traces = CallTraces(clock=lambda: now[0], linger=0.0)
    started = time.thread_time()  # CPU time of this thread: the machine is shared
    for n in range(calls):
        for leg_index, leg in enumerate(("a", "b")):
            traces.bind(f"{n}-{leg}", f"pc{n}", f"party-{leg}")
            for direction, msg, data in legs[2 * n + leg_index]:
                traces.message(direction, msg, peer, data)
        traces.call_ended(f"pc{n}")  # linger 0: frozen (serialized, compressed) right here
    elapsed = time.thread_time() - started
    stats = traces.statistics()
    print(
        f"micro: {calls} calls, {elapsed / calls * 1e6:.1f} us/call, "
        f"{stats['frozen_bytes'] / max(1, stats['frozen_traces']):.0f} compressed bytes/call"
    )
    return elapsed / calls * 1e6


def part_trace(args: argparse.Namespace) -> list[dict[str, Any]]:
    uas = Sipp(["-sn", "uas", "-buff_size", "1048576"], "uas").start()
    rows: list[dict[str, Any]] = []
    servers = {
        "trace on": TracedServer(200, uac_port=0, uas_port=uas.port, media_range=(34000, 36999)),
        "trace off": TracedServer(0, uac_port=0, uas_port=uas.port, media_range=(37000, 39999)),
    }
    systems = {}
    try:
        for name, server in servers.items():
            systems[name] = server.__enter__()
        for round_index in range(args.rounds):
            for name, system in systems.items():
                pid = system.pid
                before_main, before_all = main_thread_cpu(pid), cpu_seconds(pid)
                uac = run_calls(system.target, args.rate, args.window)
                try:
                    result = uac.wait(args.window + 90)
                    done = result.last("SuccessfulCall(C)")
                finally:
                    uac.cleanup()
                time.sleep(1.0)  # the last BYEs and the traces' freezing
                main = main_thread_cpu(pid) - before_main
                whole = cpu_seconds(pid) - before_all
                row = {
                    "round": round_index + 1,
                    "system": name,
                    "rate": args.rate,
                    "calls": done,
                    "sipp_exit": result.returncode,
                    "failed": result.last("FailedCall(C)"),
                    "main_ms_per_call": round(main / max(1, done) * 1000, 3),
                    "process_ms_per_call": round(whole / max(1, done) * 1000, 3),
                }
                rows.append(row)
                print(json.dumps(row))
        rows.append(real_trace_size(servers["trace on"].api_url))
        print(json.dumps(rows[-1]))
    finally:
        for server in servers.values():
            server.__exit__(None, None, None)
        uas.cleanup()
    rows.append({"system": "micro", "us_per_call": round(micro_trace_cost(args.micro), 1)})
    return rows


def real_trace_size(api: str) -> dict[str, Any]:
    """Messages and compressed bytes of the newest ended call's trace (compressed as the
    server keeps a frozen trace: compact JSON rows, zlib level 1)."""
    import zlib

    token = httpx.post(
        f"{api}/oauth/token.php",
        data={
            "grant_type": "client_credentials",
            "client_id": "bench-app",
            "client_secret": "bench-secret",
        },
    ).json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    calls = httpx.get(f"{api}/uapi/console/calls?state=ended&count=1", headers=headers).json()[
        "entry"
    ]
    call = calls[0]
    rows = httpx.get(
        f"{api}/uapi/phoneCalls/{call['userId']}/{call['extension']}/{call['id']}/trace",
        headers=headers,
    ).json()
    packed = [
        [r["ts"], r["direction"], r["party"], "udp", r["peer"], 0, r["message"]] for r in rows
    ]
    blob = zlib.compress(json.dumps(packed, separators=(",", ":")).encode(), 1)
    return {"system": "real trace", "messages": len(rows), "compressed_bytes": len(blob)}


# ------------------------------------------------------------------------------ the console


def chromium_cpu(browser: Any) -> float:
    pid = browser.service.process.pid
    return sum(cpu_seconds(p) for p in [pid, *descendants(pid)])


def timed_reads(api: str, token: str, samples: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=api, headers=headers, timeout=30) as client:
        for name, path in (
            ("calls", "/uapi/console/calls?state=all&count=50&startIndex=0"),
            ("summary", "/uapi/console/summary"),
        ):
            times = []
            for _ in range(samples):
                started = time.perf_counter()
                reply = client.get(path)
                times.append((time.perf_counter() - started) * 1000)
                reply.raise_for_status()
            times.sort()
            out[f"{name}_p50_ms"] = round(statistics.median(times), 1)
            out[f"{name}_p99_ms"] = round(times[min(len(times) - 1, int(len(times) * 0.99))], 1)
    return out


def part_console(args: argparse.Namespace) -> list[dict[str, Any]]:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from tests.integration.browser import chromium

    uas = Sipp(["-sn", "uas", "-buff_size", "1048576"], "uas").start()
    server = TracedServer(200, uac_port=0, uas_port=uas.port, media_range=(40000, 49999))
    rows: list[dict[str, Any]] = []
    system = server.__enter__()
    uac = None
    try:
        hold_ms = 600_000
        uac = run_calls(system.target, args.fill_rate, 0, hold_ms=hold_ms, calls=args.live)
        token = httpx.post(
            f"{server.api_url}/oauth/token.php",
            data={
                "grant_type": "client_credentials",
                "client_id": "bench-app",
                "client_secret": "bench-secret",
            },
        ).json()["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        deadline = time.monotonic() + args.live / args.fill_rate + 60
        live = 0
        while time.monotonic() < deadline:
            summary = httpx.get(f"{server.api_url}/uapi/console/summary", headers=headers).json()
            live = summary["bridged"]
            if live >= args.live:
                break
            time.sleep(1)
        print(f"live bridged calls: {live}")
        time.sleep(3)

        def measure(label: str, browser: Any = None) -> None:
            pid = system.pid
            before = tree_cpu_seconds(pid)
            before_main = main_thread_cpu(pid)
            before_browser = chromium_cpu(browser) if browser is not None else 0.0
            time.sleep(args.window)
            row: dict[str, Any] = {
                "system": label,
                "live_calls": live,
                "server_cpu_pct": round((tree_cpu_seconds(pid) - before) / args.window * 100, 1),
                "main_thread_cpu_pct": round(
                    (main_thread_cpu(pid) - before_main) / args.window * 100, 1
                ),
            }
            if browser is not None:
                row["chromium_cpu_pct"] = round(
                    (chromium_cpu(browser) - before_browser) / args.window * 100, 1
                )
            rows.append(row)
            print(json.dumps(row))

        measure("no browser")
        with chromium() as browser:
            wait = WebDriverWait(browser, 30, poll_frequency=0.2)
            browser.get(f"{server.api_url}/console")
            browser.find_element(By.ID, "client-id").send_keys("bench-app")
            browser.find_element(By.ID, "client-secret").send_keys("bench-secret")
            browser.find_element(By.ID, "signin-button").click()
            wait.until(lambda b: len(b.find_elements(By.CSS_SELECTOR, "#calls tbody tr")) == 50)
            page = browser.find_element(By.ID, "page-info").text
            print(f"console shows: {page}")
            measure("console open", browser)
            browser.find_elements(By.CSS_SELECTOR, "#calls tbody tr")[0].click()
            wait.until(lambda b: b.find_elements(By.CSS_SELECTOR, "#ladder .arrow"))
            measure("console, one call open", browser)
        reads = timed_reads(server.api_url, token, args.samples)
        reads["system"] = "console reads"
        reads["live_calls"] = live
        rows.append(reads)
        print(json.dumps(reads))
    finally:
        if uac is not None:
            uac.cleanup()
        server.__exit__(None, None, None)
        uas.cleanup()
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--part", choices=["trace", "console", "both"], default="both")
    parser.add_argument("--rate", type=int, default=100)
    parser.add_argument("--window", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--micro", type=int, default=20000)
    parser.add_argument("--live", type=int, default=1000)
    parser.add_argument("--fill-rate", type=int, default=100)
    parser.add_argument("--samples", type=int, default=100)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    header = f"# {machine_line()} (shared with other jobs), {' '.join(sys.argv[1:])}"
    print(header)
    rows: list[dict[str, Any]] = []
    if args.part in ("trace", "both"):
        rows += part_trace(args)
    if args.part in ("console", "both"):
        rows += part_console(args)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        names: list[str] = []
        for row in rows:
            names += [k for k in row if k not in names]
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=names)
        writer.writeheader()
        writer.writerows(rows)
        args.out.write_text(header + "\n" + buffer.getvalue())
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
