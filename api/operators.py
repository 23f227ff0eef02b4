"""What operators see: a call's SIP trace, the registered devices, the console's call list and
counters, and the console page itself (``GET /console``).

- ``GET /uapi/phoneCalls/{userId}/{extension}/{phoneCallId}/trace`` (scopes and errors as the
  call's GET): ``[{"ts", "direction", "party", "peer", "message"}]`` in the order the messages
  passed; ``?format=pcap`` gives the same as a pcap file (``engine.pcap``) for Wireshark or
  sngrep. A call whose trace is no longer kept (or that never had a SIP leg) gives ``[]``.
- ``GET /uapi/registrations``: the devices registered for the extensions in the App's scope
  (a User App: its user's; an Organization App: its organization's; the Administrator App:
  every extension).
- ``GET /uapi/console/calls``: the calls in the App's scope, newest first, paged
  (``state=live|ended|all``, ``count``, ``startIndex``); each a PhoneCall resource.
- ``GET /uapi/console/summary``: counters for the App's scope.
- ``GET /console`` and ``GET /console/{asset}``: the console's static page (no token; it signs
  in through ``/oauth/token.php`` and calls the endpoints above with its token).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from importlib import resources as package_files
from typing import Literal

from pydantic import BaseModel, Field
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from api.context import ApiContext, context
from api.errors import ApiError
from api.oauth import Principal, authenticate
from api.phonecalls import owned_call
from api.render import call_path, call_resource
from api.resources import PhoneCallCollection, dump
from api.scope import path_extension
from engine.directory import Extension
from engine.model import CallState, PhoneCall
from engine.pcap import trace_pcap
from engine.trace import TraceRecord

logger = logging.getLogger(__name__)

MAX_PAGE = 200
CONSOLE_ASSETS = {
    "console.js": "text/javascript; charset=utf-8",
    "console.css": "text/css; charset=utf-8",
}


class TraceMessage(BaseModel):
    """One SIP message of a call's trace."""

    ts: str = Field(description="When it passed: ISO 8601, UTC, milliseconds, `Z` suffix.")
    direction: Literal["in", "out"] = Field(description="`in`: received, `out`: sent.")
    party: str = Field(description="The number of the party whose leg the message belongs to.")
    peer: str = Field(description="The other side's address, `host:port`.")
    message: str = Field(description="The message's full text.")


class Registration(BaseModel):
    """One registered device (a binding of an extension)."""

    extension: str = Field(description="The extension, extended number (`0003*210`).")
    contact: str = Field(description="The Contact URI the device registered.")
    received: str = Field(description="Where its REGISTER came from: `HOST:PORT TRANSPORT`.")
    expires: str = Field(description="When the binding lapses: ISO 8601, UTC.")


class RegistrationCollection(BaseModel):
    entry: list[Registration]
    totalResults: int


class ConsoleSummary(BaseModel):
    """Counters of the App's scope."""

    liveCalls: int = Field(description="Calls running now.")
    ringing: int = Field(description="Live calls not bridged yet.")
    bridged: int = Field(description="Live calls bridged.")
    endedCalls: int = Field(description="Finished calls kept in the store.")
    registeredDevices: int = Field(description="Unexpired device bindings.")
    extensions: int = Field(description="Extensions in scope.")
    serverLiveCalls: int = Field(description="Calls running in this server, in every scope.")


OPERATOR_MODELS: tuple[type[BaseModel], ...] = (
    TraceMessage,
    RegistrationCollection,
    ConsoleSummary,
)


def _iso_ms(ts: float) -> str:
    stamp = datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds")
    return stamp.replace("+00:00", "Z")


def trace_json(records: list[TraceRecord]) -> list[dict[str, str]]:
    return [
        TraceMessage(
            ts=_iso_ms(r.ts),
            direction="in" if r.direction == "in" else "out",
            party=r.party,
            peer=r.peer,
            message=r.message,
        ).model_dump()
        for r in records
    ]


async def call_trace(request: Request) -> Response:
    ctx = context(request)
    principal = await authenticate(request)
    user, extension = path_extension(
        principal, ctx.directory, request.path_params["userId"], request.path_params["extension"]
    )
    wanted = request.query_params.get("format", "json")
    if wanted not in ("json", "pcap"):
        raise ApiError(400, "trace_format_invalid", "format must be json or pcap")
    call = await owned_call(ctx, user, extension, request.path_params["phoneCallId"])
    records = (ctx.traces.trace(call.id) if ctx.traces is not None else None) or []
    if wanted == "pcap":
        local = ctx.sip_address or ("127.0.0.1", 5060)
        return Response(
            trace_pcap(records, local),
            media_type="application/vnd.tcpdump.pcap",
            headers={"Content-Disposition": f'attachment; filename="{call.id}.pcap"'},
        )
    return JSONResponse(trace_json(records))


# --- the App's scope -------------------------------------------------------------------------


def _scope_filter(principal: Principal) -> tuple[int | None, int | None]:
    """(user id, organization id) the store filters the App's calls by."""
    if principal.owner_kind == "user":
        return principal.owner_id, None
    if principal.owner_kind == "organization":
        return None, principal.owner_id
    return None, None


def _in_scope(principal: Principal, call: PhoneCall) -> bool:
    if principal.owner_kind == "user":
        return call.user_id == principal.owner_id
    if principal.owner_kind == "organization":
        return call.organization_id == principal.owner_id
    return True


def _scope_extensions(ctx: ApiContext, principal: Principal) -> list[Extension]:
    directory = ctx.directory
    if principal.owner_kind == "user" and principal.owner_id is not None:
        return directory.extensions_of_user(principal.owner_id)
    if principal.owner_kind == "organization" and principal.owner_id is not None:
        return directory.extensions_of(principal.owner_id)
    return list(directory.extensions)


def _registrations(ctx: ApiContext, principal: Principal) -> list[Registration]:
    rows: list[Registration] = []
    for extension in _scope_extensions(ctx, principal):
        for record in ctx.engine.registrations(extension.extended):
            rows.append(
                Registration(
                    extension=record.extended,
                    contact=record.contact_uri,
                    received=record.received,
                    expires=_iso_ms(record.expires_at),
                )
            )
    return rows


async def registrations(request: Request) -> Response:
    ctx = context(request)
    principal = await authenticate(request)
    rows = _registrations(ctx, principal)
    body = RegistrationCollection(entry=rows, totalResults=len(rows))
    return JSONResponse(body.model_dump())


def _int_query(request: Request, name: str, default: int, low: int, high: int) -> int:
    text = request.query_params.get(name)
    if text is None:
        return default
    if not (text.isascii() and text.isdigit()) or not low <= int(text) <= high:
        raise ApiError(
            400, f"{name.lower()}_invalid", f"{name} must be a whole number from {low} to {high}"
        )
    return int(text)


async def console_calls(request: Request) -> Response:
    ctx = context(request)
    principal = await authenticate(request)
    state = request.query_params.get("state", "all")
    if state not in ("live", "ended", "all"):
        raise ApiError(400, "state_invalid", "state must be live, ended or all")
    count = _int_query(request, "count", 50, 1, MAX_PAGE)
    start = _int_query(request, "startIndex", 0, 0, 10**9)
    ended = {"live": False, "ended": True, "all": None}[state]
    user_id, organization_id = _scope_filter(principal)
    total = await ctx.engine.acount_calls(
        ended=ended, user_id=user_id, organization_id=organization_id
    )
    page = await ctx.engine.alist_calls(
        ended=ended,
        user_id=user_id,
        organization_id=organization_id,
        limit=count,
        offset=start,
        newest_first=True,
    )
    entries = [
        call_resource(
            call,
            ctx.directory,
            call_path(ctx.public_url, str(call.user_id), str(call.extension), call.id),
        )
        for call in page
    ]
    listing = PhoneCallCollection(
        entry=entries, totalResults=total, startIndex=start, itemsPerPage=len(page)
    )
    return JSONResponse(dump(listing))


async def console_summary(request: Request) -> Response:
    ctx = context(request)
    principal = await authenticate(request)
    live = [call for call in ctx.engine.live_calls() if _in_scope(principal, call)]
    bridged = sum(1 for call in live if call.state is CallState.BRIDGED)
    user_id, organization_id = _scope_filter(principal)
    summary = ConsoleSummary(
        liveCalls=len(live),
        ringing=len(live) - bridged,
        bridged=bridged,
        endedCalls=await ctx.engine.acount_calls(
            ended=True, user_id=user_id, organization_id=organization_id
        ),
        registeredDevices=len(_registrations(ctx, principal)),
        extensions=len(_scope_extensions(ctx, principal)),
        serverLiveCalls=len(ctx.engine.live_calls()),
    )
    return JSONResponse(summary.model_dump())


# --- the page ----------------------------------------------------------------------------------

_PAGE_HEADERS = {
    # the page loads only its own files and talks only to this server
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
    ),
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-cache",
}


def _static(name: str) -> bytes:
    return (package_files.files("api") / "static" / "console" / name).read_bytes()


async def console_page(request: Request) -> Response:
    return Response(
        _static("index.html"), media_type="text/html; charset=utf-8", headers=_PAGE_HEADERS
    )


async def console_asset(request: Request) -> Response:
    name = request.path_params["asset"]
    media_type = CONSOLE_ASSETS.get(name)
    if media_type is None:
        raise ApiError(404, "not_found", f"No console file {name[:64]!r}")
    return Response(_static(name), media_type=media_type, headers=_PAGE_HEADERS)


__all__ = [
    "OPERATOR_MODELS",
    "call_trace",
    "console_asset",
    "console_calls",
    "console_page",
    "console_summary",
    "registrations",
    "trace_json",
]
