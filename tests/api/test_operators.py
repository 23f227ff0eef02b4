"""The operators' API: a call's SIP trace, registered devices, the console's list and counters,
and the console page, in process (engine on MockClock, traces fed by hand)."""

from __future__ import annotations

import struct
from typing import Any

import httpx
import pytest
from uapi_helpers import PUBLIC_URL, assert_error, auth, create_call, simple_body, wait_until

from api.app import create_app
from engine.trace import CallTraces
from sip.message import Message, parse_message, serialize
from sip.transaction_types import Peer

BASE = "/uapi/phoneCalls"


@pytest.fixture
def traces() -> CallTraces:
    return CallTraces()


@pytest.fixture
def app(engine: Any, wall_clock: Any, traces: CallTraces) -> Any:
    return create_app(
        engine,
        public_url=PUBLIC_URL,
        clock=wall_clock,
        traces=traces,
        sip_address=("127.0.0.1", 5060),
    )


def observe(traces: Any, direction: str, message: Message, peer: Peer) -> None:
    """What the transport does: the message with its wire bytes."""
    traces.message(direction, message, peer, serialize(message))


def message(first_line: str, call_id: str) -> Any:
    return parse_message(
        (
            f"{first_line}\r\n"
            "Via: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bK1\r\n"
            "From: <sip:a@127.0.0.1>;tag=1\r\n"
            "To: <sip:b@127.0.0.1>\r\n"
            f"Call-ID: {call_id}\r\n"
            "CSeq: 1 INVITE\r\n"
            "Content-Length: 0\r\n\r\n"
        ).encode()
    )


async def test_trace_lists_the_calls_messages_in_order(mock_clock, client, traces) -> None:
    headers = await auth(client)
    call_id = await create_call(client, headers)
    phone = Peer("udp", "127.0.0.1", 5062)
    traces.bind("leg-1", call_id, "0003*00")
    observe(traces, "out", message("INVITE sip:b@127.0.0.1 SIP/2.0", "leg-1"), phone)
    observe(traces, "in", message("SIP/2.0 180 Ringing", "leg-1"), phone)
    observe(traces, "in", message("SIP/2.0 200 OK", "leg-1"), phone)

    response = await client.get(f"{BASE}/@me/0003*210/{call_id}/trace", headers=headers)
    assert response.status_code == 200
    rows = response.json()
    assert [row["message"].split("\r\n")[0] for row in rows] == [
        "INVITE sip:b@127.0.0.1 SIP/2.0",
        "SIP/2.0 180 Ringing",
        "SIP/2.0 200 OK",
    ]
    assert [row["direction"] for row in rows] == ["out", "in", "in"]
    assert {row["party"] for row in rows} == {"0003*00"}
    assert {row["peer"] for row in rows} == {"127.0.0.1:5062"}
    assert set(rows[0]) == {"ts", "direction", "party", "peer", "message"}
    # ISO 8601 with milliseconds, UTC
    assert len(rows[0]["ts"]) == len("2026-01-01T00:00:00.000Z") and rows[0]["ts"].endswith("Z")

    pcap = await client.get(
        f"{BASE}/@me/0003*210/{call_id}/trace", params={"format": "pcap"}, headers=headers
    )
    assert pcap.status_code == 200
    assert pcap.headers["content-type"] == "application/vnd.tcpdump.pcap"
    data = pcap.content
    assert struct.unpack("<I", data[:4])[0] == 0xA1B2C3D4
    assert data.count(b"SIP/2.0 180 Ringing") == 1


async def test_trace_has_the_scopes_and_errors_of_the_calls_get(mock_clock, client, traces) -> None:
    headers = await auth(client)
    call_id = await create_call(client, headers)
    path = f"{BASE}/@me/0003*210/{call_id}/trace"
    # a sandbox-only call has no SIP leg: an empty trace
    assert (await client.get(path, headers=headers)).json() == []
    assert_error(await client.get(path), 401, "access_denied")
    assert_error(
        await client.get(f"{BASE}/@me/0003*210/{'0' * 20}/trace", headers=headers),
        404,
        "pc_not_found",
    )
    assert_error(
        await client.get(path, params={"format": "xml"}, headers=headers),
        400,
        "trace_format_invalid",
    )
    other = await auth(client, "other-org")
    assert_error(
        await client.get(f"{BASE}/12/0003*210/{call_id}/trace", headers=other), 403, "access_denied"
    )
    org = await auth(client, "org")
    assert (await client.get(f"{BASE}/12/0003*210/{call_id}/trace", headers=org)).status_code == 200
    assert_error(
        await client.get(f"{BASE}/@me/0003*999/{call_id}/trace", headers=headers),
        400,
        "extension_invalid",
    )


async def test_registrations_are_scoped_to_the_app(mock_clock, client, engine, wall_clock) -> None:
    now = wall_clock().timestamp()
    engine.store.save_contact(
        "0003*210", "sip:210@127.0.0.1:5062", "127.0.0.1:5062 udp", now + 300, "r1", 1
    )
    engine.store.save_contact(
        "0003*211", "sip:211@127.0.0.1:5064", "127.0.0.1:5064 udp", now + 300, "r2", 1
    )
    engine.store.save_contact(
        "0004*210", "sip:4210@127.0.0.1:5066", "127.0.0.1:5066 udp", now + 300, "r3", 1
    )
    engine.store.save_contact(
        "0003*212", "sip:212@127.0.0.1:5068", "127.0.0.1:5068 udp", now - 1, "r4", 1
    )

    async def extensions(kind: str) -> list[str]:
        response = await client.get("/uapi/registrations", headers=await auth(client, kind))
        assert response.status_code == 200
        body = response.json()
        assert body["totalResults"] == len(body["entry"])
        return sorted(row["extension"] for row in body["entry"])

    assert await extensions("user") == ["0003*210"]  # user 12's (212 has expired)
    assert await extensions("org") == ["0003*210", "0003*211"]
    assert await extensions("other-org") == ["0004*210"]
    assert await extensions("admin") == ["0003*210", "0003*211", "0004*210"]
    response = await client.get("/uapi/registrations", headers=await auth(client, "user"))
    [row] = response.json()["entry"]
    assert row["contact"] == "sip:210@127.0.0.1:5062"
    assert row["received"] == "127.0.0.1:5062 udp"
    assert row["expires"].endswith("Z")
    assert_error(await client.get("/uapi/registrations"), 401, "access_denied")


async def test_console_lists_the_calls_of_the_apps_scope_newest_first(
    mock_clock, client, engine
) -> None:
    user = await auth(client)
    first = await create_call(client, user, simple_body(destination="0003*08"))
    second = await create_call(client, user, simple_body(destination="0003*09"))
    org = await auth(client, "org")
    third = await create_call(
        client, org, simple_body(destination="0003*08", extension="0003*211"), user="13"
    )

    async def ids(headers: dict[str, str], **params: str) -> tuple[list[str], int]:
        response = await client.get("/uapi/console/calls", params=params, headers=headers)
        assert response.status_code == 200, response.text
        body = response.json()
        return [call["id"] for call in body["entry"]], body["totalResults"]

    assert await ids(user) == ([second, first], 2)
    assert await ids(org) == ([third, second, first], 3)
    assert await ids(await auth(client, "other-org")) == ([], 0)
    assert await ids(org, count="1", startIndex="1") == ([second], 3)
    # 0003*09 is busy: that call ends, the others ring on
    await wait_until(lambda: engine.get_call(second).ended is not None)
    assert await ids(org, state="live") == ([third, first], 2)
    assert await ids(org, state="ended") == ([second], 1)
    response = await client.get("/uapi/console/calls", params={"state": "ended"}, headers=org)
    [ended] = response.json()["entry"]
    assert ended["disposition"] == 1 and ended["links"]["self"].endswith(f"/12/0003*210/{second}")

    summary = (await client.get("/uapi/console/summary", headers=org)).json()
    assert summary["liveCalls"] == 2 and summary["endedCalls"] == 1
    assert summary["ringing"] + summary["bridged"] == 2
    assert summary["serverLiveCalls"] == 2
    mine = (await client.get("/uapi/console/summary", headers=user)).json()
    assert mine["liveCalls"] == 1
    assert mine["extensions"] == len(engine.directory.extensions_of_user(12))
    assert summary["extensions"] == len(engine.directory.extensions_of(3)) > mine["extensions"]


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"state": "gone"}, "state_invalid"),
        ({"count": "0"}, "count_invalid"),
        ({"count": "201"}, "count_invalid"),
        ({"startIndex": "-1"}, "startindex_invalid"),
        ({"startIndex": "x"}, "startindex_invalid"),
    ],
)
async def test_console_list_query_errors(mock_clock, client, params, code) -> None:
    response = await client.get("/uapi/console/calls", params=params, headers=await auth(client))
    assert_error(response, 400, code)


async def test_console_page_and_files_are_served_without_a_token(mock_clock, client) -> None:
    page = await client.get("/console")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert 'id="signin-form"' in page.text and "/console/console.js" in page.text
    csp = page.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "connect-src 'self'" in csp
    script = await client.get("/console/console.js")
    assert script.status_code == 200 and script.headers["content-type"].startswith(
        "text/javascript"
    )
    assert "/oauth/token.php" in script.text
    # the secret goes in the token request only: nothing stores it, nor the token
    assert "localStorage" not in script.text and "sessionStorage" not in script.text
    assert "document.cookie" not in script.text
    css = await client.get("/console/console.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    assert_error(await client.get("/console/../api/app.py"), 404, "not_found")
    assert_error(await client.get("/console/secret.txt"), 404, "not_found")


async def test_an_app_without_traces_serves_empty_traces(mock_clock, engine, wall_clock) -> None:
    app = create_app(engine, public_url=PUBLIC_URL, clock=wall_clock)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        headers = await auth(http)
        call_id = await create_call(http, headers)
        response = await http.get(f"{BASE}/@me/0003*210/{call_id}/trace", headers=headers)
        assert response.status_code == 200 and response.json() == []
