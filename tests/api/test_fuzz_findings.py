"""What the schemathesis run against the real server (tests/integration/test_api_fuzz.py) found:
values the OpenAPI document allows that the server refused, and examples it must accept."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st
from uapi_helpers import PUBLIC_URL, assert_error, auth

from api.egress import CallbackPolicy
from api.errors import ApiError
from api.fields import parse_positive_seconds, status_callback
from api.openapi import openapi_document
from api.paging import parse_date, parse_paging
from api.phonecalls import check_action
from api.render import PHONE_CALL_FIELDS, STAT_FIELDS
from engine.numbers import parse_caller_id

DOC = openapi_document(PUBLIC_URL)
SCHEMAS = DOC["components"]["schemas"]
CREATE = "/uapi/phoneCalls/@me/simple"


def _create_operation() -> dict:
    return DOC["paths"]["/uapi/phoneCalls/{userId}/simple"]["post"]


async def test_wait_for_pickup_written_with_an_exponent_is_a_number(
    mock_clock, client, engine
) -> None:
    # The document says `number`; clients (and schemathesis) format floats as 5e-324 or 1.5e+2.
    body = _create_operation()["requestBody"]["content"]["application/json"]["example"]
    headers = await auth(client)
    tiny = await client.post(CREATE, json=body, params={"waitForPickup": "5e-324"}, headers=headers)
    assert tiny.status_code == 202, tiny.text
    assert engine.get_call(tiny.json()[0]["id"]).wait_for_pickup == 1  # fractions round up
    big = await client.post(CREATE, json=body, params={"waitForPickup": "1.5E+2"}, headers=headers)
    assert big.status_code == 202, big.text
    assert engine.get_call(big.json()[0]["id"]).wait_for_pickup == 150
    long_fraction = await client.post(
        CREATE, json=body, params={"waitForPickup": "1.0000000000000002"}, headers=headers
    )
    assert long_fraction.status_code == 202, long_fraction.text
    too_big = await client.post(CREATE, json=body, params={"waitForPickup": "1e9"}, headers=headers)
    assert_error(too_big, 400, "pc_timeout_invalid")
    not_finite = await client.post(
        CREATE, json=body, params={"waitForPickup": "1e9999"}, headers=headers
    )
    assert_error(not_finite, 400, "pc_timeout_invalid")


def test_action_wait_for_pickup_as_a_json_float_in_exponent_form() -> None:
    action = check_action({"action": "OnHold", "phoneCallViewId": "01", "waitForPickUp": 1e-05})
    assert action.wait_for_pickup == 1
    assert parse_positive_seconds("2.5e1", "pc_timeout_invalid", "w", integer=False) == 25


async def test_the_documented_create_example_is_accepted(mock_clock, client, engine) -> None:
    body = _create_operation()["requestBody"]["content"]["application/json"]["example"]
    response = await client.post(CREATE, json=body, headers=await auth(client))
    assert response.status_code == 202, response.text


CALLER_ID_PATTERN = SCHEMAS["PhoneCallViewCreate"]["properties"]["callerId"]["pattern"]


@given(st.from_regex(CALLER_ID_PATTERN, fullmatch=True))
def test_every_caller_id_the_document_allows_is_accepted(text: str) -> None:
    # Was `string, maxLength 256`: a fuzzer's valid callerId was answered pc_callerid_invalid.
    parse_caller_id(text)


@pytest.mark.parametrize("name", ["sendCallTo", "transferNumber", "transferFromNumber"])
def test_action_texts_the_document_allows_are_not_refused_as_empty(name: str) -> None:
    # Was `string, maxLength 64`: "" and "  " passed the document and got pc_action_invalid.
    schema = SCHEMAS["PhoneCallAction"]["properties"][name]
    assert schema["minLength"] == 1
    assert re.search(schema["pattern"], "   ") is None
    check_action({"action": "Transfer", "sendCallTo": "0003*211", name: "0003*210"})


@given(
    st.one_of(
        st.floats(min_value=0, max_value=604800, exclude_min=True),
        st.from_regex(
            SCHEMAS["PhoneCallAction"]["properties"]["waitForPickUp"]["anyOf"][1]["pattern"],
            fullmatch=True,
        ),
    )
)
def test_every_action_wait_for_pickup_the_document_allows_is_accepted(value: float | str) -> None:
    action = check_action({"action": "OnHold", "phoneCallViewId": "01", "waitForPickUp": value})
    assert action.wait_for_pickup is not None and 1 <= action.wait_for_pickup <= 604800


@pytest.mark.parametrize(
    "url",
    [
        "https://-85ae:588?%)208V)@Z/|-)C@g_z/|@",  # what the fuzzer sent: not a URI at all
        "http://h/%zz",
        "http://h/a|b",
        "http://h:65536/",
        "https://user@h/",
        "http://h?x#y#z",
        "http://[00]/",  # the fuzzer's next one: brackets that hold no IPv6 address
    ],
)
async def test_status_callback_must_be_a_uri(mock_clock, client, url: str) -> None:
    # Was: anything urlsplit() took (with a scheme and a host) was accepted as `format: uri`.
    body = _create_operation()["requestBody"]["content"]["application/json"]["example"]
    response = await client.post(
        CREATE, json={**body, "statusCallback": url}, headers=await auth(client)
    )
    assert_error(response, 400, "pc_status_callback_invalid")


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:9/cb", "https://[::1]:65535/a/b?c=d&e=%20#f", "http://cb.example"]
)
def test_status_callback_pattern_takes_real_urls(url: str) -> None:
    pattern = SCHEMAS["PhoneCallCreate"]["properties"]["statusCallback"]["pattern"]
    assert re.fullmatch(pattern, url)


@pytest.mark.parametrize("edge", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"])
async def test_dates_beyond_the_calendar_in_utc_are_the_calendars_edge_not_a_crash(
    mock_clock, client, edge: str
) -> None:
    # Was 500: converting to UTC overflowed (OverflowError escaped the date parser); then 400,
    # though both are RFC 3339 date-times the OpenAPI document calls valid. Now they stand
    # for the first or last moment Python can hold, which is what they mean as bounds.
    headers = await auth(client)
    listing = await client.get(
        "/uapi/phoneCalls/@me/@self",
        params={"filterBy": "published", "filterOp": "lessThan", "filterValue": edge},
        headers=headers,
    )
    assert listing.status_code in (200, 204), listing.text
    cdr = await client.get("/uapi/cdr/@me", params={"startDate": edge}, headers=headers)
    assert cdr.status_code in (200, 204), cdr.text
    cdr = await client.get("/uapi/cdr/@me", params={"endDate": edge}, headers=headers)
    assert cdr.status_code in (200, 204), cdr.text


async def test_docs_page_spells_out_the_precise_path_values(mock_clock, client) -> None:
    # The anyOf/nullable schemas the fuzz needed must not read as `object` on /uapi/docs.
    page = (await client.get("/uapi/docs")).text
    assert "<code>@me</code>, <code>@viewer</code>, <code>@owner</code> or string matching" in page
    assert "<code>@self</code> or string matching" in page
    assert "string | null: <code>wav</code>, <code>wav49</code>, <code>null</code>" in page


async def test_a_client_leaving_mid_body_is_not_an_internal_error(
    mock_clock, app, client, caplog
) -> None:
    # Was: ClientDisconnect while reading the body was logged as an unhandled error and a 500
    # was sent to nobody.
    sent: list[dict] = []
    token = (await auth(client))["Authorization"].encode()

    async def receive() -> dict:
        return {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": CREATE,
        "raw_path": CREATE.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [
            (b"host", b"testserver"),
            (b"content-type", b"application/json"),
            (b"authorization", token),
        ],
        "client": ("127.0.0.1", 1),
        "server": ("testserver", 80),
        "state": {},
    }
    await app(scope, receive, send)
    assert sent == []
    assert "unhandled error" not in caplog.text


def _allowed(response) -> set[str]:
    return {method.strip() for method in response.headers["allow"].split(",")} - {"HEAD"}


@pytest.mark.parametrize(
    ("path", "allowed"),
    [
        ("/uapi/phoneCalls/@me/210", {"GET", "DELETE"}),
        ("/uapi/phoneCalls/@me/210/00000000000000000000", {"GET", "PUT", "DELETE"}),
        ("/uapi/phoneCalls/@me/simple", {"POST"}),
    ],
)
async def test_405_allow_lists_every_method_of_the_path(
    mock_clock, client, path: str, allowed: set[str]
) -> None:
    # Was: `Allow: HEAD, GET` where DELETE (and PUT) were served too (one route per method).
    headers = await auth(client)
    response = await client.request("PATCH", path, headers=headers)
    assert_error(response, 405, "method_not_allowed")
    assert _allowed(response) == allowed


@pytest.mark.parametrize("method", ["GET", "DELETE"])
async def test_simple_is_the_create_resource_not_an_extension(
    mock_clock, client, method: str
) -> None:
    # Was: GET /uapi/phoneCalls/@me/simple listed extension "simple" (400 extension_invalid).
    response = await client.request(method, CREATE, headers=await auth(client))
    assert_error(response, 405, "method_not_allowed")
    assert _allowed(response) == {"POST"}


async def test_every_method_of_a_shared_path_still_reaches_its_handler(mock_clock, client) -> None:
    headers = await auth(client)
    body = _create_operation()["requestBody"]["content"]["application/json"]["example"]
    call_id = (await client.post(CREATE, json=body, headers=headers)).json()[0]["id"]
    one = f"/uapi/phoneCalls/@me/210/{call_id}"
    assert (await client.get(one, headers=headers)).status_code == 200
    assert (await client.head(one, headers=headers)).status_code == 200
    put = await client.put(one, json={"action": "Park", "phoneCallViewId": "00"}, headers=headers)
    assert_error(put, 409, "pc_not_bridged")  # the engine's answer: the PUT reached it
    assert (await client.get("/uapi/phoneCalls/@me/210", headers=headers)).status_code == 200
    assert (await client.delete(one, headers=headers)).status_code == 200
    hang_up_all = await client.delete("/uapi/phoneCalls/@me/210", headers=headers)
    assert hang_up_all.status_code in (200, 204)  # the hang-up handler, not the list
    if hang_up_all.status_code == 200:
        assert all(set(entry) == {"id"} for entry in hang_up_all.json()["entry"])


# What the positive-only run (tests/integration/test_api_positive.py) found: the document called
# these valid and the server refused them.


# fullmatch: in JSON Schema (ECMA 262) `$` is the end of the text, not also before a last "\n"
@given(
    st.from_regex(
        SCHEMAS["PhoneCallCreate"]["properties"]["statusCallback"]["pattern"], fullmatch=True
    )
)
def test_every_status_callback_the_pattern_admits_is_accepted(url: str) -> None:
    # Was: "http://[::::]/" matched the published pattern, then failed the server's IPv6 check.
    # Only the server's egress policy (its configuration, not the URL's syntax) may refuse one.
    try:
        assert status_callback(url, CallbackPolicy()) == url
    except ApiError as exc:
        assert exc.message.startswith("statusCallback is refused: "), exc.message


def _fields_pattern(path: str) -> str:
    params = DOC["paths"][path]["get"]["parameters"]
    return next(p for p in params if p["name"] == "fields")["schema"]["pattern"]


@pytest.mark.parametrize(
    ("path", "names"),
    [
        ("/uapi/phoneCalls/{userId}/{extension}", PHONE_CALL_FIELDS),
        ("/uapi/cdr/{ownerId}", STAT_FIELDS),
    ],
)
@given(data=st.data())
def test_every_fields_value_the_pattern_admits_is_accepted(path, names, data) -> None:
    # Was `string`: "", "," or an unknown name were documented as valid and answered 400.
    value = data.draw(st.from_regex(_fields_pattern(path), fullmatch=True))
    paging = parse_paging({"fields": value}, filterable={}, date_fields=(), field_names=names)
    assert paging.fields


def test_the_fields_pattern_refuses_what_the_server_refuses() -> None:
    pattern = _fields_pattern("/uapi/phoneCalls/{userId}/{extension}")
    for value in ["", " ", ",", "idx", "id,colour"]:
        assert not re.search(pattern, value), value


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2016-12-31T23:59:60Z", datetime(2016, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)),
        ("2016-12-31T23:59:60.5+01:00", datetime(2016, 12, 31, 22, 59, 59, 999999, tzinfo=UTC)),
        ("2020-01-02t03:04:05z", datetime(2020, 1, 2, 3, 4, 5, tzinfo=UTC)),
    ],
)
def test_rfc3339_date_times_are_read(text: str, expected: datetime) -> None:
    # Was None (400 cdr_startdate_invalid): a leap second is a valid RFC 3339 date-time.
    assert parse_date(text) == expected


def test_numbers_the_document_admits_need_three_digits_after_a_plus() -> None:
    # Was `[+]?[0-9]{1,20}`: "+1" is too short for a public number and the server says so.
    pattern = SCHEMAS["PhoneCallViewCreate"]["properties"]["source"]["oneOf"][0]["pattern"]
    assert not re.search(pattern, "+12") and re.search(pattern, "+123")
    assert re.search(pattern, "12")  # a short extension number


def test_create_views_require_source_and_destination() -> None:
    # Was: no `required`, so a view without them was valid and answered pc_source_invalid.
    assert set(SCHEMAS["PhoneCallViewCreate"]["required"]) == {"source", "destination"}


def test_transfers_require_send_call_to_in_the_document() -> None:
    # Was: sendCallTo optional, and Transfer without it answered pc_sendcallto_invalid.
    action = SCHEMAS["PhoneCallAction"]
    needs = {"Transfer", "TransferToVoicemail", "Monitor", "Whisper", "BargeIn"}
    needs |= {"UnPark", "PickUp"}
    assert set(action["if"]["properties"]["action"]["enum"]) == needs
    assert action["then"]["required"] == ["sendCallTo"]
    for name in needs:
        with pytest.raises(ApiError) as caught:
            check_action({"action": name})
        assert caught.value.code == "pc_sendcallto_invalid"
