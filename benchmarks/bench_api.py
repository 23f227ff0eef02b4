"""API throughput: Simple PhoneCalls created per second, with p50/p99 latency.

Starts the real ``b2bua serve`` (port 0 everywhere, a temporary store), gets a token, then
creates sandbox-to-sandbox calls (``0003*00`` -> ``0003*00``, callDuration 3 s counted from the
source's answer, so each call lives about 4 s and is bridged for 2 s) from several concurrent
clients for a fixed time, and prints requests/s, latency percentiles, and how many calls ended
ANSWERED afterwards.

    python benchmarks/bench_api.py [--seconds 10] [--clients 16]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import trio

ROOT = Path(__file__).resolve().parent.parent


def start_server(workdir: Path) -> tuple[subprocess.Popen[str], str]:
    config = workdir / "b2bua.toml"
    config.write_text(
        '[sip]\nlisten = ["udp:127.0.0.1:0"]\n'
        '[api]\nlisten = "127.0.0.1:0"\n'
        f'[store]\nurl = "sqlite:///{workdir / "bench.sqlite"}"\n'
        "[media]\nports = [40000, 49999]\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "engine", "serve", "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=workdir,
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        match = re.match(r"listening api (\S+)", line)
        if match:
            return proc, match.group(1)
    proc.kill()
    raise SystemExit("the server did not start")


async def run(api: str, seconds: float, clients: int) -> None:
    async with httpx.AsyncClient(base_url=api, timeout=30) as client:
        token = (
            await client.post(
                "/oauth/token.php",
                data={
                    "grant_type": "client_credentials",
                    "client_id": "demo-user-app",
                    "client_secret": "demo-user-secret",
                },
            )
        ).json()["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        body = {
            "extension": "210",
            "phoneCallView": [{"source": ["0003*00"], "destination": ["0003*00"]}],
        }
        latencies: list[float] = []
        errors: list[int] = []
        ids: list[str] = []
        end = time.monotonic() + seconds

        async def worker() -> None:
            while time.monotonic() < end:
                t0 = time.perf_counter()
                reply = await client.post(
                    "/uapi/phoneCalls/@me/simple?callDuration=3", json=body, headers=headers
                )
                latencies.append(time.perf_counter() - t0)
                if reply.status_code == 202:
                    ids.append(reply.json()[0]["id"])
                else:
                    errors.append(reply.status_code)

        started = time.monotonic()
        async with trio.open_nursery() as nursery:
            for _ in range(clients):
                nursery.start_soon(worker)
        elapsed = time.monotonic() - started
        latencies.sort()
        q = statistics.quantiles(latencies, n=100)
        print(f"clients {clients}, {elapsed:.1f} s")
        print(f"created {len(ids)} calls: {len(ids) / elapsed:.0f} calls/s, errors {len(errors)}")
        print(f"latency p50 {q[49] * 1000:.1f} ms, p99 {q[98] * 1000:.1f} ms")
        await trio.sleep(8)  # every call ends (1 s to the source's answer + callDuration 3 s)
        answered = 0
        for call_id in ids[:: max(1, len(ids) // 200)]:
            got = await client.get(f"/uapi/phoneCalls/@me/210/{call_id}", headers=headers)
            if got.status_code == 200 and got.json()["entry"][0].get("disposition") == 0:
                answered += 1
        sample = len(ids[:: max(1, len(ids) // 200)])
        print(f"sampled {sample} calls after the run: {answered} ended ANSWERED")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=16)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        proc, api = start_server(Path(tmp))
        try:
            print(f"machine: {os.cpu_count()} cores; server {api}")
            trio.run(run, api, args.seconds, args.clients)
        finally:
            proc.terminate()
            proc.wait(timeout=20)


if __name__ == "__main__":
    main()
