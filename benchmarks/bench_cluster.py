"""The cluster's costs: click-to-calls through Kamailio and one node vs two, and failover time.

Starts the real parts on free ports on 127.0.0.1 (the integration tests' helpers): two
``b2bua serve`` nodes on one shared store (``--postgres``: a PostgreSQL server of its own,
whose CPU is counted too; default a shared SQLite file), the reference Kamailio
config in front of them, and two SIPp phones registered through Kamailio that answer every
call (echoing RTP). Then:

1. ``one node`` and ``two nodes``, in the same run: ``--calls`` Simple PhoneCalls from phone
   0003*210 to phone 0003*211 (``callDuration`` ``--duration`` s), created at ``--rate`` per
   second on node A only, then alternately on A and B. Both legs go through Kamailio (the
   phones' Path). Printed per mode: calls answered, and the CPU milliseconds per call of
   Kamailio (all its processes), each node (with its relay process) and PostgreSQL.
2. ``failover``: ``--failover-calls`` calls created on node B and answered, B killed with -9;
   the time from the kill to the last BYE the phones received (every leg must get one), with
   ``[cluster] failover`` = ``--failover`` s.

    .venv/bin/python benchmarks/bench_cluster.py --postgres --calls 150 --rate 10

The machine is shared with other jobs: compare the modes of one run, not runs of different
days. Raw results: ``--out FILE`` (default ``benchmarks/results/cluster-<time>.txt``).
"""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.common import machine_line, tree_cpu_seconds  # noqa: E402
from tests.integration.harness import B2buaServer, Sipp  # noqa: E402
from tests.integration.kamailio import Kamailio  # noqa: E402
from tests.integration.uapi import Uapi  # noqa: E402
from tests.pg import remove_postgres, start_postgres  # noqa: E402

SECRET = "bench cluster secret, long enough"


def start_node(workdir: Path, name: str, store_url: str, failover: float) -> B2buaServer:
    config = {
        "store": {"url": store_url},
        "cluster": {"node": name, "secret": SECRET, "heartbeat": 1, "failover": failover},
        "calls": {"drain": 2},
    }
    return B2buaServer(workdir / name, config=config, media_ports=2000).start()


def phone(workdir: Path, kamailio: Kamailio, extended: str, password: str) -> Sipp:
    sipp = Sipp(
        "phone_register.xml",
        workdir,
        remote=kamailio.address,
        service=extended,
        auth=(extended, password),
        ooc_scenario="phone_answer_proxied.xml",
        rtp_echo=True,
        pause_ms=3_600_000,
        timeout=3600,
        calls=1,
    ).start()
    sipp.wait_for_message(200, timeout=10)
    return sipp


def pg_pid(datadir: Path | None) -> int | None:
    if datadir is None:
        return None
    return int((datadir / "postmaster.pid").read_text().split()[0])


def cpu(pids: dict[str, int | None]) -> dict[str, float]:
    return {name: tree_cpu_seconds(pid) if pid else 0.0 for name, pid in pids.items()}


def run_mode(
    label: str,
    apis: list[Uapi],
    calls: int,
    rate: float,
    duration: int,
    pids: dict[str, int | None],
) -> list[str]:
    before = cpu(pids)
    started = time.monotonic()
    ids: list[tuple[Uapi, str]] = []
    for index in range(calls):
        due = started + index / rate
        time.sleep(max(0.0, due - time.monotonic()))
        api = apis[index % len(apis)]
        reply = api.create(["0003*210"], ["0003*211"], query={"callDuration": duration})
        ids.append((api, api.call_id(reply)))
    answered = 0
    for api, call_id in ids:
        record = api.wait_ended(call_id, timeout=duration + 60)
        answered += record.get("disposition") == 0
    after = cpu(pids)
    lines = [f"{label}: {calls} calls at {rate:g}/s, {answered} answered (disposition 0)"]
    for name in pids:
        per_call = (after[name] - before[name]) / calls * 1000
        lines.append(f"  {name:<12} {per_call:7.2f} ms CPU per call")
    return lines


def run_failover(
    workdir: Path, node_b: B2buaServer, phones: list[Sipp], calls: int, failover: float
) -> list[str]:
    api = Uapi(node_b.api_url, "test-user-app", "test-user-secret")
    ids = [
        api.call_id(api.create(["0003*210"], ["0003*211"], query={"callDuration": 600}))
        for _ in range(calls)
    ]
    for call_id in ids:
        api.wait(call_id, lambda r: r.get("state") == "bridged", timeout=60)
    time.sleep(1.5)
    invites = {p.service: {e.call_id for e in p.received("INVITE")} for p in phones}
    byed_before = {p.service: {e.call_id for e in p.received("BYE")} for p in phones}
    killed = time.time()
    node_b.stop(signal.SIGKILL)
    deadline = time.monotonic() + failover + 30
    last_bye = killed
    while time.monotonic() < deadline:
        missing = 0
        for p in phones:
            byes = [e for e in p.received("BYE") if e.call_id not in byed_before[p.service]]
            missing += len(invites[p.service] - byed_before[p.service] - {e.call_id for e in byes})
            if byes:
                last_bye = max(last_bye, max(e.timestamp for e in byes))
        if missing == 0:
            break
        time.sleep(0.2)
    legs = sum(len(invites[p.service] - byed_before[p.service]) for p in phones)
    return [
        f"failover: {calls} calls ({legs} answered legs) on node B, kill -9, "
        f"[cluster] failover = {failover:g} s, heartbeat 1 s",
        f"  legs without BYE after {failover + 30:g} s: {missing}"
        + "".join(
            f"; {p.service}: {len(invites[p.service] - byed_before[p.service])} legs,"
            f" {len({e.call_id for e in p.received('BYE')} - byed_before[p.service])} BYEs"
            for p in phones
        ),
        f"  kill -> last BYE: {last_bye - killed:.2f} s",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=60)
    parser.add_argument("--rate", type=float, default=5.0)
    parser.add_argument("--duration", type=int, default=2)
    parser.add_argument("--failover-calls", type=int, default=20)
    parser.add_argument("--failover", type=float, default=3.0)
    parser.add_argument("--postgres", action="store_true", help="nodes on PostgreSQL")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="bench-cluster-"))
    pg = start_postgres() if args.postgres else None
    store_url = pg.url(pg.new_database()) if pg else f"sqlite:///{workdir / 'shared.sqlite'}"
    lines = [
        f"bench_cluster.py on {machine_line()}; the machine is shared with other jobs",
        f"store: {'PostgreSQL ' if pg else 'SQLite '}{store_url.split('@')[-1]}",
    ]
    nodes = [start_node(workdir, name, store_url, args.failover) for name in ("node-a", "node-b")]
    kamailio = Kamailio(workdir, [node.sip_address for node in nodes]).start()
    phones: list[Sipp] = []
    try:
        phones = [
            phone(workdir, kamailio, "0003*210", "secret210"),
            phone(workdir, kamailio, "0003*211", "secret211"),
        ]
        apis = [Uapi(node.api_url, "test-user-app", "test-user-secret") for node in nodes]
        pids: dict[str, int | None] = {
            "kamailio": kamailio.pid,
            "node-a": nodes[0].pid,
            "node-b": nodes[1].pid,
            "postgresql": pg_pid(pg.data if pg else None),
        }
        lines += run_mode("one node", apis[:1], args.calls, args.rate, args.duration, pids)
        lines += run_mode("two nodes", apis, args.calls, args.rate, args.duration, pids)
        lines += run_failover(workdir, nodes[1], phones, args.failover_calls, args.failover)
    finally:
        for sipp in phones:
            sipp.kill()
        kamailio.stop()
        for node in nodes:
            if node.running:
                node.stop()
        if pg is not None:
            remove_postgres(pg)
    text = "\n".join(lines)
    print(text)
    out = (
        args.out or REPO / "benchmarks" / "results" / f"cluster-{time.strftime('%Y%m%d-%H%M')}.txt"
    )
    out.write_text(text + "\n")
    print(f"(written to {out.relative_to(REPO) if out.is_relative_to(REPO) else out})")


if __name__ == "__main__":
    main()
