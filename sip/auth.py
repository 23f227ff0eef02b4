"""HTTP Digest authentication for SIP (RFC 8760, computations of RFC 7616, RFC 3261 §22).

Theory of operation
-------------------
Server side (:class:`DigestServer`): a request without acceptable credentials is answered 401
(``WWW-Authenticate``) or, by a proxy, 407 (``Proxy-Authenticate``) carrying one challenge per
algorithm, the strongest first (RFC 8760 §2.4: SHA-256 before MD5).  The nonce is *stateless*:
``base64url(timestamp || salt || HMAC-SHA256(secret, realm || timestamp || salt))``, so any
process holding the secret can check it without storage, and its age is checked against
``now`` (passed in: this module never reads a clock).  :meth:`DigestServer.verify` recomputes
the response (RFC 7616 §3.4.1) with the password found by a caller-supplied lookup and returns
an :class:`AuthResult`: OK, STALE (right password, nonce expired or not ours: challenge again
with ``stale=true`` so the client retries without asking its user, RFC 7616 §3.3), REJECTED
(wrong password, realm, user, algorithm...) or MALFORMED (answer 400).

Replay: a stateless nonce alone could be reused until it expires, so ``verify`` also asks a
:class:`NonceCounts` memory to *advance* the nonce count (``nc``) of the nonce: a count that is
not above the last one accepted for that nonce (a replayed or re-ordered request) is answered
STALE, so the client is challenged afresh.  Credentials without ``qop`` carry no count: when
``require_qop`` is off they are accepted once per nonce (as if their count were the largest).
The memory is behind a small protocol so that several processes can share it (a database);
:class:`MemoryNonceCounts` is the bounded in-process one.

Client side: :func:`parse_challenge` reads a ``WWW-Authenticate``/``Proxy-Authenticate`` value,
:func:`choose_challenge` picks the strongest supported one, and :func:`authorize` builds the
``Authorization``/``Proxy-Authorization`` value.  A challenge without ``qop`` is answered the
RFC 2069 way (no cnonce/nc), as RFC 3261 §22.4 requires for backwards compatibility.

Auth-params (RFC 7235 §2.1): ``name=token`` or ``name="quoted string"`` with backslash escapes,
separated by commas (commas inside quotes are text).  Parsing errors raise
:class:`~sip.errors.RemoteProtocolError`; malformed credentials make ``verify`` return MALFORMED.
"""

from __future__ import annotations

import base64
import binascii
import enum
import hashlib
import hmac
import logging
import math
import secrets
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Protocol

from sip.errors import LocalProtocolError, RemoteProtocolError

logger = logging.getLogger(__name__)

__all__ = [
    "ALGORITHMS",
    "AuthResult",
    "AuthStatus",
    "DigestChallenge",
    "DigestCredentials",
    "DigestServer",
    "MemoryNonceCounts",
    "NonceCounts",
    "authorize",
    "build_credentials",
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


def _canonical_algorithm(token: str) -> tuple[str, bool] | None:
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
    known = _canonical_algorithm(algorithm)
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


def _check_value(name: str, value: str) -> None:
    if any(ch in value for ch in "\r\n\x00"):
        raise LocalProtocolError(f"auth-param {name!r}: CR, LF or NUL in value")


def format_auth_params(params: Iterable[tuple[str, str, bool]]) -> str:
    """``(name, value, quoted)`` triples -> ``name="value", name=token``."""
    parts = []
    for name, value, quoted in params:
        _check_value(name, value)
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
        if _canonical_algorithm(self.algorithm) is None:
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
        known = _canonical_algorithm(c.algorithm)
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
    cnonce: str | None = None,
    nc: int = 1,
    body: bytes = b"",
) -> DigestCredentials:
    """Answer ``challenge`` for a request ``method uri`` (RFC 7616 §3.4, RFC 2069 if no qop).

    ``cnonce`` defaults to a fresh random value; ``nc`` counts the requests made with this
    nonce (1 for the first).  ``body`` is only used if the server demands qop=auth-int.
    """
    known = _canonical_algorithm(challenge.algorithm)
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
    cnonce_value = (cnonce or secrets.token_hex(16)) if qop or known[1] else None
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
    cnonce: str | None = None,
    nc: int = 1,
    body: bytes = b"",
) -> str:
    """The ``Authorization``/``Proxy-Authorization`` header value answering ``challenge``."""
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


# ---------------------------------------------------------------------------------------------
# Server side
# ---------------------------------------------------------------------------------------------


class AuthStatus(enum.Enum):
    OK = "ok"  # credentials valid: the request is authenticated as .username
    STALE = "stale"  # right password, old/foreign nonce: challenge again with stale=true
    UNKNOWN_NONCE = "unknown_nonce"  # wrong response to a nonce not ours (or expired): not a
    # guess at the password (a guess needs a nonce we issued), challenge again, stale=false
    REJECTED = "rejected"  # wrong password/user/realm/...: challenge again (or 403)
    MALFORMED = "malformed"  # unparseable credentials: answer 400


@dataclass(frozen=True, slots=True)
class AuthResult:
    status: AuthStatus
    username: str | None = None  # the claimed username, whenever one could be read
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.status is AuthStatus.OK


NO_QOP_COUNT = 1 << 32  # the count given to credentials without qop: above any real nc


class NonceCounts(Protocol):
    """Memory of the nonce counts accepted per nonce (shared by the processes of a realm)."""

    def advance(self, nonce: str, nc: int, *, issued: float, expires: float, now: float) -> bool:
        """Record ``nc`` for ``nonce`` if it is above every count accepted for it so far.

        True: accepted (and remembered until ``expires``).  False: a count already used or
        lower (a replay), or a nonce this memory cannot vouch for.  ``issued`` is when the
        nonce was made; ``now`` the current time, on the clock of ``issued``/``expires``.
        """
        ...


class MemoryNonceCounts:
    """A bounded in-process :class:`NonceCounts`: O(1) per request, at most ``max_entries``.

    Entries are kept in first-use order and dropped once their nonce expired.  When the memory
    is full, the oldest entry is evicted and the *floor* rises to its nonce's issue time: a
    nonce issued at or before the floor that the memory does not hold is refused (its client
    is challenged again), so an evicted nonce can never be replayed.  The floor starts at
    ``since``: a process that starts with an empty memory passes its start time, so nonces
    issued before it (whose counts it never saw) are refused too.
    """

    def __init__(self, max_entries: int = 100_000, *, since: float = -math.inf) -> None:
        if max_entries < 1:
            raise LocalProtocolError("MemoryNonceCounts needs room for one entry at least")
        self.max_entries = max_entries
        self.floor = since
        # nonce -> (last accepted count, issued, expires)
        self._entries: OrderedDict[str, tuple[int, float, float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def advance(self, nonce: str, nc: int, *, issued: float, expires: float, now: float) -> bool:
        entries = self._entries
        for _ in range(2):  # amortised: every entry is dropped once
            if not entries:
                break
            oldest = next(iter(entries))
            if entries[oldest][2] >= now:
                break
            del entries[oldest]
        entry = entries.get(nonce)
        if entry is not None:
            if nc <= entry[0]:
                return False
            entries[nonce] = (nc, entry[1], entry[2])
            return True
        if issued <= self.floor or expires < now:
            return False
        while len(entries) >= self.max_entries:
            _, (_, evicted_issued, _) = entries.popitem(last=False)
            self.floor = max(self.floor, evicted_issued)
            if issued <= self.floor:
                return False
        entries[nonce] = (nc, issued, expires)
        return True


_SALT_LEN = 8
_MAC_LEN = 16
_NONCE_LEN = 8 + _SALT_LEN + _MAC_LEN
_CLOCK_SKEW = 1.0  # seconds a nonce may appear to come from the future (clock granularity)


class DigestServer:
    """Challenges and verifies Digest credentials for one realm, with stateless nonces.

    ``algorithms`` are offered in the given order (strongest first, RFC 8760 §2.4) and are the
    only ones accepted.  ``proxy`` selects 407/Proxy-Authenticate instead of 401.
    ``require_qop`` refuses RFC 2069 style credentials (no qop), which carry no client nonce.
    ``counts`` remembers the nonce counts accepted (replay protection); servers that share
    nonces (the same secret and realm) should share it.  Default: a memory of their own.
    """

    def __init__(
        self,
        realm: str,
        secret: bytes,
        nonce_ttl: float = 300.0,
        *,
        algorithms: Sequence[str] = ("SHA-256", "MD5"),
        proxy: bool = False,
        require_qop: bool = True,
        counts: NonceCounts | None = None,
    ) -> None:
        if not secret:
            raise LocalProtocolError("DigestServer needs a non-empty secret")
        canonical: list[str] = []
        for alg in algorithms:
            known = _canonical_algorithm(alg)
            if known is None or known[1]:
                raise LocalProtocolError(f"DigestServer: unsupported algorithm {alg!r}")
            canonical.append(known[0])
        if not canonical:
            raise LocalProtocolError("DigestServer: no algorithms")
        _check_value("realm", realm)
        self.realm = realm
        self._secret = secret
        self.nonce_ttl = nonce_ttl
        self.algorithms = tuple(canonical)
        self.proxy = proxy
        self.require_qop = require_qop
        self.counts: NonceCounts = MemoryNonceCounts() if counts is None else counts

    @property
    def status(self) -> int:
        """The status of a challenge response: 401, or 407 for a proxy."""
        return 407 if self.proxy else 401

    @property
    def challenge_header(self) -> str:
        return "Proxy-Authenticate" if self.proxy else "WWW-Authenticate"

    @property
    def credentials_header(self) -> str:
        return "Proxy-Authorization" if self.proxy else "Authorization"

    # -- nonces -------------------------------------------------------------------------------
    def _mac(self, stamp: bytes, salt: bytes) -> bytes:
        msg = self.realm.encode("utf-8") + b"\x00" + stamp + salt
        return hmac.new(self._secret, msg, hashlib.sha256).digest()[:_MAC_LEN]

    def make_nonce(self, now: float, salt: bytes | None = None) -> str:
        """A nonce that carries its own issue time and proves we issued it."""
        salt = secrets.token_bytes(_SALT_LEN) if salt is None else salt
        if len(salt) != _SALT_LEN:
            raise LocalProtocolError(f"nonce salt must be {_SALT_LEN} bytes")
        stamp = round(now * 1000).to_bytes(8, "big", signed=True)
        raw = stamp + salt + self._mac(stamp, salt)
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")

    def nonce_issued(self, nonce: str) -> float | None:
        """When we issued ``nonce``; None if we did not issue it (or it is garbled)."""
        try:
            raw = base64.urlsafe_b64decode(nonce + "=" * (-len(nonce) % 4))
        except (binascii.Error, ValueError):
            return None
        if len(raw) != _NONCE_LEN:
            return None
        stamp, salt, mac = raw[:8], raw[8 : 8 + _SALT_LEN], raw[8 + _SALT_LEN :]
        if not hmac.compare_digest(mac, self._mac(stamp, salt)):
            return None
        return int.from_bytes(stamp, "big", signed=True) / 1000

    def nonce_age(self, nonce: str, now: float) -> float | None:
        """Seconds since we issued ``nonce``; None if we did not issue it (or it is garbled)."""
        issued = self.nonce_issued(nonce)
        return None if issued is None else now - issued

    def _nonce_problem(self, nonce: str, now: float) -> str | None:
        age = self.nonce_age(nonce, now)
        if age is None:
            return "nonce not issued by us"
        if age < -_CLOCK_SKEW:
            return "nonce from the future"
        if age > self.nonce_ttl:
            return f"nonce expired {age - self.nonce_ttl:.1f} s ago"
        return None

    # -- challenges ---------------------------------------------------------------------------
    def challenges(self, now: float, *, stale: bool = False) -> list[DigestChallenge]:
        """One challenge per algorithm, strongest first, sharing one fresh nonce."""
        nonce = self.make_nonce(now)
        return [
            make_challenge(self.realm, nonce, algorithm=a, stale=stale) for a in self.algorithms
        ]

    def challenge_values(self, now: float, *, stale: bool = False) -> list[str]:
        """The header values for a 401/407: one ``WWW-/Proxy-Authenticate`` header each."""
        return [str(c) for c in self.challenges(now, stale=stale)]

    # -- verification -------------------------------------------------------------------------
    def verify(
        self,
        method: str,
        credentials: str | DigestCredentials,
        password_lookup: Callable[[str], str | None],
        now: float,
        *,
        uri: str | None = None,
    ) -> AuthResult:
        """Check one ``Authorization``/``Proxy-Authorization`` value for a request ``method``.

        ``password_lookup(username)`` returns the password or None for an unknown user.  If
        ``uri`` (the Request-URI as text) is given, the credentials' uri must equal it
        (RFC 7616 §3.4.6); SIP proxies may legitimately rewrite it, so this is opt-in.
        """
        if isinstance(credentials, str):
            try:
                creds = parse_credentials(credentials)
            except RemoteProtocolError as exc:
                return AuthResult(AuthStatus.MALFORMED, None, exc.reason)
        else:
            creds = credentials
        user = creds.username

        def rejected(reason: str) -> AuthResult:
            logger.debug("digest rejected for %r: %s", user, reason)
            return AuthResult(AuthStatus.REJECTED, user, reason)

        if creds.realm != self.realm:
            return rejected(f"realm {creds.realm!r} is not ours ({self.realm!r})")
        known = _canonical_algorithm(creds.algorithm or "MD5")
        if known is None or known[1] or known[0] not in self.algorithms:
            return rejected(f"algorithm {creds.algorithm!r} not offered")
        if creds.qop is None:
            if self.require_qop:
                return rejected("qop=auth required (RFC 2069 credentials refused)")
        elif creds.qop.lower() != "auth":
            return rejected(f"qop {creds.qop!r} not offered")
        if uri is not None and creds.uri != uri:
            return rejected(f"uri {creds.uri!r} does not match the request")
        for key, value in creds.extra:
            if key in ("userhash", "username*") and value.lower() != "false":
                return rejected(f"{key} is not supported")
        password = password_lookup(user)
        if password is None:
            return rejected("unknown user")
        expected = digest_response(
            algorithm=known[0],
            username=user,
            realm=self.realm,
            password=password,
            method=method,
            uri=creds.uri,
            nonce=creds.nonce,
            qop=None if creds.qop is None else "auth",
            nc=creds.nc,
            cnonce=creds.cnonce,
        )
        matches = hmac.compare_digest(expected.encode(), creds.response.lower().encode())
        problem = self._nonce_problem(creds.nonce, now)
        if problem is not None:
            # a guess counts only against a nonce we issued: anyone can make up nonces, and
            # from a forged source address at no cost
            status = AuthStatus.STALE if matches else AuthStatus.UNKNOWN_NONCE
            return AuthResult(status, user, problem)
        if not matches:
            return rejected("wrong response (password mismatch)")
        issued = self.nonce_issued(creds.nonce)
        assert issued is not None  # _nonce_problem checked it
        # without qop the response does not cover nc: such credentials get one use per nonce
        count = NO_QOP_COUNT if creds.qop is None or creds.nc is None else int(creds.nc, 16)
        if not self.counts.advance(
            creds.nonce, count, issued=issued, expires=issued + self.nonce_ttl, now=now
        ):
            used = f"with nc {creds.nc}" if creds.qop is not None else "once (no qop)"
            return AuthResult(AuthStatus.STALE, user, f"nonce already used {used} (replay?)")
        return AuthResult(AuthStatus.OK, user, "")
