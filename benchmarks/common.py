"""Shared helpers for the whole-system benchmarks (bench_signalling.py, bench_memory.py).

- free ports on 127.0.0.1 (SIPp needs a SIP port, a control port and a media port block);
- the systems under test as context managers: ``OursServer`` (``b2bua serve`` of any checkout
  with a generated config and directory: one trusted peer = the load generator, one default
  route = the SIPp UAS; ``Control`` reads its GC pauses and profiles it over a span),
  ``SippyServer`` (Sippy B2BUA, static route to the SIPp UAS, no RADIUS, no media relay),
  ``SippySimpleServer`` (Sippy's b2bua_simple, next hop = the SIPp UAS) and ``Direct`` (no
  B2BUA: the UAC calls the UAS);
- ``Sipp``: one SIPp process with every port on 127.0.0.1 and its stat CSV / rtt CSV parsed;
- ``write_csv`` and ``plot_steps`` (matplotlib, a benchmark-only extra).

Benchmarks are programs, not library code: they print their tables.
"""

from __future__ import annotations

import collections
import contextlib
import csv
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HOST = "127.0.0.1"
REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "benchmarks" / "out"
PYTHON = sys.executable
SIPP = shutil.which("sipp") or "/usr/bin/sipp"
# The relay's ports: 13,000 even/odd pairs (6,500 bridged calls) inside the kernel's ephemeral
# range (32768-60999), away from the integration tests' 20000-32000; the ports this harness
# hands to SIPp are taken outside it, so the relay never takes a SIPp port between two steps.
MEDIA_RANGE = (34000, 59999)
NOFILE = 65536

# ``b2bua serve`` started through this launcher, so the harness can look inside without touching
# the server's code. The server is run as ``python -m BENCH_MAIN serve ...`` of the tree on
# PYTHONPATH, so any checkout runs, whatever package holds its CLI.
# BENCH_GC_LOG=FILE records every collection (generation, pause, objects collected) and writes
# them at exit, and on SIGUSR1 appends the live tracked objects after a full collection to
# FILE.snap (that forced collection is not recorded); BENCH_GC_FREEZE=1 moves everything alive
# after the imports into the permanent generation (gc.freeze); BENCH_GC_THRESHOLD=a,b,c sets gc
# thresholds; BENCH_CPROFILE=FILE runs the whole server under cProfile and dumps the stats at exit;
# BENCH_COUNT=FILE:mod:Cls.meth,... counts calls of the named functions and writes the counts at
# exit. BENCH_CTL=FILE is the harness's control channel (``Control``): on SIGUSR2 the launcher
# runs the commands in FILE (``gc PATH``: the collections recorded since the last ``gc`` command
# to PATH; ``profile-start``; ``profile-stop PATH``: cProfile of the main thread, the trio
# thread, between the two, timed in its CPU time (``time.thread_time``), dumped to PATH) and
# then writes the command's sequence number to FILE.ack. Nothing of this runs unless its
# variable is set.
LAUNCHER = r"""
import atexit, gc, os, runpy, signal, sys, time
log_path = os.environ.get("BENCH_GC_LOG")
pauses = []
gc_state = {"start": 0.0, "quiet": False, "reported": 0}
if log_path:
    def _gc_cb(phase, info):
        if gc_state["quiet"]:
            return
        if phase == "start":
            gc_state["start"] = time.perf_counter()
        else:
            pause = time.perf_counter() - gc_state["start"]
            tracked = len(gc.get_objects()) if info["generation"] == 2 else 0
            pauses.append((info["generation"], pause, info["collected"], tracked))
    gc.callbacks.append(_gc_cb)
    def _dump():
        with open(log_path, "w") as f:
            for gen, pause, collected, tracked in pauses:
                f.write(f"{gen} {pause:.6f} {collected} {tracked}\n")
        counts = {}
        for obj in gc.get_objects():
            name = type(obj).__module__ + "." + type(obj).__qualname__
            if name in ("builtins.function", "builtins.cell", "builtins.method"):
                target = getattr(obj, "__func__", obj)
                name += " " + str(getattr(target, "__module__", "")) + ":" + str(
                    getattr(target, "__qualname__", ""))
            counts[name] = counts.get(name, 0) + 1
        with open(log_path + ".types", "w") as f:
            f.write(f"{sum(counts.values())} TOTAL tracked objects at exit\n")
            for name, count in sorted(counts.items(), key=lambda kv: -kv[1])[:40]:
                f.write(f"{count} {name}\n")
    atexit.register(_dump)
    def _snapshot(signum, frame):
        # SIGUSR1: full collection, then the number of live tracked objects (what every full
        # collection walks) appended to LOG.snap
        gc_state["quiet"] = True
        try:
            gc.collect()
        finally:
            gc_state["quiet"] = False
        with open(log_path + ".snap", "a") as f:
            f.write(f"{len(gc.get_objects())}\n")
    signal.signal(signal.SIGUSR1, _snapshot)
ctl_path = os.environ.get("BENCH_CTL")
if ctl_path:
    import cProfile
    step_profiler = [None]
    def _control(signum, frame):
        with open(ctl_path) as f:
            lines = f.read().splitlines()
        seq = lines[0].split()[1]
        for line in lines[1:]:
            command, _, arg = line.partition(" ")
            if command == "gc":
                with open(arg + ".tmp", "w") as f:
                    for gen, pause, collected, tracked in pauses[gc_state["reported"]:]:
                        f.write(f"{gen} {pause:.6f} {collected} {tracked}\n")
                os.replace(arg + ".tmp", arg)
                gc_state["reported"] = len(pauses)
            elif command == "profile-start" and step_profiler[0] is None:
                # the main thread's CPU time, not the wall clock: on a shared machine the time
                # spent waiting for a core would otherwise land on whatever function waited
                step_profiler[0] = cProfile.Profile(time.thread_time)
                step_profiler[0].enable()
            elif command == "profile-stop" and step_profiler[0] is not None:
                step_profiler[0].disable()
                step_profiler[0].dump_stats(arg)
                step_profiler[0] = None
        with open(ctl_path + ".ack.tmp", "w") as f:
            f.write(seq)
        os.replace(ctl_path + ".ack.tmp", ctl_path + ".ack")
    signal.signal(signal.SIGUSR2, _control)
count_spec = os.environ.get("BENCH_COUNT")
if count_spec:
    # BENCH_COUNT=FILE:module.Class.method,...: how often each was called, written at exit
    import functools, importlib
    count_path, _, names = count_spec.partition(":")
    counters = {}
    def _counted(name, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            counters[name] += 1
            return fn(*args, **kwargs)
        return wrapper
    for name in names.split(","):
        module_name, _, attr_path = name.partition(":")
        owner = importlib.import_module(module_name)
        *parents, last = attr_path.split(".")
        for part in parents:
            owner = getattr(owner, part)
        counters[name] = 0
        setattr(owner, last, _counted(name, getattr(owner, last)))
    def _dump_counts():
        with open(count_path, "w") as f:
            for name, count in counters.items():
                f.write(f"{count} {name}\n")
    atexit.register(_dump_counts)
entry = os.environ.get("BENCH_MAIN", "engine")
def run_server():
    sys.argv[0] = entry
    runpy.run_module(entry, run_name="__main__", alter_sys=True)
    return 0
threshold = os.environ.get("BENCH_GC_THRESHOLD")
if threshold:
    gc.set_threshold(*(int(x) for x in threshold.split(",")))
if os.environ.get("BENCH_GC_FREEZE") == "1":
    # what the server imports first (its CLI, which imports the rest), then freeze that heap
    import importlib, importlib.util
    for name in (entry, entry + ".cli"):
        if importlib.util.find_spec(name) is not None:
            importlib.import_module(name)
    gc.collect()
    gc.freeze()
profile_path = os.environ.get("BENCH_CPROFILE")
if profile_path:
    import cProfile
    profiler = cProfile.Profile()
    profiler.enable()
    try:
        code = run_server()
    finally:
        profiler.disable()
        profiler.dump_stats(profile_path)
    raise SystemExit(code)
raise SystemExit(run_server())
"""


# ----------------------------------------------------------------------------- ports


def free_port() -> int:
    """A UDP+TCP port on 127.0.0.1 that is free right now (port 0 chosen by the kernel),
    outside MEDIA_RANGE."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind((HOST, 0))
            port = int(udp.getsockname()[1])
            if MEDIA_RANGE[0] <= port <= MEDIA_RANGE[1] + 4:
                continue
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                try:
                    tcp.bind((HOST, port))
                except OSError:
                    continue
            return port


def free_block(size: int = 4) -> int:
    """The first port of ``size`` consecutive free UDP ports, the first one even."""
    for _ in range(1000):
        base = free_port() & ~1
        socks: list[socket.socket] = []
        try:
            for port in range(base, base + size):
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                socks.append(s)
                s.bind((HOST, port))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no free port block")


def raise_nofile() -> None:
    """preexec_fn: lift the file descriptor limit to NOFILE (a bridged call holds 4 sockets in
    the relay); where even root may not raise the hard limit (a container without
    CAP_SYS_RESOURCE) the server's soft limit goes to the hard one, as ``b2bua serve`` does."""
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (NOFILE, NOFILE))
    except (ValueError, OSError):
        _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def nofile_limit(pid: int) -> int | None:
    """The soft ``Max open files`` of a running process (what its relay can hold)."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
            if line.startswith("Max open files"):
                return int(line.split()[3])
    return None


# ----------------------------------------------------------------------------- processes


def descendants(pid: int) -> list[int]:
    """``pid`` and every process below it (the relay runs in a child process of the server)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        current = todo.pop()
        out.append(current)
        todo.extend(children.get(current, []))
    return out


def pss_kib(pid: int) -> int:
    """Proportional set size of a process in KiB (shared pages split among their users)."""
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return 0
    match = re.search(r"^Pss:\s+(\d+) kB", text, re.MULTILINE)
    return int(match.group(1)) if match else 0


def tree_rss_kib(pid: int) -> int:
    """Memory of a process and all its descendants (the relay process), in KiB: the sum of
    their PSS, so pages a forked child still shares with its parent count once."""
    return sum(pss_kib(p) for p in descendants(pid))


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds of a process and all its live descendants."""
    return sum(cpu_seconds(p) for p in descendants(pid))


def rss_kib(pid: int) -> int:
    """VmRSS of a process in KiB (0 when it is gone)."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    match = re.search(r"^VmRSS:\s+(\d+) kB", text, re.MULTILINE)
    return int(match.group(1)) if match else 0


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process (all its threads) has used so far."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def thread_cpu(pid: int) -> dict[int, float]:
    """CPU seconds per thread of a process (tid -> user + system)."""
    ticks = os.sysconf("SC_CLK_TCK")
    out: dict[int, float] = {}
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError, IndexError, ValueError):
                fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
                out[int(task.name)] = (int(fields[11]) + int(fields[12])) / ticks
    return out


def udp_rcvbuf_errors() -> int:
    """Datagrams the kernel dropped because a socket's receive buffer was full (all sockets)."""
    with contextlib.suppress(OSError, ValueError, StopIteration):
        lines = [line.split() for line in Path("/proc/net/snmp").read_text().splitlines()]
        header, values = [row for row in lines if row[0] == "Udp:"][:2]
        return int(values[header.index("RcvbufErrors")])
    return 0


def live_objects(pid: int, gc_log: Path, timeout: float = 5.0) -> int:
    """Tracked objects alive in a server started with BENCH_GC_LOG=gc_log (after a full
    collection it runs on SIGUSR1); -1 if it did not answer."""
    snap = Path(str(gc_log) + ".snap")
    before = len(snap.read_text().splitlines()) if snap.exists() else 0
    os.kill(pid, signal.SIGUSR1)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lines = snap.read_text().splitlines() if snap.exists() else []
        if len(lines) > before:
            return int(lines[-1])
        time.sleep(0.05)
    return -1


def udp_port_drops(port: int) -> int:
    """Datagrams dropped on the 127.0.0.1 UDP socket(s) bound to ``port`` (/proc/net/udp)."""
    total = 0
    with contextlib.suppress(OSError):
        for line in Path("/proc/net/udp").read_text().splitlines()[1:]:
            fields = line.split()
            if len(fields) >= 13 and int(fields[1].rsplit(":", 1)[1], 16) == port:
                total += int(fields[-1])
    return total


def _stop(proc: subprocess.Popen[Any], grace: float = 10.0) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


_NUMBERS = re.compile(r"\d+")


class _Drain(threading.Thread):
    """Reads a child's output so its pipe never fills; keeps the last lines, and counts every
    warning and error by its text with the numbers masked (``said``)."""

    def __init__(self, stream: Any, already: Sequence[str] = ()) -> None:
        """``already``: lines read before (the start-up), counted like the rest."""
        super().__init__(daemon=True)
        self.stream = stream
        self.lines: list[str] = []
        self.said: collections.Counter[str] = collections.Counter()
        for line in already:
            self._take(line)

    def run(self) -> None:
        for line in self.stream:
            self._take(line.rstrip("\n"))

    def _take(self, line: str) -> None:
        self.lines.append(line)
        del self.lines[:-200]
        for level in (" WARNING ", " ERROR "):
            if level in line:  # "DATE TIME LEVEL logger: message"; relay: "relay LEVEL ..."
                text = line.split(level, 1)[1]
                self.said[level.strip() + " " + _NUMBERS.sub("N", text)[:140]] += 1


def said_since(drain: _Drain | None, before: collections.Counter[str]) -> list[str]:
    """The server's warnings since ``before`` (a copy of ``drain.said``), most frequent first."""
    if drain is None:
        return []
    new = collections.Counter(drain.said) - before  # a copy: the drain thread adds to it
    return [f"{count} x {text}" for text, count in new.most_common(3)]


@dataclass
class System:
    """A running system under test: where SIPp's UAC sends its INVITEs, and the process."""

    name: str
    target: str  # HOST:PORT for the UAC
    pid: int | None  # the B2BUA process (None for the direct ceiling)


def server_entry(src: Path) -> str:
    """The module that is a checkout's ``b2bua`` command (``python -m MODULE``): ``engine``
    (every tree that has ``b2bua serve``), or ``b2bua`` for a tree that moved it there."""
    for package in ("engine", "b2bua"):
        if (src / package / "__main__.py").is_file():
            return package
    raise SystemExit(
        f"{src}: no engine/__main__.py or b2bua/__main__.py: not a tree with b2bua serve"
    )


def describe_tree(src: Path) -> str:
    """``PATH (commit abc1234, date)`` of a checkout, plus ``+changes`` when its work tree is
    dirty: which code a system ran, for the report."""

    def git(*args: str) -> str:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            done = subprocess.run(
                ["git", "-C", str(src), *args], capture_output=True, text=True, timeout=10
            )
            if done.returncode == 0:
                return done.stdout.strip()
        return ""

    commit = git("log", "-1", "--format=%h %cd", "--date=format:%Y-%m-%d %H:%M")
    if not commit:
        return str(src)
    dirty = " +changes" if git("status", "--porcelain", "--untracked-files=no") else ""
    return f"{src} ({commit}{dirty})"


class Control:
    """The harness's side of the launcher's control channel (BENCH_CTL, SIGUSR2): GC pauses
    since the last reading, and a cProfile of the server's main thread over a chosen span."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / "bench-ctl"
        self.seq = 0
        self.pid: int | None = None

    @property
    def env(self) -> dict[str, str]:
        return {"BENCH_CTL": str(self.path)}

    def send(self, *commands: str, timeout: float = 10.0) -> bool:
        """Run the commands in the server; False when it did not acknowledge in time."""
        if self.pid is None:
            return False
        self.seq += 1
        self.path.write_text("\n".join([f"seq {self.seq}", *commands]) + "\n")
        ack = Path(str(self.path) + ".ack")
        os.kill(self.pid, signal.SIGUSR2)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                if ack.read_text().strip() == str(self.seq):
                    return True
            time.sleep(0.02)
        return False

    def gc_pauses(self) -> list[tuple[int, float]] | None:
        """(generation, pause in s) of each collection since the last call (needs BENCH_GC_LOG);
        None when the server did not answer."""
        out = self.path.with_name("bench-gc-step")
        if not self.send(f"gc {out}"):
            return None
        rows = [line.split() for line in out.read_text().splitlines() if line.strip()]
        return [(int(row[0]), float(row[1])) for row in rows]


def gc_figures(pauses: Sequence[tuple[int, float]] | None) -> dict[str, Any]:
    """A step's collections as table columns: how many, their total and longest pause (ms), and
    how many were full (generation 2) collections."""
    if pauses is None:
        return {}
    times = [pause * 1000 for _gen, pause in pauses]
    return {
        "gc_n": len(pauses),
        "gc_full": sum(1 for gen, _ in pauses if gen == 2),
        "gc_ms": round(sum(times), 1),
        "gc_max_ms": round(max(times), 1) if times else 0.0,
    }


class OursServer:
    """``b2bua serve`` with a generated config: default route = uas_port, trusted peer = every
    port of 127.0.0.1 (each SIPp UAC run takes a fresh port: a port reused between runs can be
    taken by another process on a busy machine).

    ``env`` adds environment variables (e.g. a profiler switch of the harness).
    """

    def __init__(
        self,
        uac_port: int,
        uas_port: int,
        media_range: tuple[int, int] = MEDIA_RANGE,
        env: dict[str, str] | None = None,
        verbose: bool = False,
        wrapper: Sequence[str] = (),
        src: Path | None = None,
        name: str = "ours",
        media_toml: str | None = None,
        sip_toml: str = "",
    ) -> None:
        self.name = name
        self.sip_toml = sip_toml  # more lines of the [sip] section (e.g. trace_messages = 0)
        # the [media] section's body; None: the relay on media_range
        self.media_toml = media_toml
        self.uac_port = uac_port
        self.uas_port = uas_port
        self.media_range = media_range
        self.env = env or {}
        self.verbose = verbose
        self.wrapper = list(wrapper)
        # the checkout to run (this one by default): PYTHONPATH wins over the editable install's
        # finder, and BENCH_MAIN names the module that is its ``b2bua`` command
        self.src = (src or REPO).resolve()
        self.env["PYTHONPATH"] = str(self.src)
        self.env["BENCH_MAIN"] = server_entry(self.src)
        self.tmp = Path(tempfile.mkdtemp(prefix="bench-b2bua-"))
        self.control = Control(self.tmp)
        self.env.update(self.control.env)
        self.proc: subprocess.Popen[str] | None = None
        self.drain: _Drain | None = None
        self.api_url = ""  # what the server announced, once started

    def write_files(self) -> Path:
        directory = self.tmp / "directory.toml"
        directory.write_text(
            f"""
[[organizations]]
id = 3
code = "0003"
name = "Bench Org"

[[users]]
id = 12
organization = 3
name = "Bench User"

[[extensions]]
number = "210"
organization = 3
user = 12
type = "phone_terminal"
caller_id = "Bench <4242425>"
password = "secret210"

[[apps]]
client_id = "bench-app"
client_secret = "bench-secret"
owner = "user:12"

[[routes]]
prefix = ""
gateway = "udp:{HOST}:{self.uas_port}"

[[peers]]
address = "{HOST}"
organization = 3
"""
        )
        config = self.tmp / "config.toml"
        low, high = self.media_range
        relay_media = f'address = "{HOST}"\nports = [{low}, {high}]'
        config.write_text(
            f"""
[sip]
listen = ["udp:{HOST}:0"]
domain = "bench.example.com"
{self.sip_toml}

[media]
{self.media_toml or relay_media}

[api]
listen = "{HOST}:0"

[store]
url = "sqlite:///{self.tmp / "b2bua.sqlite"}"

[calls]
wait_for_pickup = 60
max_duration = 3600
drain = 1

[directory]
file = "directory.toml"
"""
        )
        return config

    def __enter__(self) -> System:
        config = self.write_files()
        cmd = [*self.wrapper, PYTHON, "-c", LAUNCHER]
        if self.verbose:
            cmd.append("-v")
        cmd += ["serve", "--config", str(config)]
        self.proc = subprocess.Popen(
            cmd,
            cwd=self.tmp,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, **self.env},
            preexec_fn=raise_nofile,
        )
        assert self.proc.stdout is not None
        deadline = time.monotonic() + 30
        target = None
        seen: list[str] = []
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            seen.append(line.rstrip())
            if match := re.match(r"listening sip udp (\S+)", line):
                target = match.group(1)
            if match := re.match(r"listening api (\S+)", line):
                self.api_url = match.group(1)
                break
        if target is None or not self.api_url:
            _stop(self.proc)
            raise RuntimeError("b2bua serve did not start:\n" + "\n".join(seen))
        self.drain = _Drain(self.proc.stdout, seen)
        self.drain.start()
        self.control.pid = self.proc.pid
        return System(self.name, target, self.proc.pid)

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            _stop(self.proc)
        shutil.rmtree(self.tmp, ignore_errors=True)


class SippyServer:
    """Sippy B2BUA (``sippy.b2bua``): static route to the UAS, no RADIUS auth or accounting.

    Sippy relays no media without an external rtpproxy: the SDP passes through unchanged.
    """

    name = "sippy"

    def __init__(self, uas_port: int, python: str = PYTHON) -> None:
        """``python``: an interpreter with Sippy installed (this one by default)."""
        self.uas_port = uas_port
        self.python = python
        self.port = free_port()
        self.tmp = Path(tempfile.mkdtemp(prefix="bench-sippy-"))
        self.proc: subprocess.Popen[str] | None = None

    def command(self) -> list[str]:
        return [
            self.python,
            "-c",
            "import sys; from sippy.b2bua import main_func; sys.argv[0] = 'b2bua'; main_func()",
            "-f",
            "-l",
            HOST,
            "-p",
            str(self.port),
            "-s",
            f"{HOST}:{self.uas_port}",
            "-u",
            "-A",
            "0",
            "-P",
            str(self.tmp / "b2bua.pid"),
            "-L",
            str(self.tmp / "b2bua.log"),
            "-c",
            str(self.tmp / "b2bua.sock"),
        ]

    def __enter__(self) -> System:
        self.proc = subprocess.Popen(
            self.command(),
            cwd=self.tmp,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            # Sippy's SipLogger writes every SIP message it receives or sends to stderr at INFO
            # (its default); ours never logs SIP messages by default. Errors only, as deployed.
            env={**os.environ, "SIPLOG_LVL": "ERR"},
        )
        assert self.proc.stdout is not None
        _Drain(self.proc.stdout).start()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}")
            if _udp_bound(self.port):
                return System(self.name, f"{HOST}:{self.port}", self.proc.pid)
            time.sleep(0.1)
        _stop(self.proc)
        raise RuntimeError(f"{self.name} did not bind its port")

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            _stop(self.proc)
        shutil.rmtree(self.tmp, ignore_errors=True)


class SippySimpleServer(SippyServer):
    """Sippy's ``b2bua_simple`` (``python -m sippy.b2bua_simple``): Sippy's lighter B2BUA, one
    next hop for every INVITE (``-n HOST:PORT``, the UAS), no accounting, no command socket, no
    media relay; its SIP log goes to ``-L``."""

    name = "sippy_simple"

    def command(self) -> list[str]:
        return [
            self.python,
            "-m",
            "sippy.b2bua_simple",
            "-f",
            "-l",
            HOST,
            "-p",
            str(self.port),
            "-n",
            f"{HOST}:{self.uas_port}",
            "-L",
            str(self.tmp / "b2bua_simple.log"),
        ]


class Direct:
    """No B2BUA: the UAC calls the UAS (SIPp's own ceiling)."""

    def __init__(self, uas_port: int) -> None:
        self.uas_port = uas_port

    def __enter__(self) -> System:
        return System("sipp", f"{HOST}:{self.uas_port}", None)

    def __exit__(self, *exc: object) -> None:
        return None


def _udp_bound(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.bind((HOST, port))
        except OSError:
            return True
    return False


# ----------------------------------------------------------------------------- SIPp


@dataclass
class SippResult:
    """What one SIPp run reports (the last row of its -trace_stat CSV, plus per-call rtt)."""

    returncode: int
    rows: list[dict[str, str]]
    rtt_ms: list[float] = field(default_factory=list)
    errors: str = ""

    def last(self, name: str) -> int:
        if not self.rows:
            return 0
        value = self.rows[-1].get(name, "0") or "0"
        try:
            return int(float(value))
        except ValueError:
            return 0

    def series(self, name: str) -> list[int]:
        out = []
        for row in self.rows:
            try:
                out.append(int(float(row.get(name, "0") or "0")))
            except ValueError:
                out.append(0)
        return out

    @property
    def created(self) -> int:
        return self.last("TotalCallCreated")

    @property
    def successful(self) -> int:
        return self.last("SuccessfulCall(C)")

    @property
    def failed(self) -> int:
        return self.last("FailedCall(C)")

    @property
    def retransmissions(self) -> int:
        return self.last("Retransmissions(C)")

    @property
    def current_calls(self) -> int:
        return self.last("CurrentCall")

    def percentile(self, q: float) -> float:
        if not self.rtt_ms:
            return float("nan")
        data = sorted(self.rtt_ms)
        index = min(len(data) - 1, max(0, round(q * len(data)) - 1))
        return data[index]


def parse_stat_csv(path: Path) -> list[dict[str, str]]:
    if not path.exists():
        return []
    lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    if len(lines) < 2:
        return []
    header = lines[0].rstrip(";").split(";")
    return [dict(zip(header, line.rstrip(";").split(";"), strict=False)) for line in lines[1:]]


def parse_rtt_csv(directory: Path) -> list[float]:
    """SIPp's -trace_rtt file: 'Date_ms;response_time_ms;rtd_no' per measured call (ms)."""
    values: list[float] = []
    for path in directory.glob("*_rtt.csv"):
        for line in path.read_text(errors="replace").splitlines()[1:]:
            parts = line.split(";")
            if len(parts) >= 2:
                with contextlib.suppress(ValueError):
                    values.append(float(parts[1]))
    return values


class Sipp:
    """One SIPp process, every port on 127.0.0.1, run in its own temporary folder."""

    def __init__(self, args: Sequence[str], name: str, port: int | None = None) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix=f"bench-sipp-{name}-"))
        self.port = port or free_port()
        self.media_port = free_block(4)
        self.stat = self.tmp / "stat.csv"
        self.command = [
            SIPP,
            *args,
            "-i",
            HOST,
            "-p",
            str(self.port),
            "-ci",
            HOST,
            "-cp",
            str(free_port()),
            "-mi",
            HOST,
            "-mp",
            str(self.media_port),
            "-buff_size",
            "1048576",
            "-nostdin",
            "-trace_stat",
            "-stf",
            str(self.stat),
            "-fd",
            "1",
            "-trace_err",
            "-error_file",
            str(self.tmp / "errors.log"),
        ]
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Sipp:
        self.proc = subprocess.Popen(
            self.command,
            cwd=self.tmp,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=raise_nofile,
        )
        return self

    def wait(self, timeout: float | None = None) -> SippResult:
        assert self.proc is not None
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.send_signal(signal.SIGUSR1)  # SIPp: quit now, write the final stats
            try:
                code = self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                code = self.proc.wait()
        return self.result(code)

    def stop(self) -> SippResult:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGUSR1)
        return self.wait(15)

    def result(self, code: int) -> SippResult:
        errors = ""
        err = self.tmp / "errors.log"
        if err.exists():
            errors = err.read_text(errors="replace")[-2000:]
        return SippResult(code, parse_stat_csv(self.stat), parse_rtt_csv(self.tmp), errors)

    def rows(self) -> list[dict[str, str]]:
        return parse_stat_csv(self.stat)

    def cleanup(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.tmp, ignore_errors=True)


@contextlib.contextmanager
def running(sipp: Sipp) -> Iterator[Sipp]:
    sipp.start()
    try:
        yield sipp
    finally:
        sipp.cleanup()


# ----------------------------------------------------------------------------- output


def write_csv(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not rows:
        path.write_text("")
        return
    keys: list[str] = []
    for row in rows:
        for key in row:
            if key not in keys:
                keys.append(key)
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=keys)
        writer.writeheader()
        writer.writerows(rows)


def print_table(
    rows: Sequence[dict[str, Any]], columns: Sequence[str], header: bool = True
) -> None:
    def fmt(value: Any) -> str:
        if isinstance(value, float):
            return "-" if value != value else f"{value:.1f}"
        return str(value)

    cells = [[fmt(row.get(c, "")) for c in columns] for row in rows]
    widths = [max([len(c), 12, *(len(r[i]) for r in cells)]) for i, c in enumerate(columns)]
    widths = [
        max(len(c), 6) if i > 1 else w for i, (c, w) in enumerate(zip(columns, widths, strict=True))
    ]
    if header:
        print("  ".join(c.rjust(w) for c, w in zip(columns, widths, strict=True)))
    for r in cells:
        print("  ".join(v.rjust(w) for v, w in zip(r, widths, strict=True)))
    sys.stdout.flush()


def machine_line() -> str:
    cpu = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return (
        f"{os.cpu_count()} cores ({cpu}), Python {sys.version.split()[0]}, "
        f"{time.strftime('%Y-%m-%d %H:%M %Z')}"
    )


# ----------------------------------------------------------------------------- profiles


def summarize_profile(path: Path, top: int = 25) -> str:
    """Self and inclusive sample shares per function and per module from py-spy raw stacks."""
    total = 0
    self_fn: dict[str, int] = {}
    incl_fn: dict[str, int] = {}
    incl_mod: dict[str, int] = {}
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        try:
            count = int(count_text)
        except ValueError:
            continue
        total += count
        frames = [re.sub(r":\d+\)$", ")", f) for f in stack.split(";")]
        if frames:
            self_fn[frames[-1]] = self_fn.get(frames[-1], 0) + count
        for name in set(frames):
            incl_fn[name] = incl_fn.get(name, 0) + count
        for mod in {m.group(1) for f in frames if (m := re.search(r"\(([^:)]+)", f))}:
            incl_mod[mod] = incl_mod.get(mod, 0) + count
    out = [f"{total} samples"]
    for title, table in (("self", self_fn), ("inclusive", incl_fn), ("module incl.", incl_mod)):
        out.append(f"-- {title}")
        for name, count in sorted(table.items(), key=lambda kv: -kv[1])[:top]:
            out.append(f"{100 * count / max(1, total):5.1f}%  {name}")
    return "\n".join(out)


if __name__ == "__main__":
    for arg in sys.argv[1:]:
        print(summarize_profile(Path(arg)))
