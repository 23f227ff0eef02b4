"""UAPI standard request parameters for collections: paging, one filter, order and fields.

``count`` (1-5000, default 20; ``count_invalid``), ``startIndex`` (0-5000, default 0;
``startindex_invalid``), ``filterBy`` (a filterable field; ``filterby_invalid``), ``filterOp``
(``contains``, ``equals``, ``greaterThan``, ``inArray``, ``lessThan``, ``present``,
``startsWith``; default ``equals``; ``filterop_invalid``), ``filterValue`` (``inArray`` takes a
comma-separated list; dates are ISO 8601; ``filtervalue_invalid``), ``sortOrder``
(``ascending``/``descending`` by publish time, default ascending; ``sortorder_invalid``) and
``fields`` (comma-separated field names; ``fields_invalid``).

The query is the ``PagingQuery`` model: it checks the parameters in that order and gives the
OpenAPI document their descriptions (``api.queries.query_parameters``).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, TypeVar
from urllib.parse import quote, urlencode

from pydantic import BaseModel, Field, PlainValidator, ValidationInfo

from api.errors import ApiError
from api.validation import rule, validated

logger = logging.getLogger(__name__)

DEFAULT_COUNT = 20
MAX_COUNT = 5000
MAX_START_INDEX = 5000
FILTER_OPS = ("contains", "equals", "greaterThan", "inArray", "lessThan", "present", "startsWith")
SORT_ORDERS = ("ascending", "descending")

T = TypeVar("T")
# a filterValue: text or a date, or a list of those for inArray
FilterValue = str | datetime | list[str] | list[datetime] | None
# the seconds of a time of day, when they are a leap second ("23:59:60")
_LEAP_SECOND = re.compile(r"[0-9]{2}:[0-9]{2}:(60)(?=[.zZ+-]|$)")


@dataclass(frozen=True, slots=True)
class Paging:
    count: int
    start_index: int
    filter_by: str | None
    filter_op: str
    filter_value: FilterValue
    descending: bool
    fields: frozenset[str] | None


def parse_date(text: str) -> datetime | None:
    """ISO 8601 date or date-time (``Z`` or offset; naive = UTC) -> aware UTC, else None.

    Every RFC 3339 date-time is accepted (the OpenAPI ``date-time`` format): a leap second
    (``23:59:60``) is read as the last microsecond before the next minute, and a time whose UTC
    form falls outside years 1-9999 (``0001-01-01T00:00:00+01:00``) as the first or last
    moment Python can hold; for a filter bound that is the same thing."""
    text = text.strip()
    if not text or len(text) > 40:
        return None
    leap = _LEAP_SECOND.search(text)
    if leap is not None:
        text = text[: leap.start(1)] + "59" + text[leap.end(1) :]
    try:
        value = datetime.fromisoformat(text[:-1] + "+00:00" if text[-1:] in "zZ" else text)
    except ValueError:
        return None
    if leap is not None:
        value = value.replace(microsecond=999999)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError:  # beyond year 1 or 9999 once in UTC
        edge = datetime.min if value.year == 1 else datetime.max
        return edge.replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class PagingRules:
    """What the paging query's rules need of the collection: the validation context."""

    filterable: Collection[str]  # the names filterBy may take, in the order errors list them
    date_fields: frozenset[str]
    field_names: frozenset[str]


def _rules(info: ValidationInfo) -> PagingRules:
    rules = info.context
    if not isinstance(rules, PagingRules):
        raise TypeError("validate the paging query with a PagingRules context")
    return rules


def _integer(name: str, low: int, high: int, code: str) -> PlainValidator:
    def check(value: Any, info: ValidationInfo) -> int:
        text = str(value).strip()
        if not (text.isascii() and text.isdigit()) or len(text) > 9 or not low <= int(text) <= high:
            raise ApiError(400, code, f"{name} must be an integer from {low} to {high}")
        return int(text)

    return rule(check, Annotated[int, Field(ge=low, le=high)])


def _filter_op(value: Any, info: ValidationInfo) -> str:
    if value not in FILTER_OPS:
        raise ApiError(400, "filterop_invalid", f"filterOp must be one of: {', '.join(FILTER_OPS)}")
    return str(value)


def _filter_by(value: Any, info: ValidationInfo) -> str | None:
    filterable = _rules(info).filterable
    if value is not None and value not in filterable:
        raise ApiError(400, "filterby_invalid", f"filterBy must be one of: {', '.join(filterable)}")
    return None if value is None else str(value)


def _filter_value(value: Any, info: ValidationInfo) -> FilterValue:
    filter_by, filter_op = info.data.get("filterBy"), info.data.get("filterOp")
    if filter_by is None or filter_op is None or filter_op == "present":
        return None  # (an earlier field's error is answered first)
    if value is None or value == "":
        raise ApiError(400, "filtervalue_invalid", "filterValue is missing")
    texts = [v.strip() for v in value.split(",")] if filter_op == "inArray" else [value]
    values: list[str] | list[datetime] = texts
    if filter_by in _rules(info).date_fields:
        dates = [d for d in map(parse_date, texts) if d is not None]
        if len(dates) != len(texts):
            raise ApiError(
                400, "filtervalue_invalid", f"filterValue must be an ISO 8601 date for {filter_by}"
            )
        values = dates
    return values if filter_op == "inArray" else values[0]


def _sort_order(value: Any, info: ValidationInfo) -> str:
    if value not in SORT_ORDERS:
        raise ApiError(400, "sortorder_invalid", "sortOrder must be ascending or descending")
    return str(value)


def _fields(value: Any, info: ValidationInfo) -> frozenset[str] | None:
    if value is None:
        return None
    requested = {f.strip() for f in str(value).split(",") if f.strip()}
    unknown = requested - _rules(info).field_names
    if not requested or unknown:
        raise ApiError(
            400,
            "fields_invalid",
            f"Unknown fields: {', '.join(sorted(unknown)[:10]) or '(none given)'}",
        )
    return frozenset(requested)


FilterOp = Literal[
    "contains", "equals", "greaterThan", "inArray", "lessThan", "present", "startsWith"
]


class PagingQuery(BaseModel):
    """The standard query of a collection, checked in this order. ``filterBy`` and ``fields``
    name a collection's own fields, so each operation documents them itself."""

    count: Annotated[int, _integer("count", 1, MAX_COUNT, "count_invalid")] = Field(
        default=DEFAULT_COUNT, description="Page size, 1-5000. Error `count_invalid`."
    )
    startIndex: Annotated[int, _integer("startIndex", 0, MAX_START_INDEX, "startindex_invalid")] = (
        Field(default=0, description="Index of the first item, 0-5000. Error `startindex_invalid`.")
    )
    filterOp: Annotated[str, rule(_filter_op, FilterOp)] = Field(
        default="equals", description="How filterValue is compared. Error `filterop_invalid`."
    )
    filterBy: Annotated[str | None, rule(_filter_by, str | None)] = None
    filterValue: Annotated[FilterValue, rule(_filter_value, str | None)] = Field(
        default=None,
        validate_default=True,
        description=(
            "The value compared (comma-separated for inArray; ISO 8601 for dates). Required "
            "with filterBy unless filterOp is `present`. Error `filtervalue_invalid`."
        ),
    )
    sortOrder: Annotated[str, rule(_sort_order, Literal["ascending", "descending"])] = Field(
        default="ascending", description="Order by publish time. Error `sortorder_invalid`."
    )
    fields: Annotated[frozenset[str] | None, rule(_fields, str | None)] = None


# documented by each operation with its own names (api/openapi/paths.py)
OWN_PARAMETERS = frozenset({"filterBy", "fields"})


def parse_paging(
    query: Mapping[str, str],
    *,
    filterable: Collection[str],  # the names filterBy may take
    date_fields: Iterable[str],
    field_names: Iterable[str],
) -> Paging:
    rules = PagingRules(filterable, frozenset(date_fields), frozenset(field_names))
    checked = validated(PagingQuery, dict(query), rules)
    return Paging(
        checked.count,
        checked.startIndex,
        checked.filterBy,
        checked.filterOp,
        checked.filterValue,
        checked.sortOrder == "descending",
        checked.fields,
    )


def _matches_one(value: object, op: str, wanted: object) -> bool:
    if value is None:
        return False
    if op == "present":
        return True
    if isinstance(value, datetime):
        moment: datetime = value if value.tzinfo else value.replace(tzinfo=UTC)
        if not isinstance(wanted, datetime):
            return False
        if op in ("equals", "inArray"):
            return moment == wanted
        if op == "greaterThan":
            return moment > wanted
        if op == "lessThan":
            return moment < wanted
        return False
    text = str(value)
    if op in ("equals", "inArray"):
        return text == str(wanted)
    if op == "contains":
        return str(wanted) in text
    if op == "startsWith":
        return text.startswith(str(wanted))
    if op == "greaterThan":
        return text > str(wanted)
    if op == "lessThan":
        return text < str(wanted)
    return False


def matches(value: object, op: str, wanted: FilterValue) -> bool:
    """Does a field value (or any element of a list value) pass the filter?"""
    values: list[object] = list(value) if isinstance(value, list) else [value]
    choices: list[object] = (
        list(wanted) if op == "inArray" and isinstance(wanted, list) else [wanted]
    )
    return any(_matches_one(v, op, w) for v in values for w in choices)


def sort_key(value: object) -> float:
    """A datetime (naive = UTC) as a number that sorts."""
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()
    return 0.0


def apply_paging(
    items: Iterable[T],
    paging: Paging,
    filterable: Mapping[str, Callable[[T], object]],
    published: Callable[[T], datetime | None],
) -> tuple[int, list[T]]:
    """Filter, order by publish time, and cut one page: (how many matched, the page)."""
    selected = list(items)
    if paging.filter_by is not None:
        getter = filterable[paging.filter_by]
        selected = [
            item
            for item in selected
            if matches(getter(item), paging.filter_op, paging.filter_value)
        ]
    selected.sort(key=lambda item: sort_key(published(item)))
    if paging.descending:
        selected.reverse()  # calls published in the same instant keep their order reversed
    return len(selected), selected[paging.start_index : paging.start_index + paging.count]


def page_links(
    public_url: str, path: str, query: Iterable[tuple[str, str]], paging: Paging, total: int
) -> dict[str, str]:
    """``self``, and ``next``/``prev`` when there are such pages (the token is never copied)."""
    kept = [(k, v) for k, v in query if k not in ("startIndex", "count", "accessRequestToken")]
    base = f"{public_url.rstrip('/')}{quote(path, safe='/@*+!$&()=:,;')}"

    def url(start: int) -> str:
        params = [*kept, ("startIndex", str(start)), ("count", str(paging.count))]
        return f"{base}?{urlencode(params)}"

    links = {"self": url(paging.start_index)}
    if (
        paging.start_index + paging.count < total
        and paging.start_index + paging.count <= MAX_START_INDEX
    ):
        links["next"] = url(paging.start_index + paging.count)
    if paging.start_index > 0:
        links["prev"] = url(max(0, paging.start_index - paging.count))
    return links
