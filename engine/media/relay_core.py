"""The relay's endpoints and how they connect: ``RelayCore``, the base of :class:`Relay`.

It owns the forwarding thread's lifecycle (start, close), the endpoint table (allocating and
releasing RTP/RTCP port pairs), the routing between endpoints (bridge, unbridge, hold, echo)
and the counters (stats, statistics), and the helpers every control call uses: the lock, the
endpoint lookup and the command submission (see ``engine.media.relay`` for how a control call
reaches the forwarding loop). What the relay itself plays, mixes and records is
``engine.media.relay.Relay``, which adds those calls to this class.
"""

from __future__ import annotations

import functools
import ipaddress
import itertools
import random
import socket
import threading
import time
from collections.abc import Callable, Sequence

from engine.media import fdlimit, mixer
from engine.media.checks import check_range, remote_address
from engine.media.commands import CommandQueue
from engine.media.errors import DescriptorsExhausted, MediaError, PortRangeExhausted
from engine.media.forwarding import Forwarder
from engine.media.leg import Address, Leg
from engine.media.ports import PortTable
from engine.media.state import (
    EndpointState,
    apply_remote,
    detach_recorder,
    route,
)
from engine.media.stats import MediaEndpoint, RelayStatistics, StreamStats
from engine.media.telephone_event import EventSink, event_socketpair


class RelayCore:
    """The relay's endpoints, their routing and counters; :class:`Relay` is the whole relay."""

    def __init__(
        self,
        address: str,
        port_range: tuple[int, int],
        *,
        relatch_after: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
        events: socket.socket | None = None,
    ) -> None:
        """``relatch_after``: seconds of silence after which a phone may re-latch from a new
        address with the same SSRC. ``clock``: monotonic seconds (tests may inject one).
        ``events``: where digit reports go (the child's end of ``RelayProcess``'s event
        socket); without it the relay makes its own pair (``event_fileno``, ``read_events``)."""
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            raise MediaError(f"relay address must be an IP address, not {address!r}") from None
        lo, hi = check_range(port_range)
        self._address = str(ip)
        self._family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
        self._ports = PortTable(self._address, self._family, lo, hi)
        # the descriptor limit, not the port range, may be what bounds the calls (said once)
        fdlimit.check_capacity(self._ports.pairs)
        self._relatch_after = relatch_after
        self._clock = clock
        self._lock = threading.Lock()
        self._commands = CommandQueue(self._lock)
        self._event_reader: socket.socket | None = None
        if events is None:
            self._event_reader, events = event_socketpair()
        self._forwarder = Forwarder(self._commands, clock, EventSink(events))
        self._timers = self._forwarder.timers
        self._endpoints: dict[int, EndpointState] = {}
        self._ids = itertools.count(1)
        self._tone_audio: dict[tuple[int, int, float], bytes] = {}
        self._file_audio: dict[tuple[str, int], bytes] = {}  # (path, payload type) -> G.711
        self._rng = random.Random()
        self._thread: threading.Thread | None = None
        self._closed = False

    # ----------------------------------------------------------------- lifecycle

    @property
    def address(self) -> str:
        return self._address

    @property
    def native_thread_id(self) -> int | None:
        """The forwarding thread's OS id (for CPU accounting), None before start()."""
        return None if self._thread is None else self._thread.native_id

    @property
    def loop_iterations(self) -> int:
        """Polls the forwarding loop has made."""
        return self._forwarder.loop_iterations

    def start(self) -> None:
        """Start the forwarding thread."""
        with self._lock:
            self._check_open()
            if self._thread is not None:
                raise MediaError("relay already started")
            self._thread = threading.Thread(
                target=self._forwarder.run, name="media-relay", daemon=True
            )
            self._commands.running = True
            self._thread.start()

    def close(self) -> None:
        """Stop the thread, close every socket, finish recordings. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._forwarder.stopping = True
            thread = self._thread
            self._commands.wake()
        if thread is not None and thread is not threading.current_thread():
            thread.join()
        with self._lock:
            self._commands.close()  # runs what is still queued, e.g. a release()
            recorders = {id(s.recorder): s.recorder for s in self._endpoints.values() if s.recorder}
            for state in self._endpoints.values():
                state.recorder = None
                for leg in (state.rtp, state.rtcp):
                    leg.recorder = None
                    leg.sock.close()
            self._endpoints.clear()
            self._ports.used.clear()
            self._forwarder.close()
            self._forwarder.events.close()
            if self._event_reader is not None:
                self._event_reader.close()
        for recorder in recorders.values():
            if recorder is not None:
                recorder.close()

    # ----------------------------------------------------------------- endpoints

    def allocate(self, kind: str = "audio") -> MediaEndpoint:
        """Bind a free even RTP port and RTP+1 for RTCP from the range."""
        try:
            return self._allocate(kind)
        except (PortRangeExhausted, DescriptorsExhausted):
            # ports and sockets of endpoints released a moment ago are freed by the loop: let
            # it catch up (it may have done so since) and look once more
            self._commands.flush()
        return self._allocate(kind)

    def _allocate(self, kind: str) -> MediaEndpoint:
        with self._lock:
            self._check_open()
            rtp_sock, rtcp_sock, port = self._ports.bind_pair()
            endpoint = MediaEndpoint(next(self._ids), self._address, port, port + 1, kind)
            name = f"{kind} {self._address}:{port}"
            rtp = Leg(rtp_sock, True, f"{name} rtp", self._relatch_after, endpoint.id)
            rtcp = Leg(rtcp_sock, False, f"{name} rtcp", self._relatch_after, endpoint.id)
            state = EndpointState(endpoint, rtp, rtcp)
            self._endpoints[endpoint.id] = state
            self._submit(lambda: self._forwarder.register(rtp, rtcp))
        return endpoint

    def release(self, ep: MediaEndpoint) -> None:
        """Stop using ``ep`` (unbridging it) and close its sockets."""
        with self._lock:
            self._check_open()
            state = self._state(ep)
            if state.partner is not None:
                self._unbridge_locked(state, state.partner)
            if state.mix is not None:
                self._end_mix_locked(state.mix)
            del self._endpoints[ep.id]
            recorder = state.recorder
            if recorder is not None:
                for other in self._endpoints.values():
                    if other.recorder is recorder:
                        other.recorder = None
                        self._submit(functools.partial(detach_recorder, other))
            state.recorder = None
            self._submit(lambda: self._unregister(state))
        if recorder is not None:
            recorder.close()

    def set_remote(
        self, ep: MediaEndpoint, host: str, rtp_port: int, rtcp_port: int | None = None
    ) -> None:
        """Where ``ep``'s phone said (in SDP) it receives; used until it sends.

        A different address or port than the one given before drops the latch (a new SDP
        address means a new stream: media goes there until packets come from somewhere else);
        the same address keeps it (e.g. a re-INVITE for hold). ``rtcp_port`` defaults to
        ``rtp_port + 1``.
        """
        rtcp = rtp_port + 1 if rtcp_port is None else rtcp_port
        rtp_dest = self._remote(host, rtp_port)
        rtcp_dest = self._remote(host, rtcp)
        with self._lock:
            self._check_open()
            state = self._state(ep)
            self._submit(lambda: apply_remote(state, rtp_dest, rtcp_dest))

    def bridge(self, a: MediaEndpoint, b: MediaEndpoint) -> None:
        """Forward RTP and RTCP between ``a`` and ``b`` (both ways)."""
        if a == b:
            raise MediaError("cannot bridge an endpoint with itself")
        with self._lock:
            self._check_open()
            sa, sb = self._state(a), self._state(b)
            for s in (sa, sb):
                if s.partner is not None:
                    raise MediaError(f"endpoint {s.endpoint.id} is already bridged")
            sa.partner, sb.partner = sb, sa
            sa.echo = sb.echo = False
            self._submit(lambda: route(sa, sb))

    def unbridge(self, a: MediaEndpoint, b: MediaEndpoint) -> None:
        """Stop forwarding between ``a`` and ``b``; their packets are counted and dropped."""
        with self._lock:
            self._check_open()
            sa, sb = self._state(a), self._state(b)
            if sa.partner is not sb:
                raise MediaError(f"endpoints {a.id} and {b.id} are not bridged together")
            self._unbridge_locked(sa, sb)

    def set_direction(self, ep: MediaEndpoint, send: bool, receive: bool = True) -> None:
        """Hold: ``send=False`` stops media towards ``ep``'s phone (RTP only, RTCP flows on);
        ``receive=False`` stops forwarding media that ``ep``'s phone sends.

        E.g. party A puts B on hold with ``a=sendonly``: ``set_direction(a, send=False)`` — A's
        music still reaches B, nothing from B reaches A. Inactive: both False.
        """
        with self._lock:
            self._check_open()
            state = self._state(ep)
            state.send, state.receive = send, receive
            partner = state.partner
            self._submit(lambda: route(state, partner))

    def set_echo(self, ep: MediaEndpoint, on: bool = True) -> None:
        """Echo mode (for tests): send what ``ep``'s phone sends back to it. Not while bridged."""
        with self._lock:
            self._check_open()
            state = self._state(ep)
            if state.partner is not None:
                raise MediaError(f"endpoint {ep.id} is bridged; unbridge it before echo")
            state.echo = on
            self._submit(lambda: route(state, None))

    def stats(self, ep: MediaEndpoint) -> StreamStats:
        """A snapshot of ``ep``'s counters."""
        with self._lock:
            self._check_open()
            state = self._state(ep)
        rtp = state.rtp
        expected = rtp.expected()
        return StreamStats(
            rtp=rtp.snapshot(),
            rtcp=state.rtcp.snapshot(),
            ssrc=None if rtp.ssrc < 0 else rtp.ssrc,
            expected=expected,
            lost=max(expected - rtp.received, 0) if expected else 0,
        )

    def stats_many(self, eps: Sequence[MediaEndpoint]) -> list[StreamStats]:
        """``stats`` of each endpoint, in order."""
        return [self.stats(ep) for ep in eps]

    def statistics(self) -> RelayStatistics:
        """Counts of what the relay holds; cheap."""
        with self._lock:
            states = list(self._endpoints.values())
            return RelayStatistics(
                endpoints=len(states),
                bridges=sum(1 for s in states if s.partner is not None) // 2,
                tones=sum(1 for s in states if s.tone is not None),
                recordings=len({id(s.recorder) for s in states if s.recorder is not None}),
                free_port_pairs=self._ports.pairs - len(self._ports.used),
                loop_iterations=self._forwarder.loop_iterations,
                running=self._commands.running and not self._forwarder.stopping,
            )

    # ----------------------------------------------------------------- control helpers

    def _check_open(self) -> None:
        if self._closed:
            raise MediaError("relay is closed")

    def endpoint(self, endpoint_id: int) -> MediaEndpoint:
        """The live endpoint with this id (ids are never reused)."""
        with self._lock:
            state = self._endpoints.get(endpoint_id)
        if state is None:
            raise MediaError(f"unknown or released endpoint {endpoint_id}")
        return state.endpoint

    def _state(self, ep: MediaEndpoint) -> EndpointState:
        if not isinstance(ep, MediaEndpoint):
            raise MediaError(f"not a media endpoint: {ep!r}")
        state = self._endpoints.get(ep.id)
        if state is None or state.endpoint != ep:
            raise MediaError(f"unknown or released endpoint {ep.id} ({ep.address}:{ep.rtp_port})")
        return state

    def _remote(self, host: str, port: int) -> Address:
        return remote_address(host, port, ipv6=self._family == socket.AF_INET6)

    def _submit(self, command: Callable[[], None]) -> None:
        """Run ``command`` in the loop (now, if it is not running). Caller holds the lock."""
        self._commands.submit(command)

    def _unbridge_locked(self, sa: EndpointState, sb: EndpointState) -> None:
        sa.partner = sb.partner = None
        self._submit(lambda: route(sa, sb))

    def _unregister(self, state: EndpointState) -> None:
        """Loop side of ``release``: close its sockets, free its ports."""
        self._forwarder.unregister(state)
        self._ports.release(state.endpoint.rtp_port)

    def _end_mix_locked(self, mix: mixer.Mix) -> None:
        members = [s for s in self._endpoints.values() if s.mix is mix]
        for s in members:
            s.mix = None
        self._submit(lambda: self._timers.leave_mix(mix, members))
