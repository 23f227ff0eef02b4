"""rtpengine (Debian ``rtpengine-daemon``) in userspace mode, started for tests and benchmarks.

The daemon runs in the foreground with no config file, no kernel forwarding (``--table=-1``),
sessions freed at once on delete (``--delete-delay=0``), on 127.0.0.1, its ng port and media
port range chosen free. It is ready when it answers the ng ``ping`` (sent with the product's
client, ``engine.rtpengine``). ``stop()`` ends it (SIGTERM, then SIGKILL); ``kill()`` ends it at
once, as a crash would; ``start()`` again reuses the same ng port, as a restarted daemon would.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import IO

import trio

from engine.rtpengine import Instance, NgError, open_ng_client

HOST = "127.0.0.1"
RTPENGINE = shutil.which("rtpengine") or "/usr/sbin/rtpengine"


class RtpengineMissing(RuntimeError):
    """The rtpengine binary is not installed."""


def available() -> bool:
    return os.access(RTPENGINE, os.X_OK)


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def ping(port: int, timeout: float = 0.2) -> bool:
    """One ng ping to 127.0.0.1:``port``: True if rtpengine answered pong."""

    async def once() -> bool:
        async with open_ng_client([Instance(HOST, port)], timeout=timeout, tries=1) as client:
            try:
                return await client.ping(Instance(HOST, port))
            except NgError:
                return False

    return trio.run(once)


class Rtpengine:
    """The daemon; a context manager. ``address`` is its ng control socket as configured."""

    def __init__(
        self,
        port_range: tuple[int, int],
        *,
        threads: int | None = None,
        log_path: Path | None = None,
        log_level: int = 5,
        extra: tuple[str, ...] = (),
    ) -> None:
        self.port_range = port_range
        self.threads = threads
        self.log_path = log_path
        self.log_level = log_level
        self.extra = extra
        self.ng_port = 0
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def address(self) -> str:
        return f"udp:{HOST}:{self.ng_port}"

    @property
    def pid(self) -> int:
        assert self._process is not None
        return self._process.pid

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def command(self) -> list[str]:
        cmd = [
            RTPENGINE,
            "--config-file=none",
            "--table=-1",
            "--delete-delay=0",
            "--foreground",
            "--log-stderr",
            f"--log-level={self.log_level}",
            f"--interface={HOST}",
            f"--listen-ng={HOST}:{self.ng_port}",
            f"--port-min={self.port_range[0]}",
            f"--port-max={self.port_range[1]}",
            *self.extra,
        ]
        if self.threads:
            cmd.append(f"--num-threads={self.threads}")
        return cmd

    def start(self) -> Rtpengine:
        if not available():
            raise RtpengineMissing(f"{RTPENGINE} not found: apt-get install -y rtpengine-daemon")
        code: int | None = None
        for _attempt in range(3):  # a port free when chosen may be taken a moment later
            if not self.ng_port or _attempt:
                self.ng_port = _free_udp_port()
            if self.log_path is not None and self._log is None:
                self.log_path.parent.mkdir(parents=True, exist_ok=True)
                self._log = self.log_path.open("ab")
            self._process = subprocess.Popen(
                self.command(),
                stdin=subprocess.DEVNULL,
                stdout=self._log or subprocess.DEVNULL,
                stderr=subprocess.STDOUT if self._log else subprocess.DEVNULL,
                start_new_session=True,
            )
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and self._process.poll() is None:
                if ping(self.ng_port):
                    return self
            code = self._process.poll()
            self._end(signal.SIGKILL)
            if code is None:
                raise RuntimeError("rtpengine started but never answered ping")
        raise RuntimeError(f"rtpengine exited with code {code} (log: {self.log_path})")

    def _end(self, how: signal.Signals) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.send_signal(how)
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def kill(self) -> None:
        """End it at once (SIGKILL), as a crash would; ``start()`` brings it back."""
        self._end(signal.SIGKILL)

    def stop(self) -> None:
        self._end(signal.SIGTERM)
        if self._log is not None:
            self._log.close()
            self._log = None

    def describe(self) -> str:
        text = f"rtpengine {self.address}: {' '.join(self.command())}"
        if self.log_path is not None and self.log_path.exists():
            with contextlib.suppress(OSError):
                text += "\n" + self.log_path.read_text(errors="replace")[-20000:]
        return text

    def __enter__(self) -> Rtpengine:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
