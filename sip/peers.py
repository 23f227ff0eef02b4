"""Where a SIP message goes: the next hop for a URI without DNS (sans-IO).

RFC 3263 reduced to literal ``host:port``: the URI's ``transport`` parameter (else the
default given), its ``maddr`` (else its host, without IPv6 brackets) and its port (else the
transport's default, §19.1.2).
"""

from __future__ import annotations

from sip.errors import LocalProtocolError
from sip.transaction_types import Peer
from sip.uri import SipUri, Uri

__all__ = ["bare_host", "default_port", "peer_for_uri"]


def bare_host(host: str) -> str:
    """An IPv6 reference without its brackets (``[::1]`` -> ``::1``); other hosts as they are."""
    return host[1:-1] if host.startswith("[") and host.endswith("]") else host


def default_port(transport: str) -> int:
    return 5061 if transport.lower() in ("tls", "wss") else 5060


def peer_for_uri(uri: Uri, default_transport: str = "udp") -> Peer:
    """The next hop for a SIP URI without DNS (RFC 3263 reduced to literal host:port)."""
    if not isinstance(uri, SipUri):
        raise LocalProtocolError(f"cannot send to a non-SIP URI {uri}")
    transport = (uri.transport or default_transport).lower()
    maddr = uri.param("maddr")
    host = bare_host(maddr or uri.host)
    return Peer(transport, host, uri.port or default_port(transport))
