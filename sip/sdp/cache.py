"""``ParseCache``: each SDP body parsed once, whoever looks at it.

An inbound INVITE's offer is checked by the SIP service (is it SDP we can answer?), answered
from the caller's relay side, and mirrored in the offer to the destination, which is built
from our answer; each of those used to parse the same bytes again. A ``ParseCache`` shared by
those places keeps the last ``size`` bodies with their parsed models (bodies we serialised
ourselves are put in with the model they came from), so each body is parsed at most once.
The models are frozen, so sharing them is safe; a body that does not parse is not kept (its
error is raised again on the next look, as by ``parse``).
"""

from __future__ import annotations

from sip.sdp.model import SessionDescription

__all__ = ["ParseCache"]


class ParseCache:
    """The last ``size`` SDP bodies and their models (see the module docstring)."""

    __slots__ = ("_models", "_size", "parses")

    def __init__(self, size: int = 64) -> None:
        self._models: dict[bytes, SessionDescription] = {}
        self._size = size
        self.parses = 0  # bodies parsed (not found in the cache)

    def parse(self, data: bytes) -> SessionDescription:
        """``SessionDescription.parse(data)``, from the cache when ``data`` is in it."""
        model = self._models.get(data)
        if model is None:
            model = SessionDescription.parse(data)  # RemoteProtocolError: not kept
            self.parses += 1
            self.put(data, model)
        return model

    def put(self, data: bytes, model: SessionDescription) -> None:
        """Keep ``model`` as the parse of ``data`` (its serialisation)."""
        models = self._models
        models[data] = model
        if len(models) > self._size:
            del models[next(iter(models))]  # the oldest
