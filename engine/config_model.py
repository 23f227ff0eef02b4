"""The process configuration as values: one frozen dataclass per TOML section, the embedded
default (``default_config()``), and ``ConfigError``, which names the key of a bad value.

Reading and checking a file is ``engine.config``; the checkers of single values are
``engine.config_values``.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple, TypeVar

T = TypeVar("T")

TRANSPORTS = ("udp", "tcp")
DEFAULT_DOMAIN = "voip.example.com"
DEFAULT_STORE_URL = "sqlite:///b2bua.sqlite"


class ConfigError(Exception):
    """A bad configuration value.

    ``key`` is the dotted TOML key (or the file name), ``problem`` says why. One error may
    stand for several (``ConfigError.of``): ``problems`` lists each as ``(key, problem)``,
    ``key``/``problem`` are the first, and the text has one ``key: problem`` line each.
    """

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(key, problem)
        self.key = key
        self.problem = problem
        self.problems: tuple[tuple[str, str], ...] = ((key, problem),)
        # from config_from_dict: the file's config with defaults in place of the bad values,
        # so that a checker can go on to the parts that are good (e.g. the directory file)
        self.config: Config | None = None

    @classmethod
    def of(cls, problems: Sequence[tuple[str, str]]) -> ConfigError:
        """One error for every problem found (at least one)."""
        error = cls(*problems[0])
        error.problems = tuple(problems)
        return error

    def __str__(self) -> str:
        return "\n".join(f"{key}: {problem}" for key, problem in self.problems)


class Problems:
    """Collects the problems of a whole file, so that all of them are reported at once."""

    def __init__(self) -> None:
        self.found: list[tuple[str, str]] = []

    def check(self, default: T, parse: Callable[[], T]) -> T:
        """``parse()``, or ``default`` with its problems noted when it raises ConfigError."""
        try:
            return parse()
        except ConfigError as exc:
            self.found.extend(exc.problems)
            return default

    def raise_any(self) -> None:
        if self.found:
            raise ConfigError.of(self.found)


class ListenAddress(NamedTuple):
    """One SIP listener: ``("udp", "127.0.0.1", 5060)``; port 0 = any free port."""

    transport: str
    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.transport}:{format_host(self.host)}:{self.port}"


def format_host(host: str) -> str:
    """``host`` ready to go before ``:PORT`` (IPv6 literals get brackets)."""
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


@dataclass(frozen=True, slots=True)
class SipConfig:
    listen: tuple[ListenAddress, ...] = (
        ListenAddress("udp", "127.0.0.1", 5060),
        ListenAddress("tcp", "127.0.0.1", 5060),
    )
    domain: str = DEFAULT_DOMAIN
    # Digest algorithms offered, in challenge order (one WWW-/Proxy-Authenticate each). MD5
    # first: SIPp and many deployed phones answer only the first challenge and know only MD5;
    # some (baresip) give up on seeing any other, so ["MD5"] must be possible.
    digest_algorithms: tuple[str, ...] = ("MD5", "SHA-256")
    max_connections: int = 1024  # SIP over TCP: connections peers open to us, in all
    max_connections_per_source: int = 32  # ... from one remote address
    # a TCP connection with no complete SIP message this long is closed (CRLF keep-alives do
    # not count); TCP registrations get at most this expiry, so their refresh keeps it open
    tcp_idle_timeout: float = 300
    # per-call SIP traces (GET .../trace, the console): the last N messages of a live call
    # (0 = no traces), and the memory for finished calls' compressed traces, in MiB
    trace_messages: int = 200
    trace_memory: int = 256


@dataclass(frozen=True, slots=True)
class MediaConfig:
    address: str = "127.0.0.1"  # the relay's (backend "relay")
    ports: tuple[int, int] = (20000, 29999)  # even RTP ports, RTCP = RTP + 1 (relay)
    backend: str = "relay"  # "relay" (built in) or "rtpengine"
    rtpengine: tuple[str, ...] = ()  # its ng control sockets, "udp:HOST:PORT"


@dataclass(frozen=True, slots=True)
class ApiConfig:
    host: str = "127.0.0.1"
    port: int = 8080  # 0 = any free port
    public_url: str | None = None  # None: derived from the bound address
    # statusCallback destinations allowed: CIDRs and host names; None: any but link-local,
    # cloud metadata and multicast addresses
    callback_allow: tuple[str, ...] | None = None

    def base_url(self, bound_port: int | None = None) -> str:
        """The base of ``link.self`` URLs: ``public_url`` when set, else derived from the
        listen address (``bound_port`` is the actual port when ``port`` is 0)."""
        if self.public_url is not None:
            return self.public_url
        port = self.port if bound_port is None else bound_port
        # a wildcard address is no place to send a client: point at loopback instead
        host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(self.host, self.host)
        return f"http://{format_host(host)}:{port}"


@dataclass(frozen=True, slots=True)
class StoreConfig:
    url: str = DEFAULT_STORE_URL  # sqlite:///PATH, relative to the current folder


@dataclass(frozen=True, slots=True)
class CallsConfig:
    wait_for_pickup: int = 25  # default waitForPickup, seconds
    max_duration: int = 3600  # default callDuration, seconds
    drain: float = 10  # seconds given to live calls on shutdown
    max_in_parking: int = 180  # default maxInParking of Park: seconds until the ring-back
    music_on_hold: Path | None = None  # 8 kHz mono 16-bit WAV; None: the built-in tone


@dataclass(frozen=True, slots=True)
class DirectoryConfig:
    file: Path | None = None  # None: the built-in demo directory


def _default_node() -> str:
    return socket.gethostname() or "node"


@dataclass(frozen=True, slots=True)
class ClusterConfig:
    node: str = field(default_factory=_default_node)  # unique per node; default: host name
    # Signs API tokens; the same on every node. None: a random secret is generated once and
    # kept in the store, so tokens survive a restart. Also signs SIP digest nonces when set.
    secret: str | None = None
    heartbeat: float = 2  # seconds between this node's heartbeats in the store
    failover: float = 10  # a node silent this long is dead: a survivor ends its calls


@dataclass(frozen=True, slots=True)
class Config:
    sip: SipConfig = field(default_factory=SipConfig)
    media: MediaConfig = field(default_factory=MediaConfig)
    api: ApiConfig = field(default_factory=ApiConfig)
    store: StoreConfig = field(default_factory=StoreConfig)
    calls: CallsConfig = field(default_factory=CallsConfig)
    directory: DirectoryConfig = field(default_factory=DirectoryConfig)
    cluster: ClusterConfig = field(default_factory=ClusterConfig)


def default_config() -> Config:
    """The embedded default: SIP 127.0.0.1:5060 UDP+TCP, API 127.0.0.1:8080, SQLite in the
    current folder, the demo directory."""
    return Config()
