"""The rules of RFC 3261 §18.2 and RFC 3581 the transport applies to the messages it passes.

* A request gets ``received`` (when the source address differs from the Via host) and, when
  the top Via asks for it, ``rport`` stamped on its top Via (``stamp_via``, §18.2.1, RFC 3581
  §4).
* A response goes over UDP to the ``received`` address and the ``rport`` (or sent-by) port
  of the top Via, over TCP to the Via's ``received``/sent-by port when the connection the
  request came on is gone (``response_destination``, §18.2.2).
* A request the parser rejected is answered 400 (or the parser's status hint) when enough
  of it can be read to build a response (``error_response_for``).
"""

from __future__ import annotations

import re
import secrets

from sip.errors import RemoteProtocolError
from sip.headers import Headers, canonical_name
from sip.message import Request, Response, serialize
from sip.peers import bare_host, default_port
from sip.transaction_types import Peer

__all__ = ["error_response_for", "response_destination", "stamp_via"]

_REQUEST_LINE = re.compile(r"^([A-Za-z!%*._+`'~-]+) +\S+ +SIP/\d+\.\d+\s*$")


def response_destination(response: Response, peer: Peer) -> Peer:
    """Where a response to a request from ``peer`` goes (§18.2.2, RFC 3581 §4)."""
    try:
        via = response.vias[0]
    except (RemoteProtocolError, IndexError):
        return peer
    host = via.received or bare_host(via.host)
    if peer.reliable:
        return Peer(peer.transport, host, via.port or default_port(peer.transport))
    rport = via.rport
    port = rport if rport else (via.port or default_port(peer.transport))
    return Peer(peer.transport, host, port)


def stamp_via(request: Request, peer: Peer) -> Request:
    """Add ``received``/``rport`` to the top Via (§18.2.1, RFC 3581 §4)."""
    vias = request.vias
    top = vias[0]
    changes: dict[str, str | None] = {}
    if top.has_rport:
        changes["received"] = peer.host
        changes["rport"] = str(peer.port)
    elif bare_host(top.host) != peer.host:
        changes["received"] = peer.host
    if not changes:
        return request
    stamped = top.with_params(**changes)
    headers = request.headers.replace("Via", str(stamped), *(str(v) for v in vias[1:]))
    return request.with_headers(headers)


def _clean_reason(text: str) -> str:
    cleaned = "".join(ch if ch.isprintable() else " " for ch in text).strip()
    return cleaned[:200] or "Bad Request"


def error_response_for(data: bytes, error: RemoteProtocolError) -> Response | None:
    """Build the 4xx for a request the parser rejected, from a lenient header scan.

    Only when the start line is a request line (never for a response or ACK) and Via, From,
    To, Call-ID and CSeq can be found: otherwise there is nobody to answer.
    """
    text = data.decode("latin-1")
    head = re.split(r"\r?\n\r?\n", text, maxsplit=1)[0]
    lines = re.split(r"\r?\n", head)
    if not lines:
        return None
    match = _REQUEST_LINE.match(lines[0])
    if match is None or match.group(1).upper() == "ACK":
        return None
    items: list[tuple[str, str]] = []
    for line in lines[1:]:
        if line[:1] in (" ", "\t") and items:
            name, value = items[-1]
            items[-1] = (name, f"{value} {line.strip()}")
            continue
        name, sep, value = line.partition(":")
        if not sep:
            continue
        items.append((canonical_name(name.strip()), value.strip()))
    wanted = ("Via", "From", "To", "Call-ID", "CSeq")
    kept = [(n, v) for n, v in items if n in wanted]
    kept = [
        (n, f"{v};tag={secrets.token_hex(6)}" if n == "To" and ";tag=" not in v.lower() else v)
        for n, v in kept
    ]
    if not all(any(n == w for n, _ in kept) for w in wanted):
        return None
    status = error.status_hint if 400 <= error.status_hint < 700 else 400
    try:
        response = Response(
            status=status, reason=_clean_reason(error.reason), headers=Headers(kept)
        )
        serialize(response)
    except Exception:  # the salvaged headers are too broken to send: drop
        return None
    return response
