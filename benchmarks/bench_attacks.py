"""The outside security review's reproductions, run against a real ``b2bua serve``.

Each attack is run as the review ran it, and the script prints what the attacker got and
what a legitimate client got right after (or during) it:

- ``token``: 500 wrong client secrets at the token endpoint, as fast as one client can send
  them, from 127.0.0.2; then the real App's secret from 127.0.0.1.
- ``sip-guess``: 300 REGISTERs with wrong digest passwords for 0003*210 from 127.0.0.2; then
  the real phone registers from 127.0.0.1.
- ``bad-bytes``: 1,000 REGISTERs whose ``cnonce`` is ``\\xff\\xfe`` (not UTF-8); then a good
  REGISTER; the server's output is searched for tracebacks.
- ``replay``: a phone's REGISTER credentials captured and replayed from 127.0.0.3 with the
  attacker's Contact.
- ``tcp-flood``: 3,000 idle TCP connections to the SIP port from 127.0.0.1: how many the
  server keeps, and how long it keeps them.

Usage: ``.venv/bin/python benchmarks/bench_attacks.py [--only NAME ...] [--connections N]``.
Loopback addresses other than 127.0.0.1 reach ``lo`` on Linux, so one machine plays every
source. Every request stays on 127.0.0.0/8.
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import resource
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sip.digest import authorize, choose_challenge

DOMAIN = "voip.example.com"
ROOT = Path(__file__).resolve().parent.parent


class Server:
    """``python -m engine serve`` on free ports (UDP and TCP SIP, API) with the demo directory."""

    def __init__(self) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="bench-attacks-"))
        config = self.tmp / "config.toml"
        config.write_text(
            '[sip]\nlisten = ["udp:127.0.0.1:0", "tcp:127.0.0.1:0"]\n'
            f'domain = "{DOMAIN}"\n'
            '[api]\nlisten = "127.0.0.1:0"\n'
            f'[store]\nurl = "sqlite:///{self.tmp / "b2bua.sqlite"}"\n'
            "[calls]\ndrain = 1\n"
        )
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "engine", "serve", "--config", str(config)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert self.proc.stdout is not None
        self.output: list[str] = []
        self.sip = ("", 0)
        self.api = ""
        while not self.api:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError("server did not start:\n" + "".join(self.output))
            self.output.append(line)
            if match := re.match(r"listening sip udp (\S+):(\d+)", line):
                self.sip = (match.group(1), int(match.group(2)))
            if match := re.match(r"listening api (\S+)", line):
                self.api = match.group(1)
        self._reader = threading.Thread(target=self._drain, daemon=True)
        self._reader.start()

    def _drain(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.output.append(line)

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class Phone:
    """A raw UDP SIP client bound to one loopback address."""

    def __init__(self, server: tuple[str, int], host: str = "127.0.0.1") -> None:
        self.server = server
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, 0))
        self.sock.settimeout(5.0)
        self.host, self.port = self.sock.getsockname()
        self.cseq = 0
        self.call_id = f"{os.urandom(6).hex()}@{host}"

    def register(self, auth: str | None = None, contact: str | None = None) -> str:
        self.cseq += 1
        lines = [
            f"REGISTER sip:{DOMAIN} SIP/2.0",
            f"Via: SIP/2.0/UDP {self.host}:{self.port};branch=z9hG4bK{os.urandom(6).hex()};rport",
            f"From: <sip:0003*210@{DOMAIN}>;tag={os.urandom(4).hex()}",
            f"To: <sip:0003*210@{DOMAIN}>",
            f"Call-ID: {self.call_id}",
            f"CSeq: {self.cseq} REGISTER",
            f"Contact: {contact or f'<sip:210@{self.host}:{self.port}>'}",
            "Max-Forwards: 70",
        ]
        if auth is not None:
            lines.append(f"Authorization: {auth}")
        return self.send(("\r\n".join(lines) + "\r\nContent-Length: 0\r\n\r\n").encode("latin-1"))

    def send(self, data: bytes) -> str:
        self.sock.sendto(data, self.server)
        return self.sock.recvfrom(65535)[0].decode("utf-8", "replace")

    def credentials(self, challenge_reply: str, password: str, nc: int = 1) -> str:
        values = re.findall(r"^WWW-Authenticate: (.*)$", challenge_reply, re.M)
        challenge = choose_challenge([v.strip() for v in values])
        return authorize("REGISTER", f"sip:{DOMAIN}", challenge, "0003*210", password, nc=nc)


def status_line(reply: str) -> str:
    return reply.split("\r\n", 1)[0].removeprefix("SIP/2.0 ")


def attack_token(server: Server) -> list[str]:
    url = f"{server.api}/oauth/token.php"
    statuses: collections.Counter[int] = collections.Counter()
    form = {"grant_type": "client_credentials", "client_id": "demo-user-app"}
    start = time.perf_counter()
    with httpx.Client(transport=httpx.HTTPTransport(local_address="127.0.0.2")) as attacker:
        for i in range(500):
            response = attacker.post(url, data={**form, "client_secret": f"guess{i}"})
            statuses[response.status_code] += 1
    elapsed = time.perf_counter() - start
    start = time.perf_counter()
    real = httpx.post(url, data={**form, "client_secret": "demo-user-secret"})
    latency = (time.perf_counter() - start) * 1000
    return [
        f"500 wrong secrets from 127.0.0.2 in {elapsed:.2f} s: "
        + ", ".join(f"{n} x {code}" for code, n in sorted(statuses.items())),
        f"then the real App from 127.0.0.1: {real.status_code} in {latency:.1f} ms",
    ]


def attack_sip_guess(server: Server) -> list[str]:
    attacker = Phone(server.sip, "127.0.0.2")
    answers: collections.Counter[str] = collections.Counter()
    start = time.perf_counter()
    for i in range(300):
        challenge = attacker.register()
        answers[status_line(attacker.register(attacker.credentials(challenge, f"pw{i}")))] += 1
    elapsed = time.perf_counter() - start
    phone = Phone(server.sip)
    ok = status_line(phone.register(phone.credentials(phone.register(), "secret210")))
    return [
        f"300 wrong passwords from 127.0.0.2 in {elapsed:.2f} s: "
        + ", ".join(f"{n} x {answer}" for answer, n in answers.most_common()),
        f"then the real phone from 127.0.0.1: {ok}",
    ]


def attack_bad_bytes(server: Server) -> list[str]:
    phone = Phone(server.sip)
    challenge = phone.register()
    creds = phone.credentials(challenge, "secret210")
    bad = creds.replace('cnonce="', 'cnonce="\xff\xfe')
    answers: collections.Counter[str] = collections.Counter()
    for _ in range(1000):
        answers[status_line(phone.register(bad))] += 1
    good = status_line(phone.register(phone.credentials(phone.register(), "secret210")))
    time.sleep(0.5)
    tracebacks = sum("Traceback" in line for line in server.output)
    return [
        "1,000 REGISTERs with cnonce=\\xff\\xfe: "
        + ", ".join(f"{n} x {answer}" for answer, n in answers.most_common()),
        f"then a good REGISTER: {good}; tracebacks in the server's output: {tracebacks}",
    ]


def attack_replay(server: Server) -> list[str]:
    phone = Phone(server.sip)
    creds = phone.credentials(phone.register(), "secret210")
    genuine = status_line(phone.register(creds))
    attacker = Phone(server.sip, "127.0.0.3")
    replayed = attacker.register(creds, contact="<sip:evil@127.0.0.3:5999>")
    stale = "stale=true" in replayed
    return [
        f"the phone's REGISTER: {genuine}; the same credentials replayed from 127.0.0.3: "
        f"{status_line(replayed)}{' (stale=true: a fresh challenge)' if stale else ''}",
    ]


def attack_tcp_flood(server: Server, count: int) -> list[str]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, count + 256)), hard))
    sockets: list[socket.socket] = []
    start = time.monotonic()
    for _ in range(count):
        sock = socket.socket()
        sock.settimeout(2)
        try:
            sock.connect(server.sip)
        except OSError:
            sock.close()
            continue
        sockets.append(sock)
    connected = len(sockets)
    time.sleep(2)

    def alive(sock: socket.socket) -> bool:
        sock.setblocking(False)
        try:
            return sock.recv(1) != b""
        except BlockingIOError:
            return True
        except OSError:
            return False

    open_after = [s for s in sockets if alive(s)]
    kept = len(open_after)
    closed_at = None
    while open_after and time.monotonic() - start < 60:
        time.sleep(0.5)
        open_after = [s for s in open_after if alive(s)]
        if not open_after:
            closed_at = time.monotonic() - start
    for sock in sockets:
        sock.close()
    warnings = sum("refused" in line and "WARNING" in line for line in server.output)
    ending = (
        f"all closed by the server {closed_at:.1f} s after the first connect"
        if closed_at is not None
        else f"{len(open_after)} still open after 60 s"
    )
    return [
        f"{count} idle connections from 127.0.0.1: {connected} connected, {kept} still open "
        f"2 s later ({connected - kept} reset); {ending}",
        f"WARNING lines about refused connections: {warnings}",
    ]


ATTACKS = ("token", "sip-guess", "bad-bytes", "replay", "tcp-flood")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="*", choices=ATTACKS, default=list(ATTACKS))
    parser.add_argument("--connections", type=int, default=3000, help="for tcp-flood")
    args = parser.parse_args()
    for name in args.only:
        server = Server()  # a fresh server each: one attack's blocks do not touch the next
        try:
            if name == "token":
                lines = attack_token(server)
            elif name == "sip-guess":
                lines = attack_sip_guess(server)
            elif name == "bad-bytes":
                lines = attack_bad_bytes(server)
            elif name == "replay":
                lines = attack_replay(server)
            else:
                lines = attack_tcp_flood(server, args.connections)
        finally:
            server.close()
        print(f"{name}:")
        for line in lines:
            print(f"  {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
