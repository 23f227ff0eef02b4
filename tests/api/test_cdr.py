"""GET /uapi/cdr/{ownerId}: finished calls as PhoneCallStat records."""

from __future__ import annotations

import pytest
import trio
from uapi_helpers import assert_error, auth, create_call, simple_body, wait_until

CDR = "/uapi/cdr/{}"


async def finished_calls(client, engine, headers):
    answered = await create_call(client, headers, params={"callDuration": "4"})
    busy = await create_call(client, headers, simple_body(source="0003*09"))  # source busy
    live = await create_call(client, headers, simple_body(source="0003*08"))
    await wait_until(
        lambda: (
            engine.get_call(answered).ended is not None and engine.get_call(busy).ended is not None
        )
    )
    return answered, busy, live


async def test_cdr_lists_only_finished_calls(mock_clock, client, engine) -> None:
    headers = await auth(client)
    assert (await client.get(CDR.format("@me"), headers=headers)).status_code == 204
    answered, busy, _live = await finished_calls(client, engine, headers)
    response = await client.get(CDR.format("@me"), headers=headers)
    assert response.status_code == 200
    stats = {s["id"]: s for s in response.json()["entry"]}
    assert set(stats) == {answered, busy}
    ok = stats[answered]
    assert ok["source"] == "0003*00" and ok["destination"] == "0003*01"
    assert ok["disposition"] == 0 and ok["flow"] == 2
    assert ok["duration"] >= 1 and ok["charge"] == 0
    assert ok["published"].endswith("Z") and ok["answered"].endswith("Z")
    assert ok["hangupCause"]
    assert stats[busy]["disposition"] == 1 and stats[busy]["duration"] == 0


async def test_cdr_filters(mock_clock, client, engine) -> None:
    headers = await auth(client)
    answered, busy, _ = await finished_calls(client, engine, headers)

    async def ids(**params):
        response = await client.get(CDR.format("12"), params=params, headers=headers)
        return [] if response.status_code == 204 else [s["id"] for s in response.json()["entry"]]

    assert await ids(disposition="1") == [busy]
    assert await ids(disposition="0") == [answered]
    assert await ids(source="0003*09") == [busy]
    assert await ids(source="0003*00") == [answered]
    assert await ids(destination="0003*01") == [answered, busy]
    assert await ids(source="5550000") == []
    assert await ids(flow="2") == [answered, busy]
    assert await ids(flow="4") == []
    assert await ids(startDate="2999-01-01") == []
    assert await ids(endDate="2999-01-01T00:00:00Z", startDate="2000-01-01") == [answered, busy]
    assert await ids(sortOrder="descending") == [busy, answered]
    assert await ids(count="1", startIndex="1") == [busy]
    assert await ids(filterBy="answered", filterOp="present") == [answered]
    assert await ids(filterBy="destination", filterOp="startsWith", filterValue="0003*0") == [
        answered,
        busy,
    ]
    slim = await client.get(CDR.format("@me"), params={"fields": "id,flow"}, headers=headers)
    assert all(set(s) == {"id", "flow"} for s in slim.json()["entry"])


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"startDate": "soon"}, "cdr_startdate_invalid"),
        ({"endDate": "2026-13-01"}, "cdr_enddate_invalid"),
        ({"startDate": "2026-02-01", "endDate": "2026-01-01"}, "cdr_enddate_invalid"),
        ({"disposition": "6"}, "cdr_disposition_invalid"),
        ({"disposition": "x"}, "cdr_disposition_invalid"),
        ({"flow": "3"}, "cdr_flow_invalid"),
        ({"source": ""}, "cdr_source_invalid"),
        ({"destination": "1" * 65}, "cdr_destination_invalid"),
        ({"filterBy": "id", "filterValue": "x"}, "filterby_invalid"),
        ({"count": "0"}, "count_invalid"),
        ({"fields": "nope"}, "fields_invalid"),
    ],
)
async def test_cdr_parameter_errors(mock_clock, client, params, code) -> None:
    headers = await auth(client)
    response = await client.get(CDR.format("@me"), params=params, headers=headers)
    assert_error(response, 400, code)


async def test_cdr_scope(mock_clock, client) -> None:
    user = await auth(client)
    assert_error(await client.get(CDR.format("13"), headers=user), 403, "access_denied")
    assert_error(await client.get(CDR.format("x"), headers=user), 400, "user_invalid")
    org = await auth(client, "org")
    assert_error(await client.get(CDR.format("@me"), headers=org), 400, "user_invalid")
    assert (await client.get(CDR.format("13"), headers=org)).status_code == 204
    assert_error(await client.get(CDR.format("@me")), 401, "access_denied")
    await trio.sleep(0)
