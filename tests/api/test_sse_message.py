"""The event stream's message is one model (api/sse.py): the document's CallEventMessage is its
schema, and the bytes it renders are the stream's (byte for byte what clients parse) and read
back, line by line, to the CallEvent that was sent."""

from __future__ import annotations

import json
from typing import Any

import pytest
from uapi_helpers import auth, create_call

from api import jsonschema, sse
from api.resources import CallEvent, dump_event
from api.sse import CallEventMessage

EVENTS = [
    CallEvent(
        phoneCallId="6f599653d2dfa06d7265",
        seq=5,
        event="source_answered",
        state="calling_source",
        at="2026-12-07T19:45:05.274176Z",
        final=False,
        data={"party": "0003*00"},
    ),
    # a final event made from the record: no state, details with a nested value and non-ASCII
    CallEvent(
        phoneCallId="abc",
        seq=12,
        event="ended",
        state=None,
        at="2026-01-02T03:04:05Z",
        final=True,
        data={"hangupCause": "raccroché", "synthesized": True, "legs": [{"code": 486}]},
    ),
    CallEvent(phoneCallId="x", seq=1, event="dtmf", at=None, final=False, data={"digit": "#"}),
]


def parse_frame(frame: bytes) -> dict[str, str]:
    """One SSE message as a client splits it: ``name: value`` lines, then a blank line."""
    text = frame.decode()
    assert text.endswith("\n\n") and text.count("\n\n") == 1, text
    lines = text[:-2].split("\n")
    parsed = dict(line.split(": ", 1) for line in lines)
    assert len(parsed) == len(lines), lines  # no line name given twice
    return parsed


def test_a_frame_is_the_bytes_the_stream_has_always_sent() -> None:
    assert CallEventMessage.frame(dump_event(EVENTS[0])) == (
        b"id: 5\nevent: source_answered\n"
        b'data: {"phoneCallId":"6f599653d2dfa06d7265","seq":5,"event":"source_answered",'
        b'"state":"calling_source","at":"2026-12-07T19:45:05.274176Z","final":false,'
        b'"data":{"party":"0003*00"}}\n\n'
    )


@pytest.mark.parametrize("event", EVENTS, ids=[e.event for e in EVENTS])
def test_a_rendered_frame_parses_back_to_the_call_event(event: CallEvent) -> None:
    parsed = parse_frame(CallEventMessage.frame(dump_event(event)))
    assert list(parsed) == list(CallEventMessage.model_fields) == ["id", "event", "data"]
    assert parsed["id"] == str(event.seq) and parsed["event"] == event.event
    data = json.loads(parsed["data"])
    assert set(data) == set(CallEvent.model_fields)
    assert CallEvent.model_validate(data) == event
    # the model reads the message back too, its data as the CallEvent
    assert CallEventMessage.model_validate(parsed).data == event


def _model_schema() -> dict[str, Any]:
    """pydantic's own schema of the model, with only what every component leaves out (the
    title) left out: the wire form (validation mode), references as the document writes them."""
    schema = CallEventMessage.model_json_schema(
        mode="validation",
        ref_template=jsonschema.REF_TEMPLATE,
        schema_generator=jsonschema.ResourceSchema,
    )
    schema.pop("$defs")
    del schema["title"]
    return schema


async def test_the_documents_call_event_message_is_the_models_schema(mock_clock, client) -> None:
    served = (await client.get("/uapi/openapi.json")).json()["components"]["schemas"]
    message = served["CallEventMessage"]
    assert message == _model_schema() == sse.component_schemas()["CallEventMessage"]
    # and it says what it said when it was written by hand
    assert message == {
        "type": "object",
        "description": (
            "One Server-Sent Events message of `/events`: `id: SEQ`, `event: NAME`, "
            "`data: CallEvent JSON`, then a blank line."
        ),
        "required": ["id", "event", "data"],
        "properties": {
            "id": {
                "type": "string",
                "pattern": "^[0-9]+$",
                "description": "The CallEvent's seq (give it back as Last-Event-ID to resume).",
            },
            "event": {"type": "string", "description": "The CallEvent's event name."},
            "data": {
                "type": "string",
                "contentMediaType": "application/json",
                "contentSchema": {"$ref": "#/components/schemas/CallEvent"},
            },
        },
    }
    assert "CallEvent" in served  # the reference resolves to the resource's own schema


async def test_every_message_of_a_real_stream_is_one_the_model_reads(
    mock_clock, client, engine
) -> None:
    headers = await auth(client)
    call_id = await create_call(client, headers, params={"callDuration": "3"})
    response = await client.get(f"/uapi/phoneCalls/@me/0003*210/{call_id}/events", headers=headers)
    blocks = [
        block + b"\n\n"
        for block in response.content.split(b"\n\n")
        if block and not block.startswith(b":")  # a keep-alive comment is no message
    ]
    messages = [CallEventMessage.model_validate(parse_frame(block)) for block in blocks]
    assert len(messages) >= 4 and messages[-1].data.final
    for block, message in zip(blocks, messages, strict=True):
        assert (message.id, message.event) == (str(message.data.seq), message.data.event)
        assert CallEventMessage.frame(dump_event(message.data)) == block
