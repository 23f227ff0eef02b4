"""What every handler needs, kept on ``app.state.ctx`` (one per app, no module state)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from starlette.requests import Request

from api.egress import CallbackPolicy
from api.mapping import api_error
from api.oauth import Clock, TokenService
from engine.directory import Directory
from engine.errors import EngineDraining
from engine.limiter import FailureLimiter
from engine.ports import EngineApi
from engine.trace import CallTraces


class CallbackSink(Protocol):
    """Where a created call's ``statusCallback`` is handed (``api.events.CallbackDispatcher``)."""

    def watch(self, call_id: str, url: str, *, after_seq: int | None = None) -> None: ...


@dataclass(frozen=True, slots=True)
class ApiContext:
    engine: EngineApi
    tokens: TokenService
    public_url: str
    clock: Clock
    callbacks: CallbackSink | None  # None: a statusCallback is refused
    callback_policy: CallbackPolicy  # where a statusCallback may point
    # failed client authentications at the token endpoint, per client id and source address
    token_limiter: FailureLimiter = field(default_factory=lambda: FailureLimiter("api token"))
    traces: CallTraces | None = None  # the per-call SIP traces (None: no SIP, empty traces)
    sip_address: tuple[str, int] | None = None  # the server's side in a trace's pcap

    @property
    def directory(self) -> Directory:
        return self.engine.directory

    def default_wait_for_pickup(self) -> int:
        return self.engine.config.calls.wait_for_pickup

    def refuse_when_draining(self) -> None:
        """Answer as the engine's own refusal would, before a request does any work."""
        if self.engine.draining:
            raise api_error(EngineDraining("the server is shutting down"))


def context(request: Request) -> ApiContext:
    ctx: ApiContext = request.app.state.ctx
    return ctx
