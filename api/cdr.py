"""The CDR service: ``GET /uapi/cdr/{ownerId}`` lists finished calls as PhoneCallStat records.

``ownerId`` is resolved like a PhoneCalls ``userId``. Filters (all optional, combined with AND):
``source``/``destination`` (a call matches when one of its sources/destinations, or the party
that answered, equals the value; ``cdr_source_invalid``/``cdr_destination_invalid`` when
malformed), ``startDate``/``endDate`` (ISO 8601; published at or after / before;
``cdr_startdate_invalid``/``cdr_enddate_invalid``), ``disposition`` (0-5;
``cdr_disposition_invalid``), ``flow`` (2, 4 or 8; ``cdr_flow_invalid``), and the standard
``filterBy`` (``source``, ``destination``, ``published``, ``answered``), ``filterOp``,
``filterValue``, ``count``, ``startIndex``, ``sortOrder``, ``fields``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime

from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from api.context import context
from api.errors import ApiError
from api.oauth import authenticate
from api.paging import apply_paging, page_links, parse_date, parse_paging
from api.render import STAT_FIELDS, call_flow, stat_json
from api.scope import resolve_user
from engine.model import PhoneCall

logger = logging.getLogger(__name__)

MAX_NUMBER_LENGTH = 64


def _numbers(call: PhoneCall, role: str) -> list[str]:
    given = call.sources if role == "source" else call.destinations
    numbers = [str(n) for n in given]
    numbers += [str(p.number) for p in call.parties if str(p.role) == role]
    return numbers


STAT_FILTERS: dict[str, Callable[[PhoneCall], object]] = {
    "source": lambda call: _numbers(call, "source"),
    "destination": lambda call: _numbers(call, "destination"),
    "published": lambda call: call.published,
    "answered": lambda call: call.answered,
}


def _date(query: QueryParams, name: str, code: str) -> datetime | None:
    text = query.get(name)
    if text is None:
        return None
    value = parse_date(text)
    if value is None:
        raise ApiError(400, code, f"{name} must be an ISO 8601 date, e.g. 2026-11-26T10:00:00Z")
    return value


def _code(query: QueryParams, name: str, allowed: tuple[int, ...], code: str) -> int | None:
    text = query.get(name)
    if text is None:
        return None
    text = text.strip()
    if not (text.isascii() and text.isdigit()) or len(text) > 3 or int(text) not in allowed:
        raise ApiError(400, code, f"{name} must be one of {', '.join(map(str, allowed))}")
    return int(text)


def _number(query: QueryParams, name: str, code: str) -> str | None:
    text: str | None = query.get(name)
    if text is None:
        return None
    if not text.strip() or len(text) > MAX_NUMBER_LENGTH:
        raise ApiError(400, code, f"{name} must be a phone or extension number")
    return text.strip()


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


async def list_cdr(request: Request) -> Response:
    ctx = context(request)
    principal = await authenticate(request)
    user = resolve_user(principal, ctx.directory, request.path_params["ownerId"])
    query = request.query_params
    source = _number(query, "source", "cdr_source_invalid")
    destination = _number(query, "destination", "cdr_destination_invalid")
    start = _date(query, "startDate", "cdr_startdate_invalid")
    end = _date(query, "endDate", "cdr_enddate_invalid")
    if start is not None and end is not None and end < start:
        raise ApiError(400, "cdr_enddate_invalid", "endDate is before startDate")
    disposition = _code(query, "disposition", (0, 1, 2, 3, 4, 5), "cdr_disposition_invalid")
    flow = _code(query, "flow", (2, 4, 8), "cdr_flow_invalid")
    paging = parse_paging(
        query,
        filterable=STAT_FILTERS,
        date_fields=("published", "answered"),
        field_names=STAT_FIELDS,
    )
    finished = [
        call
        for call in ctx.engine.list_calls(user_id=user.id)
        if call.user_id == user.id and call.ended is not None
    ]
    selected = []
    for call in finished:
        if source is not None and source not in _numbers(call, "source"):
            continue
        if destination is not None and destination not in _numbers(call, "destination"):
            continue
        if start is not None and _aware(call.published) < start:
            continue
        if end is not None and _aware(call.published) >= end:
            continue
        if disposition is not None and (
            call.disposition is None or int(call.disposition) != disposition
        ):
            continue
        if flow is not None and call_flow(call) != flow:
            continue
        selected.append(call)
    total, page = apply_paging(selected, paging, STAT_FILTERS, lambda call: call.published)
    if not page:
        return Response(status_code=204)
    return JSONResponse(
        {
            "entry": [stat_json(call, paging.fields) for call in page],
            "totalResults": total,
            "startIndex": paging.start_index,
            "itemsPerPage": len(page),
            "links": page_links(
                ctx.public_url, request.url.path, request.query_params.multi_items(), paging, total
            ),
        }
    )
