"""The Server-Sent Events message of ``GET .../events`` as one model, :class:`CallEventMessage`.

The model is both what the stream writes and what the OpenAPI document publishes for it
(:func:`component_schemas`): its fields, in order, are the message's lines (``id`` the
CallEvent's seq, ``event`` its name, ``data`` its JSON), so the bytes and the schema cannot
drift apart. Rendering builds no model per event: :meth:`CallEventMessage.frame` writes the
lines, each started by its field's name, around the CallEvent's JSON object, with the one
``json.dumps`` per event the stream has always made. ``CallEventMessage.model_validate`` reads
a message back (``data`` parsed into an :class:`api.resources.CallEvent`), as a client would.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, Json

from api import jsonschema
from api.resources import CallEvent


class CallEventMessage(BaseModel):
    """One message of the event stream: ``id: SEQ``, ``event: NAME``, ``data: JSON``, then a
    blank line (:meth:`frame`)."""

    model_config = ConfigDict(
        json_schema_extra={
            "description": (
                "One Server-Sent Events message of `/events`: `id: SEQ`, `event: NAME`, "
                "`data: CallEvent JSON`, then a blank line."
            )
        }
    )

    id: Annotated[
        str,
        Field(
            pattern="^[0-9]+$",
            description="The CallEvent's seq (give it back as Last-Event-ID to resume).",
        ),
    ]
    event: Annotated[str, Field(description="The CallEvent's event name.")]
    # on the wire a JSON text (contentMediaType application/json, contentSchema CallEvent)
    data: Json[CallEvent]

    @staticmethod
    def frame(payload: dict[str, Any]) -> bytes:
        """The message of one CallEvent, given as its JSON object (``api.events.event_payload``),
        as the bytes the stream sends."""
        data = json.dumps(payload, separators=(",", ":"))
        return f"{_ID}{payload['seq']}\n{_EVENT}{payload['event']}\n{_DATA}{data}\n\n".encode()


# "id: ", "event: ", "data: ": each line's start is its field's name, in the model's order
# (an f-string of constants: as fast as the literal one, benchmarks/bench_sse_frame.py)
_ID, _EVENT, _DATA = (f"{name}: " for name in CallEventMessage.model_fields)


def component_schemas() -> dict[str, Any]:
    """The message's components.schemas entry. Its ``data`` refers to the CallEvent component
    (the resources', :func:`api.resources.component_schemas`), so only the message is given.
    Validation mode: the schema of the text on the wire, where ``data`` is a JSON string."""
    schemas = jsonschema.component_schemas(
        (CallEventMessage,), jsonschema.ResourceSchema, mode="validation"
    )
    return {"CallEventMessage": schemas["CallEventMessage"]}
