"""Signalling benchmark: calls/s through trio-b2bua, Sippy's B2BUAs and SIPp-to-SIPp, in one run.

Each system under test (SUT) sits between a SIPp UAC (built-in ``uac`` scenario, calling service
5551234 from the port the B2BUA trusts as a peer, so no digest) and a SIPp UAS (built-in ``uas``)
that is the route's gateway:

    ours   SIPp UAC -> b2bua serve (route "" -> UAS, media anchored in its relay) -> SIPp UAS
    candidate  the same as ours, run from another checkout (``--candidate DIR``; ``--src DIR``
           picks the checkout of ours): an old tree and a new one side by side
    sippy  SIPp UAC -> Sippy B2BUA (python -m sippy.b2bua, static route, no RADIUS) -> SIPp UAS
    sippy_simple  SIPp UAC -> Sippy's b2bua_simple (python -m sippy.b2bua_simple -n UAS: one
           next hop, no accounting, no command socket; Sippy's lighter, faster B2BUA) -> SIPp UAS
    sipp   SIPp UAC -> SIPp UAS (the ceiling: what the load generator itself can do)

The UAC steps the call rate up (``--rates``), each step a fresh UAC placing rate x window calls
at that rate. Modes (``--modes``):

    short  0 s calls (INVITE/100/180/200/ACK, then BYE/200 at once), no RTP
    long   10 s calls (``-d 10000``): the SUT holds rate x 10 calls at a time, no RTP
    media  10 s calls with RTP: the UAC streams 20 ms G.711 packets (``rtp_stream``) and the UAS
           echoes them (``-rtp_echo``); ours relays them both ways, Sippy passes the SDP through
           unchanged (it relays nothing without an external rtpproxy), so its RTP goes UAC<->UAS
           directly

Per step: calls/s offered and achieved, successful and failed calls, retransmissions seen by the
UAC and the UAS (SIPp counts the messages it had to send again), INVITE->200 latency p50/p99
(SIPp -trace_rtt, 1 ms resolution), peak concurrent calls, the SUT's CPU (% of one core, and
ms of CPU per call: the whole process tree, and its main thread alone) and, with ``--gc-log``,
ours' GC pauses during the step. A step is clean when no call failed, every call completed, the
UAC's retransmissions stay within 1 % of the calls and do not grow (second half of the window
<= 2 x first half + 10). A system's figure is its highest clean rate; the headline gives ours
(and the candidate) against the faster of the two Sippy B2BUAs, and the candidate against ours.

Usage:
    python benchmarks/bench_signalling.py [--quick] [--systems ours,sippy,sippy_simple,sipp]
        [--modes short,long,media] [--rates 25,50,100,...] [--window 30]
        [--src OLD_TREE] [--candidate NEW_TREE] [--gc-log]
        [--profile RATE [--profiler py-spy|cprofile]] [--gc-freeze]
Writes benchmarks/out/signalling.csv (and .png with matplotlib), profiles beside them.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import importlib.util
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    OUT,
    REPO,
    Control,
    Direct,
    OursServer,
    Sipp,
    SippResult,
    SippyServer,
    SippySimpleServer,
    System,
    describe_tree,
    free_port,
    gc_figures,
    live_objects,
    machine_line,
    print_table,
    said_since,
    server_entry,
    thread_cpu,
    tree_cpu_seconds,
    tree_rss_kib,
    udp_port_drops,
    udp_rcvbuf_errors,
    write_csv,
)

from engine.media.g711 import PT_PCMU
from engine.media.tone import encode_tone

SERVICE = "5551234"
# A clean step: no failed call, every call completed, and the UAC retransmitted for at most 1 %
# of the calls with no growth over the window (a loaded SUT answers late before it drops calls).
RETRANS_LIMIT = 0.01
LONG_MS = 10_000

# The built-in uac scenario with RTP: after the ACK it streams a µ-law file in a loop (50 packets
# of 160 bytes a second) until the pause ends, then BYE. rtp_stream needs no root (unlike pcap).
MEDIA_UAC = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="uac with rtp_stream">
  <send retrans="500">
    <![CDATA[

      INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: [service] <sip:[service]@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 INVITE
      Contact: sip:sipp@[local_ip]:[local_port]
      Max-Forwards: 70
      Subject: Performance Test
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=user1 53655765 2353687637 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [rtpstream_audio_port] RTP/AVP 0
      a=rtpmap:0 PCMU/8000

    ]]>
  </send>
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="183" optional="true"/>
  <recv response="200" rtd="true"/>
  <send>
    <![CDATA[

      ACK sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: [service] <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: 1 ACK
      Contact: sip:sipp@[local_ip]:[local_port]
      Max-Forwards: 70
      Subject: Performance Test
      Content-Length: 0

    ]]>
  </send>
  <nop><action><exec rtp_stream="STREAM_FILE,-1,0"/></action></nop>
  <pause/>
  <nop><action><exec rtp_stream="pause"/></action></nop>
  <send retrans="500">
    <![CDATA[

      BYE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: [service] <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: 2 BYE
      Contact: sip:sipp@[local_ip]:[local_port]
      Max-Forwards: 70
      Subject: Performance Test
      Content-Length: 0

    ]]>
  </send>
  <recv response="200" crlf="true"/>
  <ResponseTimeRepartition value="10, 20, 30, 40, 50, 100, 150, 200"/>
  <CallLengthRepartition value="10, 50, 100, 500, 1000, 5000, 10000"/>
</scenario>
"""


def media_files(folder: Path) -> Path:
    """Write a 1 s µ-law 1 kHz tone and the media UAC scenario; return the scenario path."""
    folder.mkdir(parents=True, exist_ok=True)
    tone = folder / "tone.ulaw"
    tone.write_bytes(encode_tone(1000.0, PT_PCMU, -12.0))  # 1 s: SIPp's rtp_stream loops it
    scenario = folder / "uac_rtp_stream.xml"
    scenario.write_text(MEDIA_UAC.replace("STREAM_FILE", str(tone)))
    return scenario


def _delta(before: list[dict[str, str]], after: list[dict[str, str]], name: str) -> int:
    def last(rows: list[dict[str, str]]) -> int:
        if not rows:
            return 0
        try:
            return int(float(rows[-1].get(name, "0") or "0"))
        except ValueError:
            return 0

    return last(after) - last(before)


def growing(result: SippResult) -> bool:
    """Retransmissions in the second half of the run exceed twice the first half (+10)."""
    series = result.series("Retransmissions(C)")
    if len(series) < 4:
        return False
    half = len(series) // 2
    first = series[half - 1]
    second = series[-1] - series[half - 1]
    return second > 2 * first + 10


def run_step(
    system: System,
    uas: Sipp,
    uac_port: int,
    mode: str,
    rate: int,
    window: float,
    scenario: Path | None,
    profile_to: Path | None,
    strict: bool = False,
    profile_idle: bool = False,
    control: Control | None = None,
    gc_log: bool = False,
    profiler_kind: str = "py-spy",
) -> dict[str, Any]:
    calls = max(1, int(rate * window))
    duration_ms = 0 if mode == "short" else LONG_MS
    args = [system.target]
    args += ["-sf", str(scenario)] if mode == "media" else ["-sn", "uac"]
    args += [
        "-s",
        SERVICE,
        "-r",
        str(rate),
        "-m",
        str(calls),
        "-d",
        str(duration_ms),
        "-l",
        str(max(1000, rate * (duration_ms // 1000 + 5) * 2)),
        "-recv_timeout",
        "20000",
        "-timeout",
        f"{int(window + duration_ms / 1000 + 60)}s",
        "-trace_rtt",
        "-rtt_freq",
        "1",
    ]
    if not strict:
        # An unexpected message (Sippy's 180 that overtakes its 200) is counted, not fatal.
        args += ["-default_behaviors", "all,-abortunexp"]
    uac = Sipp(args, "uac")  # a fresh port: the SUT trusts all of 127.0.0.1
    uas_before = uas.rows()
    cpu_before = tree_cpu_seconds(system.pid) if system.pid else 0.0
    threads_before = thread_cpu(system.pid) if system.pid else {}
    drops_before = udp_rcvbuf_errors()
    sut_port = int(system.target.rsplit(":", 1)[1])
    sut_drops_before = udp_port_drops(sut_port)
    rss_before = tree_rss_kib(system.pid) if system.pid else 0
    if control is not None and gc_log:
        control.gc_pauses()  # from here on: this step's collections
    cprofile = profile_to is not None and profiler_kind == "cprofile" and control is not None
    if cprofile and control is not None:
        control.send("profile-start")
    profiler = None
    started = time.monotonic()
    uac.start()
    try:
        if profile_to is not None and system.pid and not cprofile:
            import subprocess

            profiler = subprocess.Popen(
                [
                    str(Path(sys.executable).parent / "py-spy"),
                    "record",
                    "--pid",
                    str(system.pid),
                    "--duration",
                    str(int(window)),
                    "--rate",
                    "200",
                    *(["--idle"] if profile_idle else []),
                    "--format",
                    "raw",
                    "-o",
                    str(profile_to),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        peak_rss = rss_before
        while uac.proc is not None and uac.proc.poll() is None:
            time.sleep(0.5)
            if system.pid:
                peak_rss = max(peak_rss, tree_rss_kib(system.pid))
            if time.monotonic() - started > window + duration_ms / 1000 + 90:
                break
        result = uac.wait(5)
    finally:
        uac.cleanup()
        if profiler is not None:
            profiler.wait()
    elapsed = time.monotonic() - started
    if cprofile and control is not None and profile_to is not None:
        control.send(f"profile-stop {profile_to}", timeout=60)
        write_cprofile_text(profile_to)
    gc_columns = gc_figures(control.gc_pauses()) if control is not None and gc_log else {}
    time.sleep(0.5)  # the UAS's stat row for the last second
    uas_after = uas.rows()
    cpu = (tree_cpu_seconds(system.pid) - cpu_before) if system.pid else 0.0
    drops = udp_rcvbuf_errors() - drops_before
    sut_drops = udp_port_drops(sut_port) - sut_drops_before
    # the main thread (tid = pid): ours' trio thread (signalling, HTTP, store, call logic),
    # Sippy's event loop; ours' relay is a child process, Sippy's UDP I/O worker threads
    threads_after = thread_cpu(system.pid) if system.pid else {}
    main_cpu = (
        threads_after.get(system.pid, 0.0) - threads_before.get(system.pid, 0.0)
        if system.pid
        else 0.0
    )
    created = result.created
    peak_calls = max(result.series("CurrentCall") or [0])
    uas_retrans = _delta(uas_before, uas_after, "Retransmissions(C)")
    clean = (
        result.failed == 0
        and result.successful == calls
        and not growing(result)
        and result.retransmissions <= RETRANS_LIMIT * calls
        and result.returncode == 0
    )
    return {
        "system": system.name,
        "mode": mode,
        "rate": rate,
        "window_s": window,
        "calls": calls,
        "achieved_cps": round(created / window, 1),
        "successful": result.successful,
        "failed": result.failed,
        "unexpected": result.last("UnexpectedMessage(C)"),
        "uac_retrans": result.retransmissions,
        "uas_retrans": uas_retrans,
        "growing": growing(result),
        "p50_ms": result.percentile(0.50),
        "p99_ms": result.percentile(0.99),
        "max_ms": max(result.rtt_ms) if result.rtt_ms else float("nan"),
        "peak_calls": peak_calls,
        "cpu_pct": round(100 * cpu / elapsed, 1) if system.pid else float("nan"),
        "main_pct": round(100 * main_cpu / elapsed, 1) if system.pid else float("nan"),
        "udp_drops": drops,
        "sut_drops": sut_drops,
        "cpu_ms_call": round(1000 * cpu / max(1, result.successful), 3)
        if system.pid
        else float("nan"),
        "main_ms_call": round(1000 * main_cpu / max(1, result.successful), 3)
        if system.pid
        else float("nan"),
        **gc_columns,
        "peak_rss_mib": round(peak_rss / 1024, 1) if system.pid else float("nan"),
        "load": round(os.getloadavg()[0], 2),
        "exit": result.returncode,
        "clean": clean,
        "first_error": result.errors.strip().splitlines()[1][:160]
        if len(result.errors.strip().splitlines()) > 1
        else "",
    }


COLUMNS = [
    "system",
    "mode",
    "rate",
    "achieved_cps",
    "successful",
    "failed",
    "unexpected",
    "uac_retrans",
    "uas_retrans",
    "p50_ms",
    "p99_ms",
    "max_ms",
    "peak_calls",
    "cpu_pct",
    "main_pct",
    "udp_drops",
    "sut_drops",
    "cpu_ms_call",
    "main_ms_call",
    "peak_rss_mib",
    "load",
    "clean",
    "gc_n",
    "gc_full",
    "gc_ms",
    "gc_max_ms",
    "live_objs",
    "objs_per_call",
]
# The figures the rework is judged by, per system and rate (printed at the end).
VERDICT_COLUMNS = [
    "system",
    "mode",
    "rate",
    "clean",
    "failed",
    "main_ms_call",
    "cpu_ms_call",
    "p99_ms",
    "gc_n",
    "gc_full",
    "gc_ms",
    "gc_max_ms",
]
OURS = ("ours", "ours_rtpengine", "candidate")
SIPPY = ("sippy", "sippy_simple")


def run_mode(
    systems: list[str],
    mode: str,
    args: argparse.Namespace,
    scenario: Path | None,
    rows: list[dict[str, Any]],
) -> None:
    """Start every system (each with its own UAS), then step the rate up, running the systems
    one after the other at each rate, so they see the same background load on a shared machine.
    A system drops out after ``--stop-after`` unclean steps."""
    with contextlib.ExitStack() as stack:
        running_systems: list[tuple[System, Sipp, int]] = []
        servers: dict[str, Any] = {}
        for name in systems:
            uac_port = free_port()
            uas_args = ["-sn", "uas", "-timeout", "7200s"]
            if mode == "media":
                uas_args.append("-rtp_echo")
            uas = Sipp(uas_args, f"uas-{name}")
            stack.callback(uas.cleanup)
            stack.callback(uas.stop)
            uas.start()
            time.sleep(0.3)
            env: dict[str, str] = {}
            if args.gc_log:
                env["BENCH_GC_LOG"] = str(OUT / f"gc-{name}-{mode}.txt")
                Path(env["BENCH_GC_LOG"] + ".snap").unlink(missing_ok=True)
            if args.gc_freeze:
                env["BENCH_GC_FREEZE"] = "1"
            if args.gc_threshold:
                env["BENCH_GC_THRESHOLD"] = args.gc_threshold
            sut: Any
            if name == "ours":
                sut = OursServer(uac_port, uas.port, env=env, src=args.src)
            elif name == "candidate":  # ours from another checkout, side by side
                extra = dict(kv.split("=", 1) for kv in args.candidate_env.split(";") if kv)
                sut = OursServer(
                    uac_port,
                    uas.port,
                    env={**env, **extra},
                    src=args.candidate,
                    name=name,
                    sip_toml=args.candidate_sip.replace(";", "\n"),
                )
            elif name == "ours_rtpengine":  # ours with [media] backend = "rtpengine"
                from rtpengine import Rtpengine

                daemon = Rtpengine(
                    (20000, 33998),  # below the relay's MEDIA_RANGE
                    log_path=OUT / f"signalling-{mode}-rtpengine.log",
                    log_level=4,
                )
                stack.enter_context(daemon)
                sut = OursServer(
                    uac_port,
                    uas.port,
                    env=env,
                    src=args.src,
                    name=name,
                    media_toml=f'backend = "rtpengine"\nrtpengine = ["{daemon.address}"]',
                )
            elif name == "sippy":
                sut = SippyServer(uas.port)
            elif name == "sippy_simple":
                sut = SippySimpleServer(uas.port)
            else:
                sut = Direct(uas.port)
            running_systems.append((stack.enter_context(sut), uas, uac_port))
            servers[name] = sut
        time.sleep(0.5)
        failures = dict.fromkeys(systems, 0)
        base_objects: dict[str, int] = {}
        if args.gc_log:
            for system, _, _ in running_systems:
                if system.pid is not None and system.name in ("ours", "candidate"):
                    base_objects[system.name] = live_objects(
                        system.pid, OUT / f"gc-{system.name}-{mode}.txt"
                    )
        for rate in args.rates:
            for system, uas, uac_port in running_systems:
                if failures[system.name] >= args.stop_after:
                    continue
                profile_to = None
                if args.profile == rate and system.name in OURS:
                    ext = "prof" if args.profiler == "cprofile" else "txt"
                    profile_to = OUT / f"profile-{system.name}-{mode}-{rate}{suffix(args)}.{ext}"
                drain = getattr(servers.get(system.name), "drain", None)
                said_before = collections.Counter(drain.said) if drain is not None else None
                for _attempt in range(3):  # exit 254: a port was taken meanwhile
                    row = run_step(
                        system,
                        uas,
                        uac_port,
                        mode,
                        rate,
                        args.window,
                        scenario,
                        profile_to,
                        args.strict,
                        args.profile_idle,
                        getattr(servers.get(system.name), "control", None),
                        args.gc_log,
                        args.profiler,
                    )
                    if not (row["exit"] == 254 and row["successful"] == 0):
                        break
                if system.name in base_objects and system.pid is not None:
                    # the step's calls all ended less than 32 s ago: their transactions linger
                    live = live_objects(system.pid, OUT / f"gc-{system.name}-{mode}.txt")
                    row["live_objs"] = live
                    row["objs_per_call"] = round(
                        (live - base_objects[system.name]) / max(1, row["successful"]), 1
                    )
                rows.append(row)
                print_table([row], COLUMNS, header=False)
                if profile_to is not None:
                    also = profile_to.with_suffix(".txt") if args.profiler == "cprofile" else None
                    print(f"   profile: {profile_to}" + (f" and {also}" if also else ""))
                if row["first_error"]:
                    print("   first error:", row["first_error"])
                if said_before is not None:  # what ours logged during the step, if anything
                    for line in said_since(drain, said_before):
                        print(f"   {system.name} said: {line}")
                if not row["clean"]:
                    failures[system.name] += 1
                time.sleep(args.pause)
            if all(failures[s] >= args.stop_after for s in systems):
                break
    for name in ("ours", "candidate"):
        gc_log = OUT / f"gc-{name}-{mode}.txt"
        if args.gc_log and name in systems and gc_log.exists():
            print(f"   {name}:")
            summarize_gc(gc_log)


def write_cprofile_text(prof: Path, top: int = 40) -> None:
    """Beside a cProfile dump, its top functions by cumulative and by own time (PROF.txt)."""
    import io
    import pstats

    if not prof.exists():
        print(f"   no profile written to {prof} (the server did not answer)")
        return
    text = io.StringIO()
    stats = pstats.Stats(str(prof), stream=text)
    stats.strip_dirs()
    for order in ("cumulative", "tottime"):
        text.write(f"==== by {order}\n")
        stats.sort_stats(order).print_stats(top)
    prof.with_suffix(".txt").write_text(text.getvalue())


def suffix(args: argparse.Namespace) -> str:
    return f"-{args.tag}" if args.tag else ""


def summarize_gc(path: Path) -> None:
    by_gen: dict[int, list[float]] = {0: [], 1: [], 2: []}
    for line in path.read_text().splitlines():
        gen, pause = line.split()[:2]
        by_gen[int(gen)].append(float(pause) * 1000)
    for gen, pauses in by_gen.items():
        if pauses:
            pauses.sort()
            print(
                f"   gc gen{gen}: {len(pauses)} collections, total {sum(pauses):.0f} ms, "
                f"p99 {pauses[int(0.99 * (len(pauses) - 1))]:.2f} ms, max {pauses[-1]:.1f} ms"
            )


def best(rows: list[dict[str, Any]], system: str, mode: str) -> int:
    clean = [r["rate"] for r in rows if r["system"] == system and r["mode"] == mode and r["clean"]]
    return max(clean) if clean else 0


def verdict_order(row: dict[str, Any]) -> tuple[int, int, int]:
    """Mode, then rate, then the systems in a fixed order: ours, candidate, sippy, ..."""
    order = ["ours", "ours_rtpengine", "candidate", "sippy", "sippy_simple", "sipp"]
    return (["short", "long", "media"].index(row["mode"]), row["rate"], order.index(row["system"]))


def headline(rows: list[dict[str, Any]], systems: list[str], mode: str) -> str:
    """Each system's highest clean rate, and ours (and the candidate) against the faster Sippy
    (the one with the higher clean rate) and against each other."""
    figures = {s: best(rows, s, mode) for s in systems}
    line = ", ".join(f"{s} {v} calls/s" for s, v in figures.items())
    ratios = []
    sippies = [s for s in SIPPY if s in figures]
    if sippies:
        fastest = max(sippies, key=lambda s: figures[s])
        for ours in (s for s in OURS if s in figures):
            if figures[fastest]:
                ratios.append(f"{ours}/{fastest} = {figures[ours] / figures[fastest]:.2f}x")
    if figures.get("ours") and "candidate" in figures:
        ratios.append(f"candidate/ours = {figures['candidate'] / figures['ours']:.2f}x")
    return f"{mode}: highest clean rate: {line}" + (f"; {'; '.join(ratios)}" if ratios else "")


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed: no PNG (pip install matplotlib)")
        return
    modes = sorted({r["mode"] for r in rows}, key=["short", "long", "media"].index)
    fig, axes = plt.subplots(2, len(modes), figsize=(5 * len(modes), 8), squeeze=False)
    for col, mode in enumerate(modes):
        for system in ("ours", "candidate", "sippy", "sippy_simple", "sipp"):
            data = [r for r in rows if r["system"] == system and r["mode"] == mode]
            if not data:
                continue
            rates = [r["rate"] for r in data]
            ok = [r["successful"] / r["window_s"] for r in data]
            p99 = [r["p99_ms"] for r in data]
            axes[0][col].plot(rates, ok, marker="o", label=system)
            axes[0][col].scatter(
                [r["rate"] for r in data if not r["clean"]],
                [r["successful"] / r["window_s"] for r in data if not r["clean"]],
                marker="x",
                color="red",
                zorder=5,
            )
            axes[1][col].plot(rates, p99, marker="o", label=system)
        axes[0][col].set_title(f"{mode}: successful calls/s (x = not clean)")
        axes[0][col].set_xlabel("offered calls/s")
        axes[0][col].legend()
        axes[1][col].set_title(f"{mode}: INVITE->200 p99 (ms)")
        axes[1][col].set_xlabel("offered calls/s")
        axes[1][col].set_yscale("symlog")
        axes[1][col].legend()
    fig.suptitle(machine_line())
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    print(f"wrote {path}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="8 s windows")
    parser.add_argument(
        "--systems",
        default="ours,sippy,sippy_simple,sipp",
        help="any of ours, ours_rtpengine (ours with [media] backend = rtpengine), sippy, "
        "sippy_simple, sipp (candidate comes with --candidate)",
    )
    parser.add_argument("--modes", default="short,long,media")
    parser.add_argument("--rates", default="25,50,100,150,200,300,400,600,800,1200,1600")
    parser.add_argument("--window", type=float, default=30.0, help="seconds per step")
    parser.add_argument("--pause", type=float, default=2.0, help="seconds between steps")
    parser.add_argument("--stop-after", type=int, default=1, help="unclean steps before stopping")
    parser.add_argument(
        "--profile",
        type=int,
        default=None,
        help="profile ours (and the candidate) during the step at this rate (--profiler)",
    )
    parser.add_argument(
        "--profiler",
        choices=["auto", "py-spy", "cprofile"],
        default="auto",
        help="py-spy: raw stacks of every thread, PROFILE.txt (summary: python benchmarks/"
        "common.py PROFILE.txt); cprofile: the main (trio) thread, PROFILE.prof + PROFILE.txt; "
        "auto: py-spy when installed beside this Python, else cprofile",
    )
    parser.add_argument(
        "--profile-idle",
        action="store_true",
        help="py-spy --idle: also sample threads waiting off-CPU (blocking calls)",
    )
    parser.add_argument(
        "--gc-log",
        action="store_true",
        help="record ours' GC pauses: per step (gc_* columns) and per mode",
    )
    parser.add_argument("--gc-freeze", action="store_true", help="gc.freeze() ours after imports")
    parser.add_argument("--gc-threshold", default="", help="gc.set_threshold for ours: a,b,c")
    parser.add_argument(
        "--strict",
        action="store_true",
        help="an unexpected message fails the call (SIPp's default)",
    )
    parser.add_argument(
        "--src",
        type=Path,
        default=None,
        help="run ours from this checkout (PYTHONPATH), e.g. to compare a change",
    )
    parser.add_argument(
        "--candidate",
        type=Path,
        default=None,
        help="add system 'candidate': ours run from this checkout",
    )
    parser.add_argument(
        "--candidate-env",
        default="",
        help="extra environment of the candidate: K=V;K=V (e.g. BENCH_GC_FREEZE=1)",
    )
    parser.add_argument(
        "--candidate-sip",
        default="",
        help="extra lines of the candidate's [sip] section, ';'-separated (e.g. "
        "'trace_messages = 0': what the per-call traces cost)",
    )
    parser.add_argument("--tag", default="", help="suffix of the output file names")
    args = parser.parse_args()
    if args.quick:
        args.window = 8.0
    args.rates = [int(x) for x in args.rates.split(",")]
    if args.profiler == "auto":
        has_py_spy = (Path(sys.executable).parent / "py-spy").exists()
        args.profiler = "py-spy" if has_py_spy else "cprofile"
    systems = args.systems.split(",")
    known = {"ours", "ours_rtpengine", "candidate", "sippy", "sippy_simple", "sipp"}
    if unknown := [s for s in systems if s not in known]:
        parser.error(f"unknown system {', '.join(unknown)} (known: {', '.join(sorted(known))})")
    if any(s in SIPPY for s in systems):
        try:
            import sippy  # noqa: F401
        except ImportError:
            parser.error("sippy and sippy_simple need Sippy: pip install -e '.[bench]'")
    if importlib.util.find_spec("sippy") and importlib.util.find_spec("pytest"):
        # harmless here (the servers are started with python -m), not for the tests
        print(
            f"note: Sippy is installed beside the tests in {sys.prefix}: its wheel puts a"
            " top-level 'tests' package (which hides ours) and a 'b2bua' command there; keep it"
            " in a venv of its own (.venv-bench, benchmarks/README.md)"
        )
    for tree in (args.src, args.candidate):
        if tree is not None and not tree.is_dir():
            parser.error(f"{tree}: no such folder")
        if tree is not None:
            server_entry(tree)  # says what is wrong with a tree before any step runs
    if (args.candidate is not None or args.candidate_env) and "candidate" not in systems:
        systems.insert(1, "candidate")
    modes = args.modes.split(",")
    OUT.mkdir(parents=True, exist_ok=True)
    scenario = media_files(OUT / "media") if "media" in modes else None
    print(machine_line())
    print(f"window {args.window:.0f} s per step; rates {args.rates}")
    print(f"ours: {describe_tree((args.src or REPO).resolve())}")
    if "candidate" in systems:
        print(f"candidate: {describe_tree((args.candidate or REPO).resolve())}")
    rows: list[dict[str, Any]] = []
    print_table([], COLUMNS)
    for mode in modes:
        run_mode(systems, mode, args, scenario, rows)
    tag = suffix(args)
    write_csv(OUT / f"signalling{tag}.csv", rows)
    print()
    print_table(rows, COLUMNS)
    print()
    print_table(sorted(rows, key=verdict_order), VERDICT_COLUMNS)
    print()
    for mode in modes:
        print(headline(rows, systems, mode))
    plot(rows, OUT / f"signalling{tag}.png")
    print(f"wrote {OUT / f'signalling{tag}.csv'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
