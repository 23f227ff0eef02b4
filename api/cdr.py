"""The CDR service: ``GET /uapi/cdr/{ownerId}`` lists finished calls as PhoneCallStat records.

``ownerId`` is resolved like a PhoneCalls ``userId``. Filters (all optional, combined with AND):
``source``/``destination`` (a call matches when one of its sources/destinations, or the party
that answered, equals the value; ``cdr_source_invalid``/``cdr_destination_invalid`` when
malformed), ``startDate``/``endDate`` (ISO 8601; published at or after / before;
``cdr_startdate_invalid``/``cdr_enddate_invalid``), ``disposition`` (0-5;
``cdr_disposition_invalid``), ``flow`` (2, 4 or 8; ``cdr_flow_invalid``), and the standard
``filterBy`` (``source``, ``destination``, ``published``, ``answered``), ``filterOp``,
``filterValue``, ``count``, ``startIndex``, ``sortOrder``, ``fields``. The filters are the
``CdrQuery`` model (``api.queries``), the rest the ``PagingQuery`` model (``api.paging``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from api.context import context
from api.oauth import authenticate
from api.paging import apply_paging, page_links, parse_paging
from api.queries import CdrQuery
from api.render import STAT_FIELDS, call_flow, stat_resource
from api.resources import PageLinks, PhoneCallStatCollection, dump_collection
from api.scope import resolve_user
from api.validation import validated
from engine.model import PhoneCall

logger = logging.getLogger(__name__)


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


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


async def list_cdr(request: Request) -> Response:
    ctx = context(request)
    principal = await authenticate(request)
    user = resolve_user(principal, ctx.directory, request.path_params["ownerId"])
    query = request.query_params
    filters = validated(CdrQuery, dict(query))
    source, destination = filters.source, filters.destination
    start, end = filters.startDate, filters.endDate
    disposition, flow = filters.disposition, filters.flow
    paging = parse_paging(
        query,
        filterable=STAT_FILTERS,
        date_fields=("published", "answered"),
        field_names=STAT_FIELDS,
    )
    finished = [
        call
        for call in await ctx.engine.alist_calls(user_id=user.id)
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
    links = page_links(
        ctx.public_url, request.url.path, request.query_params.multi_items(), paging, total
    )
    records = PhoneCallStatCollection(
        entry=[stat_resource(call) for call in page],
        totalResults=total,
        startIndex=paging.start_index,
        itemsPerPage=len(page),
        links=PageLinks.model_validate(links),
    )
    return JSONResponse(dump_collection(records, paging.fields))
