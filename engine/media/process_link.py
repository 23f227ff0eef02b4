"""The parent's end of the socket to the relay child: how a control call reaches it.

``RelayLink`` is the base of :class:`engine.media.process.RelayProcess` (which starts and stops
the child and maps the relay's control calls onto this link; its module docstring is the
theory of operation). This module holds the wire's rules:

- a *round trip* (``_call``) sends a request and waits for the child's answer, with a timeout:
  a child that does not answer in time, or stops reading, is killed (``_give_up``) and every
  later call raises ``MediaError`` naming why;
- a *one-way command* (``_cast``) is written and not answered; ``defer_casts`` batches those
  of one thread until ``flush_casts`` sends them as one message, in the order given;
- ``allocate`` takes endpoints from a pool per kind, refilled ahead in batches whose answers
  are tagged so that they are never taken for a round trip's.
"""

from __future__ import annotations

import logging
import multiprocessing.connection
import pickle
import socket
import subprocess
import threading
from collections.abc import Callable
from typing import Any, NoReturn

from engine.media.errors import MediaError
from engine.media.stats import MediaEndpoint

# the relay process's log lines keep the one logger name operators see for it (``serve``'s text
# and JSON lines show the name), whichever of its two modules writes them
logger = logging.getLogger("engine.media.process")

_POOL_BATCH = 8  # endpoints per pool refill
_POOL_LOW = 4  # refill when the pool holds this many or fewer
_CALL = "call"  # the answer to a round trip
_REFILL = "pool"  # the answer to a pool refill
_ALLOWED = frozenset(
    {
        "allocate_many",
        "release",
        "set_remote",
        "bridge",
        "unbridge",
        "set_direction",
        "set_echo",
        "stats",
        "stats_many",
        "statistics",
        "play_tone",
        "play_audio",
        "stop_tone",
        "generate",
        "stop_generating",
        "set_telephone_event",
        "send_dtmf",
        "start_mix",
        "stop_mix",
        "start_recording",
        "stop_recording",
        "native_thread_id",
        "sync",
    }
)


class RelayLink:
    """The state of one relay child and the calls that cross its socket."""

    def __init__(
        self,
        address: str,
        port_range: tuple[int, int],
        *,
        relatch_after: float = 2.0,
        answer_timeout: float = 10.0,
    ) -> None:
        self._address = address
        self._answer_timeout = answer_timeout  # then the child is taken for hung and killed
        self._failure: str | None = None
        self._port_range = port_range
        self._relatch_after = relatch_after
        self._ipv6 = ":" in address
        self._lock = threading.Lock()  # start/stop and whole round trips
        self._send_lock = threading.RLock()  # one message at a time on the socket
        self._pool: dict[str, list[MediaEndpoint]] = {}  # allocated, not handed out
        self._refilling: set[str] = set()  # kinds with a refill on its way
        self._conn: multiprocessing.connection.Connection | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._closed = False
        self._event_reader: socket.socket | None = None  # the child's digit reports
        # one-way commands of the deferring thread, sent together by flush_casts()
        self._pending: list[tuple[str, tuple[Any, ...], dict[str, Any], None]] = []
        self._on_pending: Callable[[], None] | None = None
        self._deferring_thread: int | None = None

    @property
    def address(self) -> str:
        return self._address

    @property
    def pid(self) -> int | None:
        """The child's process id, None before start()."""
        return None if self._process is None else self._process.pid

    def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """A round trip: send the request, wait for the child's answer."""
        assert method in _ALLOWED
        with self._lock:
            conn = self._open_conn()
            self.flush_casts()  # commands sent before go first
            try:
                self._send(conn, (method, args, kwargs, _CALL))
                while True:
                    tag, status, value = self._receive(conn)
                    if tag == _CALL:
                        break
                    self._refilled(status, value)
            except (EOFError, OSError) as exc:
                raise MediaError(f"relay process is gone: {exc!r}") from None
        if status == "error":
            if isinstance(value, BaseException):
                raise value
            raise MediaError(str(value))
        return value

    def _cast(self, method: str, *args: Any, **kwargs: Any) -> None:
        """A one-way command: written to the socket, not answered (failures are logged by the
        child). Never waits for the child, except if it stopped reading for a socket buffer's
        worth of commands."""
        assert method in _ALLOWED
        conn = self._open_conn()
        on_pending = self._on_pending
        if on_pending is not None:
            if threading.get_ident() == self._deferring_thread:
                with self._send_lock:
                    self._pending.append((method, args, kwargs, None))
                    first = len(self._pending) == 1
                if first:
                    on_pending()
                return
            self.flush_casts()  # what the deferring thread queued goes first
        try:
            self._send(conn, (method, args, kwargs, None))
        except (OSError, TypeError, ValueError) as exc:  # closed under us by another thread
            raise MediaError(self._failure or f"relay process is gone: {exc!r}") from None

    def defer_casts(self, on_pending: Callable[[], None] | None) -> None:
        """Batch the one-way commands of the calling thread: they wait until ``flush_casts()``
        and cross the socket as one message (one write, one wake-up of the child, instead of
        one per command). ``on_pending`` is called, in that thread, when a batch gets its first
        command, so its owner can flush soon (an event loop: once its current tasks have run).
        Round trips and commands from other threads flush the batch first, so the child sees
        every command in the order it was given. ``None`` sends each command at once again."""
        self.flush_casts()
        self._deferring_thread = threading.get_ident() if on_pending is not None else None
        self._on_pending = on_pending

    def flush_casts(self) -> None:
        """Send the batched one-way commands now (see ``defer_casts``). Failures are logged:
        their callers have returned already (and a dead relay fails the next call)."""
        with self._send_lock:
            pending, self._pending = self._pending, []
            if not pending:
                return
            conn = self._conn
            if conn is None:
                logger.warning("relay is gone: %d commands not sent", len(pending))
                return
            message = pending[0] if len(pending) == 1 else ("batch", (pending,), {}, None)
            try:
                self._send(conn, message)
            except (OSError, TypeError, ValueError, MediaError) as exc:
                logger.warning("relay commands not sent: %s", exc)

    def _send(self, conn: multiprocessing.connection.Connection, message: object) -> None:
        # pickle.dumps, not conn.send: multiprocessing's ForkingPickler (for handles and fds,
        # which never cross here) costs a Pickler object per message
        data = pickle.dumps(message, pickle.HIGHEST_PROTOCOL)
        with self._send_lock:
            try:
                conn.send_bytes(data)
            except BlockingIOError:  # SO_SNDTIMEO: the child has not read for that long
                self._give_up(
                    f"relay process stopped reading its commands for {self._answer_timeout:g} s"
                )

    def _refilled(self, status: str, value: Any) -> BaseException | None:
        """Take a pool refill answer (``_lock`` held); the error if it failed."""
        try:
            kind, payload = value
        except (TypeError, ValueError):  # not a refill's shape: forget every refill asked for
            self._refilling.clear()
            return MediaError(f"relay process: unexpected refill answer {value!r}")
        self._refilling.discard(kind)
        if status == "error":
            return payload if isinstance(payload, BaseException) else MediaError(str(payload))
        payload.reverse()  # pop() hands them out lowest port first
        self._pool.setdefault(kind, []).extend(payload)
        return None

    def _open_conn(self) -> multiprocessing.connection.Connection:
        conn = self._conn
        if conn is None:
            if self._failure is not None:
                raise MediaError(self._failure)
            raise MediaError("relay is closed" if self._closed else "relay is not started")
        return conn

    def _receive(self, conn: multiprocessing.connection.Connection) -> tuple[str, str, Any]:
        """The child's next answer (``_lock`` held). A child that does not answer in time is
        hung (or stopped): it is killed, and this and every later call raise MediaError, so
        no caller waits forever and no late answer can be taken for another's."""
        if not conn.poll(self._answer_timeout):
            self._give_up(f"relay process did not answer within {self._answer_timeout:g} s")
        answer: tuple[str, str, Any] = conn.recv()
        return answer

    def _give_up(self, reason: str) -> NoReturn:
        """The child is hung: kill it (which also frees a sender blocked on it), then close our
        end; this and every later call raise MediaError(reason)."""
        self._failure = reason
        logger.error("%s; killing it (pid %s)", reason, self.pid)
        process, self._process = self._process, None
        if process is not None:
            process.kill()
            process.wait()
        with self._send_lock:
            conn, self._conn = self._conn, None
            if conn is not None:
                conn.close()
        self._pool.clear()
        self._refilling.clear()
        raise MediaError(reason)

    def sync(self) -> None:
        """Return once the child has taken every command sent before (one round trip)."""
        self._call("sync")

    # The control calls of Relay (see there for their meaning).

    def allocate(self, kind: str = "audio") -> MediaEndpoint:
        """An endpoint from the pool. Refills are requested ahead (when the pool runs low) and
        taken whenever they have arrived, so this waits for the child only when the pool is
        empty: at start, or when calls come faster than one round trip per batch."""
        self._open_conn()  # a dead or closed relay's pooled endpoints are no use
        pool = self._pool.setdefault(kind, [])
        if self._lock.acquire(blocking=not pool):  # busy (stop_recording?): use the pool
            try:
                conn = self._open_conn()
                try:
                    while conn.poll(0):
                        _tag, status, value = conn.recv()
                        self._refilled(status, value)  # only refills can be waiting here
                    if len(pool) <= _POOL_LOW:
                        self._refill(conn, kind)
                    while not pool:
                        self._refill(conn, kind)
                        _tag, status, value = self._receive(conn)
                        error = self._refilled(status, value)
                        if error is not None and value[0] == kind and not pool:
                            raise error
                except (EOFError, OSError) as exc:
                    raise MediaError(f"relay process is gone: {exc!r}") from None
            finally:
                self._lock.release()
        return pool.pop()

    def _refill(self, conn: multiprocessing.connection.Connection, kind: str) -> None:
        if kind not in self._refilling:
            self._refilling.add(kind)
            self._send(conn, ("allocate_many", (kind, _POOL_BATCH), {}, _REFILL))
