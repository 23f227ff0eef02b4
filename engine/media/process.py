"""The relay in a child process, behind the same API as :class:`engine.media.relay.Relay`.

Why: a thread shares the GIL with the engine's trio thread, and CPython releases the GIL around
every socket call, so whenever the trio thread runs Python the forwarding thread waits up to the
switch interval (5 ms by default) after each ``recvfrom``/``sendto`` (a convoy). Measured with
``benchmarks/bench_relay.py --gil-load 0.5``: p50 30 ms and p99 270 ms at 600 calls, against
0.1 ms / 1 ms without the competing thread. A child process has its own GIL.

Theory of operation: ``RelayProcess`` starts ``python -m engine.media.child`` (a fresh
interpreter: no fork of a threaded parent, and unlike multiprocessing's spawn no re-import of
the parent's main module) with one end of a socketpair; the child runs a ``Relay`` and serves
the control calls it reads there, one at a time, answering each with the result or the
exception. Calls from the parent are serialised by a lock and cost one round trip (about 40 µs
here; more when the machine is busy), blocking the caller that long: from trio, calling the
cheap ones directly is fine; use ``trio.to_thread.run_sync`` for ``stop_recording``. The child
exits when told to or when the socketpair breaks (the parent died).
"""

from __future__ import annotations

import contextlib
import json
import logging
import multiprocessing.connection
import socket
import subprocess
import sys
import threading
from typing import Any

from engine.media.errors import MediaError
from engine.media.recorder import RecordingInfo
from engine.media.relay import Relay
from engine.media.stats import MediaEndpoint, RelayStatistics, StreamStats

logger = logging.getLogger(__name__)

_START_TIMEOUT = 30.0
_STOP_TIMEOUT = 5.0
_ALLOWED = frozenset(
    {
        "allocate",
        "release",
        "set_remote",
        "bridge",
        "unbridge",
        "set_direction",
        "set_echo",
        "stats",
        "statistics",
        "play_tone",
        "stop_tone",
        "start_recording",
        "stop_recording",
        "native_thread_id",
    }
)


def serve(
    conn: multiprocessing.connection.Connection,
    address: str,
    port_range: tuple[int, int],
    relatch_after: float,
) -> None:
    """Child process entry point."""
    try:
        relay = Relay(address, port_range, relatch_after=relatch_after)
        relay.start()
    except Exception as exc:  # configuration errors go back to the parent
        conn.send(("error", exc))
        return
    conn.send(("ok", None))
    try:
        while True:
            try:
                method, args, kwargs = conn.recv()
            except (EOFError, OSError):
                return  # the parent is gone
            if method == "close":
                return
            try:
                if method == "native_thread_id":
                    result: Any = relay.native_thread_id
                else:
                    result = getattr(relay, method)(*args, **kwargs)
            except Exception as exc:
                _reply(conn, "error", exc)
            else:
                _reply(conn, "ok", result)
    finally:
        relay.close()
        conn.close()


def _reply(conn: multiprocessing.connection.Connection, status: str, value: object) -> None:
    try:
        conn.send((status, value))
    except (TypeError, AttributeError, ValueError) as exc:  # unpicklable: say what it was
        conn.send(("error", MediaError(f"relay process: {value!r} ({exc})")))


class RelayProcess:
    """A :class:`Relay` running in a child process; the same control calls."""

    def __init__(
        self,
        address: str,
        port_range: tuple[int, int],
        *,
        relatch_after: float = 2.0,
    ) -> None:
        self._address = address
        self._port_range = port_range
        self._relatch_after = relatch_after
        self._lock = threading.Lock()
        self._conn: multiprocessing.connection.Connection | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._closed = False

    @property
    def address(self) -> str:
        return self._address

    @property
    def pid(self) -> int | None:
        """The child's process id, None before start()."""
        return None if self._process is None else self._process.pid

    @property
    def native_thread_id(self) -> int | None:
        """The forwarding thread's OS id inside the child (for CPU accounting)."""
        if self._conn is None:
            return None
        value = self._call("native_thread_id")
        return value if isinstance(value, int) else None

    def start(self) -> None:
        """Start the child and its forwarding thread; raises MediaError on bad configuration."""
        with self._lock:
            if self._closed:
                raise MediaError("relay is closed")
            if self._process is not None:
                raise MediaError("relay already started")
            ours, theirs = socket.socketpair()
            try:
                process = subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "engine.media.child",
                        str(theirs.fileno()),
                        json.dumps([self._address, list(self._port_range), self._relatch_after]),
                    ],
                    pass_fds=(theirs.fileno(),),
                    stdin=subprocess.DEVNULL,
                )
            except OSError as exc:
                ours.close()
                raise MediaError(f"cannot start the relay process: {exc}") from None
            finally:
                theirs.close()
            self._process = process
            self._conn = multiprocessing.connection.Connection(ours.detach())
            try:
                if not self._conn.poll(_START_TIMEOUT):
                    raise MediaError("relay process did not start")
                status, value = self._conn.recv()
            except (EOFError, OSError):
                self._stop_locked()
                raise MediaError("relay process failed to start") from None
            except MediaError:
                self._stop_locked()
                raise
            if status == "error":
                self._stop_locked()
                raise value if isinstance(value, MediaError) else MediaError(str(value))

    def close(self) -> None:
        """Stop the child (closing every socket, finishing recordings). Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._stop_locked()

    def _stop_locked(self) -> None:
        conn, process = self._conn, self._process
        self._conn = None
        if conn is not None:
            with contextlib.suppress(OSError):
                conn.send(("close", (), {}))
        if process is not None:
            try:
                process.wait(_STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                logger.warning("relay process %s did not stop; killing it", process.pid)
                process.kill()
                process.wait()
        if conn is not None:
            conn.close()

    def __enter__(self) -> RelayProcess:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        assert method in _ALLOWED
        with self._lock:
            conn = self._conn
            if conn is None:
                raise MediaError("relay is closed" if self._closed else "relay is not started")
            try:
                conn.send((method, args, kwargs))
                status, value = conn.recv()
            except (EOFError, OSError) as exc:
                raise MediaError(f"relay process is gone: {exc!r}") from None
        if status == "error":
            if isinstance(value, BaseException):
                raise value
            raise MediaError(str(value))
        return value

    # The control calls of Relay (see there for their meaning).

    def allocate(self, kind: str = "audio") -> MediaEndpoint:
        result: MediaEndpoint = self._call("allocate", kind)
        return result

    def release(self, ep: MediaEndpoint) -> None:
        self._call("release", ep)

    def set_remote(
        self, ep: MediaEndpoint, host: str, rtp_port: int, rtcp_port: int | None = None
    ) -> None:
        self._call("set_remote", ep, host, rtp_port, rtcp_port)

    def bridge(self, a: MediaEndpoint, b: MediaEndpoint) -> None:
        self._call("bridge", a, b)

    def unbridge(self, a: MediaEndpoint, b: MediaEndpoint) -> None:
        self._call("unbridge", a, b)

    def set_direction(self, ep: MediaEndpoint, send: bool, receive: bool = True) -> None:
        self._call("set_direction", ep, send, receive)

    def set_echo(self, ep: MediaEndpoint, on: bool = True) -> None:
        self._call("set_echo", ep, on)

    def stats(self, ep: MediaEndpoint) -> StreamStats:
        result: StreamStats = self._call("stats", ep)
        return result

    def statistics(self) -> RelayStatistics:
        result: RelayStatistics = self._call("statistics")
        return result

    def play_tone(
        self,
        ep: MediaEndpoint,
        frequency: float = 440.0,
        payload_type: int = 0,
        *,
        level_dbfs: float = -10.0,
        duration: float | None = None,
    ) -> None:
        self._call(
            "play_tone", ep, frequency, payload_type, level_dbfs=level_dbfs, duration=duration
        )

    def stop_tone(self, ep: MediaEndpoint) -> None:
        self._call("stop_tone", ep)

    def start_recording(self, a: MediaEndpoint, b: MediaEndpoint, path: str) -> None:
        self._call("start_recording", a, b, path)

    def stop_recording(self, a: MediaEndpoint, b: MediaEndpoint | None = None) -> RecordingInfo:
        result: RecordingInfo = self._call("stop_recording", a, b)
        return result
