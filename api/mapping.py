"""The engine's refusals as UAPI errors: one table, the only place that knows both.

The engine raises domain exceptions (``engine.errors``) that know nothing of HTTP; this module
gives each class its HTTP status and UAPI error code, and the app answers any ``EngineError`` a
handler lets escape with that (``ENGINE_ERROR_HANDLERS``). A class is looked up along its MRO,
so a new subclass answers as its parent until it gets a line of its own; the base class answers
400 ``request_invalid``, so no refusal of the engine ever reaches a client as a 5xx.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from starlette.requests import Request
from starlette.responses import Response

from api.errors import ApiError, error_response
from engine.errors import (
    ActionInProgress,
    ActionNotSupported,
    CallNotBridged,
    CallNotFound,
    CallNotLive,
    CallNotParked,
    CallNotRinging,
    CallParked,
    CodecNotMixable,
    EngineDraining,
    EngineError,
    NoPartyToWhisperTo,
    NumberNotAParty,
    ParkingTimeInvalid,
    PartyNotFound,
    PublicTransferNotAllowed,
    RecordingFormatUnsupported,
    ServiceUnavailable,
    TransferTargetInvalid,
    ViewNotFound,
)


@dataclass(frozen=True, slots=True)
class UapiError:
    """How one class of engine refusal answers: ``message`` None keeps the engine's own."""

    status: int
    code: str
    message: str | None = None
    headers: dict[str, str] = field(default_factory=dict)


ENGINE_ERRORS: dict[type[EngineError], UapiError] = {
    EngineError: UapiError(400, "request_invalid"),
    EngineDraining: UapiError(
        503,
        "service_unavailable",
        "The server is shutting down and accepts no new calls or actions",
        {"Retry-After": "30"},
    ),
    ServiceUnavailable: UapiError(
        503,
        "service_unavailable",
        "The call store cannot be reached; try again shortly",
        {"Retry-After": "5"},
    ),
    CallNotFound: UapiError(404, "pc_not_found"),
    CallNotLive: UapiError(409, "pc_not_live"),
    CallNotBridged: UapiError(409, "pc_not_bridged"),
    ActionNotSupported: UapiError(501, "request_not_implemented"),
    CodecNotMixable: UapiError(501, "request_not_implemented"),
    ActionInProgress: UapiError(409, "pc_action_in_progress"),
    RecordingFormatUnsupported: UapiError(400, "pc_format_invalid"),
    TransferTargetInvalid: UapiError(400, "pc_sendcallto_invalid"),
    PublicTransferNotAllowed: UapiError(403, "pc_transfer_invalid"),
    PartyNotFound: UapiError(400, "pc_view_invalid"),
    ViewNotFound: UapiError(400, "pc_view_invalid"),
    NumberNotAParty: UapiError(400, "pc_number_invalid"),
    CallParked: UapiError(409, "pc_parked"),
    CallNotParked: UapiError(409, "pc_not_parked"),
    CallNotRinging: UapiError(409, "pc_not_ringing"),
    ParkingTimeInvalid: UapiError(400, "pc_maxinparking_invalid"),
    NoPartyToWhisperTo: UapiError(400, "pc_view_invalid"),
}


def uapi_error(exc: EngineError) -> UapiError:
    """The table's line for ``exc``: its own class's, else its nearest mapped parent's."""
    for cls in type(exc).__mro__:
        if cls in ENGINE_ERRORS:
            return ENGINE_ERRORS[cls]
    return ENGINE_ERRORS[EngineError]  # unreachable: every EngineError has the base in its MRO


def api_error(exc: EngineError) -> ApiError:
    """``exc`` as the ApiError a handler raises (status, code, message, headers)."""
    line = uapi_error(exc)
    return ApiError(line.status, line.code, line.message or exc.message, line.headers)


async def _engine_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, EngineError)
    error = api_error(exc)
    return error_response(error.status, error.code, error.message, error.headers)


ENGINE_ERROR_HANDLERS = {EngineError: _engine_error}
