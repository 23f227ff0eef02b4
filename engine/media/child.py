"""The relay's child process: its entry point ``main([FD, CONFIG])`` and its side of the socket.

Started by :class:`engine.media.process.RelayProcess` (through a bootstrap that puts the
parent's package root on the path), never by hand: FD is the child's end of a socketpair,
CONFIG the JSON list ``[address, [low, high], relatch_after, events_fd]`` (``events_fd``: the
child's end of the socket its digit reports go to, ``engine.media.telephone_event``). The
child runs a :class:`~engine.media.relay.Relay` and serves the messages it reads there, in order:
``(method, args, kwargs, tag)``; a message with a tag is answered ``(tag, status, value)``,
one without (a one-way command) is not, and its failure is logged on the stderr the child
shares with its parent.
"""

from __future__ import annotations

import json
import logging
import multiprocessing.connection
import socket
import sys
from typing import Any

from engine.media.errors import DescriptorsExhausted, MediaError, PortRangeExhausted
from engine.media.fdlimit import raise_fd_limit
from engine.media.relay import Relay
from engine.media.stats import MediaEndpoint

logger = logging.getLogger(__name__)


def main(argv: list[str]) -> None:
    # One-way commands that fail are reported here, on the stderr it shares with its parent.
    logging.basicConfig(level=logging.WARNING, format="relay %(levelname)s %(name)s: %(message)s")
    raise_fd_limit()  # 4 sockets per bridged call: the usual soft limit (1,024) is ~250 calls
    fd = int(argv[0])
    address, port_range, relatch_after, *rest = json.loads(argv[1])
    conn = multiprocessing.connection.Connection(fd)
    events = socket.socket(fileno=int(rest[0])) if rest else None
    serve(
        conn,
        str(address),
        (int(port_range[0]), int(port_range[1])),
        float(relatch_after),
        events,
    )


def serve(
    conn: multiprocessing.connection.Connection,
    address: str,
    port_range: tuple[int, int],
    relatch_after: float,
    events: socket.socket | None = None,
) -> None:
    """Run a relay and serve the parent's messages until told to close or the parent is gone;
    its digit reports go to ``events`` (a one-way socket of their own)."""
    try:
        relay = Relay(address, port_range, relatch_after=relatch_after, events=events)
        relay.start()
    except Exception as exc:  # configuration errors go back to the parent
        conn.send(("error", exc))
        return
    conn.send(("ok", None))
    try:
        while True:
            try:
                method, args, kwargs, tag = conn.recv()
            except (EOFError, OSError):
                return  # the parent is gone
            if method == "close":
                return
            if method == "allocate_many":  # a pool refill: the answer names the kind
                kind = args[0]
                try:
                    _reply(conn, tag, "ok", (kind, _allocate_many(relay, *args)))
                except Exception as exc:
                    error = exc if isinstance(exc, MediaError) else MediaError(str(exc))
                    _reply(conn, tag, "error", (kind, error))
                continue
            if method == "batch":  # one-way commands sent together (RelayProcess.defer_casts)
                for one_method, one_args, one_kwargs, _tag in args[0]:
                    _run_one_way(relay, one_method, one_args, one_kwargs)
                continue
            if tag is None:
                _run_one_way(relay, method, args, kwargs)
                continue
            try:
                result = _run(relay, method, args, kwargs)
            except Exception as exc:
                _reply(conn, tag, "error", exc)
            else:
                _reply(conn, tag, "ok", result)
    finally:
        relay.close()
        conn.close()


def _run(relay: Relay, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """One command in the child (endpoint ids looked up); its result."""
    if method == "sync":
        return None
    if method == "native_thread_id":
        return relay.native_thread_id
    if method == "stats_many":
        return relay.stats_many([relay.endpoint(ep_id) for ep_id in args[0]])
    if method == "start_mix":
        relay.start_mix([relay.endpoint(i) for i in args[0]], *args[1:])
        return None
    return getattr(relay, method)(*_resolve(relay, method, args), **kwargs)


def _run_one_way(relay: Relay, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """A command nobody waits for: its failure is logged here, not answered."""
    try:
        _run(relay, method, args, kwargs)
    except Exception as exc:
        logger.warning("relay command %s failed: %s", method, exc)


# How many leading arguments of each command are endpoints. They cross the socket as their
# ids (an int pickles ~10x faster than the dataclass); the child looks them up.
_ENDPOINT_ARGS = {
    "release": 1,
    "set_remote": 1,
    "bridge": 2,
    "unbridge": 2,
    "set_direction": 1,
    "set_echo": 1,
    "stats": 1,
    "play_tone": 1,
    "play_audio": 1,
    "stop_tone": 1,
    "generate": 1,
    "stop_generating": 1,
    "set_telephone_event": 1,
    "send_dtmf": 1,
    "stop_mix": 1,
    "start_recording": 2,
    "stop_recording": 2,
}


def _resolve(relay: Relay, method: str, args: tuple[Any, ...]) -> tuple[Any, ...]:
    """The child's side of ``_ENDPOINT_ARGS``: ids back to the relay's endpoints."""
    count = _ENDPOINT_ARGS.get(method, 0)
    if not count:
        return args
    endpoints = tuple(None if ep_id is None else relay.endpoint(ep_id) for ep_id in args[:count])
    return endpoints + args[count:]


def _allocate_many(relay: Relay, kind: str, count: int) -> list[MediaEndpoint]:
    """Up to ``count`` endpoints; an error only if not even one could be had."""
    endpoints: list[MediaEndpoint] = []
    while len(endpoints) < count:
        try:
            endpoints.append(relay.allocate(kind))
        except Exception as exc:  # range exhausted, out of file descriptors...
            if not endpoints:
                raise
            # running out is said where it happens (and at start-up): no warning per refill
            if not isinstance(exc, (PortRangeExhausted, DescriptorsExhausted)):
                logger.warning("relay: refill stopped after %d endpoints: %s", len(endpoints), exc)
            break
    return endpoints


def _reply(
    conn: multiprocessing.connection.Connection, tag: str, status: str, value: object
) -> None:
    try:
        conn.send((tag, status, value))
    except (TypeError, AttributeError, ValueError) as exc:  # unpicklable: say what it was
        conn.send((tag, "error", MediaError(f"relay process: {value!r} ({exc})")))


if __name__ == "__main__":
    main(sys.argv[1:])
