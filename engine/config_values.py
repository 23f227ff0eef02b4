"""Checkers of single configuration values: a string, an integer in range, seconds, a host,
``HOST:PORT`` and ``TRANSPORT:HOST:PORT``. Each gives the value back or raises ``ConfigError``
naming the key (the address parsers raise ``ValueError`` with the reason: they also read
addresses that are not configuration, such as a directory's routes).
"""

from __future__ import annotations

from functools import partial
from typing import Any

from engine.config_model import TRANSPORTS, ConfigError, ListenAddress, Problems

_HOST_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_:")


def host_problem(host: str) -> str | None:
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
    problem = host_problem(host)
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


def type_name(value: Any) -> str:
    names = {bool: "boolean", int: "integer", float: "number", str: "string", list: "array"}
    return names.get(type(value), "table" if isinstance(value, dict) else type(value).__name__)


def check_string(key: str, value: Any) -> str:
    if not isinstance(value, str):
        raise ConfigError(key, f"expected a string, got {type_name(value)} {value!r}")
    return value


def check_strings(key: str, value: Any, *, empty_ok: bool = False) -> list[str]:
    if not isinstance(value, list):
        raise ConfigError(key, f"expected an array of strings, got {type_name(value)}")
    if not value and not empty_ok:
        raise ConfigError(key, "expected at least one entry")
    problems = Problems()
    items = [
        problems.check("", partial(check_string, f"{key}[{i}]", v)) for i, v in enumerate(value)
    ]
    problems.raise_any()
    return items


def check_int(key: str, value: Any, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(key, f"expected an integer, got {type_name(value)} {value!r}")
    if value < low or (high is not None and value > high):
        bound = f"{low}-{high}" if high is not None else f">= {low}"
        raise ConfigError(key, f"{value} out of range {bound}")
    return value


def check_seconds(key: str, value: Any, *, low: float = 0) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(key, f"expected a number of seconds, got {type_name(value)} {value!r}")
    if not value >= low or value == float("inf"):
        raise ConfigError(key, f"expected a finite number of seconds >= {low:g}, got {value!r}")
    return value


def check_host(key: str, value: Any) -> str:
    text = check_string(key, value)
    try:
        host, port = parse_host_port(text)
    except ValueError as exc:
        raise ConfigError(key, str(exc)) from None
    if port is not None:
        raise ConfigError(key, f"expected an address without a port, got {text!r}")
    return host
