"""The process configuration: one TOML file (README, "Configuration") or the embedded default.

``load_config(path)`` reads and checks the whole file before anything starts, and a mistake
raises ``ConfigError(key, problem)`` whose text names the key, e.g.
``sip.listen[1]: expected 'udp:HOST:PORT' or 'tcp:HOST:PORT', got 'foo'``. Unknown sections and
keys are errors too (a typo must not silently fall back to a default). Missing keys take the
embedded default (``default_config()``).
"""

from __future__ import annotations

import logging
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

logger = logging.getLogger(__name__)

TRANSPORTS = ("udp", "tcp")
DEFAULT_DOMAIN = "voip.example.com"
DEFAULT_STORE_URL = "sqlite:///b2bua.sqlite"

_HOST_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_:")


class ConfigError(Exception):
    """A bad configuration value.

    ``key`` is the dotted TOML key (or the file name), ``problem`` says why.
    """

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(key, problem)
        self.key = key
        self.problem = problem

    def __str__(self) -> str:
        return f"{self.key}: {self.problem}"


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


@dataclass(frozen=True, slots=True)
class MediaConfig:
    address: str = "127.0.0.1"
    ports: tuple[int, int] = (20000, 29999)  # even RTP ports, RTCP = RTP + 1


@dataclass(frozen=True, slots=True)
class ApiConfig:
    host: str = "127.0.0.1"
    port: int = 8080  # 0 = any free port
    public_url: str | None = None  # None: derived from the bound address

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


@dataclass(frozen=True, slots=True)
class Config:
    sip: SipConfig = field(default_factory=SipConfig)
    media: MediaConfig = field(default_factory=MediaConfig)
    api: ApiConfig = field(default_factory=ApiConfig)
    store: StoreConfig = field(default_factory=StoreConfig)
    calls: CallsConfig = field(default_factory=CallsConfig)
    directory: DirectoryConfig = field(default_factory=DirectoryConfig)


def default_config() -> Config:
    """The embedded default: SIP 127.0.0.1:5060 UDP+TCP, API 127.0.0.1:8080, SQLite in the
    current folder, the demo directory."""
    return Config()


# --------------------------------------------------------------------------- loading

_SECTIONS: dict[str, frozenset[str]] = {
    "sip": frozenset({"listen", "domain"}),
    "media": frozenset({"address", "ports"}),
    "api": frozenset({"listen", "public_url"}),
    "store": frozenset({"url"}),
    "calls": frozenset({"wait_for_pickup", "max_duration", "drain"}),
    "directory": frozenset({"file"}),
}


def _type_name(value: Any) -> str:
    names = {bool: "boolean", int: "integer", float: "number", str: "string", list: "array"}
    return names.get(type(value), "table" if isinstance(value, dict) else type(value).__name__)


def _string(key: str, value: Any) -> str:
    if not isinstance(value, str):
        raise ConfigError(key, f"expected a string, got {_type_name(value)} {value!r}")
    return value


def _int(key: str, value: Any, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(key, f"expected an integer, got {_type_name(value)} {value!r}")
    if value < low or (high is not None and value > high):
        bound = f"{low}-{high}" if high is not None else f">= {low}"
        raise ConfigError(key, f"{value} out of range {bound}")
    return value


def _seconds(key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(key, f"expected a number of seconds, got {_type_name(value)} {value!r}")
    if not value >= 0 or value == float("inf"):
        raise ConfigError(key, f"expected a finite number of seconds >= 0, got {value!r}")
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


def _parse_sip(data: dict[str, Any]) -> SipConfig:
    defaults = SipConfig()
    listen = defaults.listen
    if "listen" in data:
        raw = data["listen"]
        if not isinstance(raw, list):
            raise ConfigError("sip.listen", f"expected an array of strings, got {_type_name(raw)}")
        if not raw:
            raise ConfigError("sip.listen", "needs at least one 'udp:HOST:PORT' or 'tcp:HOST:PORT'")
        parsed: list[ListenAddress] = []
        for index, item in enumerate(raw):
            key = f"sip.listen[{index}]"
            try:
                address = parse_transport_address(_string(key, item))
            except ValueError as exc:
                raise ConfigError(key, str(exc)) from None
            if address in parsed and address.port != 0:
                raise ConfigError(key, f"{item!r} is listed twice")
            parsed.append(address)
        listen = tuple(parsed)
    domain = defaults.domain
    if "domain" in data:
        domain = _host("sip.domain", data["domain"])
    return SipConfig(listen=listen, domain=domain)


def _parse_media(data: dict[str, Any]) -> MediaConfig:
    defaults = MediaConfig()
    address = _host("media.address", data["address"]) if "address" in data else defaults.address
    ports = defaults.ports
    if "ports" in data:
        raw = data["ports"]
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
        ports = (low, high)
    return MediaConfig(address=address, ports=ports)


def _parse_api(data: dict[str, Any]) -> ApiConfig:
    defaults = ApiConfig()
    host, port = defaults.host, defaults.port
    if "listen" in data:
        text = _string("api.listen", data["listen"])
        try:
            parsed_host, parsed_port = parse_host_port(text)
        except ValueError as exc:
            raise ConfigError("api.listen", f"expected 'HOST:PORT', got {text!r} ({exc})") from None
        if parsed_port is None:
            raise ConfigError("api.listen", f"expected 'HOST:PORT', got {text!r}")
        host, port = parsed_host, parsed_port
    public_url = None
    if "public_url" in data:
        public_url = _string("api.public_url", data["public_url"]).rstrip("/")
        scheme, sep, rest = public_url.partition("://")
        if not sep or scheme not in ("http", "https") or not rest or " " in rest:
            raise ConfigError(
                "api.public_url", f"expected an http:// or https:// URL, got {public_url!r}"
            )
    return ApiConfig(host=host, port=port, public_url=public_url)


def _parse_store(data: dict[str, Any]) -> StoreConfig:
    if "url" not in data:
        return StoreConfig()
    url = _string("store.url", data["url"])
    prefix = "sqlite:///"
    if not url.startswith(prefix) or len(url) == len(prefix):
        raise ConfigError("store.url", f"expected 'sqlite:///PATH', got {url!r}")
    return StoreConfig(url=url)


def _parse_calls(data: dict[str, Any]) -> CallsConfig:
    defaults = CallsConfig()
    wait = defaults.wait_for_pickup
    if "wait_for_pickup" in data:
        wait = _int("calls.wait_for_pickup", data["wait_for_pickup"], 1, 86400)
    max_duration = defaults.max_duration
    if "max_duration" in data:
        max_duration = _int("calls.max_duration", data["max_duration"], 1, 7 * 86400)
    drain = _seconds("calls.drain", data["drain"]) if "drain" in data else defaults.drain
    return CallsConfig(wait_for_pickup=wait, max_duration=max_duration, drain=drain)


def _parse_directory(data: dict[str, Any], base: Path) -> DirectoryConfig:
    if "file" not in data:
        return DirectoryConfig()
    text = _string("directory.file", data["file"])
    if not text:
        raise ConfigError("directory.file", "empty path")
    try:
        path = (base / Path(text).expanduser()).resolve()
        exists = path.is_file()
    except (OSError, RuntimeError, ValueError) as exc:  # no home dir, NUL byte, loops...
        raise ConfigError("directory.file", f"bad path {text!r}: {exc}") from None
    if not exists:
        raise ConfigError("directory.file", f"no such file: {path}")
    return DirectoryConfig(file=path)


def config_from_dict(data: dict[str, Any], base: Path) -> Config:
    """Check and build a Config from parsed TOML; relative paths are taken from ``base``."""
    for section, value in data.items():
        if section not in _SECTIONS:
            known = ", ".join(f"[{name}]" for name in _SECTIONS)
            raise ConfigError(section, f"unknown section (known: {known})")
        if not isinstance(value, dict):
            raise ConfigError(section, f"expected a [{section}] table, got {_type_name(value)}")
        for key in value:
            if key not in _SECTIONS[section]:
                known = ", ".join(sorted(_SECTIONS[section]))
                raise ConfigError(f"{section}.{key}", f"unknown key (known: {known})")
    return Config(
        sip=_parse_sip(data.get("sip", {})),
        media=_parse_media(data.get("media", {})),
        api=_parse_api(data.get("api", {})),
        store=_parse_store(data.get("store", {})),
        calls=_parse_calls(data.get("calls", {})),
        directory=_parse_directory(data.get("directory", {}), base),
    )


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
    listen = ", ".join(_toml_string(str(address)) for address in config.sip.listen)
    api = config.api
    lines = [
        "[sip]",
        f"listen = [{listen}]",
        f"domain = {_toml_string(config.sip.domain)}",
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
    return "\n".join(lines) + "\n"
