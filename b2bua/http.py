"""The HTTP side of ``b2bua serve``: hypercorn's trio worker serving the UAPI app on the socket
``b2bua.listen.bind_api`` opened, with UAPI error bodies on hypercorn's own error answers."""

from __future__ import annotations

import logging
import socket
from collections.abc import Awaitable, Callable

import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve as hypercorn_serve
from starlette.types import ASGIApp

from api.serving import configure, use_uapi_error_bodies


async def serve_http(
    app: ASGIApp,
    sock: socket.socket,
    shutdown_trigger: Callable[[], Awaitable[None]],
    *,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``app`` on ``sock`` (hypercorn owns the socket from now on) until
    ``shutdown_trigger`` returns; started once it accepts connections."""
    hconfig = HypercornConfig()
    hconfig.bind = [f"fd://{sock.detach()}"]
    hconfig.accesslog = None
    hconfig.errorlog = logging.getLogger("hypercorn.error")
    hconfig.graceful_timeout = 1.0
    configure(hconfig)
    use_uapi_error_bodies()
    await hypercorn_serve(
        app,  # type: ignore[arg-type]  # Starlette's ASGI types are its own, not hypercorn's
        hconfig,
        shutdown_trigger=shutdown_trigger,
        task_status=task_status,
    )
