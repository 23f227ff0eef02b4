"""The server's listeners, opened before anything else starts so that a taken port is reported
first, as one ``ListenError`` naming it: ``cannot listen on sip udp 127.0.0.1:5060: address
already in use``."""

from __future__ import annotations

import logging
import socket

from engine.config_model import Config
from sip.endpoint import SipEndpoint

logger = logging.getLogger(__name__)


class ListenError(OSError):
    """A listener could not be opened; the text names it and the reason, e.g. ``cannot listen
    on sip udp 127.0.0.1:5060: address already in use``. ``serve`` raises it before starting
    anything else."""

    def __init__(self, what: str, cause: OSError) -> None:
        super().__init__(cause.errno, cause.strerror)
        reason = cause.strerror or str(cause)  # "Address already in use"
        self.message = f"cannot listen on {what}: {reason[:1].lower()}{reason[1:]}"

    def __str__(self) -> str:
        return self.message


async def listen_sip(endpoint: SipEndpoint, config: Config) -> list[tuple[str, str, int]]:
    """Bind every ``[sip] listen`` address. Port 0 listeners on one host share the port the
    first one got (UDP and TCP on the same number, as SIP peers expect); should that number
    be taken for the other transport, that listener falls back to a port of its own.
    ``ListenError`` names the listener that could not be bound."""
    bound: list[tuple[str, str, int]] = []
    shared: dict[str, int] = {}
    for listen in config.sip.listen:
        what = f"sip {listen.transport} {hostport(listen.host, listen.port)}"
        try:
            if listen.port == 0 and listen.host in shared:
                try:
                    host, port = await endpoint.listen(
                        listen.transport, listen.host, shared[listen.host]
                    )
                except OSError:
                    logger.warning("port %d taken for %s", shared[listen.host], listen.transport)
                    host, port = await endpoint.listen(listen.transport, listen.host, 0)
            else:
                host, port = await endpoint.listen(listen.transport, listen.host, listen.port)
                if listen.port == 0:
                    shared[listen.host] = port
        except OSError as exc:
            raise ListenError(what, exc) from None
        bound.append((listen.transport, host, port))
    return bound


def bind_api(config: Config) -> socket.socket:
    """The API's listening socket, bound here (not by hypercorn) so that a taken port is a
    ``ListenError`` naming it, like the SIP listeners', and so that the port (the public URL's,
    with port 0) is known before the HTTP app is built."""
    host, port = config.api.host, config.api.port
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(100)
    except OSError as exc:
        sock.close()
        raise ListenError(f"api http://{hostport(host, port)}", exc) from None
    return sock


def hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
