"""Mixer benchmark: what a listen-in (Monitor, Whisper, BargeIn) costs the relay.

Two parts:

1. ``ticks``: the mixing maths alone, in this process: ``Mix.tick`` of a mix of K members, each
   with a fresh 20 ms G.711 frame per tick (half PCMU, half PCMA, every member hearing every
   other: BargeIn, the dearest matrix). Prints µs per tick and µs per mixed party per tick.
2. ``capacity``: N concurrent 3-party mixes in a ``RelayProcess`` (a child process, as
   ``b2bua serve`` runs it). A generator process plays the 3N phones: each sends one 172-byte
   RTP packet (20 ms of G.711) every 20 ms to its relay endpoint and counts the mixed packets
   it gets back. Loss = the packets a phone should have had (50/s over the measurement window)
   that never came; relay CPU = the relay process's CPU share. Prints per N (the best of
   ``--repeat`` runs); then the largest N that, and every smaller N, lost < 0.1 %.

Usage:  python benchmarks/bench_mixer.py [--ticks 3000] [--mixes 50,100,200] [--seconds 5]
            [--warmup 1] [--repeat 1] [--group-nice -10] [--out FILE]
The machine may be shared: relay CPU and loss measure the neighbours too (see the "waited"
column: the share of time the relay was runnable but had no CPU).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import select
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.media import RelayProcess, g711, mixer, rtp, tone  # noqa: E402

HOST = "127.0.0.1"
PACKET_TIME = 0.02


def _frame_packet(pt: int, hz: float, seq: int) -> bytes:
    payload = tone.encode_tone(hz, pt, -12.0)[:160]
    buf = bytearray(rtp.RTP_HEADER_SIZE + 160)
    rtp.pack_header(buf, pt, seq, seq * 160, 0x1234 + seq)
    buf[rtp.RTP_HEADER_SIZE :] = payload
    return bytes(buf)


def bench_ticks(members: int, ticks: int) -> tuple[float, float]:
    """(µs per tick, µs per party per tick) of a BargeIn-style mix of ``members``."""
    pts = [g711.PT_PCMU if i % 2 == 0 else g711.PT_PCMA for i in range(members)]
    hears = [(i, j) for i in range(members) for j in range(members) if i != j]
    mix = mixer.Mix(pts, hears, 0.0, random.Random(1))
    packets = [_frame_packet(pt, 500.0 + 200 * i, i) for i, pt in enumerate(pts)]
    dest = ("mix", 0)
    start = time.perf_counter()
    for _ in range(ticks):
        for member, packet in zip(mix.inputs, packets, strict=True):
            member.sendto(packet, dest)
        mix.tick()
    elapsed = time.perf_counter() - start
    per_tick = elapsed / ticks * 1e6
    return per_tick, per_tick / members


# ----------------------------------------------------------------------------- the generator


def generator() -> None:
    """Child: reads JSON {"targets": [relay rtp ports], "seconds", "warmup"} on stdin; prints its
    ports, waits for a line on stdin, plays, prints the counts."""
    config = json.loads(sys.stdin.readline())
    targets: list[int] = config["targets"]
    socks = []
    for _ in targets:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 18)
        s.bind((HOST, 0))
        s.setblocking(False)
        socks.append(s)
    print(json.dumps([s.getsockname()[1] for s in socks]), flush=True)
    sys.stdin.readline()  # go
    poll = select.epoll()
    index = {s.fileno(): i for i, s in enumerate(socks)}
    for s in socks:
        poll.register(s.fileno(), select.EPOLLIN)
    packet = bytearray(_frame_packet(g711.PT_PCMU, 700.0, 1))
    received = [0] * len(socks)
    sent = 0
    start = time.monotonic()
    measure_from = start + config["warmup"]
    end = measure_from + config["seconds"]
    due = start
    seq = 0
    buf = bytearray(2048)
    measuring = False
    while True:
        now = time.monotonic()
        if now >= end:
            break
        if not measuring and now >= measure_from:
            measuring = True
            received = [0] * len(socks)
        if now >= due:
            seq = (seq + 1) & 0xFFFF
            packet[2], packet[3] = seq >> 8, seq & 0xFF
            for s, port in zip(socks, targets, strict=True):
                try:
                    s.sendto(packet, (HOST, port))
                    sent += 1
                except OSError:
                    pass
            due += PACKET_TIME
        for fd, _mask in poll.poll(max(0.0, min(due, end) - time.monotonic())):
            s = socks[index[fd]]
            while True:
                try:
                    s.recv_into(buf)
                except OSError:
                    break
                received[index[fd]] += 1
    print(json.dumps({"received": received, "sent": sent}), flush=True)


def _cpu(pid: int, tid: int) -> tuple[float, float]:
    """(CPU seconds of the process, seconds its thread ``tid`` was runnable but waiting for a
    CPU), from /proc."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / ticks
    with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
        waited = int(f.read().split()[1]) / 1e9
    return cpu, waited


def bench_capacity(mixes: int, seconds: float, warmup: float) -> dict[str, float]:
    relay = RelayProcess(HOST, _free_range(6 * mixes + 20))
    relay.start()
    gen = None
    try:
        eps = [relay.allocate() for _ in range(3 * mixes)]
        gen = subprocess.Popen(
            [sys.executable, __file__, "--generator"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert gen.stdin is not None and gen.stdout is not None
        gen.stdin.write(
            json.dumps(
                {"targets": [ep.rtp_port for ep in eps], "seconds": seconds, "warmup": warmup}
            )
            + "\n"
        )
        gen.stdin.flush()
        ports = json.loads(gen.stdout.readline())
        for ep, port in zip(eps, ports, strict=True):
            relay.set_remote(ep, HOST, port)
        everyone = [(i, j) for i in range(3) for j in range(3) if i != j]
        for m in range(mixes):
            a, b, c = eps[3 * m : 3 * m + 3]
            relay.bridge(a, b)
            relay.start_mix([a, b, c], [g711.PT_PCMU] * 3, everyone)
        relay.sync()
        gen.stdin.write("go\n")
        gen.stdin.flush()
        time.sleep(warmup)
        pid, tid = relay.pid, relay.native_thread_id
        assert pid is not None and tid is not None
        cpu0, wait0 = _cpu(pid, tid)
        time.sleep(seconds)
        cpu1, wait1 = _cpu(pid, tid)
        result = json.loads(gen.stdout.readline())
        gen.wait(10)
        received = sum(result["received"])
        expected = 3 * mixes * seconds / PACKET_TIME
        return {
            "mixes": mixes,
            "parties": 3 * mixes,
            "expected": expected,
            "received": received,
            "loss_pct": max(0.0, 100 * (1 - received / expected)),
            "relay_cpu_pct": 100 * (cpu1 - cpu0) / seconds,
            "relay_waited_pct": 100 * (wait1 - wait0) / seconds,
            "us_per_party_tick": (cpu1 - cpu0) / (3 * mixes * seconds / PACKET_TIME) * 1e6,
        }
    finally:
        if gen is not None and gen.poll() is None:
            gen.kill()
            gen.wait()
        relay.close()


def _free_range(size: int) -> tuple[int, int]:
    rng = random.SystemRandom()
    for _ in range(200):
        base = rng.randrange(20000, 60000 - size, 2)
        try:
            probes = []
            for port in range(base, base + size):
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                probes.append(s)
                s.bind((HOST, port))
        except OSError:
            continue
        finally:
            for s in probes:
                s.close()
        return base, base + size - 1
    raise RuntimeError("no free port range")


def _own_autogroup(nice: int) -> None:
    """A new session is a new autogroup (CONFIG_SCHED_AUTOGROUP): the relay and the generator
    started from here inherit its niceness (as ``bench_relay.py --group-nice``)."""
    with contextlib.suppress(OSError):
        os.setsid()
    try:
        Path("/proc/self/autogroup").write_text(f"{nice}\n")
    except OSError as exc:
        print(f"(cannot set the autogroup niceness: {exc})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--generator", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--ticks", type=int, default=3000, help="ticks timed per mix size")
    parser.add_argument("--mixes", default="50,100,200", help="concurrent 3-party mixes")
    parser.add_argument("--seconds", type=float, default=5.0, help="measurement window")
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--repeat", type=int, default=1, help="runs per N; the best is shown")
    parser.add_argument(
        "--group-nice", type=int, help="autogroup niceness for this run (e.g. -10 on a busy box)"
    )
    parser.add_argument("--out", type=Path, help="also write the lines printed to this file")
    args = parser.parse_args()
    if args.generator:
        generator()
        return
    if args.group_nice is not None:
        _own_autogroup(args.group_nice)
    lines: list[str] = []

    def say(text: str) -> None:
        print(text, flush=True)
        lines.append(text)

    say(f"# bench_mixer.py  {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}")
    say(
        f"# python {sys.version.split()[0]}, {os.cpu_count()} CPUs shared with other jobs, "
        f"load average {os.getloadavg()[0]:.2f}, autogroup nice {args.group_nice or 0}, "
        f"{args.seconds:g} s windows"
    )
    say("members  µs/tick  µs/party/tick   (mixing maths only, BargeIn matrix)")
    for members in (2, 3, 4, 8):
        per_tick, per_party = bench_ticks(members, args.ticks)
        say(f"{members:7d}  {per_tick:7.1f}  {per_party:13.1f}")
    say(
        "mixes  parties  expected  received  loss %  relay CPU %  waited %  µs/party/tick"
        "   (RelayProcess, 3-party BargeIn mixes)"
    )
    held = 0  # the largest N such that it and every smaller N lost < 0.1 %
    failed = False
    for mixes in (int(n) for n in args.mixes.split(",")):
        runs = [bench_capacity(mixes, args.seconds, args.warmup) for _ in range(args.repeat)]
        r = min(runs, key=lambda run: run["loss_pct"])
        say(
            f"{mixes:5d}  {r['parties']:7.0f}  {r['expected']:8.0f}  {r['received']:8.0f}  "
            f"{r['loss_pct']:6.3f}  {r['relay_cpu_pct']:11.1f}  {r['relay_waited_pct']:8.1f}  "
            f"{r['us_per_party_tick']:13.1f}"
        )
        if r["loss_pct"] < 0.1 and not failed:
            held = mixes
        else:
            failed = True
    say(
        f"concurrent 3-party mixes held at < 0.1 % loss (this N and every smaller one, best of "
        f"{args.repeat}): {held}"
    )
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
