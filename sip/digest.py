"""HTTP Digest for SIP on the wire, and its client side (RFC 8760, RFC 7616, RFC 3261 §22).

Client side: :func:`parse_challenge` reads a ``WWW-Authenticate``/``Proxy-Authenticate`` value,
:func:`choose_challenge` picks the strongest supported one, and :func:`authorize` builds the
``Authorization``/``Proxy-Authorization`` value.  A challenge without ``qop`` is answered the
RFC 2069 way (no cnonce/nc), as RFC 3261 §22.4 requires for backwards compatibility.
:func:`digest_response` is the computation of RFC 7616 §3.4.1 that both sides use; the server
side (nonces, verification, replay) is :mod:`sip.auth`.

Auth-params (RFC 7235 §2.1): ``name=token`` or ``name="quoted string"`` with backslash escapes,
separated by commas (commas inside quotes are text).  Parsing errors raise
:class:`~sip.errors.RemoteProtocolError`; malformed credentials make
``sip.auth.DigestServer.verify`` return MALFORMED.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from sip.errors import LocalProtocolError, RemoteProtocolError

__all__ = [
    "ALGORITHMS",
    "DigestChallenge",
    "DigestCredentials",
    "authorize",
    "build_credentials",
    "canonical_algorithm",
    "check_value",
    "choose_challenge",
    "digest_response",
    "format_auth_params",
    "make_challenge",
    "parse_auth_params",
    "parse_challenge",
    "parse_credentials",
]

# Canonical algorithm tokens, strongest first, with their hashlib names (RFC 7616 §6.1).
ALGORITHMS: Mapping[str, str] = MappingProxyType(
    {
        "SHA-512-256": "sha512_256",
        "SHA-256": "sha256",
        "MD5": "md5",
    }
)
_STRENGTH: Mapping[str, int] = MappingProxyType(
    {name: rank for rank, name in enumerate(ALGORITHMS)}
)


def canonical_algorithm(token: str) -> tuple[str, bool] | None:
    """("SHA-256", sess?) for any spelling of a known algorithm, None if unknown."""
    upper = token.strip().upper()
    sess = upper.endswith("-SESS")
    base = upper[: -len("-SESS")] if sess else upper
    return (base, sess) if base in ALGORITHMS else None


def _hash(algorithm: str, data: str) -> str:
    return hashlib.new(ALGORITHMS[algorithm], data.encode("utf-8")).hexdigest()


def digest_response(
    *,
    algorithm: str,
    username: str,
    realm: str,
    password: str,
    method: str,
    uri: str,
    nonce: str,
    qop: str | None = None,
    nc: str | None = None,
    cnonce: str | None = None,
    body: bytes = b"",
) -> str:
    """The ``response`` value of RFC 7616 §3.4.1 (and RFC 2069 when ``qop`` is None).

    ``algorithm`` is any spelling of MD5, SHA-256, SHA-512-256, optionally with "-sess".
    """
    known = canonical_algorithm(algorithm)
    if known is None:
        raise LocalProtocolError(f"unsupported digest algorithm {algorithm!r}")
    alg, sess = known
    ha1 = _hash(alg, f"{username}:{realm}:{password}")
    if sess:
        ha1 = _hash(alg, f"{ha1}:{nonce}:{cnonce or ''}")
    if qop is not None and qop.lower() == "auth-int":
        body_hash = hashlib.new(ALGORITHMS[alg], body).hexdigest()
        ha2 = _hash(alg, f"{method}:{uri}:{body_hash}")
    else:
        ha2 = _hash(alg, f"{method}:{uri}")
    if qop is None:
        return _hash(alg, f"{ha1}:{nonce}:{ha2}")
    return _hash(alg, f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}")


# ---------------------------------------------------------------------------------------------
# auth-param lists
# ---------------------------------------------------------------------------------------------

_TCHAR = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
_WS = " \t\r\n"


def parse_auth_params(text: str) -> list[tuple[str, str]]:
    """``a=b, c="d, \\"e\\""`` -> [("a", "b"), ("c", 'd, "e"')]; names lowercased, order kept.

    Unquoted values are read leniently up to the next comma or blank (some UAs write
    ``uri=sip:x`` without quotes).  Duplicate names, a missing '=', an unterminated quoted
    string or junk between parameters raise RemoteProtocolError.
    """
    params: list[tuple[str, str]] = []
    seen: set[str] = set()
    i, n = 0, len(text)
    while True:
        while i < n and (text[i] in _WS or text[i] == ","):
            i += 1
        if i >= n:
            return params
        start = i
        while i < n and text[i] in _TCHAR:
            i += 1
        name = text[start:i].lower()
        if not name:
            raise RemoteProtocolError(f"auth-param: expected a name at {text[i : i + 20]!r}")
        while i < n and text[i] in _WS:
            i += 1
        if i >= n or text[i] != "=":
            raise RemoteProtocolError(f"auth-param: {name!r} has no '=' value")
        i += 1
        while i < n and text[i] in _WS:
            i += 1
        if i < n and text[i] == '"':
            i += 1
            chars: list[str] = []
            while True:
                if i >= n:
                    raise RemoteProtocolError(f"auth-param: unterminated quoted value for {name!r}")
                ch = text[i]
                if ch == "\\":
                    if i + 1 >= n:
                        raise RemoteProtocolError(f"auth-param: dangling escape in {name!r}")
                    chars.append(text[i + 1])
                    i += 2
                elif ch == '"':
                    i += 1
                    break
                else:
                    chars.append(ch)
                    i += 1
            value = "".join(chars)
        else:
            start = i
            while i < n and text[i] not in _WS and text[i] not in ',"':
                i += 1
            value = text[start:i]
            if not value:
                raise RemoteProtocolError(f"auth-param: empty value for {name!r}")
        if name in seen:
            raise RemoteProtocolError(f"auth-param: {name!r} given twice")
        seen.add(name)
        params.append((name, value))
        while i < n and text[i] in _WS:
            i += 1
        if i < n and text[i] != ",":
            raise RemoteProtocolError(
                f"auth-param: expected ',' after {name!r}, got {text[i : i + 20]!r}"
            )


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def check_value(name: str, value: str) -> None:
    if any(ch in value for ch in "\r\n\x00"):
        raise LocalProtocolError(f"auth-param {name!r}: CR, LF or NUL in value")


def format_auth_params(params: Iterable[tuple[str, str, bool]]) -> str:
    """``(name, value, quoted)`` triples -> ``name="value", name=token``."""
    parts = []
    for name, value, quoted in params:
        check_value(name, value)
        if not quoted and (not value or any(ch not in _TCHAR for ch in value)):
            quoted = True  # never write an unparseable token
        parts.append(f"{name}={_quote(value) if quoted else value}")
    return ", ".join(parts)


def _checked_params(text: str) -> dict[str, str]:
    """The auth-params of ``text`` as a dict; RemoteProtocolError if a value is not text.

    Messages are decoded with ``surrogateescape``, so bytes that are not UTF-8 arrive here as
    lone surrogates: they (and control characters) cannot be hashed or logged, so the whole
    header is refused as malformed.
    """
    params = dict(parse_auth_params(text))
    for name, value in params.items():
        if any(_bad_char(ch) for ch in value):
            raise RemoteProtocolError(f"auth: {name} holds bytes that are not UTF-8 text")
    return params


def _bad_char(ch: str) -> bool:
    code = ord(ch)
    return (code < 0x20 and ch != "\t") or code == 0x7F or 0xD800 <= code <= 0xDFFF


def _split_scheme(value: str) -> tuple[str, str]:
    text = value.strip(_WS)
    end = 0
    while end < len(text) and text[end] not in _WS:
        end += 1
    scheme, rest = text[:end], text[end:]
    if scheme.lower() != "digest":
        raise RemoteProtocolError(f"auth: scheme {scheme[:20]!r} is not Digest", 401)
    return scheme, rest


# ---------------------------------------------------------------------------------------------
# Challenges and credentials
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DigestChallenge:
    """One ``WWW-Authenticate``/``Proxy-Authenticate: Digest ...`` value."""

    realm: str
    nonce: str
    algorithm: str = "MD5"  # as written; absent means MD5 (RFC 7616 §3.3)
    qop: tuple[str, ...] = ()  # () = RFC 2069 style (no qop)
    opaque: str | None = None
    stale: bool = False
    domain: str | None = None
    extra: tuple[tuple[str, str], ...] = ()  # parameters this module does not interpret

    @classmethod
    def parse(cls, value: str) -> DigestChallenge:
        return parse_challenge(value)

    @property
    def supported(self) -> bool:
        """We can answer it: known algorithm, and no qop or one we do (auth, auth-int)."""
        if canonical_algorithm(self.algorithm) is None:
            return False
        return not self.qop or any(q in ("auth", "auth-int") for q in self.qop)

    def __str__(self) -> str:
        params: list[tuple[str, str, bool]] = [("realm", self.realm, True)]
        if self.domain is not None:
            params.append(("domain", self.domain, True))
        params.append(("nonce", self.nonce, True))
        if self.opaque is not None:
            params.append(("opaque", self.opaque, True))
        if self.stale:
            params.append(("stale", "true", False))
        params.append(("algorithm", self.algorithm, False))
        if self.qop:
            params.append(("qop", ",".join(self.qop), True))
        params += [(k, v, True) for k, v in self.extra]
        return "Digest " + format_auth_params(params)


def parse_challenge(value: str) -> DigestChallenge:
    """Parse a Digest challenge; RemoteProtocolError if it is not one or lacks realm/nonce."""
    _, rest = _split_scheme(value)
    params = _checked_params(rest)
    for required in ("realm", "nonce"):
        if required not in params:
            raise RemoteProtocolError(f"auth: challenge without {required}")
    known = {"realm", "nonce", "algorithm", "qop", "opaque", "stale", "domain"}
    qop = tuple(q.strip().lower() for q in params.get("qop", "").split(",") if q.strip())
    return DigestChallenge(
        realm=params["realm"],
        nonce=params["nonce"],
        algorithm=params.get("algorithm", "MD5"),
        qop=qop,
        opaque=params.get("opaque"),
        stale=params.get("stale", "").lower() == "true",
        domain=params.get("domain"),
        extra=tuple((k, v) for k, v in params.items() if k not in known),
    )


def choose_challenge(values: Iterable[str]) -> DigestChallenge:
    """The strongest challenge we can answer among several header values (RFC 8760 §2.4)."""
    usable: list[DigestChallenge] = []
    problems: list[str] = []
    for value in values:
        try:
            challenge = parse_challenge(value)
        except RemoteProtocolError as exc:
            problems.append(exc.reason)
            continue
        if challenge.supported:
            usable.append(challenge)
        else:
            problems.append(f"unsupported algorithm/qop {challenge.algorithm}/{challenge.qop}")
    if not usable:
        detail = "; ".join(problems) or "no challenge"
        raise RemoteProtocolError(f"auth: no usable Digest challenge ({detail})", 401)

    def rank(c: DigestChallenge) -> int:
        known = canonical_algorithm(c.algorithm)
        return _STRENGTH[known[0]] if known else len(_STRENGTH)

    return min(usable, key=rank)


@dataclass(frozen=True, slots=True)
class DigestCredentials:
    """One ``Authorization``/``Proxy-Authorization: Digest ...`` value."""

    username: str
    realm: str
    nonce: str
    uri: str
    response: str
    algorithm: str | None = None  # None: not written (means MD5)
    cnonce: str | None = None
    opaque: str | None = None
    qop: str | None = None
    nc: str | None = None  # 8 hex digits
    extra: tuple[tuple[str, str], ...] = ()

    @classmethod
    def parse(cls, value: str) -> DigestCredentials:
        return parse_credentials(value)

    def __str__(self) -> str:
        params: list[tuple[str, str, bool]] = [
            ("username", self.username, True),
            ("realm", self.realm, True),
            ("nonce", self.nonce, True),
            ("uri", self.uri, True),
            ("response", self.response, True),
        ]
        if self.algorithm is not None:
            params.append(("algorithm", self.algorithm, False))
        if self.cnonce is not None:
            params.append(("cnonce", self.cnonce, True))
        if self.opaque is not None:
            params.append(("opaque", self.opaque, True))
        if self.qop is not None:
            params.append(("qop", self.qop, False))
        if self.nc is not None:
            params.append(("nc", self.nc, False))
        params += [(k, v, True) for k, v in self.extra]
        return "Digest " + format_auth_params(params)


def parse_credentials(value: str) -> DigestCredentials:
    """Parse Digest credentials; RemoteProtocolError if malformed or incomplete."""
    _, rest = _split_scheme(value)
    params = _checked_params(rest)
    for required in ("username", "realm", "nonce", "uri", "response"):
        if required not in params:
            raise RemoteProtocolError(f"auth: credentials without {required}")
    qop = params.get("qop")
    nc = params.get("nc")
    cnonce = params.get("cnonce")
    if qop is not None:
        if nc is None or cnonce is None:
            raise RemoteProtocolError("auth: qop given without nc and cnonce")
        if len(nc) != 8 or any(ch not in "0123456789abcdefABCDEF" for ch in nc):
            raise RemoteProtocolError(f"auth: nc must be 8 hex digits, got {nc[:20]!r}")
    known = {"username", "realm", "nonce", "uri", "response", "algorithm", "cnonce", "opaque"}
    known |= {"qop", "nc"}
    return DigestCredentials(
        username=params["username"],
        realm=params["realm"],
        nonce=params["nonce"],
        uri=params["uri"],
        response=params["response"],
        algorithm=params.get("algorithm"),
        cnonce=cnonce,
        opaque=params.get("opaque"),
        qop=qop,
        nc=nc,
        extra=tuple((k, v) for k, v in params.items() if k not in known),
    )


def build_credentials(
    method: str,
    uri: str,
    challenge: DigestChallenge,
    username: str,
    password: str,
    *,
    cnonce: str,
    nc: int = 1,
    body: bytes = b"",
) -> DigestCredentials:
    """Answer ``challenge`` for a request ``method uri`` (RFC 7616 §3.4, RFC 2069 if no qop).

    ``cnonce`` is a fresh random value from the caller (used with qop or a -sess algorithm;
    this sans-IO module draws no random value); ``nc`` counts the requests made with this
    nonce (1 for the first).  ``body`` is only used if the server demands qop=auth-int.
    """
    known = canonical_algorithm(challenge.algorithm)
    if known is None:
        raise RemoteProtocolError(f"auth: unsupported algorithm {challenge.algorithm!r}", 401)
    if not 0 < nc <= 0xFFFFFFFF:
        raise LocalProtocolError(f"nonce count out of range: {nc}")
    qop: str | None
    if not challenge.qop:
        qop = None  # RFC 2069 compatibility (RFC 3261 §22.4)
    elif "auth" in challenge.qop:
        qop = "auth"
    elif "auth-int" in challenge.qop:
        qop = "auth-int"
    else:
        raise RemoteProtocolError(f"auth: no supported qop in {challenge.qop}", 401)
    nc_text = f"{nc:08x}" if qop else None
    if (qop or known[1]) and not cnonce:
        raise LocalProtocolError("auth: a cnonce is needed to answer this challenge")
    cnonce_value = cnonce if qop or known[1] else None
    response = digest_response(
        algorithm=challenge.algorithm,
        username=username,
        realm=challenge.realm,
        password=password,
        method=method,
        uri=uri,
        nonce=challenge.nonce,
        qop=qop,
        nc=nc_text,
        cnonce=cnonce_value,
        body=body,
    )
    return DigestCredentials(
        username=username,
        realm=challenge.realm,
        nonce=challenge.nonce,
        uri=uri,
        response=response,
        algorithm=challenge.algorithm,
        cnonce=cnonce_value,
        opaque=challenge.opaque,
        qop=qop,
        nc=nc_text,
    )


def authorize(
    method: str,
    uri: str,
    challenge: DigestChallenge | str,
    username: str,
    password: str,
    *,
    cnonce: str,
    nc: int = 1,
    body: bytes = b"",
) -> str:
    """The ``Authorization``/``Proxy-Authorization`` header value answering ``challenge``
    (``cnonce``: a fresh random value from the caller, see :func:`build_credentials`)."""
    if isinstance(challenge, str):
        challenge = parse_challenge(challenge)
    return str(
        build_credentials(
            method, uri, challenge, username, password, cnonce=cnonce, nc=nc, body=body
        )
    )


def make_challenge(
    realm: str,
    nonce: str,
    *,
    algorithm: str = "SHA-256",
    stale: bool = False,
    opaque: str | None = None,
) -> DigestChallenge:
    """A qop=auth challenge (for servers that manage nonces themselves; see DigestServer)."""
    return DigestChallenge(
        realm=realm, nonce=nonce, algorithm=algorithm, qop=("auth",), opaque=opaque, stale=stale
    )
