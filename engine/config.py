"""The process configuration: one TOML file (README, "Configuration") or the embedded default.

``load_config(path)`` reads and checks the whole file before anything starts, and a mistake
raises ``ConfigError(key, problem)`` whose text names the key, e.g.
``sip.listen[1]: expected 'udp:HOST:PORT' or 'tcp:HOST:PORT', got 'foo'``. Unknown sections and
keys are errors too (a typo must not silently fall back to a default). Missing keys take the
embedded default (``default_config()``).
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

from sip.errors import RemoteProtocolError
from sip.uri import SipUri, parse_uri, uri_host

logger = logging.getLogger(__name__)

T = TypeVar("T")

TRANSPORTS = ("udp", "tcp")
DEFAULT_DOMAIN = "voip.example.com"
DEFAULT_STORE_URL = "sqlite:///b2bua.sqlite"

_HOST_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_:")


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


class _Problems:
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


def _check_host(host: str) -> str | None:
    """A reason why ``host`` is not a usable host name / IP literal, or None."""
    if not host:
        return "empty host"
    if not set(host) <= _HOST_CHARS:
        return f"bad host {host!r}"
    return None


def parse_host_port(text: str, *, default_port: int | None = None) -> tuple[str, int | None]:
    """``HOST:PORT``, ``[V6]:PORT`` or (with a default) ``HOST`` -> (host, port).

    IPv6 hosts are returned without brackets. Raises ``ValueError`` with the reason.
    """
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise ValueError(f"unclosed '[' in {text!r}")
        host, rest = text[1:end], text[end + 1 :]
        if rest and not rest.startswith(":"):
            raise ValueError(f"unexpected {rest!r} after ']' in {text!r}")
        port_text: str | None = rest[1:] if rest else None
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    elif ":" not in text:
        host, port_text = text, None
    else:
        raise ValueError(f"IPv6 addresses need brackets: {text!r}")
    problem = _check_host(host)
    if problem:
        raise ValueError(problem)
    if port_text is None:
        return host, default_port
    if not port_text.isdigit() or not port_text.isascii():
        raise ValueError(f"port must be a number, got {port_text!r}")
    port = int(port_text)
    if port > 65535:
        raise ValueError(f"port {port} out of range 0-65535")
    return host, port


def parse_transport_address(text: str) -> ListenAddress:
    """``"udp:HOST:PORT"`` / ``"tcp:HOST:PORT"`` -> ListenAddress; ``ValueError`` otherwise."""
    expected = f"expected 'udp:HOST:PORT' or 'tcp:HOST:PORT', got {text!r}"
    transport, sep, rest = text.partition(":")
    if not sep or transport.lower() not in TRANSPORTS:
        raise ValueError(expected)
    try:
        host, port = parse_host_port(rest)
    except ValueError as exc:
        raise ValueError(f"{expected} ({exc})") from None
    if port is None:
        raise ValueError(expected)
    return ListenAddress(transport.lower(), host, port)


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


@dataclass(frozen=True, slots=True)
class MediaConfig:
    address: str = "127.0.0.1"
    ports: tuple[int, int] = (20000, 29999)  # even RTP ports, RTCP = RTP + 1


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


@dataclass(frozen=True, slots=True)
class DirectoryConfig:
    file: Path | None = None  # None: the built-in demo directory


def _default_node() -> str:
    return socket.gethostname() or "node"


@dataclass(frozen=True, slots=True)
class ClusterConfig:
    node: str = field(default_factory=_default_node)  # unique per node; default: host name
    # Signs API tokens; the same on every node. None: a random secret is generated once and
    # kept in the store, so tokens survive a restart. (SIP nonces use a key per process.)
    secret: str | None = None
    heartbeat: float = 2  # seconds between this node's heartbeats in the store
    failover: float = 10  # reserved for nodes sharing a store: checked, not yet acted upon


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


# --------------------------------------------------------------------------- loading

_SECTIONS: dict[str, frozenset[str]] = {
    "sip": frozenset(
        {
            "listen",
            "domain",
            "digest_algorithms",
            "max_connections",
            "max_connections_per_source",
            "tcp_idle_timeout",
        }
    ),
    "media": frozenset({"address", "ports"}),
    "api": frozenset({"listen", "public_url", "callback_allow"}),
    "store": frozenset({"url"}),
    "calls": frozenset({"wait_for_pickup", "max_duration", "drain"}),
    "directory": frozenset({"file"}),
    "cluster": frozenset({"node", "secret", "heartbeat", "failover"}),
}

KNOWN_KEYS = _SECTIONS  # every section and key a config file may have (examples/config.toml)

DIGEST_ALGORITHMS = ("MD5", "SHA-256", "SHA-512-256")
MIN_SECRET_LENGTH = 16


def _type_name(value: Any) -> str:
    names = {bool: "boolean", int: "integer", float: "number", str: "string", list: "array"}
    return names.get(type(value), "table" if isinstance(value, dict) else type(value).__name__)


def _string(key: str, value: Any) -> str:
    if not isinstance(value, str):
        raise ConfigError(key, f"expected a string, got {_type_name(value)} {value!r}")
    return value


def _strings(key: str, value: Any, *, empty_ok: bool = False) -> list[str]:
    if not isinstance(value, list):
        raise ConfigError(key, f"expected an array of strings, got {_type_name(value)}")
    if not value and not empty_ok:
        raise ConfigError(key, "expected at least one entry")
    problems = _Problems()
    items = [problems.check("", partial(_string, f"{key}[{i}]", v)) for i, v in enumerate(value)]
    problems.raise_any()
    return items


def _int(key: str, value: Any, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(key, f"expected an integer, got {_type_name(value)} {value!r}")
    if value < low or (high is not None and value > high):
        bound = f"{low}-{high}" if high is not None else f">= {low}"
        raise ConfigError(key, f"{value} out of range {bound}")
    return value


def _seconds(key: str, value: Any, *, low: float = 0) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(key, f"expected a number of seconds, got {_type_name(value)} {value!r}")
    if not value >= low or value == float("inf"):
        raise ConfigError(key, f"expected a finite number of seconds >= {low:g}, got {value!r}")
    return value


def _host(key: str, value: Any) -> str:
    text = _string(key, value)
    try:
        host, port = parse_host_port(text)
    except ValueError as exc:
        raise ConfigError(key, str(exc)) from None
    if port is not None:
        raise ConfigError(key, f"expected an address without a port, got {text!r}")
    return host


def _domain(value: Any) -> str:
    """``sip.domain``: a host name or IP address, an IPv6 one with or without brackets (a
    domain has no port, so ``::1`` is unambiguous); kept without brackets, lower-cased."""
    text = _string("sip.domain", value).strip().lower()
    bare = text[1:-1] if text.startswith("[") and text.endswith("]") else text
    if ":" in bare:
        try:
            ipaddress.IPv6Address(bare)
        except ValueError:
            raise ConfigError(
                "sip.domain", f"expected a host name or IP address, got {text!r}"
            ) from None
        return bare
    host = _host("sip.domain", text)
    try:
        uri = parse_uri(f"sip:{uri_host(host)}")
    except RemoteProtocolError:
        uri = None
    if not isinstance(uri, SipUri) or uri.host != host:
        raise ConfigError("sip.domain", f"{host!r} is not a host name a SIP URI can carry")
    return host


def _listen(data: dict[str, Any]) -> tuple[ListenAddress, ...]:
    raw = data["listen"]
    if not isinstance(raw, list):
        raise ConfigError("sip.listen", f"expected an array of strings, got {_type_name(raw)}")
    if not raw:
        raise ConfigError("sip.listen", "needs at least one 'udp:HOST:PORT' or 'tcp:HOST:PORT'")
    problems = _Problems()
    parsed: list[ListenAddress] = []
    for index, item in enumerate(raw):
        key = f"sip.listen[{index}]"

        def one(key: str = key, item: Any = item) -> None:
            try:
                address = parse_transport_address(_string(key, item))
            except ValueError as exc:
                raise ConfigError(key, str(exc)) from None
            if address in parsed and address.port != 0:
                raise ConfigError(key, f"{item!r} is listed twice")
            parsed.append(address)

        problems.check(None, one)
    problems.raise_any()
    return tuple(parsed)


def _digest_algorithms(value: Any) -> tuple[str, ...]:
    key = "sip.digest_algorithms"
    names = _strings(key, value)
    chosen: list[str] = []
    for index, name in enumerate(names):
        canonical = name.strip().upper()
        if canonical not in DIGEST_ALGORITHMS:
            known = ", ".join(DIGEST_ALGORITHMS)
            raise ConfigError(f"{key}[{index}]", f"unknown algorithm {name!r} (known: {known})")
        if canonical in chosen:
            raise ConfigError(f"{key}[{index}]", f"{name!r} is listed twice")
        chosen.append(canonical)
    return tuple(chosen)


def _parse_sip(data: dict[str, Any], problems: _Problems) -> SipConfig:
    d = SipConfig()
    listen = problems.check(d.listen, lambda: _listen(data)) if "listen" in data else d.listen

    def get(name: str, default: T, parse: Callable[[Any], T]) -> T:
        return problems.check(default, lambda: parse(data[name])) if name in data else default

    max_connections = get(
        "max_connections", d.max_connections, lambda v: _int("sip.max_connections", v, 1)
    )
    per_source = get(
        "max_connections_per_source",
        d.max_connections_per_source,
        lambda v: _int("sip.max_connections_per_source", v, 1),
    )
    if per_source > max_connections:
        problems.found.append(
            (
                "sip.max_connections_per_source",
                f"{per_source} is more than sip.max_connections ({max_connections})",
            )
        )
    return SipConfig(
        listen=listen,
        domain=get("domain", d.domain, _domain),
        digest_algorithms=get("digest_algorithms", d.digest_algorithms, _digest_algorithms),
        max_connections=max_connections,
        max_connections_per_source=per_source,
        tcp_idle_timeout=get(
            "tcp_idle_timeout",
            d.tcp_idle_timeout,
            lambda v: _seconds("sip.tcp_idle_timeout", v, low=1),
        ),
    )


def _ports(raw: Any) -> tuple[int, int]:
    if not isinstance(raw, list) or len(raw) != 2:
        raise ConfigError("media.ports", f"expected [LOW, HIGH], got {raw!r}")
    low = _int("media.ports[0]", raw[0], 1, 65535)
    high = _int("media.ports[1]", raw[1], 1, 65535)
    if low % 2:
        raise ConfigError("media.ports[0]", f"must be even (RTP ports are even), got {low}")
    if high <= low:
        raise ConfigError(
            "media.ports", f"range [{low}, {high}] is empty or inverted: need HIGH > LOW"
        )
    return (low, high)


def _parse_media(data: dict[str, Any], problems: _Problems) -> MediaConfig:
    d = MediaConfig()
    address = d.address
    if "address" in data:
        address = problems.check(d.address, lambda: _host("media.address", data["address"]))
    ports = problems.check(d.ports, lambda: _ports(data["ports"])) if "ports" in data else d.ports
    return MediaConfig(address=address, ports=ports)


def _api_listen(value: Any) -> tuple[str, int]:
    text = _string("api.listen", value)
    try:
        host, port = parse_host_port(text)
    except ValueError as exc:
        raise ConfigError("api.listen", f"expected 'HOST:PORT', got {text!r} ({exc})") from None
    if port is None:
        raise ConfigError("api.listen", f"expected 'HOST:PORT', got {text!r}")
    return host, port


def _public_url(value: Any) -> str:
    public_url = _string("api.public_url", value).rstrip("/")
    scheme, sep, rest = public_url.partition("://")
    if not sep or scheme not in ("http", "https") or not rest or " " in rest:
        raise ConfigError(
            "api.public_url", f"expected an http:// or https:// URL, got {public_url!r}"
        )
    return public_url


def _callback_allow(value: Any) -> tuple[str, ...]:
    """CIDRs (``10.0.0.0/8``, ``fd00::/8``, a plain address) and host names (``example.com``,
    ``*.example.com`` for its subdomains); kept as written, lower-cased."""
    key = "api.callback_allow"
    entries = _strings(key, value, empty_ok=True)
    problems = _Problems()
    kept: list[str] = []
    for index, entry in enumerate(entries):

        def one(index: int = index, entry: str = entry) -> None:
            text = entry.strip().lower()
            try:
                ipaddress.ip_network(text, strict=False)
            except ValueError:
                name = text[2:] if text.startswith("*.") else text
                if not name or "/" in name or _check_host(name) is not None or ":" in name:
                    raise ConfigError(
                        f"{key}[{index}]",
                        f"expected a CIDR (10.0.0.0/8), an address or a host name, got {entry!r}",
                    ) from None
            kept.append(text)

        problems.check(None, one)
    problems.raise_any()
    return tuple(kept)


def _parse_api(data: dict[str, Any], problems: _Problems) -> ApiConfig:
    d = ApiConfig()
    host, port = d.host, d.port
    if "listen" in data:
        host, port = problems.check((d.host, d.port), lambda: _api_listen(data["listen"]))
    public_url = None
    if "public_url" in data:
        public_url = problems.check(None, lambda: _public_url(data["public_url"]))
    callback_allow = None
    if "callback_allow" in data:
        callback_allow = problems.check(None, lambda: _callback_allow(data["callback_allow"]))
    return ApiConfig(host=host, port=port, public_url=public_url, callback_allow=callback_allow)


def _store_url(value: Any) -> str:
    url = _string("store.url", value)
    prefix = "sqlite:///"
    if not url.startswith(prefix) or len(url) == len(prefix):
        raise ConfigError("store.url", f"expected 'sqlite:///PATH', got {url!r}")
    return url


def _parse_store(data: dict[str, Any], problems: _Problems) -> StoreConfig:
    if "url" not in data:
        return StoreConfig()
    return StoreConfig(url=problems.check(DEFAULT_STORE_URL, lambda: _store_url(data["url"])))


def _parse_calls(data: dict[str, Any], problems: _Problems) -> CallsConfig:
    d = CallsConfig()

    def get(name: str, default: T, parse: Callable[[Any], T]) -> T:
        return problems.check(default, lambda: parse(data[name])) if name in data else default

    return CallsConfig(
        wait_for_pickup=get(
            "wait_for_pickup",
            d.wait_for_pickup,
            lambda v: _int("calls.wait_for_pickup", v, 1, 86400),
        ),
        max_duration=get(
            "max_duration", d.max_duration, lambda v: _int("calls.max_duration", v, 1, 7 * 86400)
        ),
        drain=get("drain", d.drain, lambda v: _seconds("calls.drain", v)),
    )


def _directory_file(value: Any, base: Path) -> Path:
    text = _string("directory.file", value)
    if not text:
        raise ConfigError("directory.file", "empty path")
    try:
        path = (base / Path(text).expanduser()).resolve()
        exists = path.is_file()
    except (OSError, RuntimeError, ValueError) as exc:  # no home dir, NUL byte, loops...
        raise ConfigError("directory.file", f"bad path {text!r}: {exc}") from None
    if not exists:
        raise ConfigError("directory.file", f"no such file: {path}")
    return path


def _parse_directory(data: dict[str, Any], base: Path, problems: _Problems) -> DirectoryConfig:
    if "file" not in data:
        return DirectoryConfig()
    return DirectoryConfig(file=problems.check(None, lambda: _directory_file(data["file"], base)))


def _node(value: Any) -> str:
    text = _string("cluster.node", value)
    if not text or len(text) > 64 or not all(c.isalnum() or c in "-_." for c in text):
        raise ConfigError(
            "cluster.node", f"expected 1-64 letters, digits, '-', '_' or '.', got {text!r}"
        )
    return text


def _secret(value: Any) -> str:
    text = _string("cluster.secret", value)
    if len(text) < MIN_SECRET_LENGTH:
        raise ConfigError(
            "cluster.secret",
            f"too short to sign tokens: {len(text)} characters, need at least "
            f"{MIN_SECRET_LENGTH} (a long random string)",
        )
    return text


def _parse_cluster(data: dict[str, Any], problems: _Problems) -> ClusterConfig:
    d = ClusterConfig()

    def get(name: str, default: T, parse: Callable[[Any], T]) -> T:
        return problems.check(default, lambda: parse(data[name])) if name in data else default

    heartbeat = get("heartbeat", d.heartbeat, lambda v: _seconds("cluster.heartbeat", v, low=0.1))
    failover = get("failover", d.failover, lambda v: _seconds("cluster.failover", v, low=1))
    if failover <= heartbeat:
        problems.found.append(
            (
                "cluster.failover",
                f"{failover:g} s must be longer than cluster.heartbeat ({heartbeat:g} s)",
            )
        )
    return ClusterConfig(
        node=get("node", d.node, _node),
        secret=get("secret", None, _secret),
        heartbeat=heartbeat,
        failover=failover,
    )


def config_from_dict(data: dict[str, Any], base: Path) -> Config:
    """Check and build a Config from parsed TOML; relative paths are taken from ``base``.

    Every problem of the file is found before it raises: the ``ConfigError`` lists them all.
    """
    problems = _Problems()
    sections: dict[str, dict[str, Any]] = {}
    for section, value in data.items():
        if section not in _SECTIONS:
            known = ", ".join(f"[{name}]" for name in _SECTIONS)
            problems.found.append((section, f"unknown section (known: {known})"))
            continue
        if not isinstance(value, dict):
            problems.found.append(
                (section, f"expected a [{section}] table, got {_type_name(value)}")
            )
            continue
        for key in value:
            if key not in _SECTIONS[section]:
                known = ", ".join(sorted(_SECTIONS[section]))
                problems.found.append((f"{section}.{key}", f"unknown key (known: {known})"))
        sections[section] = {k: v for k, v in value.items() if k in _SECTIONS[section]}
    config = Config(
        sip=_parse_sip(sections.get("sip", {}), problems),
        media=_parse_media(sections.get("media", {}), problems),
        api=_parse_api(sections.get("api", {}), problems),
        store=_parse_store(sections.get("store", {}), problems),
        calls=_parse_calls(sections.get("calls", {}), problems),
        directory=_parse_directory(sections.get("directory", {}), base, problems),
        cluster=_parse_cluster(sections.get("cluster", {}), problems),
    )
    try:
        problems.raise_any()
    except ConfigError as exc:
        exc.config = config
        raise
    return config


def load_config(path: str | Path) -> Config:
    """Read and check a config file. Raises ``ConfigError`` (the file itself as the key for
    unreadable files and TOML syntax errors)."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(str(path), f"cannot read: {exc.strerror or exc}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(str(path), f"not UTF-8 text: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(path), f"invalid TOML: {exc}") from None
    config = config_from_dict(data, path.resolve().parent)
    logger.debug("loaded config from %s", path)
    return config


def _toml_string(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def render_config(config: Config) -> str:
    """The TOML text of ``config`` (e.g. for ``b2bua`` to show the effective settings);
    ``load_config`` of it gives ``config`` back (directory path made absolute)."""
    sip, api, cluster = config.sip, config.api, config.cluster

    def strings(values: Sequence[str]) -> str:
        return "[" + ", ".join(_toml_string(value) for value in values) + "]"

    lines = [
        "[sip]",
        f"listen = {strings([str(address) for address in sip.listen])}",
        f"domain = {_toml_string(sip.domain)}",
        f"digest_algorithms = {strings(sip.digest_algorithms)}",
        f"max_connections = {sip.max_connections}",
        f"max_connections_per_source = {sip.max_connections_per_source}",
        f"tcp_idle_timeout = {sip.tcp_idle_timeout!r}",
        "",
        "[media]",
        f"address = {_toml_string(config.media.address)}",
        f"ports = [{config.media.ports[0]}, {config.media.ports[1]}]",
        "",
        "[api]",
        f"listen = {_toml_string(f'{format_host(api.host)}:{api.port}')}",
    ]
    if api.public_url is not None:
        lines.append(f"public_url = {_toml_string(api.public_url)}")
    if api.callback_allow is not None:
        lines.append(f"callback_allow = {strings(api.callback_allow)}")
    lines += [
        "",
        "[store]",
        f"url = {_toml_string(config.store.url)}",
        "",
        "[calls]",
        f"wait_for_pickup = {config.calls.wait_for_pickup}",
        f"max_duration = {config.calls.max_duration}",
        f"drain = {config.calls.drain!r}",
    ]
    if config.directory.file is not None:
        lines += ["", "[directory]", f"file = {_toml_string(str(config.directory.file))}"]
    else:
        lines += ["", "[directory]", '# file = "directory.toml"  # unset: the built-in demo']
    lines += [
        "",
        "[cluster]",
        f"node = {_toml_string(cluster.node)}",
        f"heartbeat = {cluster.heartbeat!r}",
        f"failover = {cluster.failover!r}",
    ]
    if cluster.secret is not None:
        lines.append(f"secret = {_toml_string(cluster.secret)}")
    return "\n".join(lines) + "\n"
