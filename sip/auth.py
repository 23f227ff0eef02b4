"""HTTP Digest authentication for SIP, the server side (RFC 8760, RFC 7616, RFC 3261 §22).

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

The wire format (challenges, credentials, auth-params) and the client side are
:mod:`sip.digest`.
"""

from __future__ import annotations

import base64
import binascii
import enum
import hashlib
import hmac
import logging
import math
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from sip.digest import (
    DigestChallenge,
    DigestCredentials,
    canonical_algorithm,
    check_value,
    digest_response,
    make_challenge,
    parse_credentials,
)
from sip.errors import LocalProtocolError, RemoteProtocolError

logger = logging.getLogger(__name__)

__all__ = [
    "AuthResult",
    "AuthStatus",
    "DigestServer",
    "MemoryNonceCounts",
    "NonceCounts",
]


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
    ``random_bytes(n)`` gives ``n`` fresh random bytes, each nonce's salt (``secrets.token_bytes``
    in a server: this sans-IO module draws no random value).
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
        random_bytes: Callable[[int], bytes],
    ) -> None:
        if not secret:
            raise LocalProtocolError("DigestServer needs a non-empty secret")
        canonical: list[str] = []
        for alg in algorithms:
            known = canonical_algorithm(alg)
            if known is None or known[1]:
                raise LocalProtocolError(f"DigestServer: unsupported algorithm {alg!r}")
            canonical.append(known[0])
        if not canonical:
            raise LocalProtocolError("DigestServer: no algorithms")
        check_value("realm", realm)
        self.realm = realm
        self._secret = secret
        self.nonce_ttl = nonce_ttl
        self.algorithms = tuple(canonical)
        self.proxy = proxy
        self.require_qop = require_qop
        self.counts: NonceCounts = MemoryNonceCounts() if counts is None else counts
        self._random_bytes = random_bytes

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
        """A nonce that carries its own issue time and proves we issued it (``salt``: fresh
        random bytes from ``random_bytes`` unless given)."""
        salt = self._random_bytes(_SALT_LEN) if salt is None else salt
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
        known = canonical_algorithm(creds.algorithm or "MD5")
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
