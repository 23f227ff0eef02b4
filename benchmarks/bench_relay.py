"""Relay benchmark: N concurrent bridged G.711 calls through engine.media (and rtpengine).

A call is two phones, each sending one 172-byte RTP packet (20 ms of G.711) every 20 ms to its
side of the relay, i.e. 50 packets/s each way and 100 packets/s through the relay per call.
The phones live in separate generator processes (``--generators K`` split the calls; all start
on one shared CLOCK_MONOTONIC instant; a tight non-blocking send/receive loop; the send time is
embedded in each payload). Ours runs as ``Relay`` in a thread of this process, or with
``--process`` as ``RelayProcess`` (a child process, as ``b2bua serve`` runs it).

For each N the same load is also sent phone to phone directly ("direct"); the latency a relay
adds is the through-relay percentile minus the direct one, which removes the generator's own
scheduling delay. Loss counts packets sent during the measurement window that never arrived.

``--compare`` (``--peer rtpengine``): at every step, interleaved so each sees the same background
load, ours (RelayProcess) and rtpengine-daemon in userspace mode (``benchmarks/rtpengine.py``:
one daemon for the run, each call an ng offer with phone A's SDP and an answer with B's; the
rewritten SDPs give the ports B and A send to; deleted after the step).

Usage:  python benchmarks/bench_relay.py [--quick] [--calls 100,200,400,600,800] [--seconds 5]
            [--repeat 3] [--verbose] [--process] [--realtime] [--gil-load 0.5] [--switch-interval S]
            [--compare [--rtpengine-threads N]] [--generators K] [--group-nice -10]
            [--profile CALLS] [--out NAME]
Prints a table, then per system the largest N with loss < 0.1 % (and with added p99 < 5 ms too)
at full offered load, and ours / rtpengine; writes benchmarks/out/NAME.csv and NAME.png.

Columns: offered/s = packets the generators sent per second; fwd pkt/s = those that came back
through the relay; relay CPU = the relay's threads' CPU share (all threads of a relay process),
"(waited)" = the share of time they were runnable but had no CPU (other load on the machine: a
high value means the latency figures measure the neighbours, not the relay); µs/pkt = relay CPU
per forwarded packet (its inverse is the one-core capacity); gen CPU = the generators;
RSS/call = the relay process's resident memory growth per bridged call after set-up.

Results (2026-11-26, 2 vCPUs shared with other jobs at load 2-6, Python 3.11.7, 4 s windows):
  --compare --generators 2 --repeat 2 --group-nice -10 (see benchmarks/README.md, "Relay"):
    < 0.1 % loss: ours 1000 calls (100k pkt/s; added p99 353 ms, queueing), rtpengine >= 1000
    (its limit not reached: the generators ran out of CPU); with added p99 < 5 ms too: ours 600
    (60k), rtpengine 800 (80k): ours / rtpengine 1.00 and 0.75. CPU per packet: ours 8-9 µs,
    rtpengine 10-15 µs (its two workers used up to 115 % of a core; ours saturates one).
    --rtpengine-threads 1: both 800 calls at < 0.1 % loss, both lose at 1000; ratio 1.00.
  --process --repeat 2:  600 calls: 60,001 pkt/s, 0 % loss, p50 0.04 ms, p99 1.02 ms (added 0.65),
                         relay thread 56 % CPU = 9.3 µs/packet; 800 calls: the generator, starved
                         of CPU by the other jobs, reached 55k pkt/s only.
  --realtime (thread):   1000 calls: 100,022 pkt/s, 0 % loss, p99 0.47 ms, relay thread 80 % CPU.
  thread, default:       0 % loss up to 800 calls, but p99 76-875 ms from 400 calls on, while the
                         relay thread waited for a CPU 26-56 % of the time (the other jobs).
  --gil-load 0.5, 400 calls (a thread of the relay's process busy in Python half the time, as
  the engine's trio thread is under load): thread 0.8 % loss, p50 321 ms, p99 961 ms;
  with --switch-interval 0.001: 0 %, 3.3 ms, 138 ms; --process: 0 %, 0.34 ms, 1.25 ms.
  Where the time goes: about 2/3 of the relay's CPU is in the kernel; py-spy (--profile 600,
  idle included) puts epoll.poll at 65 %, sendto at 27 %, recvfrom_into at 6.5 % and every
  other line of the loop at 1.5 % of the samples. RSS: about 4 KiB per bridged call.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import select
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HOST = "127.0.0.1"
PACKET_SIZE = 172
PERIOD_NS = 20_000_000
BIN_NS = 10_000  # latency histogram resolution: 10 µs
BINS = 100_000  # up to 1 s
MAX_BURST = 64
LOSS_LIMIT = 0.001
P99_LIMIT_MS = 5.0
OUT = Path(__file__).resolve().parent / "out"


# ----------------------------------------------------------------------------- generator process


def _percentile(hist: dict[int, int], total: int, q: float) -> float:
    """The q-quantile in milliseconds from a sparse histogram of BIN_NS bins."""
    if total == 0:
        return float("nan")
    rank = q * total
    seen = 0
    for index in sorted(hist):
        seen += hist[index]
        if seen >= rank:
            return (index + 0.5) * BIN_NS / 1e6
    return BINS * BIN_NS / 1e6


def generator() -> None:
    """Child process: phones for some of the calls; talks JSON lines on stdin/stdout.

    In: {"calls", "ssrc_base", "warmup", "measure"}; out: {"phones": [[a, b], ...]} (the ports
    each call's two phones send from and receive on); in: {"pairs": [[where a sends, where b
    sends], ...] or null for phone to phone, "start": CLOCK_MONOTONIC ns shared by every
    generator}; out at the end: the counts, a sparse latency histogram and the CPU used.
    """
    config = json.loads(sys.stdin.readline())
    calls: int = config["calls"]
    ssrc_base: int = config["ssrc_base"]
    warmup_ns = int(config["warmup"] * 1e9)
    measure_ns = int(config["measure"] * 1e9)
    socks: list[socket.socket] = []
    for _ in range(2 * calls):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        s.bind((HOST, 0))
        s.setblocking(False)
        socks.append(s)
    ports = [s.getsockname()[1] for s in socks]
    print(json.dumps({"phones": [[ports[2 * i], ports[2 * i + 1]] for i in range(calls)]}))
    sys.stdout.flush()
    go = json.loads(sys.stdin.readline())  # the relay knows where the phones are
    pairs: list[list[int]] | None = go["pairs"]

    count = len(socks)
    dests: list[tuple[str, int]] = []
    for i in range(count):
        call, side = divmod(i, 2)
        if pairs is None:  # phone to phone
            dests.append((HOST, ports[2 * call + 1 - side]))
        else:
            dests.append((HOST, pairs[call][side]))
    header = struct.Struct("!BBHII")
    stamp = struct.Struct("<q")
    buffers = [bytearray(PACKET_SIZE) for _ in range(count)]
    sendtos = [s.sendto for s in socks]
    recv_intos = [s.recv_into for s in socks]
    poller = select.epoll()
    fd_index: dict[int, int] = {}
    for i, s in enumerate(socks):
        poller.register(s.fileno(), select.EPOLLIN)
        fd_index[s.fileno()] = i
    hist = [0] * (BINS + 1)
    received = 0
    sent_in_window = 0
    send_errors = 0
    rbuf = bytearray(2048)
    clock = time.monotonic_ns
    start = int(go["start"])
    window_start = start + warmup_ns
    window_end = window_start + measure_ns
    stop_sending = window_end
    finish = window_end + 1_000_000_000  # let the last packets arrive
    while clock() < start:
        time.sleep(max(start - clock(), 0) / 1e9)
    cpu0 = os.times()
    g = 0
    poll = poller.poll
    while True:
        now = clock()
        if now >= finish:
            break
        if now < stop_sending:
            # at most MAX_BURST sends before receiving again, so a generator that fell behind
            # does not stop reading (that would show as relay latency)
            due = min((now - start) * count // PERIOD_NS, g + MAX_BURST)
            while g <= due:
                i = g % count
                buf = buffers[i]
                seq = g // count
                header.pack_into(buf, 0, 0x80, 0, seq & 0xFFFF, seq * 160, ssrc_base + i)
                t = clock()
                stamp.pack_into(buf, 12, t)
                try:
                    sendtos[i](buf, dests[i])
                except OSError:
                    send_errors += 1
                if window_start <= t < window_end:
                    sent_in_window += 1
                g += 1
        # sleep until the next packet is due (epoll rounds up to whole ms: sends come in
        # 1 ms batches) unless behind; busy polling would starve the relay on a 2-core box
        wait = (start + (g * PERIOD_NS) // count - clock()) / 1e9 if now < stop_sending else 0.01
        events = poll(wait if wait > 0 else 0, 4096)
        if not events:
            continue
        arrived = clock()
        for fd, _mask in events:
            try:
                recv_intos[fd_index[fd]](rbuf)
            except OSError:
                continue
            t = stamp.unpack_from(rbuf, 12)[0]
            if window_start <= t < window_end:
                received += 1
                hist[min((arrived - t) // BIN_NS, BINS)] += 1
    cpu1 = os.times()
    result = {
        "sent": sent_in_window,
        "received": received,
        "send_errors": send_errors,
        "hist": {str(i): c for i, c in enumerate(hist) if c},
        "cpu": (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system),
        "wall": (finish - start) / 1e9,
        "window": measure_ns / 1e9,
    }
    print(json.dumps(result), flush=True)
    for s in socks:
        s.close()


def bare_relay() -> None:
    """Child process for ``--bare``: the least a Python relay can do per packet (epoll,
    ``recvfrom_into``, ``sendto`` to a fixed address; no latching, counters or sequence
    tracking), as a floor for ours. In: N; out: its 2N ports; in: the 2N phone ports; out:
    the forwarding thread's id; runs until stdin closes."""
    calls = int(sys.stdin.readline())
    socks = []
    for _ in range(2 * calls):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((HOST, 0))
        s.setblocking(False)
        socks.append(s)
    print(json.dumps([s.getsockname()[1] for s in socks]), flush=True)
    phones: list[int] = json.loads(sys.stdin.readline())
    poller = select.epoll()
    route: dict[int, tuple[Any, Any, tuple[str, int]]] = {}
    for i, s in enumerate(socks):
        poller.register(s.fileno(), select.EPOLLIN)
        route[s.fileno()] = (s.recvfrom_into, socks[i ^ 1].sendto, (HOST, phones[i ^ 1]))

    def forward() -> None:
        buf = bytearray(65536)
        view = memoryview(buf)
        while True:
            for fd, _mask in poller.poll(-1, 4096):
                recv, send, dest = route[fd]
                try:
                    size, _addr = recv(buf)
                    send(view[:size], dest)
                except OSError:
                    continue

    thread = threading.Thread(target=forward, daemon=True)
    thread.start()
    print(json.dumps(thread.native_id), flush=True)
    sys.stdin.read()


# ----------------------------------------------------------------------------- measuring


def _rss_kib(pid: int | str = "self") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _tasks(pid: int) -> list[int]:
    return [int(t) for t in os.listdir(f"/proc/{pid}/task")]


@dataclass
class CpuSample:
    user: float = 0.0
    system: float = 0.0
    waited: float = 0.0  # runnable but not running (another task had the CPU)


def _cpu(pid: int, tids: Iterable[int]) -> CpuSample:
    """CPU seconds of some threads of a process (/proc/PID/task/TID/{stat,schedstat})."""
    tick = os.sysconf("SC_CLK_TCK")
    sample = CpuSample()
    for tid in tids:
        try:
            fields = Path(f"/proc/{pid}/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
            _run, wait, _slices = Path(f"/proc/{pid}/task/{tid}/schedstat").read_text().split()
        except OSError:  # the thread ended
            continue
        sample.user += int(fields[11]) / tick
        sample.system += int(fields[12]) / tick
        sample.waited += int(wait) / 1e9
    return sample


@dataclass
class Step:
    calls: int
    system: str
    offered: float
    forwarded: float
    loss: float
    p50: float
    p99: float
    relay_cpu: float  # share of one core, the relay's threads (all of them for a process)
    relay_cpu_wait: float
    relay_kernel: float  # share of relay_cpu spent in the kernel
    gen_cpu: float
    rss_per_call_kib: float
    load: float

    @property
    def full_load(self) -> bool:
        """The generator sent what it should (else it, not the relay, was the limit)."""
        return self.offered >= 0.99 * self.calls * 100

    @property
    def clean(self) -> bool:
        return self.loss < LOSS_LIMIT and self.full_load


# ----------------------------------------------------------------------------- systems


class System:
    """A relay under test: set up ``calls`` bridged calls, say where each phone sends."""

    name = "?"

    def start(self) -> None:
        """Before each step (a fresh relay process, or nothing for a long-running one)."""

    def setup(self, calls: int) -> None:
        """Before the phones exist (allocate what does not need their addresses)."""

    def connect(self, phones: list[list[int]]) -> list[list[int]] | None:
        """Where each call's phones send, [a, b] per call; None: to each other (no relay)."""
        return None

    def pid(self) -> int | None:
        return None

    def cpu_tids(self) -> list[int]:
        """The threads whose CPU is the relay's."""
        return []

    def hot_tids(self) -> list[int]:
        """The forwarding threads (for --nice and --realtime)."""
        return self.cpu_tids()

    def teardown(self, verbose: bool) -> None:
        pass


class Direct(System):
    """No relay: the phones send to each other (the generator's own latency)."""

    name = "direct"


class Ours(System):
    """engine.media: RelayProcess (as ``b2bua serve`` runs it) or, without --process, Relay in
    a thread of this process."""

    name = "ours"

    def __init__(self, ports: tuple[int, int], process: bool) -> None:
        self._ports = ports
        self._process = process
        self._relay: Any = None
        self._endpoints: list[tuple[Any, Any]] = []

    def start(self) -> None:
        from engine.media import Relay
        from engine.media.process import RelayProcess

        kind = RelayProcess if self._process else Relay
        self._relay = kind(HOST, self._ports)
        self._relay.start()

    def setup(self, calls: int) -> None:
        self._endpoints = []
        for _ in range(calls):
            a, b = self._relay.allocate(), self._relay.allocate()
            self._relay.bridge(a, b)
            self._endpoints.append((a, b))

    def connect(self, phones: list[list[int]]) -> list[list[int]] | None:
        for (a, b), (pa, pb) in zip(self._endpoints, phones, strict=True):
            self._relay.set_remote(a, HOST, pa)
            self._relay.set_remote(b, HOST, pb)
        return [[a.rtp_port, b.rtp_port] for a, b in self._endpoints]

    def pid(self) -> int | None:
        return self._relay.pid if self._process else os.getpid()

    def cpu_tids(self) -> list[int]:
        if self._process:
            return _tasks(self._relay.pid)
        return [self._relay.native_thread_id]

    def hot_tids(self) -> list[int]:
        return [self._relay.native_thread_id]

    def teardown(self, verbose: bool) -> None:
        relay, self._relay = self._relay, None
        if relay is None:
            return
        if verbose:
            totals: dict[str, int] = {}
            for pair in self._endpoints:
                for ep in pair:
                    st = relay.stats(ep)
                    for key in ("packets_received", "packets_sent", "packets_dropped"):
                        totals[key] = totals.get(key, 0) + getattr(st.rtp, key)
                    for key in ("packets_foreign", "send_errors"):
                        totals[key] = totals.get(key, 0) + getattr(st.rtp, key)
            loops = relay.statistics().loop_iterations
            print(f"  ours: totals {totals}, loop iterations {loops}", file=sys.stderr)
        relay.close()


class RtpengineRelay(System):
    """rtpengine in userspace mode, one long-running daemon; each call set up over ng."""

    name = "rtpengine"

    def __init__(self, engine: Any) -> None:
        self._engine = engine
        self._call_ids: list[str] = []
        self._steps = 0

    def connect(self, phones: list[list[int]]) -> list[list[int]] | None:
        from rtpengine import bridge_calls

        self._steps += 1
        calls = [(f"bench-{self._steps}-{i}", pa, pb) for i, (pa, pb) in enumerate(phones)]
        self._call_ids = [call_id for call_id, _pa, _pb in calls]
        return [list(pair) for pair in bridge_calls(self._engine.ng_port, calls)]

    def pid(self) -> int | None:
        return int(self._engine.pid)

    def cpu_tids(self) -> list[int]:
        return _tasks(self._engine.pid)

    def teardown(self, verbose: bool) -> None:
        from rtpengine import delete_calls

        delete_calls(self._engine.ng_port, self._call_ids)
        self._call_ids = []


class Bare(System):
    """``--bare``: the minimal Python forwarding loop of ``bare_relay`` in a child process."""

    name = "bare"

    def __init__(self) -> None:
        self._child: subprocess.Popen[str] | None = None
        self._ports: list[int] = []
        self._tid = 0

    def start(self) -> None:
        self._child = subprocess.Popen(
            [sys.executable, __file__, "--bare-child"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def _io(self, line: str) -> Any:
        assert self._child is not None and self._child.stdin and self._child.stdout
        self._child.stdin.write(line + "\n")
        self._child.stdin.flush()
        return json.loads(self._child.stdout.readline())

    def setup(self, calls: int) -> None:
        self._ports = self._io(str(calls))

    def connect(self, phones: list[list[int]]) -> list[list[int]] | None:
        self._tid = self._io(json.dumps([port for pair in phones for port in pair]))
        return [[self._ports[2 * i], self._ports[2 * i + 1]] for i in range(len(phones))]

    def pid(self) -> int | None:
        return None if self._child is None else self._child.pid

    def cpu_tids(self) -> list[int]:
        return [] if self._child is None else _tasks(self._child.pid)

    def hot_tids(self) -> list[int]:
        return [self._tid] if self._tid else []

    def teardown(self, verbose: bool) -> None:
        child, self._child = self._child, None
        if child is None:
            return
        assert child.stdin is not None
        child.stdin.close()
        try:
            child.wait(5)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


# ----------------------------------------------------------------------------- one step


def _python_load(fraction: float, stop: threading.Event) -> None:
    """Stand-in for the engine's trio thread: pure-Python work ``fraction`` of the time, which
    holds the GIL the relay thread also needs."""
    period = 0.01
    while not stop.is_set():
        end = time.perf_counter() + fraction * period
        x = 0
        while time.perf_counter() < end:
            for i in range(200):
                x += i * i
        stop.wait((1 - fraction) * period)


def _sleep_until(deadline_ns: int) -> None:
    while (left := deadline_ns - time.monotonic_ns()) > 0:
        time.sleep(left / 1e9)


def _start_profiler(pid: int, seconds: float, path: Path) -> subprocess.Popen[bytes] | None:
    py_spy = Path(sys.executable).parent / "py-spy"
    if not py_spy.exists():
        print("(no profile: pip install py-spy)", file=sys.stderr)
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    command = [str(py_spy), "record", "--pid", str(pid), "--rate", "250", "--idle"]
    command += ["--duration", str(max(int(seconds), 1)), "--format", "raw", "-o", str(path)]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _finish_profiler(profiler: subprocess.Popen[bytes], path: Path) -> None:
    try:
        profiler.wait(timeout=15)
    except subprocess.TimeoutExpired:
        profiler.kill()
        profiler.wait()
    from common import summarize_profile

    if path.exists():
        print(f"profile of our relay ({path}):\n{summarize_profile(path, top=15)}", file=sys.stderr)


def run_step(system: System, calls: int, args: argparse.Namespace) -> Step:
    stop_load = threading.Event()
    children: list[subprocess.Popen[str]] = []
    shares = [
        calls // args.generators + (k < calls % args.generators) for k in range(args.generators)
    ]
    shares = [share for share in shares if share]
    try:
        system.start()
        pid = system.pid()
        rss0 = _rss_kib(pid) if pid is not None else 0
        system.setup(calls)
        phones: list[list[int]] = []
        for k, share in enumerate(shares):
            child = subprocess.Popen(
                [sys.executable, __file__, "--generator"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            children.append(child)
            assert child.stdin is not None and child.stdout is not None
            config = {
                "calls": share,
                "ssrc_base": 100_000 * k,
                "warmup": args.warmup,
                "measure": args.seconds,
            }
            child.stdin.write(json.dumps(config) + "\n")
            child.stdin.flush()
            phones.extend(json.loads(child.stdout.readline())["phones"])
        pairs = system.connect(phones)
        rss1 = _rss_kib(pid) if pid is not None else 0
        for child in children:
            if args.nice:
                os.setpriority(os.PRIO_PROCESS, child.pid, args.nice)
        for tid in system.hot_tids():
            if args.nice:
                os.setpriority(os.PRIO_PROCESS, tid, args.nice)
            if args.realtime:
                # SCHED_FIFO for the forwarding threads only: they then run as soon as a packet
                # wakes them, as a media server's usually do (the kernel still keeps 5 % of each
                # second for ordinary tasks)
                os.sched_setscheduler(tid, os.SCHED_FIFO, os.sched_param(1))
        if args.gil_load and isinstance(system, Ours):
            threading.Thread(target=_python_load, args=(args.gil_load, stop_load)).start()
        start = time.monotonic_ns() + 200_000_000
        offset = 0
        for child, share in zip(children, shares, strict=True):
            assert child.stdin is not None
            mine = None if pairs is None else pairs[offset : offset + share]
            offset += share
            child.stdin.write(json.dumps({"pairs": mine, "start": start}) + "\n")
            child.stdin.flush()
        tids = system.cpu_tids()
        window_start = start + int(args.warmup * 1e9)
        window_end = window_start + int(args.seconds * 1e9)
        _sleep_until(window_start)
        profiler = None
        if args.profile == calls and isinstance(system, Ours) and pid is not None:
            profiler = _start_profiler(pid, args.seconds, OUT / f"relay-profile-{calls}.txt")
        cpu0 = _cpu(pid, tids) if pid is not None else CpuSample()
        wall0 = time.monotonic()
        _sleep_until(window_end)
        cpu1 = _cpu(pid, tids) if pid is not None else CpuSample()
        wall1 = time.monotonic()
        load = os.getloadavg()[0]
        if profiler is not None:
            _finish_profiler(profiler, OUT / f"relay-profile-{calls}.txt")
        results = []
        for child in children:
            assert child.stdout is not None
            results.append(json.loads(child.stdout.readline()))
            child.wait(timeout=30)
    finally:
        stop_load.set()
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait()
        system.teardown(args.verbose)
    hist: dict[int, int] = {}
    for result in results:
        for index, count in result["hist"].items():
            hist[int(index)] = hist.get(int(index), 0) + count
    sent = sum(r["sent"] for r in results)
    received = sum(r["received"] for r in results)
    window = results[0]["window"]
    wall = wall1 - wall0
    used = (cpu1.user + cpu1.system) - (cpu0.user + cpu0.system)
    if args.verbose:
        print(
            f"  {system.name} {calls}: sent {sent} received {received} send errors "
            f"{sum(r['send_errors'] for r in results)} "
            f"max latency {_percentile(hist, received, 1.0)} ms",
            file=sys.stderr,
        )
    return Step(
        calls=calls,
        system=system.name,
        offered=sent / window,
        forwarded=received / window,
        loss=(sent - received) / sent if sent else 0.0,
        p50=_percentile(hist, received, 0.50),
        p99=_percentile(hist, received, 0.99),
        relay_cpu=used / wall if wall > 0 else 0.0,
        relay_cpu_wait=(cpu1.waited - cpu0.waited) / wall if wall > 0 else 0.0,
        relay_kernel=(cpu1.system - cpu0.system) / used if used > 0 else 0.0,
        gen_cpu=sum(r["cpu"] / r["wall"] for r in results),
        rss_per_call_kib=(rss1 - rss0) / calls if pid is not None and calls else 0.0,
        load=load,
    )


# ----------------------------------------------------------------------------- report


def _best(runs: Iterable[Step]) -> Step:
    """The least disturbed of repeated runs: least loss, then lowest p99 (like timeit's min,
    this filters out the other load of a shared machine, which only ever adds)."""
    return min(runs, key=lambda step: (round(step.loss, 4), step.p99))


COLUMNS = (
    f"{'calls':>5} {'system':<9} {'offered/s':>9} {'fwd pkt/s':>9} {'loss %':>7} {'p50 ms':>7} "
    f"{'p99 ms':>7} {'added p50/p99':>14} {'relay CPU':>9} {'(waited)':>8} {'µs/pkt':>6} "
    f"{'gen CPU':>7} {'RSS/call':>8}"
)


def _row(step: Step, direct: Step | None) -> str:
    d50 = direct.p50 if direct else 0.0
    d99 = direct.p99 if direct else 0.0
    added = (
        f"{step.p50 - d50:>6.2f}/{step.p99 - d99:<7.2f}"
        if direct and step.system != "direct"
        else f"{'-':>6} {'':<7}"
    )
    cpu = (
        f"{100 * step.relay_cpu:>8.0f}% {100 * step.relay_cpu_wait:>7.0f}% "
        if step.system != "direct"
        else f"{'-':>9} {'-':>8} "
    )
    per_packet = 1e6 * step.relay_cpu / max(step.forwarded, 1)
    rss = f"{step.rss_per_call_kib:>5.1f}KiB" if step.system != "direct" else f"{'-':>8}"
    return (
        f"{step.calls:>5} {step.system:<9} {step.offered:>9.0f} {step.forwarded:>9.0f} "
        f"{100 * step.loss:>7.3f} {step.p50:>7.2f} {step.p99:>7.2f} {added} {cpu}"
        f"{per_packet if step.system != 'direct' else float('nan'):>6.1f} "
        f"{100 * step.gen_cpu:>6.0f}% {rss}"
    )


def _csv_row(step: Step, direct: Step | None) -> dict[str, Any]:
    return {
        "calls": step.calls,
        "system": step.system,
        "offered_pps": round(step.offered),
        "forwarded_pps": round(step.forwarded),
        "loss_pct": round(100 * step.loss, 4),
        "p50_ms": step.p50,
        "p99_ms": step.p99,
        "added_p50_ms": round(step.p50 - direct.p50, 3) if direct else "",
        "added_p99_ms": round(step.p99 - direct.p99, 3) if direct else "",
        "relay_cpu_pct": round(100 * step.relay_cpu, 1),
        "relay_cpu_waited_pct": round(100 * step.relay_cpu_wait, 1),
        "relay_kernel_pct": round(100 * step.relay_kernel, 1),
        "us_per_packet": round(1e6 * step.relay_cpu / max(step.forwarded, 1), 2),
        "gen_cpu_pct": round(100 * step.gen_cpu, 1),
        "rss_per_call_kib": round(step.rss_per_call_kib, 2),
        "full_load": step.full_load,
        "clean": step.clean,
        "load1": step.load,
    }


def _plot(rows: list[dict[str, Any]], path: Path, title: str) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("(no PNG: pip install matplotlib)")
        return
    fig, axes = plt.subplots(1, 4, figsize=(18, 4.2))
    systems = list(dict.fromkeys(r["system"] for r in rows))
    for index, name in enumerate(systems):
        color = f"C{index}"
        mine = [r for r in rows if r["system"] == name]
        calls = [r["calls"] for r in mine]
        axes[0].plot(calls, [r["forwarded_pps"] for r in mine], "o-", color=color, label=name)
        axes[1].plot(calls, [max(r["loss_pct"], 1e-4) for r in mine], "o-", color=color, label=name)
        if name != "direct":
            if mine and mine[0]["added_p99_ms"] != "":
                axes[2].plot(
                    calls,
                    [r["added_p50_ms"] for r in mine],
                    "o--",
                    color=color,
                    label=f"{name} p50",
                )
                axes[2].plot(
                    calls, [r["added_p99_ms"] for r in mine], "o-", color=color, label=f"{name} p99"
                )
            axes[3].plot(calls, [r["relay_cpu_pct"] for r in mine], "o-", color=color, label=name)
    axes[0].set_title("packets/s forwarded")
    axes[1].set_title("loss % (log)")
    axes[1].set_yscale("log")
    axes[1].axhline(100 * LOSS_LIMIT, color="grey", linestyle=":")
    axes[2].set_title("added latency ms (symlog)")
    axes[2].set_yscale("symlog", linthresh=1)
    axes[3].set_title("relay CPU % of one core")
    for ax in axes:
        ax.set_xlabel("concurrent G.711 calls")
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _added_p99(step: Step, directs: dict[int, Step]) -> float:
    direct = directs.get(step.calls)
    return step.p99 - direct.p99 if direct else step.p99


def _summary(best: dict[str, list[Step]], directs: dict[int, Step]) -> None:
    """Per system, the highest step meeting each criterion, and ours / rtpengine."""
    criteria: list[tuple[str, Callable[[Step], bool]]] = [
        (f"loss < {100 * LOSS_LIMIT:.1f} %", lambda s: s.loss < LOSS_LIMIT),
        (
            f"loss < {100 * LOSS_LIMIT:.1f} % and added p99 < {P99_LIMIT_MS:g} ms",
            lambda s: s.loss < LOSS_LIMIT and _added_p99(s, directs) < P99_LIMIT_MS,
        ),
    ]
    for title, good in criteria:
        print(f"\nhighest step with {title} at full offered load:")
        print(
            f"  {'system':<9} {'calls':>5} {'fwd pkt/s':>9} {'added p99':>9} {'CPU':>5} "
            f"{'µs/pkt':>6} {'pkt/s per core':>14}  limit"
        )
        top: dict[str, Step | None] = {}
        known: dict[str, bool] = {}
        for name, steps in best.items():
            if name == "direct":
                continue
            passing = [s for s in steps if s.full_load and good(s)]
            step = max(passing, key=lambda s: s.calls) if passing else None
            top[name] = step
            above = [s for s in steps if step is None or s.calls > step.calls]
            # the relay's own limit shows only in a step above it that the generator did load
            known[name] = any(s.full_load and not good(s) for s in above)
            if step is None:
                print(f"  {name:<9} {0:>5}")
                continue
            per_packet = 1e6 * step.relay_cpu / max(step.forwarded, 1)
            note = "reached" if known[name] else "not reached (generator or last step)"
            print(
                f"  {name:<9} {step.calls:>5} {step.forwarded:>9.0f} "
                f"{_added_p99(step, directs):>7.2f}ms {100 * step.relay_cpu:>4.0f}% "
                f"{per_packet:>6.1f} {1e6 / per_packet if per_packet else 0:>14,.0f}  {note}"
            )
        ours, peer = top.get("ours"), top.get("rtpengine")
        if "ours" not in top or "rtpengine" not in top:
            continue
        if ours is None or peer is None:
            print("  ours / rtpengine: n/a (a system had no passing step)")
            continue
        ratio = ours.forwarded / peer.forwarded
        bound = ""
        if not known["rtpengine"] and known["ours"]:
            bound = " (rtpengine's limit not reached: at most this)"
        elif known["rtpengine"] and not known["ours"]:
            bound = " (our limit not reached: at least this)"
        elif not known["rtpengine"]:
            bound = " (neither limit reached)"
        print(f"  ours / rtpengine, packets/s: {ratio:.2f}{bound}")
        pp_ours = ours.relay_cpu / max(ours.forwarded, 1)
        pp_peer = peer.relay_cpu / max(peer.forwarded, 1)
        if pp_ours > 0:
            print(f"  ours / rtpengine, packets per CPU-second: {pp_peer / pp_ours:.2f}")


def _own_autogroup(nice: int) -> None:
    """A new session is a new autogroup (CONFIG_SCHED_AUTOGROUP); the relays and generators
    started from here inherit it."""
    with contextlib.suppress(OSError):
        os.setsid()  # fails if this process leads its group already: then keep that group
    try:
        Path("/proc/self/autogroup").write_text(f"{nice}\n")
    except OSError as exc:
        print(f"(cannot set the autogroup niceness: {exc})")
    else:
        print(f"autogroup: {Path('/proc/self/autogroup').read_text().strip()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--generator", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--bare-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument(
        "--bare",
        action="store_true",
        help="also run a minimal Python forwarding loop (no latching, counters, sequence "
        "tracking) in a child process: the floor for any relay written in Python",
    )
    parser.add_argument("--quick", action="store_true", help="two short steps (100, 300 calls)")
    parser.add_argument(
        "--calls",
        default=None,
        help="comma-separated N steps (default 100,200,400,600,800; with --peer "
        "200,400,600,800,1000,1200)",
    )
    parser.add_argument("--seconds", type=float, default=5.0, help="measurement window per step")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds before measuring")
    parser.add_argument("--ports", default="12000-19999", help="our relay's port range LOW-HIGH")
    parser.add_argument("--repeat", type=int, default=1, help="runs per step; the best is shown")
    parser.add_argument("--verbose", action="store_true", help="relay totals per step")
    parser.add_argument("--no-direct", action="store_true", help="skip the direct baseline")
    parser.add_argument(
        "--generators",
        type=int,
        default=1,
        help="load generator processes sharing the calls (one Python process tops out at "
        "about 60-80k packets/s each way)",
    )
    parser.add_argument(
        "--peer",
        choices=("rtpengine",),
        default=None,
        help="also run this relay at every step, interleaved with ours (ours then runs as "
        "RelayProcess, as the server does)",
    )
    parser.add_argument("--compare", action="store_true", help="same as --peer rtpengine")
    parser.add_argument(
        "--peer-ports", default="2000-11999", help="rtpengine's port range LOW-HIGH"
    )
    parser.add_argument(
        "--rtpengine-threads",
        type=int,
        default=None,
        help="rtpengine --num-threads (default: its own, one per core)",
    )
    parser.add_argument(
        "--nice",
        type=int,
        default=0,
        help="niceness for the forwarding threads and the generator (negative needs root): "
        "keeps a shared machine's other load from being measured as relay latency",
    )
    parser.add_argument(
        "--group-nice",
        type=int,
        default=None,
        help="run the benchmark in its own session (scheduler autogroup) with this niceness "
        "(negative needs root): with autogroups, --nice only ranks threads inside the session, "
        "while a shared machine's other sessions each get an equal share of the CPUs",
    )
    parser.add_argument(
        "--process",
        action="store_true",
        help="run our relay in a child process (engine.media.process.RelayProcess)",
    )
    parser.add_argument(
        "--realtime",
        action="store_true",
        help="run the forwarding threads SCHED_FIFO (needs root) so a busy shared machine's "
        "other load does not show up as relay latency",
    )
    parser.add_argument(
        "--gil-load",
        type=float,
        default=0.0,
        help="fraction of time another thread of our relay's process runs Python (0-1), "
        "like the engine's trio thread does",
    )
    parser.add_argument(
        "--switch-interval", type=float, default=None, help="sys.setswitchinterval() seconds"
    )
    parser.add_argument(
        "--profile",
        type=int,
        default=None,
        metavar="CALLS",
        help="py-spy our relay process during the window of this step (raw stacks to "
        "benchmarks/out/relay-profile-CALLS.txt, summary on stderr)",
    )
    parser.add_argument(
        "--out", default=None, help="CSV/PNG name under benchmarks/out/ (default relay[-compare])"
    )
    args = parser.parse_args()
    if args.switch_interval:
        sys.setswitchinterval(args.switch_interval)
    if args.generator:
        generator()
        return
    if args.bare_child:
        bare_relay()
        return
    if args.compare:
        args.peer = "rtpengine"
    if args.group_nice is not None:
        _own_autogroup(args.group_nice)
    if args.peer:
        args.process = True
    ports = tuple(int(p) for p in args.ports.split("-"))
    default_steps = "200,400,600,800,1000,1200" if args.peer else "100,200,400,600,800"
    steps = [int(n) for n in (args.calls or default_steps).split(",")]
    if args.quick:
        steps, args.seconds, args.warmup = [100, 300], 2.0, 0.5
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    name = args.out or ("relay-compare" if args.peer else "relay")

    with contextlib.ExitStack() as stack:
        systems: list[System] = [Ours((ports[0], ports[1]), args.process)]
        if args.peer == "rtpengine":
            from rtpengine import Rtpengine

            peer_ports = tuple(int(p) for p in args.peer_ports.split("-"))
            engine = Rtpengine(
                (peer_ports[0], peer_ports[1]),
                threads=args.rtpengine_threads,
                log_path=OUT / f"{name}-rtpengine.log",
                log_level=4,
            )
            try:
                stack.enter_context(engine)
            except RuntimeError as exc:  # not installed, or it would not start
                sys.exit(f"cannot run rtpengine: {exc}\n  command: {' '.join(engine.command())}")
            threads = len(_tasks(engine.pid))
            print(f"rtpengine pid {engine.pid}, {threads} threads: {' '.join(engine.command())}")
            systems.append(RtpengineRelay(engine))
        if args.bare:
            systems.append(Bare())
        if not args.no_direct:
            systems.append(Direct())
        print(
            f"relay benchmark on {os.cpu_count()} CPUs, python {sys.version.split()[0]}, "
            f"{args.generators} generator(s), {args.seconds:g} s windows, repeat {args.repeat}, "
            f"ours as {'RelayProcess' if args.process else 'Relay (thread)'}"
        )
        print(COLUMNS, flush=True)
        best: dict[str, list[Step]] = {s.name: [] for s in systems}
        directs: dict[int, Step] = {}
        rows: list[dict[str, Any]] = []
        for calls in steps:
            runs: dict[str, list[Step]] = {s.name: [] for s in systems}
            for _ in range(args.repeat):
                for system in systems:  # interleaved: the same background load for each
                    runs[system.name].append(run_step(system, calls, args))
            chosen = {name: _best(r) for name, r in runs.items()}
            direct = chosen.get("direct")
            if direct is not None:
                directs[calls] = direct
            for system_name, step in chosen.items():
                best[system_name].append(step)
                print(_row(step, direct), flush=True)
                rows.append(_csv_row(step, direct))
                if not step.full_load:
                    print(
                        f"      (generator sent only {step.offered:.0f} of {calls * 100} packets/s)"
                    )
        _summary(best, directs)
    from common import machine_line, write_csv

    csv_path = OUT / f"{name}.csv"
    write_csv(csv_path, rows)
    _plot(rows, OUT / f"{name}.png", f"bench_relay.py {' '.join(sys.argv[1:])} - {machine_line()}")
    print(f"wrote {csv_path} and {csv_path.with_suffix('.png')}")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    main()
