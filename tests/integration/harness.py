"""Reusable pieces for integration tests: free ports, real SIPp processes, the real server.

Everything here runs real processes on 127.0.0.1 and cleans them up:

- ``free_port`` / ``free_ports`` / ``free_port_group`` / ``free_port_range``: ports free now,
  picked at random *below* the kernel's ephemeral range, so they do not collide with other
  programs' outgoing sockets and two test runs on one machine rarely pick the same ones (and a
  SIPp start that still loses the race is retried with new ports).
- ``Sipp``: one SIPp process (a scenario from ``sipp_scenarios/`` or built-in ``uac``/``uas``)
  with every port on 127.0.0.1, ``-nostdin``, ``-timeout``, and stats/errors/messages traced
  into a folder; parsers for the final statistics row (``SippStats``) and the message log
  (``SipLogEntry``).
- ``B2buaServer``: the real ``b2bua serve --config FILE`` on port-0 listeners, addresses read from
  its ``listening ...`` lines (README, "Configuration"); SIGTERM then kill on teardown.
- ``RtpEndpoint``: a tiny RTP sender/receiver (or echoer) to check media through the relay.

The pytest fixtures that wrap these live in ``tests/integration/conftest.py``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import enum
import logging
import math
import os
import random
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[2]
SCENARIO_DIR = REPO_ROOT / "sipp_scenarios"
LOCALHOST = "127.0.0.1"

# Ports handed out by this module come from here: under Linux's default ephemeral range
# (32768-60999), so nobody's outgoing socket takes them between our check and the real bind.
# Single ports and SIPp groups come from the first half, relay ranges from the second.
_SINGLE_PORTS = (20000, 26000)
_RANGE_PORTS = (26000, 32000)


class PortKind(enum.Enum):
    UDP = "udp"
    TCP = "tcp"
    BOTH = "both"  # a SIP listener: UDP and TCP on the same number


# ----------------------------------------------------------------------------------------------
# ports


def _bindable(port: int, kind: PortKind) -> bool:
    kinds = (
        [socket.SOCK_DGRAM, socket.SOCK_STREAM]
        if kind is PortKind.BOTH
        else [socket.SOCK_DGRAM if kind is PortKind.UDP else socket.SOCK_STREAM]
    )
    for sock_type in kinds:
        with socket.socket(socket.AF_INET, sock_type) as sock:
            try:
                sock.bind((LOCALHOST, port))
            except OSError:
                return False
    return True


def _all_bindable(ports: Sequence[int], kind: PortKind) -> bool:
    return all(_bindable(p, kind) for p in ports)


def free_port(kind: PortKind | str = PortKind.BOTH) -> int:
    """A port free right now on 127.0.0.1 for ``kind`` ("udp", "tcp" or "both")."""
    return free_ports(1, kind)[0]


def free_ports(n: int, kind: PortKind | str = PortKind.BOTH) -> list[int]:
    """``n`` distinct ports, each free right now on 127.0.0.1 for ``kind``."""
    kind = PortKind(kind)
    rng = random.SystemRandom()
    chosen: list[int] = []
    for _ in range(2000):
        if len(chosen) == n:
            return chosen
        port = rng.randrange(*_SINGLE_PORTS)
        if port not in chosen and _bindable(port, kind):
            chosen.append(port)
    raise RuntimeError(f"could not find {n} free {kind.value} ports on {LOCALHOST}")


@dataclasses.dataclass(frozen=True, slots=True)
class SippPorts:
    """The ports one SIPp binds: SIP, control, and media (audio ``media``, video ``media + 2``)."""

    sip: int
    control: int
    media: int


def free_port_group() -> SippPorts:
    """Ports for one SIPp: SIP free on UDP and TCP, control on UDP, media ``mp..mp+3`` on UDP."""
    rng = random.SystemRandom()
    for _ in range(2000):
        media = rng.randrange(*_SINGLE_PORTS) & ~1
        if not _all_bindable(range(media, media + 4), PortKind.UDP):
            continue
        others = [p for p in free_ports(2, PortKind.BOTH) if not media <= p < media + 4]
        if len(others) == 2:
            return SippPorts(sip=others[0], control=others[1], media=media)
    raise RuntimeError("could not find a free SIPp port group")


def free_port_range(size: int = 100) -> tuple[int, int]:
    """An inclusive range ``(first, last)`` of ``size`` ports, first even, all free on UDP now."""
    size += size % 2
    rng = random.SystemRandom()
    low, high = _RANGE_PORTS
    for _ in range(200):
        first = rng.randrange(low, high - size) & ~1
        if _all_bindable(range(first, first + size), PortKind.UDP):
            return first, first + size - 1
    raise RuntimeError(f"could not find {size} consecutive free UDP ports")


# ----------------------------------------------------------------------------------------------
# SIPp results


@dataclasses.dataclass(frozen=True, slots=True)
class SippStats:
    """The final row of a ``-trace_stat`` CSV: cumulative counters at the end of the run."""

    fields: Mapping[str, str]

    def count(self, name: str) -> int:
        """A cumulative counter, e.g. ``count("SuccessfulCall")`` reads ``SuccessfulCall(C)``."""
        key = name if name.endswith(")") else f"{name}(C)"
        return int(self.fields[key])

    @property
    def successful(self) -> int:
        return self.count("SuccessfulCall")

    @property
    def failed(self) -> int:
        return self.count("FailedCall")

    @property
    def retransmissions(self) -> int:
        return self.count("Retransmissions")

    @property
    def created(self) -> int:
        return int(self.fields["TotalCallCreated"])

    @property
    def incoming(self) -> int:
        return self.count("IncomingCall")

    @property
    def outgoing(self) -> int:
        return self.count("OutgoingCall")

    @property
    def unexpected(self) -> int:
        return self.count("FailedUnexpectedMessage")


def parse_stats(text: str) -> SippStats:
    """Parse a ``-trace_stat`` CSV; the last row wins (SIPp writes one at exit)."""
    rows = [line for line in text.splitlines() if line.strip()]
    if len(rows) < 2:
        raise ValueError("statistics file has no data row")
    names = rows[0].rstrip(";").split(";")
    values = rows[-1].rstrip(";").split(";")
    return SippStats(fields=dict(zip(names, values, strict=False)))


_COMPACT = {
    "v": "via",
    "f": "from",
    "t": "to",
    "i": "call-id",
    "m": "contact",
    "l": "content-length",
    "c": "content-type",
    "k": "supported",
    "s": "subject",
    "e": "content-encoding",
    "o": "event",
    "r": "refer-to",
    "b": "referred-by",
    "u": "allow-events",
    "x": "session-expires",
}


class Direction(enum.Enum):
    SENT = "sent"
    RECEIVED = "received"


@dataclasses.dataclass(frozen=True, slots=True)
class SipLogEntry:
    """One SIP message SIPp sent or received, as its ``-trace_msg`` log shows it."""

    timestamp: float  # seconds since the epoch (SIPp's wall clock)
    direction: Direction
    transport: str  # "UDP" / "TCP"
    start_line: str
    headers: tuple[tuple[str, str], ...]  # names lowercase, compact forms expanded
    body: str

    @property
    def is_request(self) -> bool:
        return not self.start_line.startswith("SIP/2.0 ")

    @property
    def method(self) -> str | None:
        """The request method, or None for a response."""
        return self.start_line.split(" ", 1)[0] if self.is_request else None

    @property
    def status(self) -> int | None:
        """The response status code, or None for a request."""
        return None if self.is_request else int(self.start_line.split(" ", 2)[1])

    @property
    def cseq_method(self) -> str | None:
        value = self.header("cseq")
        return value.split()[-1].upper() if value else None

    def header(self, name: str) -> str | None:
        """First value of a header (any case, compact form accepted)."""
        values = self.header_values(name)
        return values[0] if values else None

    def header_values(self, name: str) -> list[str]:
        key = name.lower()
        key = _COMPACT.get(key, key)
        return [value for hname, value in self.headers if hname == key]

    @property
    def call_id(self) -> str | None:
        return self.header("call-id")

    @property
    def from_display_name(self) -> str | None:
        value = self.header("from")
        return display_name(value) if value else None

    @property
    def to_display_name(self) -> str | None:
        value = self.header("to")
        return display_name(value) if value else None

    def matches(self, what: str | int, direction: Direction | None = None) -> bool:
        """True for a request of method ``what`` (str) or a response with status ``what`` (int)."""
        if direction is not None and self.direction is not direction:
            return False
        if isinstance(what, int):
            return self.status == what
        return self.method == what.upper()


def display_name(name_addr: str) -> str | None:
    """The display name of a From/To/Contact value, unquoted; None when there is none."""
    text = name_addr.strip()
    if text.startswith('"'):
        end = 1
        out: list[str] = []
        while end < len(text) and text[end] != '"':
            if text[end] == "\\" and end + 1 < len(text):
                end += 1
            out.append(text[end])
            end += 1
        return "".join(out)
    if "<" in text:
        name = text.split("<", 1)[0].strip()
        return name or None
    return None


_SEPARATOR = re.compile(r"^-{20,} (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)?)\s*$", re.MULTILINE)
_KIND = re.compile(r"^(\w+) message (sent|received)\b")


def parse_message_log(text: str) -> list[SipLogEntry]:
    """Parse a SIPp ``-trace_msg`` file into the messages it sent and received, in order."""
    entries: list[SipLogEntry] = []
    matches = list(_SEPARATOR.finditer(text))
    for index, match in enumerate(matches):
        end = matches[index + 1].start() if index + 1 < len(matches) else len(text)
        chunk = text[match.end() : end].lstrip("\r\n")
        kind_line, _, rest = chunk.partition("\n")
        kind = _KIND.match(kind_line)
        if kind is None:
            continue  # e.g. a "Fatal error" note, not a message
        stamp = dt.datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S.%f").timestamp()
        entry = _parse_sip_text(rest.lstrip("\r\n"), stamp, kind.group(1), kind.group(2))
        if entry is not None:
            entries.append(entry)
    return entries


def _parse_sip_text(text: str, stamp: float, transport: str, direction: str) -> SipLogEntry | None:
    text = text.replace("\r\n", "\n")
    head, _, body = text.partition("\n\n")
    lines = head.split("\n")
    if not lines or not lines[0].strip():
        return None
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        if line[:1] in (" ", "\t") and headers:  # folded continuation
            name, value = headers[-1]
            headers[-1] = (name, f"{value} {line.strip()}")
            continue
        name, sep, value = line.partition(":")
        if not sep:
            continue
        key = name.strip().lower()
        headers.append((_COMPACT.get(key, key), value.strip()))
    return SipLogEntry(
        timestamp=stamp,
        direction=Direction(direction),
        transport=transport.upper(),
        start_line=lines[0].strip(),
        headers=tuple(headers),
        body=body.rstrip("\n"),
    )


# ----------------------------------------------------------------------------------------------
# SIPp process


class SippExit(enum.IntEnum):
    """SIPp's exit codes (as sipp_scenarios/README.md lists them)."""

    ALL_OK = 0
    SOME_FAILED = 1
    TIMEOUT = 97
    NO_CALL = 99
    PORT_BUSY = 254
    FATAL = 255


def sipp_binary() -> str:
    found = shutil.which("sipp")
    if found is None:
        raise RuntimeError("sipp is not installed (apt-get install -y sip-tester)")
    return found


def scenario_path(scenario: str | Path) -> Path:
    """A scenario file: absolute paths as given, bare names from ``sipp_scenarios/``."""
    path = Path(scenario)
    return path if path.is_absolute() else SCENARIO_DIR / path


class Sipp:
    """One SIPp process on 127.0.0.1 whose results a test can read.

    ``scenario`` is a file name in ``sipp_scenarios/`` (``"phone_busy.xml"``), a path, or a
    built-in (``"uac"``, ``"uas"``, ...). ``remote`` ("HOST:PORT") makes it call out.
    ``keywords`` become ``-key K V`` ([K] in the scenario), ``variables`` ``-set K V`` ([$K]),
    ``pause_ms`` is ``-d`` (every ``<pause/>``), ``auth`` is ``-au``/``-ap``, ``service`` ``-s``.
    ``files`` are written into SIPp's working folder first (e.g. ``{"tone.ulaw": ...}`` for a
    scenario's ``rtp_stream``).
    Use as a context manager (or through the ``sipp_factory`` fixture) so it is always killed.
    """

    def __init__(
        self,
        scenario: str | Path,
        workdir: Path,
        *,
        remote: str | None = None,
        name: str | None = None,
        transport: str = "u1",
        calls: int | None = 1,
        rate: float | None = None,
        timeout: float = 30.0,
        service: str | None = None,
        auth: tuple[str, str] | None = None,
        keywords: Mapping[str, str] | None = None,
        variables: Mapping[str, str] | None = None,
        ooc_scenario: str | Path | None = None,
        rtp_echo: bool = False,
        pause_ms: int | None = None,
        extra_args: Sequence[str] = (),
        ports: SippPorts | None = None,
        files: Mapping[str, bytes] | None = None,
        host: str = LOCALHOST,
    ) -> None:
        self.scenario = scenario
        self.host = host  # where SIPp binds SIP and media ("::1" for IPv6)
        self.remote = remote
        self.transport = transport
        self.calls = calls
        self.rate = rate
        self.timeout = timeout
        self.service = service
        self.auth = auth
        self.keywords = dict(keywords or {})
        self.variables = dict(variables or {})
        self.ooc_scenario = ooc_scenario
        self.rtp_echo = rtp_echo
        self.pause_ms = pause_ms
        self.extra_args = list(extra_args)
        self.files = dict(files or {})
        self._fixed_ports = ports is not None
        self.ports = ports or free_port_group()
        stem = name or Path(str(scenario)).stem
        self.name = stem
        self.workdir = workdir / f"sipp-{stem}-{self.ports.sip}"
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.stat_file = self.workdir / "stats.csv"
        self.error_file = self.workdir / "errors.log"
        self.message_file = self.workdir / "messages.log"
        self.output_file = self.workdir / "output.txt"
        self._process: subprocess.Popen[bytes] | None = None
        self._output: IO[bytes] | None = None
        self.returncode: int | None = None

    # -- addresses ---------------------------------------------------------------------------

    @property
    def address(self) -> str:
        """ "HOST:PORT" where this SIPp receives SIP ("127.0.0.1:PORT", "[::1]:PORT")."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.ports.sip}"

    @property
    def uri(self) -> str:
        return f"sip:{self.service or 'service'}@{self.address}"

    @property
    def media_port(self) -> int:
        return self.ports.media

    # -- process -----------------------------------------------------------------------------

    def command(self) -> list[str]:
        scenario = str(self.scenario)
        cmd = [sipp_binary()]
        if self.remote:
            cmd.append(self.remote)
        if scenario.endswith(".xml") or "/" in scenario:
            cmd += ["-sf", str(scenario_path(scenario))]
        else:
            cmd += ["-sn", scenario]
        cmd += [
            "-i", self.host, "-p", str(self.ports.sip),
            "-ci", LOCALHOST, "-cp", str(self.ports.control),  # SIPp's control: IPv4 only
            "-mi", self.host, "-mp", str(self.ports.media),
            "-nostdin",
            "-t", self.transport,
            "-timeout", f"{math.ceil(self.timeout)}s",
            "-trace_stat", "-stf", str(self.stat_file),
            "-trace_err", "-error_file", str(self.error_file),
            "-trace_msg", "-message_file", str(self.message_file),
        ]  # fmt: skip
        if self.calls is not None:
            cmd += ["-m", str(self.calls)]
        if self.rate is not None:
            cmd += ["-r", f"{self.rate:g}"]
        if self.service is not None:
            cmd += ["-s", self.service]
        if self.auth is not None:
            cmd += ["-au", self.auth[0], "-ap", self.auth[1]]
        if self.pause_ms is not None:
            cmd += ["-d", str(self.pause_ms)]
        if self.rtp_echo:
            cmd.append("-rtp_echo")
        for key, value in self.keywords.items():
            cmd += ["-key", key, value]
        for key, value in self.variables.items():
            cmd += ["-set", key, value]
        if self.ooc_scenario is not None:
            cmd += ["-oocsf", str(scenario_path(self.ooc_scenario))]
        return cmd + self.extra_args

    def start(self) -> Sipp:
        """Start SIPp; if its ports were taken meanwhile (exit 254), retry on new ones."""
        for _attempt in range(5):
            self._spawn()
            if not self._lost_port_race():
                return self
            if self._fixed_ports:
                break
            self.ports = free_port_group()
        return self

    def _spawn(self) -> None:
        for path in (self.stat_file, self.error_file, self.message_file):
            path.unlink(missing_ok=True)
        for name, data in self.files.items():
            (self.workdir / name).write_bytes(data)
        self.returncode = None
        self._output = self.output_file.open("wb")
        cmd = self.command()
        logger.info("starting %s", " ".join(cmd))
        self._process = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=self._output,
            stderr=subprocess.STDOUT,
            cwd=self.workdir,
            start_new_session=True,
        )

    def _lost_port_race(self) -> bool:
        assert self._process is not None
        deadline = time.monotonic() + 0.3
        while time.monotonic() < deadline:
            code = self._process.poll()
            if code is not None:
                self._finish(code)
                return code == SippExit.PORT_BUSY
            time.sleep(0.02)
        return False

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def wait(self, timeout: float | None = None) -> int:
        """Wait for SIPp to exit and return its exit code (``TimeoutError`` if it does not)."""
        if self._process is None:
            raise RuntimeError("SIPp was not started")
        if self.returncode is not None:
            return self.returncode
        limit = self.timeout + 10 if timeout is None else timeout
        try:
            code = self._process.wait(limit)
        except subprocess.TimeoutExpired as exc:
            raise TimeoutError(f"SIPp {self.name} still running after {limit}s") from exc
        self._finish(code)
        return code

    async def wait_async(self, timeout: float | None = None) -> int:
        """``wait`` for trio tests, in a worker thread so the event loop keeps running."""
        import trio

        return await trio.to_thread.run_sync(self.wait, timeout, abandon_on_cancel=True)

    def wait_for_message(
        self,
        what: str | int,
        direction: Direction = Direction.RECEIVED,
        timeout: float = 10.0,
    ) -> SipLogEntry:
        """Poll the message log until a matching message shows up (e.g. ``"INVITE"``, ``180``)."""
        deadline = time.monotonic() + timeout
        while True:
            for entry in self.messages():
                if entry.matches(what, direction):
                    return entry
            if time.monotonic() > deadline:
                raise TimeoutError(f"SIPp {self.name} never {direction.value} {what}")
            time.sleep(0.05)

    async def wait_for_message_async(
        self,
        what: str | int,
        direction: Direction = Direction.RECEIVED,
        timeout: float = 10.0,
    ) -> SipLogEntry:
        import trio

        return await trio.to_thread.run_sync(
            self.wait_for_message, what, direction, timeout, abandon_on_cancel=True
        )

    def kill(self) -> None:
        """Stop SIPp now if it still runs (SIGTERM, then SIGKILL)."""
        process = self._process
        if process is None:
            return
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
            try:
                process.wait(3)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                process.wait(5)
        self._finish(process.returncode)

    def _finish(self, code: int) -> None:
        if self.returncode is None:
            self.returncode = code
        if self._output is not None:
            self._output.close()
            self._output = None

    def __enter__(self) -> Sipp:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.kill()

    # -- results -----------------------------------------------------------------------------

    def stats(self) -> SippStats:
        return parse_stats(self.stat_file.read_text(errors="replace"))

    def messages(self) -> list[SipLogEntry]:
        if not self.message_file.exists():
            return []
        return parse_message_log(self.message_file.read_text(errors="replace"))

    def received(self, what: str | int | None = None) -> list[SipLogEntry]:
        return [
            m
            for m in self.messages()
            if m.direction is Direction.RECEIVED and (what is None or m.matches(what))
        ]

    def sent(self, what: str | int | None = None) -> list[SipLogEntry]:
        return [
            m
            for m in self.messages()
            if m.direction is Direction.SENT and (what is None or m.matches(what))
        ]

    def errors(self) -> str:
        return self.error_file.read_text(errors="replace") if self.error_file.exists() else ""

    def output(self) -> str:
        return self.output_file.read_text(errors="replace") if self.output_file.exists() else ""

    def describe(self) -> str:
        """Everything worth reading when a test fails."""
        messages = ""
        if self.message_file.exists():
            messages = self.message_file.read_text(errors="replace")[-6000:]
        return (
            f"command: {' '.join(self.command())}\n"
            f"exit code: {self.returncode}\n"
            f"--- errors ---\n{self.errors()[-3000:]}\n"
            f"--- messages (tail) ---\n{messages}\n"
            f"--- output (tail) ---\n{self.output()[-1500:]}"
        )


# ----------------------------------------------------------------------------------------------
# the real server


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        escaped = value.replace("\\", "\\\\").replace('"', '\\"')
        return f'"{escaped}"'
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {value!r} as TOML")


def toml_sections(sections: Mapping[str, Mapping[str, object]]) -> str:
    """Write ``{"sip": {"listen": [...]}, ...}`` as TOML tables of scalars and lists."""
    out: list[str] = []
    for table, items in sections.items():
        out.append(f"[{table}]")
        out += [f"{key} = {_toml_value(value)}" for key, value in items.items()]
        out.append("")
    return "\n".join(out)


DEFAULT_DIRECTORY = """\
[[organizations]]
id = 3
code = "0003"
name = "Demo Org"

[[users]]
id = 12
organization = 3
name = "John Doe"

[[users]]
id = 13
organization = 3
name = "Jane Roe"

[[extensions]]
number = "210"
organization = 3
user = 12
type = "phone_terminal"
caller_id = "John Doe <4242425>"
password = "secret210"
allow_caller_id = true

[[extensions]]
number = "211"
organization = 3
user = 13
type = "phone_terminal"
caller_id = "Jane Roe <4242426>"
password = "secret211"
allow_caller_id = true

[[apps]]
client_id = "test-user-app"
client_secret = "test-user-secret"
owner = "user:12"

[[apps]]
client_id = "test-org-app"
client_secret = "test-org-secret"
owner = "organization:3"

[[apps]]
client_id = "test-admin-app"
client_secret = "test-admin-secret"
owner = "admin"
"""

_LISTENING = re.compile(r"\blistening (sip (udp|tcp) (\S+)|api (\S+))")


def b2bua_command() -> list[str]:
    """The installed console script next to this interpreter, else ``python -m engine``."""
    script = Path(sys.executable).with_name("b2bua")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "engine"]


class B2buaServer:
    """The real ``b2bua serve`` on free ports, with a config and directory written into ``workdir``.

    ``directory`` is the directory TOML text, or None for the built-in demo directory (no
    ``[directory]`` table: what ``b2bua serve`` runs without a config); ``config`` overrides
    or adds keys per table, e.g. ``{"calls": {"wait_for_pickup": 5}}``.
    """

    def __init__(
        self,
        workdir: Path,
        *,
        directory: str | None = DEFAULT_DIRECTORY,
        config: Mapping[str, Mapping[str, object]] | None = None,
        domain: str = "voip.example.com",
        media_ports: int = 200,
        startup_timeout: float = 20.0,
        env: Mapping[str, str] | None = None,
        args: Sequence[str] = (),
    ) -> None:
        self.workdir = workdir / "b2bua"
        self.args = list(args)  # more options of `b2bua serve`, e.g. ["--log-format", "json"]
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.startup_timeout = startup_timeout
        self.env = dict(env or {})
        self.media_range = free_port_range(media_ports)
        self.directory_file = self.workdir / "directory.toml"
        if directory is not None:
            self.directory_file.write_text(directory)
        sections: dict[str, dict[str, object]] = {
            "sip": {"listen": ["udp:127.0.0.1:0", "tcp:127.0.0.1:0"], "domain": domain},
            "media": {"address": LOCALHOST, "ports": list(self.media_range)},
            "api": {"listen": "127.0.0.1:0"},
            "store": {"url": f"sqlite:///{self.workdir / 'b2bua.sqlite'}"},
            "calls": {"wait_for_pickup": 25, "max_duration": 3600, "drain": 2},
        }
        if directory is not None:
            sections["directory"] = {"file": str(self.directory_file)}
        for table, items in (config or {}).items():
            sections.setdefault(table, {}).update(items)
        self.drain = float(sections["calls"].get("drain", 10))  # type: ignore[arg-type]
        self.config_file = self.workdir / "config.toml"
        self.config_file.write_text(toml_sections(sections))
        self.output_file = self.workdir / "output.txt"
        self._lines: list[str] = []
        self._lines_lock = threading.Lock()
        self._reader: threading.Thread | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self.returncode: int | None = None
        self.sip_udp: tuple[str, int] | None = None
        self.sip_tcp: tuple[str, int] | None = None
        self._api_url: str | None = None

    def command(self) -> list[str]:
        return [*b2bua_command(), "serve", "--config", str(self.config_file), *self.args]

    def start(self) -> B2buaServer:
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **self.env}
        self._process = subprocess.Popen(
            self.command(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            cwd=self.workdir,
            env=env,
            start_new_session=True,
        )
        self._reader = threading.Thread(target=self._read_output, daemon=True)
        self._reader.start()
        deadline = time.monotonic() + self.startup_timeout
        while not (self.sip_udp and self.sip_tcp and self._api_url):
            if self._process.poll() is not None:
                self._reader.join(2)
                raise RuntimeError(
                    f"b2bua exited with {self._process.returncode} before listening:\n"
                    + self.output()[-4000:]
                )
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(
                    f"b2bua did not print its listening lines in {self.startup_timeout}s:\n"
                    + self.output()[-4000:]
                )
            time.sleep(0.02)
        return self

    def _read_output(self) -> None:
        assert self._process is not None and self._process.stdout is not None
        with self.output_file.open("w") as sink:
            for raw in self._process.stdout:
                line = raw.decode(errors="replace").rstrip("\r\n")
                sink.write(line + "\n")
                sink.flush()
                with self._lines_lock:
                    self._lines.append(line)
                self._note_listener(line)

    def _note_listener(self, line: str) -> None:
        match = _LISTENING.search(line)
        if match is None:
            return
        if match.group(4):
            self._api_url = match.group(4).rstrip("/")
            return
        host, _, port = match.group(3).rpartition(":")
        address = (host, int(port))
        if match.group(2) == "udp" and self.sip_udp is None:
            self.sip_udp = address
        elif match.group(2) == "tcp" and self.sip_tcp is None:
            self.sip_tcp = address

    # -- addresses ---------------------------------------------------------------------------

    @property
    def api_url(self) -> str:
        """Base URL of the HTTP API, e.g. "http://127.0.0.1:40112"."""
        if self._api_url is None:
            raise RuntimeError("b2bua has not printed its api address (not started?)")
        return self._api_url

    @property
    def sip_address(self) -> str:
        """ "HOST:PORT" of the UDP SIP listener (what SIPp takes as its remote)."""
        assert self.sip_udp is not None
        return f"{self.sip_udp[0]}:{self.sip_udp[1]}"

    @property
    def sip_tcp_address(self) -> str:
        assert self.sip_tcp is not None
        return f"{self.sip_tcp[0]}:{self.sip_tcp[1]}"

    @property
    def pid(self) -> int:
        assert self._process is not None
        return self._process.pid

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def output(self) -> str:
        with self._lines_lock:
            return "\n".join(self._lines)

    def wait_for_output(self, pattern: str, timeout: float = 10.0) -> str:
        """Wait until a line of output matches the regular expression; return that line."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lines_lock:
                for line in self._lines:
                    if regex.search(line):
                        return line
            time.sleep(0.05)
        raise TimeoutError(f"no output line matched {pattern!r} in {timeout}s")

    def stop(self, sig: int = signal.SIGTERM, timeout: float | None = None) -> int:
        """Signal the server (SIGTERM: drain), wait, kill if it overstays; return its exit code."""
        process = self._process
        if process is None:
            raise RuntimeError("b2bua was not started")
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(sig)
            limit = self.drain + 10 if timeout is None else timeout
            try:
                process.wait(limit)
            except subprocess.TimeoutExpired:
                logger.warning("b2bua overstayed %ss after signal %s: killing it", limit, sig)
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(5)
        if self._reader is not None:
            self._reader.join(5)
        self.returncode = process.returncode
        return process.returncode

    def describe(self) -> str:
        return (
            f"command: {' '.join(self.command())}\n"
            f"exit code: {self.returncode if self.returncode is not None else 'running'}\n"
            f"--- config ---\n{self.config_file.read_text()}\n"
            f"--- output (tail) ---\n{self.output()[-8000:]}"
        )

    def __enter__(self) -> B2buaServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._process is not None:
            self.stop()


# ----------------------------------------------------------------------------------------------
# RTP


RTP_HEADER = struct.Struct("!BBHII")


def rtp_packet(
    seq: int, timestamp: int, ssrc: int, payload_type: int = 0, size: int = 160
) -> bytes:
    """A version-2 RTP packet with ``size`` bytes of µ-law silence."""
    header = RTP_HEADER.pack(0x80, payload_type & 0x7F, seq & 0xFFFF, timestamp & 0xFFFFFFFF, ssrc)
    return header + b"\xff" * size


@dataclasses.dataclass(frozen=True, slots=True)
class RtpCounts:
    received: int
    sent: int
    ssrcs: frozenset[int]
    sources: frozenset[tuple[str, int]]


class RtpEndpoint:
    """A UDP socket on an even free port that counts RTP it receives, sends RTP, or echoes.

    ``echo=True`` sends every packet back to its source (what ``sipp -rtp_echo`` does).
    A background thread does the receiving; ``close()`` (or the context manager) stops it.
    """

    def __init__(self, *, echo: bool = False, port: int | None = None) -> None:
        self.echo = echo
        self.ssrc = random.getrandbits(32)
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        if port is None:
            for _ in range(100):
                candidate = free_ports(1, PortKind.UDP)[0] & ~1
                try:
                    self._sock.bind((LOCALHOST, candidate))
                    break
                except OSError:
                    continue
            else:
                raise RuntimeError("no free even UDP port for RTP")
        else:
            self._sock.bind((LOCALHOST, port))
        self._sock.settimeout(0.1)
        self.port: int = self._sock.getsockname()[1]
        self._lock = threading.Lock()
        self._received = 0
        self._sent = 0
        self._ssrcs: set[int] = set()
        self._sources: set[tuple[str, int]] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._receive_loop, daemon=True)
        self._thread.start()

    @property
    def address(self) -> tuple[str, int]:
        return (LOCALHOST, self.port)

    def _receive_loop(self) -> None:
        while not self._stop.is_set():
            try:
                data, source = self._sock.recvfrom(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            if len(data) < RTP_HEADER.size or data[0] >> 6 != 2:
                continue
            ssrc = RTP_HEADER.unpack_from(data)[4]
            with self._lock:
                self._received += 1
                self._ssrcs.add(ssrc)
                self._sources.add((source[0], source[1]))
            if self.echo:
                with contextlib.suppress(OSError):
                    self._sock.sendto(data, source)

    def send(self, destination: tuple[str, int], count: int = 50, interval: float = 0.02) -> None:
        """Send ``count`` packets (20 ms of PCMU each) to ``destination``, paced by ``interval``."""
        for seq in range(count):
            self._sock.sendto(rtp_packet(seq, seq * 160, self.ssrc), destination)
            with self._lock:
                self._sent += 1
            if interval:
                time.sleep(interval)

    def counts(self) -> RtpCounts:
        with self._lock:
            return RtpCounts(
                received=self._received,
                sent=self._sent,
                ssrcs=frozenset(self._ssrcs),
                sources=frozenset(self._sources),
            )

    def wait_received(self, count: int, timeout: float = 5.0) -> RtpCounts:
        """Wait until at least ``count`` packets arrived; return the counts either way."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.counts().received < count:
            time.sleep(0.02)
        return self.counts()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self._sock.close()

    def __enter__(self) -> RtpEndpoint:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def sdp_media_port(sdp: str, kind: str = "audio") -> int | None:
    """The port of the first ``m=<kind>`` line of an SDP body."""
    for line in sdp.splitlines():
        if line.startswith(f"m={kind} "):
            return int(line.split()[1])
    return None


def sdp_connection_address(sdp: str) -> str | None:
    """The session- or first media-level ``c=`` address."""
    for line in sdp.splitlines():
        if line.startswith("c="):
            return line.split()[-1]
    return None
