"""The real Kamailio in front of real nodes: the project's reference config, on free ports.

``Kamailio(workdir, nodes)`` copies ``deploy/kamailio/kamailio.cfg`` with its ``listen=`` line
replaced (a free UDP port on 127.0.0.1) and writes ``dispatcher.list`` beside it with the
nodes' SIP addresses, runs ``kamailio -DD -E -w DIR -f CFG -Y RUNDIR`` in that folder (``-w``:
where it reads ``dispatcher.list``) and waits until
an OPTIONS through it is answered by a node. ``stop()`` ends it (SIGTERM, then SIGKILL).
Kamailio missing: the test is skipped, or fails when the environment variable CI is set.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from .harness import PortKind, free_port

REPO = Path(__file__).resolve().parents[2]
REFERENCE = REPO / "deploy" / "kamailio"


def kamailio_binary() -> str:
    found = shutil.which("kamailio") or (
        "/usr/sbin/kamailio" if os.path.exists("/usr/sbin/kamailio") else None
    )
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("kamailio is not installed (Debian package kamailio; .ci/run installs it)")
        pytest.skip("kamailio is not installed")
    return found


class Kamailio:
    def __init__(self, workdir: Path, nodes: list[str]) -> None:
        self.workdir = workdir / "kamailio"
        self.workdir.mkdir(parents=True, exist_ok=True)
        (self.workdir / "run").mkdir(exist_ok=True)
        self.port = free_port(PortKind.UDP)
        config = (REFERENCE / "kamailio.cfg").read_text()
        config, count = re.subn(
            r"^listen=.*$", f"listen=udp:127.0.0.1:{self.port}", config, flags=re.M
        )
        assert count == 1, "the reference config must have exactly one listen= line"
        self.config_file = self.workdir / "kamailio.cfg"
        self.config_file.write_text(config)
        (self.workdir / "dispatcher.list").write_text("".join(f"1 sip:{node}\n" for node in nodes))
        self.log_file = self.workdir / "kamailio.log"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 15.0) -> Kamailio:
        with self.log_file.open("wb") as log:
            self._process = subprocess.Popen(
                [
                    kamailio_binary(),
                    "-DD",
                    "-E",
                    "-w",
                    str(self.workdir),
                    "-f",
                    str(self.config_file),
                    "-Y",
                    str(self.workdir / "run"),
                ],
                cwd=self.workdir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while not self._answers_options():
            if self._process.poll() is not None:
                raise RuntimeError(f"kamailio exited at start:\n{self.output()[-4000:]}")
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"kamailio did not relay an OPTIONS:\n{self.output()[-4000:]}")
        return self

    def _answers_options(self) -> bool:
        """An OPTIONS to Kamailio goes to a node (dispatcher) whose 200 comes back."""
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind(("127.0.0.1", 0))
            sock.settimeout(0.5)
            port = sock.getsockname()[1]
            tag = uuid.uuid4().hex[:8]
            message = (
                f"OPTIONS sip:{self.address} SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK{tag};rport\r\n"
                f"From: <sip:probe@127.0.0.1>;tag={tag}\r\n"
                f"To: <sip:{self.address}>\r\n"
                f"Call-ID: {tag}@probe\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\n"
                "Content-Length: 0\r\n\r\n"
            )
            sock.sendto(message.encode(), ("127.0.0.1", self.port))
            try:
                while True:
                    data, _ = sock.recvfrom(65535)
                    if data.startswith(b"SIP/2.0 200"):
                        return True
            except OSError:  # timeout, or refused while it starts
                return False

    def output(self) -> str:
        try:
            return self.log_file.read_text(errors="replace")
        except OSError:
            return ""

    def describe(self) -> str:
        return f"kamailio on {self.address}\n{self.output()[-6000:]}"

    def stop(self) -> None:
        process = self._process
        if process is None or process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(5)
