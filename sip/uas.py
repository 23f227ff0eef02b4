"""Checks a UAS runs on a new request before the TU sees it (RFC 3261 §8.2), sans-IO.

Theory of operation: ``check_request`` walks §8.2 in order and returns the response to send
instead of processing the request, or None when the request may proceed:

1. Never answer a response or an ACK (§17.2.3: an ACK has no response).
2. Mandatory headers and their syntax (§8.1.1, §8.2): Via, From, To, Call-ID, CSeq must be
   present and parse, and the CSeq method must equal the request method -> 400 with the reason.
   A wrong SIP version is 505 (the parser signals it with ``status_hint``).
3. Request-URI scheme (§8.2.2.1): we handle sip, sips and tel -> otherwise 416.
4. Max-Forwards (§8.2, §16.3 step 3, RFC 7332 §3): a plain UA ignores Max-Forwards, but a B2BUA
   re-originates what it receives, so a new out-of-dialog request arriving with Max-Forwards 0
   would loop on: 483.  Two exceptions, on purpose: OPTIONS, because §11 uses OPTIONS with
   Max-Forwards 0 to probe the next hop and a UA answers it itself; and requests inside a
   dialog (To tag present: BYE, re-INVITE, ...), which end at our dialog state and never
   travel on as the same request, so refusing them could only leave calls hanging.
5. Method (§8.2.1): a method we know but do not allow -> 405, a method we do not know -> 501,
   both with Allow.
6. Extensions (§8.2.2.3): an option tag in Require we do not support -> 420 with Unsupported
   (never for CANCEL or ACK).
7. A body without Content-Type -> 400 (§7.4.1 makes Content-Type mandatory with a body).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from sip.errors import RemoteProtocolError
from sip.message import Message, Request, Response

__all__ = ["KNOWN_METHODS", "check_request", "options_response"]

log = logging.getLogger(__name__)

KNOWN_METHODS = frozenset(
    {
        "INVITE",
        "ACK",
        "CANCEL",
        "BYE",
        "OPTIONS",
        "REGISTER",
        "INFO",
        "PRACK",
        "UPDATE",
        "SUBSCRIBE",
        "NOTIFY",
        "REFER",
        "MESSAGE",
        "PUBLISH",
    }
)
SUPPORTED_SCHEMES = frozenset({"sip", "sips", "tel"})
_MANDATORY = ("Via", "From", "To", "Call-ID", "CSeq")


def _allow(allowed_methods: Iterable[str]) -> tuple[str, str]:
    return ("Allow", ", ".join(sorted(m.upper() for m in allowed_methods)))


def _header_problem(request: Request) -> RemoteProtocolError | None:
    for name in _MANDATORY:
        if name not in request.headers:
            return RemoteProtocolError(f"Missing {name} header")
    try:
        _ = request.vias
        _ = request.from_
        _ = request.to
        cseq = request.cseq
        _ = request.call_id
        _ = request.max_forwards
    except RemoteProtocolError as exc:
        return exc
    if cseq.method.upper() != request.method.upper():
        return RemoteProtocolError("CSeq method does not match the request method")
    return None


def check_request(
    request: Message,
    *,
    allowed_methods: Iterable[str],
    supported_extensions: Iterable[str] = (),
) -> Response | None:
    """Return the error response for ``request`` (§8.2), or None to process it.

    Raises RemoteProtocolError when the request is so broken that no response can be built
    (no usable Via/From/To/Call-ID/CSeq): the caller drops it.
    """
    if not isinstance(request, Request) or request.method == "ACK":
        return None
    allowed = {m.upper() for m in allowed_methods}
    problem = _header_problem(request)
    if problem is not None:
        if "Via" not in request.headers or not _answerable(request):
            # Nothing to build a response from: the caller drops it (and logs why).
            raise problem
        return request.response(problem.status_hint, problem.reason)
    version = getattr(request, "version", "SIP/2.0")
    if isinstance(version, str) and version.upper() != "SIP/2.0":
        return request.response(505)
    scheme = getattr(request.uri, "scheme", "tel")
    if scheme.lower() not in SUPPORTED_SCHEMES:
        return request.response(416)
    in_dialog = request.to.tag is not None
    max_forwards = request.max_forwards
    if (
        max_forwards is not None
        and max_forwards <= 0
        and request.method != "OPTIONS"
        and not in_dialog
    ):
        return request.response(483)
    if request.method not in allowed:
        status = 405 if request.method in KNOWN_METHODS else 501
        return request.response(status, headers=[_allow(allowed)])
    if request.method != "CANCEL":
        supported = {ext.lower() for ext in supported_extensions}
        required = [tag.strip() for tag in request.headers.get_all("Require") if tag.strip()]
        unsupported = [tag for tag in required if tag.lower() not in supported]
        if unsupported:
            return request.response(420, headers=[("Unsupported", ", ".join(unsupported))])
    if request.body and request.content_type is None:
        return request.response(400, "Missing Content-Type")
    return None


def _answerable(request: Request) -> bool:
    """Enough of the request parses to build a response (Via, From, To, Call-ID, CSeq)."""
    try:
        _ = request.vias
        _ = request.from_
        _ = request.to
        _ = request.call_id
        _ = request.cseq
    except RemoteProtocolError:
        return False
    return True


def options_response(
    request: Request,
    allow: Iterable[str],
    accept: Iterable[str] = ("application/sdp",),
    supported: Iterable[str] = (),
    *,
    to_tag: str | None = None,
) -> Response:
    """200 to OPTIONS advertising what we do (§11.2). ``to_tag``: the To tag to add (left
    out, the endpoint adds its own when it sends the answer)."""
    headers = [_allow(allow), ("Accept", ", ".join(accept))]
    supported = list(supported)
    if supported:
        headers.append(("Supported", ", ".join(supported)))
    tag = None if request.to.tag else to_tag
    return request.response(200, to_tag=tag, headers=headers)
