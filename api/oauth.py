"""OAuth 2.0 client-credentials tokens (RFC 6749 section 4.4) and bearer checks (RFC 6750).

``POST /oauth/token.php`` takes the form fields ``grant_type=client_credentials``, ``client_id``
and ``client_secret`` (or HTTP Basic client authentication, RFC 6749 section 2.3.1, or the same
fields as a JSON object when the Content-Type says JSON); any other
field (VoipNow's ``type=unifiedapi``, ``redirect_uri``...) is ignored. A token is 256 random bits
(``secrets.token_urlsafe``) that lives one hour; only its SHA-256 is stored (``store.save_token``),
so a copy of the database holds no usable token. The wall clock is injected, so expiry is tested
without waiting.

Failed client authentications are counted per client id and source address
(``engine.limiter``): once a client id or an address has failed too often, the endpoint answers
429 ``slow_down`` with ``Retry-After`` without checking the secret, for a time that grows with
each further failure; an address where the client succeeded before is not slowed down by
failures elsewhere.

Every ``/uapi/`` request names its token in ``Authorization: Bearer T`` or in the query parameter
``accessRequestToken=Bearer T`` (the bare token is tolerated there too); missing, unknown and
expired tokens all get 401 ``access_denied``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import inspect
import json
import logging
import math
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, unquote

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from api.errors import ApiError

logger = logging.getLogger(__name__)

TOKEN_LIFETIME = 3600  # seconds, as VoipNow's current documentation says
MAX_FORM_BYTES = 16 * 1024

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the App behind the token."""

    client_id: str
    owner_kind: str  # "user" | "organization" | "admin"
    owner_id: int | None  # None for admin


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def _field(record: Any, name: str, index: int) -> Any:
    """Read a field of whatever the store returns (object, mapping or tuple)."""
    if isinstance(record, dict):
        return record.get(name)
    if isinstance(record, tuple | list):
        return record[index] if index < len(record) else None
    return getattr(record, name, None)


def _as_datetime(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, UTC)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value[:-1] + "+00:00" if value.endswith("Z") else value)
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return None


async def _maybe_await(value: Any) -> Any:
    if inspect.isawaitable(value):
        return await value
    return value


class TokenService:
    """Issues and checks bearer tokens for the directory's Apps."""

    def __init__(
        self, directory: Any, store: Any, clock: Clock = utc_now, lifetime: int = TOKEN_LIFETIME
    ) -> None:
        self._directory = directory
        self._store = store
        self._clock = clock
        self.lifetime = lifetime

    async def issue(self, client_id: str, client_secret: str) -> str | None:
        """A new token for valid credentials, None otherwise."""
        app = self._directory.app(client_id)
        if app is None or not hmac.compare_digest(
            app.client_secret.encode("utf-8", "surrogatepass"),
            client_secret.encode("utf-8", "surrogatepass"),
        ):
            return None
        token = secrets.token_urlsafe(32)
        # the store keeps wall-clock epoch seconds
        expires_at = (self._clock() + timedelta(seconds=self.lifetime)).timestamp()
        await _maybe_await(
            self._store.save_token(
                hash_token(token), app.client_id, app.owner_kind, app.owner_id, expires_at
            )
        )
        logger.info("issued a token to app %s (%s)", app.client_id, app.owner_kind)
        return token

    async def check(self, token: str) -> Principal | None:
        """The App behind a live token, None for unknown or expired ones."""
        if not token or len(token) > 512:
            return None
        record = await _maybe_await(self._store.get_token(hash_token(token)))
        if record is None:
            return None
        expires_at = _as_datetime(_field(record, "expires_at", 4))
        if expires_at is None or expires_at <= self._clock():
            return None
        client_id = _field(record, "client_id", 1)
        if not isinstance(client_id, str) or self._directory.app(client_id) is None:
            return None  # the App was removed from the directory since
        owner_id = _field(record, "owner_id", 3)
        return Principal(
            client_id=client_id,
            owner_kind=str(_field(record, "owner_kind", 2)),
            owner_id=None if owner_id is None else int(owner_id),
        )


def _oauth_error(status: int, error: str, description: str) -> JSONResponse:
    headers = {"Cache-Control": "no-store", "Pragma": "no-cache"}
    if status == 401:
        headers["WWW-Authenticate"] = 'Basic realm="oauth"'
    return JSONResponse(
        {"error": error, "error_description": description}, status_code=status, headers=headers
    )


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
    grant_type = form.get("grant_type")
    if not grant_type:
        return _oauth_error(400, "invalid_request", "grant_type is missing")
    if grant_type != "client_credentials":
        return _oauth_error(
            400,
            "unsupported_grant_type",
            f"grant_type {grant_type[:64]!r} is not supported; use client_credentials",
        )
    basic = _basic_credentials(request.headers.get("authorization"))
    client_id, client_secret = basic or (form.get("client_id", ""), form.get("client_secret", ""))
    if not client_id or not client_secret:
        return _oauth_error(401, "invalid_client", "client_id and client_secret are required")
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
        limiter.failure(client_id, source, now)
        return _oauth_error(401, "invalid_client", "Unknown client or wrong client secret")
    limiter.success(client_id, source, now)
    return JSONResponse(
        {"access_token": token, "token_type": "Bearer", "expires_in": tokens.lifetime},
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
