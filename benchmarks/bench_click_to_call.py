"""Click-to-call under load: Simple PhoneCalls created through the HTTP API, real SIPp phones.

Starts the real ``b2bua serve`` (port 0, a temporary store, the relay on a big port range, via
``common.OursServer`` so the launcher's GC/cProfile switches work) with three ``[[routes]]``:

- ``5354353``  -> SIPp phone A: ``gateway_answer_tone.xml`` answers at once and streams a 440 Hz
  tone until the BYE (``--media echo``: ``gateway_answer.xml -rtp_echo`` instead);
- ``5302040``  -> SIPp phone B: ``gateway_noanswer.xml`` rings and never answers, so every call
  must CANCEL it once A answered;
- ``3235742879`` -> SIPp destination: ``gateway_answer.xml -rtp_echo`` answers and echoes RTP.

Then, for each rate step (default 25, 50, 100, 150, 200 calls/s, ``--window`` seconds each), an
open-loop generator (an async httpx client, one task per request, ``--connections`` keep-alive
connections) POSTs ``/uapi/phoneCalls/@me/simple?callDuration=2`` with sources A and B and the
destination, each request at its scheduled time whether or not earlier ones came back. After the
window it waits until every call of the step has ended, then reads each call's disposition from
the store file (SQLite, read-only; a sample is cross-checked with GET through the API) and the
SIPp message counts (``-trace_counts``), and prints per step:

- ``created/s``: 202 answers per second of the window; ``answered/s``: calls of the step that
  ended ANSWERED per second of the window; ``fail``: any other disposition, any API error
  (non-202, timeout) or a call still live 30 s after its step;
- API create latency p50/p99 in ms, measured from the request's scheduled time (so a client or
  server that falls behind shows up as latency, not as a lower rate);
- ``srv_cpu%`` (server CPU: all threads and the relay's child process, during the window) and
  ``srv_ms/call`` (server CPU from the step's start until its last call ended, per call
  created): the figure that stays comparable when other processes share the machine;
  ``main_ms/call`` (CSV only): the same for the server process alone (without the relay child);
- ``B CANCEL`` (must equal the calls created), ``A BYE`` and ``D BYE`` (must equal the answered
  calls), and ``retrans``: messages the phones received again or sent again (the server was late
  or lost one). A phone counts an unexpected message (an INVITE retransmitted after its 200,
  when the server did not see the 180 within 500 ms) instead of aborting the call, as
  ``bench_signalling.py`` does; ``--strict`` restores SIPp's abort. ``sip_drops``: datagrams
  the kernel dropped at the server's SIP socket (its receive buffer was full).

Writes ``benchmarks/out/click_to_call[-TAG].csv`` and ``.png``.

    python benchmarks/bench_click_to_call.py                      # 25,50,100,150,200 /s x 10 s
    python benchmarks/bench_click_to_call.py --quick              # 50,150 /s x 4 s
    python benchmarks/bench_click_to_call.py --rates 150 --window 20 --py-spy 8 --tag prof
    python benchmarks/bench_click_to_call.py --src /tmp/before --candidate . --tag ab  # A/B
    python benchmarks/bench_click_to_call.py --status-callback   # every call with a callback
    python benchmarks/bench_click_to_call.py --backends relay,rtpengine   # both media backends

``--backends relay,rtpengine`` runs one server per media backend, step by step (same load);
rtpengine-daemon runs in userspace (``rtpengine.py``), and ``media_ms/call`` is the CPU of
the media process per call: the relay's child process, or rtpengine's daemon.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import math
import os
import socket
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import trio

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    HOST,
    OUT,
    REPO,
    OursServer,
    Sipp,
    cpu_seconds,
    machine_line,
    print_table,
    summarize_profile,
    write_csv,
)

SOURCE_A = "5354353"
SOURCE_B = "5302040"
DESTINATION = "3235742879"
SCENARIOS = REPO / "sipp_scenarios"
ANSWERED = 0  # UAPI disposition code
COLUMNS = (
    "system",
    "rate",
    "created/s",
    "answered/s",
    "fail",
    "api_err",
    "p50_ms",
    "p99_ms",
    "max_ms",
    "B_CANCEL",
    "A_BYE",
    "D_BYE",
    "retrans",
    "sip_drops",
    "srv_cpu%",
    "srv_ms/call",
    "main_ms/call",
    "media_ms/call",
    "client_cpu%",
    "sipp_cpu%",
    "ok",
)
CALLBACK_COLUMNS = ("cb_posts", "cb_finals")  # printed with --status-callback


class ClickToCallServer(OursServer):
    """``b2bua serve`` with the three routes of this benchmark and an App for user 12."""

    def __init__(self, a_port: int, b_port: int, d_port: int, **kw: Any) -> None:
        super().__init__(uac_port=0, uas_port=0, **kw)
        self.routes = {SOURCE_A: a_port, SOURCE_B: b_port, DESTINATION: d_port}

    def write_files(self) -> Path:
        config = super().write_files()
        routes = "".join(
            f'\n[[routes]]\nprefix = "{prefix}"\ngateway = "udp:{HOST}:{port}"\nrate = 0.02\n'
            for prefix, port in self.routes.items()
        )
        directory = self.tmp / "directory.toml"
        text = directory.read_text()
        # drop the harness's default route and trusted peer: only our three routes
        text = text.split("[[routes]]")[0]
        directory.write_text(text + routes)
        return config

    @property
    def store_path(self) -> Path:
        return self.tmp / "b2bua.sqlite"


# ----------------------------------------------------------------------------- SIPp counts


@dataclass
class Counts:
    """Cumulative message counts of one SIPp (summed over the scenario's steps)."""

    cancel_recv: int = 0
    bye_recv: int = 0
    invite_recv: int = 0
    retrans: int = 0
    unexpected: int = 0
    stamp: float = 0.0

    def minus(self, other: Counts) -> Counts:
        return Counts(
            self.cancel_recv - other.cancel_recv,
            self.bye_recv - other.bye_recv,
            self.invite_recv - other.invite_recv,
            self.retrans - other.retrans,
            self.unexpected - other.unexpected,
        )


def read_counts(sipp: Sipp) -> Counts:
    """The last row of SIPp's ``-trace_counts`` CSV (written every ``-fd`` second)."""
    files = list(sipp.tmp.glob("*_counts.csv"))
    if not files:
        return Counts()
    lines = [line for line in files[0].read_text(errors="replace").splitlines() if line.strip()]
    if len(lines) < 2:
        return Counts()
    header = lines[0].rstrip(";").split(";")
    values = lines[-1].rstrip(";").split(";")
    out = Counts(stamp=time.time())
    for name, value in zip(header, values, strict=False):
        try:
            number = int(value)
        except ValueError:
            continue
        if name.endswith("_CANCEL_Recv"):
            out.cancel_recv += number
        elif name.endswith("_BYE_Recv"):
            out.bye_recv += number
        elif name.endswith("_INVITE_Recv"):
            out.invite_recv += number
        elif name.endswith("_Retrans"):
            out.retrans += number
        elif name.endswith("_Unexp"):
            out.unexpected += number
    return out


async def fresh_counts(sipps: list[Sipp]) -> list[Counts]:
    """Counts written after now (SIPp writes a row every second)."""
    now = time.time()
    await trio.sleep(1.2)
    for _ in range(30):
        counts = [read_counts(s) for s in sipps]
        if all(c.stamp > now for c in counts):
            return counts
        await trio.sleep(0.3)
    return [read_counts(s) for s in sipps]


# ----------------------------------------------------------------------------- load


@dataclass
class StepResult:
    rate: int
    window: float
    ids: list[str] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    api_errors: list[str] = field(default_factory=list)
    lag_max: float = 0.0


async def token_for(client: httpx.AsyncClient) -> str:
    reply = await client.post(
        "/oauth/token.php",
        data={
            "grant_type": "client_credentials",
            "client_id": "bench-app",
            "client_secret": "bench-secret",
        },
    )
    reply.raise_for_status()
    return str(reply.json()["access_token"])


class CallbackReceiver:
    """The App's statusCallback endpoint (``--status-callback``): a minimal HTTP/1.1 server on
    127.0.0.1 that answers every POST 200 at once and counts them, and the final events."""

    def __init__(self) -> None:
        self.posts = 0
        self.finals = 0
        self.port = 0

    async def serve(self, nursery: trio.Nursery) -> None:
        listeners = await nursery.start(
            functools.partial(trio.serve_tcp, self._handle, 0, host="127.0.0.1")
        )
        self.port = listeners[0].socket.getsockname()[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/status"

    async def _handle(self, stream: trio.SocketStream) -> None:
        buffer = b""
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            while True:
                while b"\r\n\r\n" not in buffer:
                    data = await stream.receive_some(65536)
                    if not data:
                        return
                    buffer += data
                head, _, buffer = buffer.partition(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                while len(buffer) < length:
                    data = await stream.receive_some(65536)
                    if not data:
                        return
                    buffer += data
                body, buffer = buffer[:length], buffer[length:]
                self.posts += 1
                if b'"final":true' in body.replace(b" ", b""):
                    self.finals += 1
                await stream.send_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")


async def run_step(
    client: httpx.AsyncClient,
    token: str,
    rate: int,
    window: float,
    duration: int,
    callback_url: str | None = None,
) -> StepResult:
    """Open loop: request i is sent at start + i/rate, each from its own task."""
    result = StepResult(rate, window)
    headers = {"Authorization": f"Bearer {token}"}
    request: dict[str, Any] = {
        "extension": "210",
        "phoneCallView": [
            {
                "source": [SOURCE_A, SOURCE_B],
                "destination": [DESTINATION],
                "callerId": "Bench <4242425>",
            }
        ],
    }
    if callback_url is not None:
        request["statusCallback"] = callback_url
    body = json.dumps(request).encode()
    headers["Content-Type"] = "application/json"
    url = f"/uapi/phoneCalls/@me/simple?callDuration={duration}"
    total = int(rate * window)

    async def one(scheduled: float) -> None:
        try:
            reply = await client.post(url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            result.api_errors.append(type(exc).__name__)
            return
        result.latencies.append(time.perf_counter() - scheduled)
        if reply.status_code == 202:
            result.ids.append(reply.json()[0]["id"])
        else:
            result.api_errors.append(str(reply.status_code))

    start = time.perf_counter() + 0.05
    async with trio.open_nursery() as nursery:
        for i in range(total):
            scheduled = start + i / rate
            delay = scheduled - time.perf_counter()
            if delay > 0:
                await trio.sleep(delay)
            else:
                result.lag_max = max(result.lag_max, -delay)
            nursery.start_soon(one, scheduled)
    return result


def read_dispositions(store: Path, ids: list[str]) -> dict[str, tuple[str, int | None]]:
    """id -> (state, disposition) from the server's store (read-only; WAL allows it)."""
    out: dict[str, tuple[str, int | None]] = {}
    db = sqlite3.connect(f"file:{store}?mode=ro", uri=True, timeout=10)
    try:
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            marks = ",".join("?" * len(chunk))
            for call_id, state, data in db.execute(
                f"SELECT id, state, data FROM calls WHERE id IN ({marks})", chunk
            ):
                out[call_id] = (state, json.loads(data).get("disposition"))
    finally:
        db.close()
    return out


async def wait_ended(
    store: Path, ids: list[str], timeout: float
) -> dict[str, tuple[str, int | None]]:
    deadline = time.monotonic() + timeout
    while True:
        got = await trio.to_thread.run_sync(read_dispositions, store, ids)
        live = [i for i in ids if got.get(i, ("", None))[0] != "ended"]
        if not live or time.monotonic() > deadline:
            return got
        await trio.sleep(0.5)


async def cross_check(
    client: httpx.AsyncClient, token: str, ids: list[str], got: dict[str, tuple[str, int | None]]
) -> int:
    """GET a sample of calls through the API; how many disagree with the store."""
    headers = {"Authorization": f"Bearer {token}"}
    wrong = 0
    for call_id in ids[:: max(1, len(ids) // 10)][:10]:
        reply = await client.get(f"/uapi/phoneCalls/@me/210/{call_id}", headers=headers)
        entry = reply.json()["entry"][0] if reply.status_code == 200 else {}
        if entry.get("disposition") != got.get(call_id, ("", None))[1]:
            wrong += 1
    return wrong


def udp_drops(port: int) -> int:
    """Datagrams the kernel dropped on the UDP socket bound to 127.0.0.1:``port`` (its receive
    buffer was full: the server did not read for a while)."""
    total = 0
    with contextlib.suppress(OSError):
        for line in Path("/proc/net/udp").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[1].upper() == f"0100007F:{port:04X}":
                total += int(fields[-1])
    return total


def tree_cpu(pid: int) -> float:
    """CPU seconds of ``pid`` and its child processes (the relay runs in a child)."""
    total = cpu_seconds(pid)
    for children in Path(f"/proc/{pid}/task").glob("*/children"):
        with contextlib.suppress(OSError):
            for child in children.read_text().split():
                total += cpu_seconds(int(child))
    return total


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    data = sorted(values)
    return data[min(len(data) - 1, max(0, math.ceil(q * len(data)) - 1))]


# ----------------------------------------------------------------------------- main


def tone_file() -> bytes:
    from engine.media.tone import encode_tone

    return encode_tone(440.0, 0, -12.0) * 3


@dataclass
class Sut:
    """One system under test: a server, its three SIPp phones, its HTTP client and token."""

    name: str
    server: ClickToCallServer
    sipps: list[Sipp]
    client: httpx.AsyncClient | None = None
    token: str = ""
    server_target: str = ""
    rtpengine: Any = None  # the daemon, for --backends rtpengine

    @property
    def pid(self) -> int:
        return self.server.proc.pid if self.server.proc else 0


async def bench(args: argparse.Namespace, suts: list[Sut]) -> list[dict[str, Any]]:
    limits = httpx.Limits(
        max_connections=args.connections, max_keepalive_connections=args.connections
    )
    rows: list[dict[str, Any]] = []
    async with contextlib.AsyncExitStack() as stack:
        if args.status_callback:
            nursery = await stack.enter_async_context(trio.open_nursery())
            args.receiver = CallbackReceiver()
            await args.receiver.serve(nursery)
            stack.callback(nursery.cancel_scope.cancel)
        for sut in suts:
            sut.client = await stack.enter_async_context(
                httpx.AsyncClient(base_url=sut.server.api_url, timeout=30, limits=limits)
            )
            sut.token = await token_for(sut.client)
            # warm up: a few calls so imports, caches and the first relay ports are done
            warm = await run_step(
                sut.client, sut.token, 10, 1.0, args.duration, _callback_url(args)
            )
            await wait_ended(sut.server.store_path, warm.ids, args.duration + 30)
        for rate in args.rates:
            for sut in suts:  # systems one after the other at each rate: same background load
                row = await one_step(args, sut, rate)
                rows.append(row)
                columns = COLUMNS + (CALLBACK_COLUMNS if args.status_callback else ())
                print_table([row], columns, header=len(rows) == 1)
                if row["ok"] != "yes":
                    print(
                        f"   {sut.name} {rate}/s: dispositions {row['dispositions']} api errors "
                        f"{row['errors'] or '-'} unexpected {row['unexpected']} "
                        f"api/store mismatch {row['api_mismatch']}",
                        flush=True,
                    )
    return rows


async def one_step(args: argparse.Namespace, sut: Sut, rate: int) -> dict[str, Any]:
    assert sut.client is not None
    client, token, sipps, pid = sut.client, sut.token, sut.sipps, sut.pid
    before = await fresh_counts(sipps)
    sip_port = int(sut.server_target.rsplit(":", 1)[1])
    drops0 = udp_drops(sip_port)
    cpu0, t0 = tree_cpu(pid), time.monotonic()
    main0 = cpu_seconds(pid)
    peer0 = cpu_seconds(sut.rtpengine.pid) if sut.rtpengine else 0.0
    me0 = cpu_seconds(os.getpid())
    sipp0 = sum(cpu_seconds(s.proc.pid) for s in sipps if s.proc)
    spy: subprocess.Popen[bytes] | None = None
    if args.py_spy and rate == args.rates[-1]:
        spy = start_py_spy(pid, args, sut.name)
    receiver: CallbackReceiver | None = args.receiver
    finals0 = receiver.finals if receiver else 0
    posts0 = receiver.posts if receiver else 0
    step = await run_step(client, token, rate, args.window, args.duration, _callback_url(args))
    cpu1, t1 = tree_cpu(pid), time.monotonic()
    me1 = cpu_seconds(os.getpid())
    sipp1 = sum(cpu_seconds(s.proc.pid) for s in sipps if s.proc)
    got = await wait_ended(sut.server.store_path, step.ids, args.duration + 30)
    if receiver is not None:  # the final callbacks follow the calls' ends
        with trio.move_on_after(30):
            while receiver.finals - finals0 < len(step.ids):
                await trio.sleep(0.1)
    cpu2, main2 = tree_cpu(pid), cpu_seconds(pid)
    peer2 = cpu_seconds(sut.rtpengine.pid) if sut.rtpengine else 0.0
    if spy is not None:
        finish_py_spy(spy, args, sut.name)
    after = await fresh_counts(sipps)
    a, b, d = (x.minus(y) for x, y in zip(after, before, strict=True))
    answered = sum(1 for i in step.ids if got.get(i, ("", None)) == ("ended", ANSWERED))
    failed = len(step.ids) - answered + len(step.api_errors)
    wrong = await cross_check(client, token, step.ids, got)
    created = len(step.ids)
    cb_finals = receiver.finals - finals0 if receiver else None
    ok = (
        failed == 0
        and (cb_finals is None or cb_finals == created)
        and wrong == 0
        and b.cancel_recv == created
        and a.bye_recv == answered
        and d.bye_recv == answered
    )
    stuck = [i for i in step.ids if got.get(i, ("", None))[0] != "ended"]
    if stuck and args.show_stuck:
        reply = await client.get(
            f"/uapi/phoneCalls/@me/210/{stuck[0]}", headers={"Authorization": f"Bearer {token}"}
        )
        print(f"   a call still live: {reply.text[: args.show_stuck]}", flush=True)
    return {
        "system": sut.name,
        "rate": rate,
        "created/s": created / args.window,
        "answered/s": answered / args.window,
        "fail": failed,
        "api_err": len(step.api_errors),
        "p50_ms": 1000 * percentile(step.latencies, 0.50),
        "p99_ms": 1000 * percentile(step.latencies, 0.99),
        "max_ms": 1000 * max(step.latencies, default=float("nan")),
        "B_CANCEL": b.cancel_recv,
        "A_BYE": a.bye_recv,
        "D_BYE": d.bye_recv,
        "retrans": a.retrans + b.retrans + d.retrans,
        "sip_drops": udp_drops(sip_port) - drops0,
        "srv_cpu%": 100 * (cpu1 - cpu0) / max(1e-9, t1 - t0),
        "srv_ms/call": 1000 * (cpu2 - cpu0) / max(1, created),
        "main_ms/call": 1000 * (main2 - main0) / max(1, created),
        # the media process: the relay's child (server tree minus the server), or rtpengine
        "media_ms/call": 1000
        * ((cpu2 - cpu0) - (main2 - main0) + (peer2 - peer0))
        / max(1, created),
        "client_cpu%": 100 * (me1 - me0) / max(1e-9, t1 - t0),
        "sipp_cpu%": 100 * (sipp1 - sipp0) / max(1e-9, t1 - t0),
        "ok": "yes" if ok else "NO",
        "loadavg": os.getloadavg()[0],
        "created": created,
        "answered": answered,
        "A_INVITE": a.invite_recv,
        "B_INVITE": b.invite_recv,
        "D_INVITE": d.invite_recv,
        "unexpected": a.unexpected + b.unexpected + d.unexpected,
        "api_mismatch": wrong,
        "sched_lag_max_ms": 1000 * step.lag_max,
        "errors": " ".join(sorted(set(step.api_errors)))[:200],
        "dispositions": json.dumps(_histogram(got, step.ids)),
        "cb_posts": receiver.posts - posts0 if receiver else "",
        "cb_finals": "" if cb_finals is None else cb_finals,
    }


def _callback_url(args: argparse.Namespace) -> str | None:
    receiver: CallbackReceiver | None = args.receiver
    return receiver.url if receiver is not None else None


def _histogram(got: dict[str, tuple[str, int | None]], ids: list[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for i in ids:
        state, disposition = got.get(i, ("missing", None))
        key = f"{state}:{disposition}"
        out[key] = out.get(key, 0) + 1
    return out


def start_py_spy(pid: int, args: argparse.Namespace, name: str) -> subprocess.Popen[bytes]:
    spy = Path(sys.executable).with_name("py-spy")
    path = OUT / f"click_to_call{args.suffix}-{name}-pyspy.txt"
    return subprocess.Popen(
        [
            str(spy),
            "record",
            "--pid",
            str(pid),
            "--format",
            "raw",
            "--rate",
            "100",
            "--duration",
            str(int(args.py_spy)),
            "--nonblocking",
            "-o",
            str(path),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def finish_py_spy(spy: subprocess.Popen[bytes], args: argparse.Namespace, name: str) -> None:
    try:
        spy.wait(args.py_spy + 30)
    except subprocess.TimeoutExpired:
        spy.kill()
        spy.wait()
    path = OUT / f"click_to_call{args.suffix}-{name}-pyspy.txt"
    if path.exists():
        summary = summarize_profile(path)
        (OUT / f"click_to_call{args.suffix}-{name}-pyspy-summary.txt").write_text(summary + "\n")
        print("\n".join(summary.splitlines()[:30]), flush=True)


def plot(rows: list[dict[str, Any]], path: Path, title: str) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib missing: no plot (pip install matplotlib)")
        return
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    all_rates = sorted({r["rate"] for r in rows})
    ax1.plot(all_rates, all_rates, ":", color="grey", label="offered")
    names = list(dict.fromkeys(r["system"] for r in rows))
    for k, name in enumerate(names):
        mine = [r for r in rows if r["system"] == name]
        rates = [r["rate"] for r in mine]
        tag = f"{name}: " if len(names) > 1 else ""
        ax1.plot(rates, [r["answered/s"] for r in mine], "s-", label=f"{tag}ANSWERED/s")
        ax1.bar(
            [x + 7 * k for x in rates],
            [r["fail"] for r in mine],
            width=6,
            alpha=0.5,
            label=f"{tag}failures",
        )
        ax2.plot(rates, [r["p50_ms"] for r in mine], "o--", label=f"{tag}API p50")
        ax2.plot(rates, [r["p99_ms"] for r in mine], "s-", label=f"{tag}API p99")
    ax1.set_xlabel("offered Simple PhoneCalls/s")
    ax1.set_ylabel("calls/s (failures: count)")
    ax1.legend(fontsize=8)
    ax1.grid(alpha=0.3)
    ax2.axhline(100, color="red", linestyle=":", label="100 ms target")
    ax2.set_yscale("log")
    ax2.set_xlabel("offered Simple PhoneCalls/s")
    ax2.set_ylabel("create latency (ms)")
    ax2.legend(fontsize=8)
    ax2.grid(alpha=0.3)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def make_sut(
    args: argparse.Namespace,
    name: str,
    src: Path | None,
    env: dict[str, str],
    timeout: str,
    backend: str = "relay",
) -> Sut:
    a_args = ["-sf", str(SCENARIOS / "gateway_answer_tone.xml"), "-set", "ring_ms", "0"]
    if args.media == "echo":
        a_args = ["-sf", str(SCENARIOS / "gateway_answer.xml"), "-rtp_echo"]
    common = ["-timeout", timeout, "-trace_counts"]
    if not args.strict:  # count a late retransmission as unexpected instead of killing the call
        common += ["-default_behaviors", "all,-abortunexp"]
    sipps: list[Sipp] = []
    for scenario_args, role in (
        (a_args, "a"),
        (["-sf", str(SCENARIOS / "gateway_noanswer.xml")], "b"),
        (["-sf", str(SCENARIOS / "gateway_answer.xml"), "-rtp_echo"], "d"),
    ):
        sipp = Sipp([*scenario_args, *common], f"c2c-{name}-{role}")
        if role == "a":
            (sipp.tmp / "tone.ulaw").write_bytes(tone_file())
        sipps.append(sipp.start())
        wait_bound(sipp.port)  # the next free_port() must not hand out the same port
    phone_a, phone_b, dest = sipps
    daemon = None
    media_toml = None
    if backend == "rtpengine":
        from rtpengine import Rtpengine

        daemon = Rtpengine(
            (20000, 33998),  # below the relay's MEDIA_RANGE
            log_path=OUT / f"click_to_call-{name}-rtpengine.log",
        )
        daemon.log_level = 4
        daemon.start()
        media_toml = f'backend = "rtpengine"\nrtpengine = ["{daemon.address}"]'
    server = ClickToCallServer(
        phone_a.port, phone_b.port, dest.port, env=dict(env), src=src, media_toml=media_toml
    )
    return Sut(name, server, sipps, rtpengine=daemon)


def wait_bound(port: int, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            try:
                probe.bind((HOST, port))
            except OSError:
                return
        time.sleep(0.05)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", default="25,50,100,150,200", help="calls/s per step")
    parser.add_argument("--window", type=float, default=10.0, help="seconds per step")
    parser.add_argument("--duration", type=int, default=2, help="callDuration (s)")
    parser.add_argument("--connections", type=int, default=64, help="HTTP keep-alive connections")
    parser.add_argument("--media", choices=("tone", "echo"), default="tone", help="phone A media")
    parser.add_argument("--quick", action="store_true", help="rates 50,150 for 4 s each")
    parser.add_argument("--py-spy", type=float, default=0, help="py-spy the last step N seconds")
    parser.add_argument(
        "--strict",
        action="store_true",
        help="SIPp's default: an unexpected message (e.g. an INVITE retransmitted after the 200) "
        "aborts the phone's call",
    )
    parser.add_argument(
        "--show-stuck", type=int, default=0, help="print N chars of a call that never ended"
    )
    parser.add_argument("--show-errors", type=int, default=0, help="print N chars of SIPp errors")
    parser.add_argument("--tag", default="", help="suffix of the output files")
    parser.add_argument(
        "--status-callback",
        action="store_true",
        help="every call names a statusCallback served by the benchmark (counts its POSTs; "
        "a step is ok only when every call's final event arrived)",
    )
    parser.add_argument("--src", type=Path, help="run 'ours' from another checkout")
    parser.add_argument(
        "--candidate",
        type=Path,
        help="also run a second server from this checkout, step by step after ours (same load)",
    )
    parser.add_argument("--env", action="append", default=[], help="K=V for the server")
    parser.add_argument(
        "--backends",
        default="relay",
        help="media backends, one server each, step by step: relay, rtpengine or relay,rtpengine",
    )
    args = parser.parse_args()
    if args.quick:
        args.rates, args.window = "50,150", 4.0
    args.rates = [int(r) for r in str(args.rates).split(",")]
    args.suffix = f"-{args.tag}" if args.tag else ""
    args.receiver = None  # the CallbackReceiver, once bench() starts it
    OUT.mkdir(parents=True, exist_ok=True)
    per_step = args.window + args.duration + 40
    timeout = f"{int(len(args.rates) * per_step * (2 if args.candidate else 1) + 120)}s"

    env = dict(kv.split("=", 1) for kv in args.env)
    backends = args.backends.split(",")
    if backends == ["relay"]:
        systems = [("ours", args.src, "relay")]
    else:
        systems = [(backend, args.src, backend) for backend in backends]
    if args.candidate is not None:
        systems.append(("candidate", args.candidate, "relay"))
    suts: list[Sut] = []
    print(f"machine: {machine_line()}")
    print(
        f"steps {args.rates} calls/s x {args.window:g} s, callDuration {args.duration} s, "
        f"phone A media {args.media}, {args.connections} HTTP connections"
        + (f", server env {env}" if env else "")
    )
    rows: list[dict[str, Any]] = []
    try:
        with contextlib.ExitStack() as stack:
            for name, src, backend in systems:
                suts.append(make_sut(args, name, src, env, timeout, backend))
            for sut in suts:
                system = stack.enter_context(sut.server)
                sut.server_target = system.target
                print(
                    f"{sut.name}: server pid {system.pid}, SIP {system.target}, "
                    f"API {sut.server.api_url}, code {sut.server.env.get('PYTHONPATH', REPO)}"
                )
            rows = trio.run(bench, args, suts)
    finally:
        for sut in suts:
            for s in sut.sipps:
                with contextlib.suppress(Exception):
                    s.stop()
                    err = s.tmp / "errors.log"
                    if args.show_errors and err.exists() and err.stat().st_size:
                        print(f"--- {sut.name} {s.tmp.name} errors (head):")
                        print(err.read_text(errors="replace")[: args.show_errors])
                s.cleanup()
            if sut.rtpengine is not None:
                sut.rtpengine.stop()
    if rows:
        write_csv(OUT / f"click_to_call{args.suffix}.csv", rows)
        plot(rows, OUT / f"click_to_call{args.suffix}.png", f"click-to-call, {machine_line()}")
        print(f"wrote {OUT / f'click_to_call{args.suffix}.csv'} and .png")


if __name__ == "__main__":
    main()
