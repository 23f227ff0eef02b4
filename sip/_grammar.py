"""Shared lexical helpers for the SIP grammar (RFC 3261 §25.1).

Everything here works on already-decoded header text in which line folding has been replaced by
a single space (RFC 3261 §7.3.1).  The splitting helpers are quote-aware (quoted-string with
backslash escapes) and angle-bracket-aware, with a fast path for the common case of values that
contain neither.
"""

from __future__ import annotations

import re

from sip.errors import RemoteProtocolError

__all__ = [
    "HOSTNAME_PATTERN",
    "IPV6REF_PATTERN",
    "TOKEN_RE",
    "Params",
    "format_params",
    "is_token",
    "parse_params",
    "quote",
    "split_top_level",
    "unquote",
]

Params = tuple[tuple[str, str | None], ...]

# token = 1*(alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~")
TOKEN_RE = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+")
_token_fullmatch = TOKEN_RE.fullmatch

# gen-value = token / host / quoted-string; host adds "[", "]" and ":" for IPv6 references.
_GEN_VALUE_RE = re.compile(r"[A-Za-z0-9\-.!%*_+`'~:\[\]]+|\"(?:[^\"\\]|\\.)*\"", re.S)
_gen_value_fullmatch = _GEN_VALUE_RE.fullmatch

_WS = " \t"
_SIMPLE_PARAMS_RE = re.compile(
    r"[A-Za-z0-9\-.!%*_+`'~]+(?:=[A-Za-z0-9\-.!%*_+`'~:\[\]]+)?"
    r"(?:;[A-Za-z0-9\-.!%*_+`'~]+(?:=[A-Za-z0-9\-.!%*_+`'~:\[\]]+)?)*"
)
_simple_params = _SIMPLE_PARAMS_RE.fullmatch

# host = hostname / IPv4address / IPv6reference (RFC 3261 §25.1).
# Leniency: "_" is accepted inside host labels (seen in real deployments' host names).
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9\-_]*[A-Za-z0-9])?"
HOSTNAME_PATTERN = rf"{_LABEL}(?:\.{_LABEL})*\.?"
IPV6REF_PATTERN = r"\[[0-9A-Fa-f:.]+\]"


def is_token(text: str) -> bool:
    return _token_fullmatch(text) is not None


def quote(text: str) -> str:
    """Return ``text`` as a quoted-string (escaping backslash and double quote)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def unquote(text: str) -> str:
    """Strip the quotes of a quoted-string and resolve its ``\\x`` escapes.

    Text that is not quoted is returned unchanged.
    """
    if len(text) < 2 or text[0] != '"' or text[-1] != '"':
        return text
    inner = text[1:-1]
    if "\\" not in inner:
        return inner
    out: list[str] = []
    i = 0
    n = len(inner)
    while i < n:
        ch = inner[i]
        if ch == "\\" and i + 1 < n:
            out.append(inner[i + 1])
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def split_top_level(text: str, sep: str) -> list[str]:
    """Split ``text`` at ``sep`` where it is outside quoted strings and ``<...>``.

    Raises RemoteProtocolError on an unterminated quoted string.
    """
    if '"' not in text and "<" not in text:
        return text.split(sep)
    parts: list[str] = []
    start = 0
    i = 0
    n = len(text)
    in_quote = False
    in_angle = False
    while i < n:
        ch = text[i]
        if in_quote:
            if ch == "\\":
                i += 1
            elif ch == '"':
                in_quote = False
        elif ch == '"':
            in_quote = True
        elif in_angle:
            if ch == ">":
                in_angle = False
        elif ch == "<":
            in_angle = True
        elif ch == sep:
            parts.append(text[start:i])
            start = i + 1
        i += 1
    if in_quote:
        raise RemoteProtocolError(f"unterminated quoted string in {text!r}")
    if in_angle:
        raise RemoteProtocolError(f"unterminated '<' in {text!r}")
    parts.append(text[start:])
    return parts


def parse_params(text: str) -> Params:
    """Parse ``;name[=value]`` pairs (generic-param, RFC 3261 §25.1).

    ``text`` is what follows the first ``;`` (it may start with the ``;`` itself).  LWS around
    ``;`` and ``=`` is allowed (RFC 3261 SEMI/EQUAL).  Names are lowercased; values are kept as
    written (a quoted value keeps its quotes, so it serialises back unchanged).
    """
    if text.startswith(";"):
        text = text[1:]
    if _simple_params(text) is not None:
        # Fast path: no whitespace, no quotes, all names tokens and values gen-values.
        return tuple(
            [
                (name.lower(), value if eq else None)
                for name, eq, value in [p.partition("=") for p in text.split(";")]
            ]
        )
    out: list[tuple[str, str | None]] = []
    for raw in split_top_level(text, ";") if '"' in text else text.split(";"):
        name, eq, value = raw.partition("=")
        name = name.strip(_WS)
        if not name or _token_fullmatch(name) is None:
            raise RemoteProtocolError(f"bad parameter {raw.strip()!r}")
        if eq:
            value = value.strip(_WS)
            if not value or _gen_value_fullmatch(value) is None:
                raise RemoteProtocolError(f"bad parameter value {raw.strip()!r}")
            out.append((name.lower(), value))
        else:
            out.append((name.lower(), None))
    return tuple(out)


def format_params(params: Params) -> str:
    return "".join(f";{k}" if v is None else f";{k}={v}" for k, v in params)


def find_param(params: Params, name: str) -> str | None:
    for k, v in params:
        if k == name:
            return v
    return None


def has_param(params: Params, name: str) -> bool:
    return any(k == name for k, _ in params)


def set_params(params: Params, changes: dict[str, str | None]) -> Params:
    """Replace the named params in place (keeping order) and append the new ones."""
    lowered = {k.lower(): v for k, v in changes.items()}
    out = [(k, lowered.pop(k)) if k in lowered else (k, v) for k, v in params]
    out.extend(lowered.items())
    return tuple(out)
