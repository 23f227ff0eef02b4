"""The checks of each section of the config file: one ``parse_SECTION`` per ``[SECTION]``.

Each takes the section's table (unknown keys already reported and dropped by
``engine.config.config_from_dict``) and the problem collector, checks every key it has, and
builds the section's dataclass (``engine.config_model``) with the embedded default for keys
that are missing or wrong; a problem is recorded as ``(key, text)`` naming the key, e.g.
``sip.listen[1]``. Checks that span keys (``sip.max_connections_per_source`` against
``sip.max_connections``, ``cluster.failover`` against ``cluster.heartbeat``, the rtpengine
backend's addresses) live with their section.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from engine.config_model import (
    DEFAULT_STORE_URL,
    ApiConfig,
    CallsConfig,
    ClusterConfig,
    ConfigError,
    DirectoryConfig,
    ListenAddress,
    MediaConfig,
    Problems,
    SipConfig,
    StoreConfig,
)
from engine.config_values import (
    check_host,
    check_int,
    check_seconds,
    check_string,
    check_strings,
    host_problem,
    parse_host_port,
    parse_transport_address,
    type_name,
)
from engine.media.tone import read_wav
from engine.rtpengine.client import parse_instance
from engine.store.interface import StoreError
from engine.store.url import parse_store_url
from sip.errors import RemoteProtocolError
from sip.uri import SipUri, parse_uri, uri_host

T = TypeVar("T")

DIGEST_ALGORITHMS = ("MD5", "SHA-256", "SHA-512-256")
MIN_SECRET_LENGTH = 16


def _domain(value: Any) -> str:
    """``sip.domain``: a host name or IP address, an IPv6 one with or without brackets (a
    domain has no port, so ``::1`` is unambiguous); kept without brackets, lower-cased."""
    text = check_string("sip.domain", value).strip().lower()
    bare = text[1:-1] if text.startswith("[") and text.endswith("]") else text
    if ":" in bare:
        try:
            ipaddress.IPv6Address(bare)
        except ValueError:
            raise ConfigError(
                "sip.domain", f"expected a host name or IP address, got {text!r}"
            ) from None
        return bare
    host = check_host("sip.domain", text)
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
        raise ConfigError("sip.listen", f"expected an array of strings, got {type_name(raw)}")
    if not raw:
        raise ConfigError("sip.listen", "needs at least one 'udp:HOST:PORT' or 'tcp:HOST:PORT'")
    problems = Problems()
    parsed: list[ListenAddress] = []
    for index, item in enumerate(raw):
        key = f"sip.listen[{index}]"

        def one(key: str = key, item: Any = item) -> None:
            try:
                address = parse_transport_address(check_string(key, item))
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
    names = check_strings(key, value)
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


def parse_sip(data: dict[str, Any], problems: Problems) -> SipConfig:
    d = SipConfig()
    listen = problems.check(d.listen, lambda: _listen(data)) if "listen" in data else d.listen

    def get(name: str, default: T, parse: Callable[[Any], T]) -> T:
        return problems.check(default, lambda: parse(data[name])) if name in data else default

    max_connections = get(
        "max_connections", d.max_connections, lambda v: check_int("sip.max_connections", v, 1)
    )
    per_source = get(
        "max_connections_per_source",
        d.max_connections_per_source,
        lambda v: check_int("sip.max_connections_per_source", v, 1),
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
            lambda v: check_seconds("sip.tcp_idle_timeout", v, low=1),
        ),
        trace_messages=get(
            "trace_messages",
            d.trace_messages,
            lambda v: check_int("sip.trace_messages", v, 0, 100_000),
        ),
        trace_memory=get(
            "trace_memory", d.trace_memory, lambda v: check_int("sip.trace_memory", v, 1, 1 << 20)
        ),
    )


def _ports(raw: Any) -> tuple[int, int]:
    if not isinstance(raw, list) or len(raw) != 2:
        raise ConfigError("media.ports", f"expected [LOW, HIGH], got {raw!r}")
    low = check_int("media.ports[0]", raw[0], 1, 65535)
    high = check_int("media.ports[1]", raw[1], 1, 65535)
    if low % 2:
        raise ConfigError("media.ports[0]", f"must be even (RTP ports are even), got {low}")
    if high <= low:
        raise ConfigError(
            "media.ports", f"range [{low}, {high}] is empty or inverted: need HIGH > LOW"
        )
    return (low, high)


def parse_media(data: dict[str, Any], problems: Problems) -> MediaConfig:
    d = MediaConfig()
    address = d.address
    if "address" in data:
        address = problems.check(d.address, lambda: check_host("media.address", data["address"]))
    ports = problems.check(d.ports, lambda: _ports(data["ports"])) if "ports" in data else d.ports
    backend = d.backend
    if "backend" in data:
        backend = problems.check(d.backend, lambda: _backend(data["backend"]))
    rtpengine = d.rtpengine
    if "rtpengine" in data:
        rtpengine = problems.check(d.rtpengine, lambda: _rtpengine(data["rtpengine"]))
    if (
        backend == "rtpengine"
        and not rtpengine
        and not any(key.startswith("media.rtpengine") for key, _ in problems.found)
    ):
        problems.found.append(
            (
                "media.rtpengine",
                'backend = "rtpengine" needs its ng addresses, e.g. ["udp:127.0.0.1:2223"]',
            )
        )
    return MediaConfig(address=address, ports=ports, backend=backend, rtpengine=rtpengine)


MEDIA_BACKENDS = ("relay", "rtpengine")


def _backend(value: Any) -> str:
    text = check_string("media.backend", value)
    if text not in MEDIA_BACKENDS:
        raise ConfigError("media.backend", f"expected 'relay' or 'rtpengine', got {text!r}")
    return text


def _rtpengine(value: Any) -> tuple[str, ...]:
    texts = check_strings("media.rtpengine", value, empty_ok=True)
    problems = Problems()
    for i, text in enumerate(texts):
        try:
            parse_instance(text)
        except ValueError as exc:
            problems.found.append((f"media.rtpengine[{i}]", str(exc)))
    problems.raise_any()
    return tuple(texts)


def _api_listen(value: Any) -> tuple[str, int]:
    text = check_string("api.listen", value)
    try:
        host, port = parse_host_port(text)
    except ValueError as exc:
        raise ConfigError("api.listen", f"expected 'HOST:PORT', got {text!r} ({exc})") from None
    if port is None:
        raise ConfigError("api.listen", f"expected 'HOST:PORT', got {text!r}")
    return host, port


def _public_url(value: Any) -> str:
    public_url = check_string("api.public_url", value).rstrip("/")
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
    entries = check_strings(key, value, empty_ok=True)
    problems = Problems()
    kept: list[str] = []
    for index, entry in enumerate(entries):

        def one(index: int = index, entry: str = entry) -> None:
            text = entry.strip().lower()
            try:
                ipaddress.ip_network(text, strict=False)
            except ValueError:
                name = text[2:] if text.startswith("*.") else text
                if not name or "/" in name or host_problem(name) is not None or ":" in name:
                    raise ConfigError(
                        f"{key}[{index}]",
                        f"expected a CIDR (10.0.0.0/8), an address or a host name, got {entry!r}",
                    ) from None
            kept.append(text)

        problems.check(None, one)
    problems.raise_any()
    return tuple(kept)


def parse_api(data: dict[str, Any], problems: Problems) -> ApiConfig:
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
    """``sqlite:///PATH`` or ``postgresql://USER:PASSWORD@HOST:PORT/DATABASE``: scheme, host,
    port and database checked without connecting; a problem never shows the password."""
    url = check_string("store.url", value)
    try:
        parse_store_url(url)
    except StoreError as exc:
        raise ConfigError("store.url", str(exc)) from None
    return url


def parse_store(data: dict[str, Any], problems: Problems) -> StoreConfig:
    if "url" not in data:
        return StoreConfig()
    return StoreConfig(url=problems.check(DEFAULT_STORE_URL, lambda: _store_url(data["url"])))


def parse_calls(data: dict[str, Any], base: Path, problems: Problems) -> CallsConfig:
    d = CallsConfig()

    def get(name: str, default: T, parse: Callable[[Any], T]) -> T:
        return problems.check(default, lambda: parse(data[name])) if name in data else default

    return CallsConfig(
        wait_for_pickup=get(
            "wait_for_pickup",
            d.wait_for_pickup,
            lambda v: check_int("calls.wait_for_pickup", v, 1, 86400),
        ),
        max_duration=get(
            "max_duration",
            d.max_duration,
            lambda v: check_int("calls.max_duration", v, 1, 7 * 86400),
        ),
        drain=get("drain", d.drain, lambda v: check_seconds("calls.drain", v)),
        max_in_parking=get(
            "max_in_parking",
            d.max_in_parking,
            lambda v: check_int("calls.max_in_parking", v, 10, 3600),
        ),
        music_on_hold=get("music_on_hold", None, lambda v: _music_on_hold(v, base)),
    )


def _music_on_hold(value: Any, base: Path) -> Path:
    """An 8 kHz mono 16-bit WAV file, read once here so that a bad one stops the start."""
    path = _existing_file("calls.music_on_hold", value, base)
    try:
        read_wav(str(path))
    except ValueError as exc:
        raise ConfigError("calls.music_on_hold", str(exc)) from None
    return path


def _directory_file(value: Any, base: Path) -> Path:
    return _existing_file("directory.file", value, base)


def _existing_file(key: str, value: Any, base: Path) -> Path:
    text = check_string(key, value)
    if not text:
        raise ConfigError(key, "empty path")
    try:
        path = (base / Path(text).expanduser()).resolve()
        exists = path.is_file()
    except (OSError, RuntimeError, ValueError) as exc:  # no home dir, NUL byte, loops...
        raise ConfigError(key, f"bad path {text!r}: {exc}") from None
    if not exists:
        raise ConfigError(key, f"no such file: {path}")
    return path


def parse_directory(data: dict[str, Any], base: Path, problems: Problems) -> DirectoryConfig:
    if "file" not in data:
        return DirectoryConfig()
    return DirectoryConfig(file=problems.check(None, lambda: _directory_file(data["file"], base)))


def _node(value: Any) -> str:
    text = check_string("cluster.node", value)
    if not text or len(text) > 64 or not all(c.isalnum() or c in "-_." for c in text):
        raise ConfigError(
            "cluster.node", f"expected 1-64 letters, digits, '-', '_' or '.', got {text!r}"
        )
    return text


def _secret(value: Any) -> str:
    text = check_string("cluster.secret", value)
    if len(text) < MIN_SECRET_LENGTH:
        raise ConfigError(
            "cluster.secret",
            f"too short to sign tokens: {len(text)} characters, need at least "
            f"{MIN_SECRET_LENGTH} (a long random string)",
        )
    return text


def parse_cluster(data: dict[str, Any], problems: Problems) -> ClusterConfig:
    d = ClusterConfig()

    def get(name: str, default: T, parse: Callable[[Any], T]) -> T:
        return problems.check(default, lambda: parse(data[name])) if name in data else default

    heartbeat = get(
        "heartbeat", d.heartbeat, lambda v: check_seconds("cluster.heartbeat", v, low=0.1)
    )
    failover = get("failover", d.failover, lambda v: check_seconds("cluster.failover", v, low=1))
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
