"""The engine's refusals (engine.errors) as the UAPI errors a client gets (api.mapping)."""

from __future__ import annotations

import inspect
import json
from collections.abc import AsyncIterator

import pytest
from uapi_helpers import assert_error, auth, create_call, simple_body, wait_until

import engine.errors
from api.mapping import ENGINE_ERRORS, api_error
from engine.errors import (
    CallNotBridged,
    EngineDraining,
    EngineError,
    NumberNotAParty,
    PartyNotFound,
)

BASE = "/uapi/phoneCalls"


async def put(client, headers, call_id, body):
    return await client.put(f"{BASE}/@me/0003*210/{call_id}", json=body, headers=headers)


async def test_each_refusal_of_a_live_call_answers_its_code_and_the_engine_message(
    mock_clock, client, engine
) -> None:
    headers = await auth(client)
    call_id = await create_call(client, headers, params={"callDuration": "60"})
    await wait_until(lambda: engine.get_call(call_id).bridged is not None)
    cases = [
        (
            {"action": "OnHold", "phoneCallViewId": "07"},
            400,
            "pc_view_invalid",
            "no phoneCallView '07' in this call",
        ),
        (
            {"action": "OnHold", "transferNumber": "5550000"},
            400,
            "pc_number_invalid",
            "5550000 is not a party of this call",
        ),
        (
            {"action": "StartRecording", "format": "wav49"},
            400,
            "pc_format_invalid",
            "recording format 'wav49' unsupported",
        ),
        (
            {"action": "TransferToVoicemail", "sendCallTo": "0003*02"},
            501,
            "request_not_implemented",
            "TransferToVoicemail needs a voicemail_center extension; none matches",
        ),
        (
            {"action": "Transfer", "sendCallTo": "5551234567"},
            403,
            "pc_transfer_invalid",
            "transfer to a public number needs allowPublicTransfer=true on the call",
        ),
    ]
    for body, status, code, message in cases:
        response = await put(client, headers, call_id, body)
        assert assert_error(response, status, code)["error"]["message"] == message, body
        assert "retry-after" not in response.headers
    assert engine.get_call(call_id).ended is None  # refused actions leave the call alone

    assert (await client.delete(f"{BASE}/@me/@self/{call_id}", headers=headers)).status_code == 200
    await wait_until(lambda: engine.get_call(call_id).ended is not None)
    response = await put(client, headers, call_id, {"action": "OnHold", "phoneCallViewId": "01"})
    body = assert_error(response, 409, "pc_not_live")
    assert body["error"]["message"] == f"PhoneCall {call_id} has ended"


async def test_a_create_the_engine_refuses_while_draining_is_503_with_retry_after(
    mock_clock, client, engine
) -> None:
    """The server starts draining while the create's body is still arriving: the facade's own
    check has passed, so it is the engine's EngineDraining that answers."""
    headers = await auth(client)
    calls_before = engine.count_calls()

    async def body() -> AsyncIterator[bytes]:
        text = json.dumps(simple_body()).encode()
        yield text[:10]
        engine.draining = True
        yield text[10:]

    response = await client.post(
        f"{BASE}/@me/simple",
        content=body(),
        headers={**headers, "Content-Type": "application/json"},
    )
    error = assert_error(response, 503, "service_unavailable")["error"]
    assert error["message"] == "The server is shutting down and accepts no new calls or actions"
    assert response.headers["retry-after"] == "30"
    assert engine.count_calls() == calls_before  # nothing was stored or rung


def test_every_engine_error_has_its_own_line_and_none_is_a_server_error() -> None:
    classes = [
        cls
        for _, cls in inspect.getmembers(engine.errors, inspect.isclass)
        if issubclass(cls, EngineError)
    ]
    assert len(classes) >= 10
    assert set(classes) == set(ENGINE_ERRORS)
    for cls, line in ENGINE_ERRORS.items():
        assert 400 <= line.status <= 599 and line.status != 500, cls
        assert line.code and line.code == line.code.lower(), cls


def test_draining_answers_503_with_retry_after_and_a_fixed_message() -> None:
    error = api_error(EngineDraining("the server is shutting down"))
    assert (error.status, error.code) == (503, "service_unavailable")
    assert error.message == "The server is shutting down and accepts no new calls or actions"
    assert error.headers == {"Retry-After": "30"}


@pytest.mark.parametrize(
    ("exc", "status", "code"),
    [
        (CallNotBridged("OnHold needs a connected call"), 409, "pc_not_bridged"),
        (NumberNotAParty("555 is not a party of this call"), 400, "pc_number_invalid"),
        (PartyNotFound("nobody"), 400, "pc_view_invalid"),
    ],
)
def test_the_engine_message_reaches_the_client(exc: EngineError, status: int, code: str) -> None:
    error = api_error(exc)
    assert (error.status, error.code, error.message) == (status, code, str(exc))


def test_a_new_subclass_answers_as_its_parent_until_it_gets_a_line() -> None:
    class HoldRefused(CallNotBridged):
        pass

    class Unmapped(EngineError):
        pass

    assert (api_error(HoldRefused("x")).status, api_error(HoldRefused("x")).code) == (
        409,
        "pc_not_bridged",
    )
    assert (api_error(Unmapped("y")).status, api_error(Unmapped("y")).code) == (
        400,
        "request_invalid",
    )
