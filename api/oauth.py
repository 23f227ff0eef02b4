"""OAuth 2.0 client-credentials tokens (RFC 6749 section 4.4) and bearer checks (RFC 6750).

``POST /oauth/token.php`` takes the form fields ``grant_type=client_credentials``, ``client_id``
and ``client_secret`` (or HTTP Basic client authentication, RFC 6749 section 2.3.1, or the same
fields as a JSON object when the Content-Type says JSON), checked by the ``TokenRequest`` model
(``api.token_request``); any other field (VoipNow's ``type=unifiedapi``, ``redirect_uri``...)
is ignored.

A token is self-contained and signed; nothing is stored per token. It reads
``CLAIMS.SIGNATURE``: ``CLAIMS`` is the base64url (RFC 4648 section 5, no padding) of the JSON
array ``[1, client_id, owner_kind, owner_id, expires, random_id]`` (format version 1, the wall
clock's epoch second the token dies at, 128 random bits), ``SIGNATURE`` the base64url of
HMAC-SHA256 over ``CLAIMS`` with the key ``derive_key(cluster_secret, "api-token")``
(``engine.keys``). Any process holding the secret checks a token without a lookup: the
signature (constant-time compare), the expiry, and then that the App still exists in the
directory with the same owner, so an App removed from the directory loses its tokens when the
process loads the new directory. A token lives one hour; the wall clock is injected, so expiry
is tested without waiting.

Failed client authentications are counted per client id and source address
(``engine.limiter``): once a client id or an address has failed too often, the endpoint answers
429 ``slow_down`` with ``Retry-After`` without checking the secret, for a time that grows with
each further failure; an address where the client succeeded before is not slowed down by
failures elsewhere.

Every ``/uapi/`` request names its token in ``Authorization: Bearer T`` or in the query parameter
``accessRequestToken=Bearer T`` (the bare token is tolerated there too); missing, forged,
tampered and expired tokens all get 401 ``access_denied``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import math
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import parse_qsl, unquote

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from api.errors import ApiError
from api.resources import OAuthError, OAuthToken, dump
from api.token_request import TokenRequest
from api.validation import validated
from engine.directory import App, Directory

logger = logging.getLogger(__name__)

TOKEN_LIFETIME = 3600  # seconds, as VoipNow's current documentation says
TOKEN_KEY_PURPOSE = "api-token"  # engine.keys.derive_key purpose of the signing key
TOKEN_VERSION = 1
MAX_TOKEN_LENGTH = 4096  # longer ones are refused before any decoding
MAX_FORM_BYTES = 16 * 1024
OWNER_KINDS = ("user", "organization", "admin")

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the App behind the token."""

    client_id: str
    owner_kind: str  # "user" | "organization" | "admin"
    owner_id: int | None  # None for admin


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes | None:
    """Strict unpadded base64url; None for anything else."""
    if not text.isascii() or "=" in text or len(text) % 4 == 1:
        return None
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)
    except (binascii.Error, ValueError):
        return None


def _claims(payload: bytes) -> tuple[str, str, int | None, int] | None:
    """``(client_id, owner_kind, owner_id, expires)`` of a version 1 claims array."""
    try:
        claims = json.loads(payload)
    except (ValueError, RecursionError):
        return None
    if not isinstance(claims, list) or len(claims) != 6 or claims[0] != TOKEN_VERSION:
        return None
    _, client_id, kind, owner_id, expires, _random_id = claims
    if (
        not isinstance(client_id, str)
        or kind not in OWNER_KINDS
        or not (owner_id is None or (isinstance(owner_id, int) and not isinstance(owner_id, bool)))
        or not isinstance(expires, int)
        or isinstance(expires, bool)
    ):
        return None
    return client_id, kind, owner_id, expires


_UNKNOWN_CLIENT_SECRET = "\0" * 32  # what the secret of an unknown client id is compared with


class TokenService:
    """Issues and checks the signed bearer tokens of the directory's Apps (see module doc).

    ``key`` is the signing key, ``derive_key(cluster_secret(...), TOKEN_KEY_PURPOSE)``: every
    ``TokenService`` built with the same key accepts the tokens of the others."""

    def __init__(
        self,
        directory: Directory,
        key: bytes,
        clock: Clock = utc_now,
        lifetime: int = TOKEN_LIFETIME,
    ) -> None:
        if len(key) < 16:
            raise ValueError("the token signing key must be at least 16 bytes")
        self._directory = directory
        self._key = key
        self._clock = clock
        self.lifetime = lifetime

    def _sign(self, claims: str) -> str:
        return _b64encode(hmac.new(self._key, claims.encode("ascii"), hashlib.sha256).digest())

    def make(self, app: App) -> str:
        """A new token for the directory App ``app``."""
        # whole seconds, rounded down: a token never outlives the lifetime it is announced with
        expires = int(self._clock().timestamp()) + self.lifetime
        claims = [
            TOKEN_VERSION,
            app.client_id,
            app.owner_kind,
            app.owner_id,
            expires,
            _b64encode(secrets.token_bytes(16)),
        ]
        encoded = _b64encode(json.dumps(claims, separators=(",", ":")).encode("utf-8"))
        return f"{encoded}.{self._sign(encoded)}"

    async def issue(self, client_id: str, client_secret: str) -> str | None:
        """A new token for valid credentials, None otherwise."""
        app = self._directory.app(client_id)
        # compared even for an unknown client id, so the time taken does not tell which exist
        expected = app.client_secret if app is not None else _UNKNOWN_CLIENT_SECRET
        matches = hmac.compare_digest(
            expected.encode("utf-8", "surrogatepass"),
            client_secret.encode("utf-8", "surrogatepass"),
        )
        if app is None or not matches:
            return None
        token = self.make(app)
        logger.info("issued a token to app %s (%s)", app.client_id, app.owner_kind)
        return token

    async def check(self, token: str) -> Principal | None:
        """The App behind a valid, unexpired token of a still existing App; None otherwise."""
        if not token or len(token) > MAX_TOKEN_LENGTH or token.count(".") != 1:
            return None
        encoded, signature = token.split(".")
        if not encoded.isascii() or not hmac.compare_digest(
            signature.encode("ascii", "replace"), self._sign(encoded).encode("ascii")
        ):
            return None
        payload = _b64decode(encoded)
        claims = None if payload is None else _claims(payload)
        if claims is None:  # signed by us, so only an older or newer format can land here
            logger.warning("a token with a valid signature has unreadable claims")
            return None
        client_id, kind, owner_id, expires = claims
        if expires <= self._clock().timestamp():
            return None
        app = self._directory.app(client_id)
        if app is None or (app.owner_kind, app.owner_id) != (kind, owner_id):
            logger.info("token of app %s refused: the app is gone or changed owner", client_id)
            return None
        return Principal(client_id=client_id, owner_kind=kind, owner_id=owner_id)


def _oauth_error(status: int, error: str, description: str) -> JSONResponse:
    headers = {"Cache-Control": "no-store", "Pragma": "no-cache"}
    if status == 401:
        headers["WWW-Authenticate"] = 'Basic realm="oauth"'
    body = OAuthError.model_validate({"error": error, "error_description": description})
    return JSONResponse(dump(body), status_code=status, headers=headers)


def _basic_credentials(header: str | None) -> tuple[str, str] | None:
    if not header or header[:6].lower() != "basic ":
        return None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    client_id, sep, secret = decoded.partition(":")
    if not sep:
        return None
    return unquote(client_id), unquote(secret)


async def token_endpoint(request: Request) -> Response:
    """POST /oauth/token.php"""
    tokens: TokenService = request.app.state.ctx.tokens  # an api.context.ApiContext
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            return _oauth_error(400, "invalid_request", "The request body is too large")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return _oauth_error(400, "invalid_request", "The form is not UTF-8 text")
    # client_credentials requests are x-www-form-urlencoded (RFC 6749 4.4.2); the query string
    # is read too, for clients that put the fields there.
    form: dict[str, str] = dict(parse_qsl(request.url.query, keep_blank_values=True))
    if "json" in request.headers.get("content-type", "").lower():
        try:
            data = json.loads(text) if text.strip() else {}
        except (ValueError, RecursionError):
            return _oauth_error(400, "invalid_request", "The JSON body is malformed")
        if not isinstance(data, dict):
            return _oauth_error(400, "invalid_request", "The JSON body must be an object")
        form.update({str(k): v for k, v in data.items() if isinstance(v, str)})
    else:
        form.update(parse_qsl(text, keep_blank_values=True))
    basic = _basic_credentials(request.headers.get("authorization"))
    if basic is not None:
        form["client_id"], form["client_secret"] = basic
    try:
        checked = validated(TokenRequest, form)
    except ApiError as exc:
        return _oauth_error(exc.status, exc.code, exc.message)
    client_id, client_secret = checked.client_id, checked.client_secret
    limiter = request.app.state.ctx.token_limiter  # engine.limiter.FailureLimiter
    source = request.client.host if request.client else "unknown"
    now = request.app.state.ctx.clock().timestamp()
    wait = limiter.retry_after(client_id, source, now)
    if wait is not None:
        seconds = max(1, math.ceil(wait))
        response = _oauth_error(
            429, "slow_down", f"Too many failed attempts: try again in {seconds} s"
        )
        response.headers["Retry-After"] = str(seconds)
        return response
    token = await tokens.issue(client_id, client_secret)
    if token is None:
        known = request.app.state.ctx.engine.directory.app(client_id) is not None
        limiter.failure(client_id, source, now, known_user=known)
        return _oauth_error(401, "invalid_client", "Unknown client or wrong client secret")
    limiter.success(client_id, source, now)
    return JSONResponse(
        dump(OAuthToken(access_token=token, token_type="Bearer", expires_in=tokens.lifetime)),
        headers={"Cache-Control": "no-store", "Pragma": "no-cache"},
    )


def bearer_token(request: Request) -> str | None:
    """The token of a request, from the Authorization header or ``accessRequestToken``."""
    header = request.headers.get("authorization")
    if header is not None:
        scheme, _, value = header.strip().partition(" ")
        if scheme.lower() != "bearer":
            return None
        return value.strip() or None
    query = request.query_params.get("accessRequestToken")
    if query is None:
        return None
    query = query.strip()
    if query[:7].lower() == "bearer ":
        query = query[7:].strip()
    return query or None


async def authenticate(request: Request) -> Principal:
    """The Principal of a /uapi/ request, or ApiError 401 access_denied."""
    tokens: TokenService = request.app.state.ctx.tokens  # an api.context.ApiContext
    token = bearer_token(request)
    if token is None:
        raise ApiError(
            401,
            "access_denied",
            "An access token is required: send 'Authorization: Bearer TOKEN'",
            {"WWW-Authenticate": 'Bearer realm="uapi"'},
        )
    principal = await tokens.check(token)
    if principal is None:
        raise ApiError(
            401,
            "access_denied",
            "The access token is invalid or has expired",
            {"WWW-Authenticate": 'Bearer realm="uapi", error="invalid_token"'},
        )
    return principal
