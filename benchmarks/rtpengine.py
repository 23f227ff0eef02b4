"""rtpengine (Debian ``rtpengine-daemon``) in userspace mode as a reference relay for benchmarks.

- ``bencode``/``bdecode``: the BitTorrent encoding the ng protocol speaks (integers ``i42e``,
  byte strings ``4:spam``, lists ``l...e``, dictionaries ``d...e`` with sorted keys);
- ``NgClient``: one ng request per UDP datagram, ``COOKIE <bencoded dict>``, the reply echoes the
  cookie; ``offer``/``answer`` take an SDP and return rtpengine's rewritten one;
- ``Rtpengine``: the daemon in the foreground with no kernel forwarding (``--table=-1``), no
  config file, sessions freed at once on delete, on 127.0.0.1 with a given port range;
- ``bridge_call``: one call set up the way a SIP proxy would (offer with A's SDP, answer with
  B's), returning the ports each phone must send to.

Install: ``apt-get install -y rtpengine-daemon`` (not the ``rtpengine`` metapackage, which pulls
in the kernel module build). Benchmarks are programs, not library code.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

HOST = "127.0.0.1"
RTPENGINE = shutil.which("rtpengine") or "/usr/bin/rtpengine"

Bencodable = int | str | bytes | list[Any] | dict[str, Any]


class NgError(Exception):
    """rtpengine refused a request, did not answer, or answered something unreadable."""


# ----------------------------------------------------------------------------- bencode


def bencode(value: Bencodable) -> bytes:
    if isinstance(value, bool):
        raise TypeError("bencode has no booleans")
    if isinstance(value, int):
        return b"i%de" % value
    if isinstance(value, str):
        value = value.encode()
    if isinstance(value, bytes):
        return b"%d:%s" % (len(value), value)
    if isinstance(value, list):
        return b"l" + b"".join(bencode(v) for v in value) + b"e"
    if isinstance(value, dict):
        items = sorted((k.encode(), v) for k, v in value.items())
        return b"d" + b"".join(bencode(k) + bencode(v) for k, v in items) + b"e"
    raise TypeError(f"cannot bencode {type(value).__name__}")


def bdecode(data: bytes) -> Any:
    """Byte strings come back as str (UTF-8, undecodable bytes escaped)."""
    value, end = _decode(data, 0)
    if end != len(data):
        raise ValueError(f"trailing data after bencoded value at {end}")
    return value


def _decode(data: bytes, i: int) -> tuple[Any, int]:
    if i >= len(data):
        raise ValueError("bencoded value truncated")
    lead = data[i : i + 1]
    if lead == b"i":
        end = data.index(b"e", i)
        return int(data[i + 1 : end]), end + 1
    if lead in (b"l", b"d"):
        items: list[Any] = []
        i += 1
        while data[i : i + 1] != b"e":
            if i >= len(data):
                raise ValueError("bencoded list truncated")
            item, i = _decode(data, i)
            items.append(item)
        if lead == b"l":
            return items, i + 1
        if len(items) % 2:
            raise ValueError("bencoded dictionary with a key but no value")
        return dict(zip(items[::2], items[1::2], strict=True)), i + 1
    if lead.isdigit():
        colon = data.index(b":", i)
        start = colon + 1
        end = start + int(data[i:colon])
        if end > len(data):
            raise ValueError("bencoded string truncated")
        return data[start:end].decode("utf-8", "surrogateescape"), end
    raise ValueError(f"not bencode at {i}: {data[i : i + 10]!r}")


# ----------------------------------------------------------------------------- ng client


class NgClient:
    """Requests to rtpengine's ng port, one at a time (retried on timeout, same cookie)."""

    def __init__(self, port: int, host: str = HOST, timeout: float = 2.0, tries: int = 3) -> None:
        self._addr = (host, port)
        self._timeout = timeout
        self._tries = tries
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.bind((HOST, 0))
        self._cookies = itertools.count(1)
        self._prefix = f"{os.getpid()}_{os.urandom(4).hex()}_"  # rtpengine caches replies by cookie

    def close(self) -> None:
        self._sock.close()

    def request(self, command: str, **fields: Bencodable) -> dict[str, Any]:
        cookie = f"{self._prefix}{next(self._cookies)}".encode()
        message = {"command": command, **{k.replace("_", "-"): v for k, v in fields.items()}}
        datagram = cookie + b" " + bencode(message)
        for _ in range(self._tries):
            self._sock.sendto(datagram, self._addr)
            deadline = time.monotonic() + self._timeout
            while (left := deadline - time.monotonic()) > 0:
                self._sock.settimeout(left)
                try:
                    reply = self._sock.recv(65536)
                except TimeoutError:
                    break
                got, _, body = reply.partition(b" ")
                if got != cookie:
                    continue  # a late answer to an earlier try
                try:
                    result = bdecode(body)
                except ValueError as exc:
                    raise NgError(f"{command}: unreadable reply {body[:80]!r}: {exc}") from None
                if not isinstance(result, dict):
                    raise NgError(f"{command}: reply is not a dictionary: {result!r}")
                if result.get("result") == "error":
                    raise NgError(f"{command}: {result.get('error-reason', result)}")
                return result
        raise NgError(f"{command}: no reply from {self._addr[0]}:{self._addr[1]}")

    def ping(self) -> bool:
        return self.request("ping").get("result") == "pong"


def audio_sdp(port: int, session: int, host: str = HOST) -> str:
    """A one-stream PCMU offer/answer for a phone receiving on ``host:port``."""
    return (
        "v=0\r\n"
        f"o=- {session} 1 IN IP4 {host}\r\n"
        "s=-\r\n"
        f"c=IN IP4 {host}\r\n"
        "t=0 0\r\n"
        f"m=audio {port} RTP/AVP 0\r\n"
        "a=rtpmap:0 PCMU/8000\r\n"
        "a=sendrecv\r\n"
    )


def sdp_audio_port(sdp: str) -> int:
    match = re.search(r"^m=audio (\d+) ", sdp, re.MULTILINE)
    if match is None:
        raise NgError(f"no m=audio line in rtpengine's SDP: {sdp!r}")
    return int(match.group(1))


def bridge_call(client: NgClient, call_id: str, port_a: int, port_b: int) -> tuple[int, int]:
    """Set up A (receiving on ``port_a``) calling B (on ``port_b``) through rtpengine.

    Returns (where A sends, where B sends): the offer's rewritten SDP goes to B, so its port is
    where B sends; the answer's goes to A.
    """
    offer = client.request(
        "offer", call_id=call_id, from_tag=f"{call_id}-a", sdp=audio_sdp(port_a, 1)
    )
    answer = client.request(
        "answer",
        call_id=call_id,
        from_tag=f"{call_id}-a",
        to_tag=f"{call_id}-b",
        sdp=audio_sdp(port_b, 2),
    )
    return sdp_audio_port(str(answer.get("sdp", ""))), sdp_audio_port(str(offer.get("sdp", "")))


def delete_call(client: NgClient, call_id: str) -> None:
    with contextlib.suppress(NgError):
        client.request("delete", call_id=call_id, from_tag=f"{call_id}-a")


# ----------------------------------------------------------------------------- the daemon


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


class Rtpengine:
    """``rtpengine`` in the foreground, userspace forwarding only; a context manager."""

    def __init__(
        self,
        port_range: tuple[int, int],
        *,
        threads: int | None = None,
        log_path: Path | None = None,
        log_level: int = 4,
    ) -> None:
        self.port_range = port_range
        self.threads = threads
        self.log_path = log_path
        self.log_level = log_level
        self.ng_port = 0
        self.client: NgClient | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._log: Any = None

    @property
    def pid(self) -> int:
        assert self._process is not None
        return self._process.pid

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
        ]
        if self.threads:
            cmd.append(f"--num-threads={self.threads}")
        return cmd

    def start(self) -> None:
        if not os.access(RTPENGINE, os.X_OK):
            raise NgError(f"{RTPENGINE} not found: apt-get install -y rtpengine-daemon")
        for _attempt in range(3):  # the ng port is free when chosen, taken a moment later
            self.ng_port = _free_udp_port()
            if self.log_path is not None:
                self.log_path.parent.mkdir(parents=True, exist_ok=True)
                self._log = self.log_path.open("ab")
            self._process = subprocess.Popen(
                self.command(),
                stdin=subprocess.DEVNULL,
                stdout=self._log or subprocess.DEVNULL,
                stderr=subprocess.STDOUT if self._log else subprocess.DEVNULL,
            )
            self.client = NgClient(self.ng_port, timeout=0.2, tries=1)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and self._process.poll() is None:
                with contextlib.suppress(NgError, OSError):
                    if self.client.ping():
                        self.client.close()
                        self.client = NgClient(self.ng_port)
                        return
            code = self._process.poll()
            self.stop()
            if code is None:
                raise NgError("rtpengine started but never answered ping")
        raise NgError(f"rtpengine exited with code {code} (log: {self.log_path})")

    def stop(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> Rtpengine:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


if __name__ == "__main__":  # smoke test: start, ping, one call, delete, stop
    with Rtpengine((30000, 30099)) as engine:
        assert engine.client is not None
        print("ping:", engine.client.ping())
        print(
            "call ports (A sends to, B sends to):", bridge_call(engine.client, "x1", 40000, 40002)
        )
        delete_call(engine.client, "x1")
