"""The relay in a child process, behind the same API as :class:`engine.media.relay.Relay`.

Why: a thread shares the GIL with the engine's trio thread, and CPython releases the GIL around
every socket call, so whenever the trio thread runs Python the forwarding thread waits up to the
switch interval (5 ms by default) after each ``recvfrom``/``sendto`` (a convoy). Measured with
``benchmarks/bench_relay.py --gil-load 0.5``: p50 30 ms and p99 270 ms at 600 calls, against
0.1 ms / 1 ms without the competing thread. A child process has its own GIL.

Theory of operation: ``RelayProcess`` starts ``engine.media.child`` in a fresh interpreter
(no fork of a threaded parent, and unlike multiprocessing's spawn no re-import of the parent's
main module; ``-P`` and a bootstrap that puts the parent's own package root on the path, so the
child never runs another ``engine/`` from the current folder) with one end of a socketpair;
the child runs a ``Relay`` and serves the control messages it reads there, in order. The
engine's trio thread must not wait for the child (a round trip is ~40 µs on an idle machine,
milliseconds when both cores are busy, and the whole event loop stops meanwhile), so:

- commands that return nothing (release, set_remote, bridge, unbridge, set_direction, play and
  stop tone, start and stop a mix) are *one-way*: pickled and written to the socket, not
  answered. What the child would reject for bad arguments (bridging an endpoint with itself,
  a host that is not an IP address of the relay's family, a bad port, tone or mix) is checked
  here first and raised at once;
  what can only fail in the child (an endpoint released in the meantime) is logged there.
- ``allocate`` takes endpoints from a small pool per kind. When the pool runs low a refill of
  ``_POOL_BATCH`` endpoints is asked for and its answer (tagged, so it cannot be mistaken for
  a round trip's) is taken whenever it has arrived: allocate waits only when the pool is
  empty. Pooled endpoints count as free in ``statistics()``.
- the rest (stats, statistics, set_echo, recording) is a round trip; since the child handles
  messages in order, a reply always answers the last request and sees every earlier command's
  effect. From trio use ``trio.to_thread.run_sync`` for ``stop_recording`` (it finalises a file).

This module starts and stops the child and maps the relay's control calls onto the socket; the
socket's side of the parent (round trips, one-way commands and their batching, the endpoint
pool, giving up on a hung child) is ``engine.media.process_link.RelayLink``, the base of
``RelayProcess``.

The child exits when told to or when the socketpair breaks (the parent died). It runs in a
process group of its own and ignores SIGINT and SIGTERM: stopping it is the parent's job.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import multiprocessing.connection
import socket
import struct
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from engine.media.checks import (
    check_dtmf_request,
    check_mix_request,
    check_tone_request,
    remote_address,
)
from engine.media.errors import MediaError
from engine.media.process_link import RelayLink
from engine.media.recorder import RecordingInfo
from engine.media.stats import MediaEndpoint, RelayStatistics, StreamStats
from engine.media.telephone_event import DigitReport, event_socketpair, read_reports

logger = logging.getLogger(__name__)

_START_TIMEOUT = 30.0
_STOP_TIMEOUT = 5.0


def _ref(ep: object) -> int:
    """An endpoint's id for the wire; a wrong argument fails here, in the caller's thread."""
    if not isinstance(ep, MediaEndpoint):
        raise MediaError(f"not a media endpoint: {ep!r}")
    return ep.id


# The child's entry: our package root (argv[1]) goes first on sys.path unless it is there
# already (an installed package: its site directory), then engine.media.child runs. Its
# life is its parent's: a Ctrl-C or a SIGTERM for the whole group (a terminal, systemd's
# KillMode=control-group) must not take the media away from a draining server, nor print a
# traceback; the parent stops it, and it stops by itself when the parent is gone.
_BOOTSTRAP = (
    "import os, signal, sys\n"
    "signal.signal(signal.SIGINT, signal.SIG_IGN)\n"
    "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    "root = sys.argv[1]\n"
    "if all(os.path.realpath(p or '.') != root for p in sys.path):\n"
    "    sys.path.insert(0, root)\n"
    "from engine.media.child import main\n"
    "main(sys.argv[2:])\n"
)


def _package_root() -> str:
    """The folder holding the ``engine`` package this process runs."""
    return str(Path(__file__).resolve().parents[2])


class RelayProcess(RelayLink):
    """A :class:`Relay` running in a child process; the same control calls."""

    @property
    def alive(self) -> bool:
        """Whether the child is running (False before start, after close, and if it died)."""
        process = self._process
        return process is not None and process.poll() is None

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
            # the child's digit reports: a one-way socket of their own (see event_fileno)
            reader, writer = event_socketpair()
            # A child that stops reading must not block a sender forever: a write that cannot
            # proceed for answer_timeout fails (EAGAIN), and the child is taken for hung.
            seconds = max(self._answer_timeout, 0.001)
            ours.setsockopt(
                socket.SOL_SOCKET,
                socket.SO_SNDTIMEO,
                struct.pack("ll", int(seconds), int((seconds % 1) * 1_000_000)),
            )
            try:
                process = subprocess.Popen(
                    [
                        sys.executable,
                        "-P",  # not the current folder's engine/: ours (_BOOTSTRAP)
                        "-c",
                        _BOOTSTRAP,
                        _package_root(),
                        str(theirs.fileno()),
                        json.dumps(
                            [
                                self._address,
                                list(self._port_range),
                                self._relatch_after,
                                writer.fileno(),
                            ]
                        ),
                    ],
                    pass_fds=(theirs.fileno(), writer.fileno()),
                    stdin=subprocess.DEVNULL,
                    process_group=0,  # a terminal's Ctrl-C goes to the server alone
                )
            except OSError as exc:
                ours.close()
                reader.close()
                raise MediaError(f"cannot start the relay process: {exc}") from None
            finally:
                theirs.close()
                writer.close()
            self._process = process
            self._event_reader = reader
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
        self.flush_casts()
        conn, process = self._conn, self._process
        self._conn = None
        if conn is not None:
            with self._send_lock, contextlib.suppress(OSError, TypeError, ValueError):
                conn.send(("close", (), {}, None))
        if process is not None:
            try:
                process.wait(_STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                logger.warning("relay process %s did not stop; killing it", process.pid)
                process.kill()
                process.wait()
        if conn is not None:
            with self._send_lock:
                conn.close()
        self._pool.clear()
        self._refilling.clear()
        if self._event_reader is not None:
            self._event_reader.close()
            self._event_reader = None

    def __enter__(self) -> RelayProcess:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def release(self, ep: MediaEndpoint) -> None:
        self._cast("release", _ref(ep))

    def set_remote(
        self, ep: MediaEndpoint, host: str, rtp_port: int, rtcp_port: int | None = None
    ) -> None:
        remote_address(host, rtp_port, ipv6=self._ipv6)
        remote_address(host, rtp_port + 1 if rtcp_port is None else rtcp_port, ipv6=self._ipv6)
        self._cast("set_remote", _ref(ep), host, rtp_port, rtcp_port)

    def bridge(self, a: MediaEndpoint, b: MediaEndpoint) -> None:
        if _ref(a) == _ref(b):
            raise MediaError("cannot bridge an endpoint with itself")
        self._cast("bridge", a.id, b.id)

    def unbridge(self, a: MediaEndpoint, b: MediaEndpoint) -> None:
        self._cast("unbridge", _ref(a), _ref(b))

    def set_direction(self, ep: MediaEndpoint, send: bool, receive: bool = True) -> None:
        self._cast("set_direction", _ref(ep), send, receive)

    def set_echo(self, ep: MediaEndpoint, on: bool = True) -> None:
        self._call("set_echo", _ref(ep), on)

    def stats(self, ep: MediaEndpoint) -> StreamStats:
        result: StreamStats = self._call("stats", _ref(ep))
        return result

    def stats_many(self, eps: Sequence[MediaEndpoint]) -> list[StreamStats]:
        result: list[StreamStats] = self._call("stats_many", [_ref(ep) for ep in eps])
        return result

    def statistics(self) -> RelayStatistics:
        result: RelayStatistics = self._call("statistics")
        pooled = sum(len(pool) for pool in self._pool.values())
        return dataclasses.replace(
            result,
            endpoints=result.endpoints - pooled,
            free_port_pairs=result.free_port_pairs + pooled,
        )

    def play_tone(
        self,
        ep: MediaEndpoint,
        frequency: float = 440.0,
        payload_type: int = 0,
        *,
        level_dbfs: float = -10.0,
        duration: float | None = None,
    ) -> None:
        check_tone_request(frequency, payload_type, level_dbfs, duration)
        self._cast(
            "play_tone", _ref(ep), frequency, payload_type, level_dbfs=level_dbfs, duration=duration
        )

    def play_audio(self, ep: MediaEndpoint, path: str, payload_type: int = 0) -> None:
        self._cast("play_audio", _ref(ep), path, payload_type)

    def stop_tone(self, ep: MediaEndpoint) -> None:
        self._cast("stop_tone", _ref(ep))

    def generate(
        self,
        ep: MediaEndpoint,
        frequency: float = 440.0,
        payload_type: int = 0,
        *,
        level_dbfs: float = -10.0,
    ) -> None:
        check_tone_request(frequency, payload_type, level_dbfs, None)
        self._cast("generate", _ref(ep), frequency, payload_type, level_dbfs=level_dbfs)

    def stop_generating(self, ep: MediaEndpoint) -> None:
        self._cast("stop_generating", _ref(ep))

    def set_telephone_event(self, ep: MediaEndpoint, payload_type: int | None) -> None:
        check_dtmf_request(payload_type)
        self._cast("set_telephone_event", _ref(ep), payload_type)

    def send_dtmf(self, ep: MediaEndpoint, event: int, duration_ms: int) -> None:
        check_dtmf_request(event=event)
        self._cast("send_dtmf", _ref(ep), event, duration_ms)

    def event_fileno(self) -> int:
        """Readable when the child's digit reports wait (``read_events``)."""
        if self._event_reader is None:
            raise MediaError("relay is not started" if not self._closed else "relay is closed")
        return self._event_reader.fileno()

    def read_events(self) -> list[DigitReport] | None:
        """The child's digit reports waiting (never blocks); None once the child is gone."""
        reader = self._event_reader
        return None if reader is None else read_reports(reader)

    def start_mix(
        self,
        eps: Sequence[MediaEndpoint],
        payload_types: Sequence[int],
        hears: Sequence[tuple[int, int]],
    ) -> None:
        check_mix_request(eps, payload_types, hears)
        refs = [_ref(ep) for ep in eps]
        self._cast("start_mix", refs, list(payload_types), [tuple(pair) for pair in hears])

    def stop_mix(self, ep: MediaEndpoint) -> None:
        self._cast("stop_mix", _ref(ep))

    def start_recording(self, a: MediaEndpoint, b: MediaEndpoint, path: str) -> None:
        self._call("start_recording", _ref(a), _ref(b), path)

    def stop_recording(self, a: MediaEndpoint, b: MediaEndpoint | None = None) -> RecordingInfo:
        result: RecordingInfo = self._call(
            "stop_recording", _ref(a), None if b is None else _ref(b)
        )
        return result
