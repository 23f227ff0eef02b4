"""What every handler needs, kept on ``app.state.ctx`` (one per app, no module state)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request

from api.egress import CallbackPolicy
from api.errors import ApiError
from api.oauth import Clock, TokenService
from engine.limiter import FailureLimiter


@dataclass(frozen=True, slots=True)
class ApiContext:
    engine: Any  # engine.engine.Engine
    tokens: TokenService
    public_url: str
    clock: Clock
    callbacks: Any | None  # api.events.CallbackDispatcher, or None: statusCallback refused
    callback_policy: CallbackPolicy  # where a statusCallback may point
    # failed client authentications at the token endpoint, per client id and source address
    token_limiter: FailureLimiter = field(default_factory=lambda: FailureLimiter("api token"))

    @property
    def directory(self) -> Any:
        return self.engine.directory

    def default_wait_for_pickup(self) -> int:
        config = getattr(self.engine, "config", None)
        calls = getattr(config, "calls", None)
        return int(getattr(calls, "wait_for_pickup", 25))

    def refuse_when_draining(self) -> None:
        if getattr(self.engine, "draining", False):
            raise ApiError(
                503,
                "service_unavailable",
                "The server is shutting down and accepts no new calls or actions",
                {"Retry-After": "30"},
            )


def context(request: Request) -> ApiContext:
    ctx: ApiContext = request.app.state.ctx
    return ctx
