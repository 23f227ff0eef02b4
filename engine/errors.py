"""What the engine refuses, as domain exceptions.

Every refusal the engine's public API raises is an ``EngineError``; each subclass names one
reason and carries a message for a human. The engine knows nothing of HTTP: the facade maps
each class to its UAPI error code and HTTP status in one table (``api.mapping``), and an
embedder catches the classes it cares about.
"""

from __future__ import annotations


class EngineError(Exception):
    """Base of every refusal of the engine's public API; ``str(exc)`` says why."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class EngineDraining(EngineError):
    """The engine is shutting down and takes no new calls."""


class ServiceUnavailable(EngineError):
    """A part the engine needs right now (the store's database) cannot be reached."""


class CallNotFound(EngineError):
    """No call has this id, live or stored."""

    def __init__(self, call_id: str) -> None:
        super().__init__(f"no PhoneCall {call_id}")
        self.call_id = call_id


class CallNotLive(EngineError):
    """The call exists but has ended: nothing can be done to it any more."""

    def __init__(self, call_id: str) -> None:
        super().__init__(f"PhoneCall {call_id} has ended")
        self.call_id = call_id


class CallNotBridged(EngineError):
    """The action needs a connected (bridged) call."""


class ActionNotSupported(EngineError):
    """The engine does not do this action (or not for this target)."""


class CodecNotMixable(ActionNotSupported):
    """A listen-in action on a call whose parties talk a codec the mixer does not (G.711 only)."""


class ActionInProgress(EngineError):
    """Another action that adds a party (a supervisor, a transfer) is under way in the call."""


class RecordingFormatUnsupported(EngineError):
    """A recording format other than WAV."""


class TransferTargetInvalid(EngineError):
    """A transfer without a target, or to a number that resolves to nothing."""


class PublicTransferNotAllowed(EngineError):
    """A transfer to a public number on a call created without allowPublicTransfer."""


class PartyNotFound(EngineError):
    """The action names no party of the call."""


class ViewNotFound(PartyNotFound):
    """By phoneCallView id (or, when the action needs one, by none at all)."""


class NoPartyToWhisperTo(PartyNotFound):
    """Whisper: no party (or, when both are, none named) is an extension of the organization."""


class NumberNotAParty(PartyNotFound):
    """By number: it is not one of the call's parties."""


class CallParked(EngineError):
    """The call is parked: only UnPark (or a hang-up) acts on it until it is bridged again."""


class CallNotParked(EngineError):
    """UnPark on a call that is not parked."""


class CallNotRinging(EngineError):
    """PickUp on a call whose destination is not ringing at an extension."""


class ParkingTimeInvalid(EngineError):
    """maxInParking outside 10-3600 seconds."""
