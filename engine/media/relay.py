"""The RTP/RTCP relay: one ``select.epoll`` loop in one dedicated thread.

Theory of operation
-------------------
Each endpoint owns an even RTP port and RTP+1 for RTCP (RFC 3550 section 11) bound on the relay's
address. ``bridge(a, b)`` makes what arrives at a's sockets leave from b's sockets towards b's
phone and vice versa, so each phone sees the relay's port of its own side as the source
(symmetric RTP, RFC 4961). Where the phone is comes from SDP first (``set_remote``) and then from
latching on the packets it sends (see ``engine.media.leg``).

Threads: the forwarding loop owns the sockets' fast state (legs, tones). Control calls come from
any thread (the engine's trio thread): they validate and update the control state under a lock,
then queue a small command and wake the loop through an eventfd; the loop runs queued commands,
under the same lock, before it looks at the packets of each poll, so a packet sent after a
control call returned is handled with that call in effect. Before ``start()`` commands run at
once. Counters are read without the loop's help (see ``Leg``).

The per-packet path is one ``recvfrom_into`` into a preallocated buffer, a few int updates, and
one ``sendto`` of a memoryview slice; level-triggered epoll with one datagram per ready socket
per poll keeps many quiet sockets (50 packets/s each) cheap. Tones are timers on the same loop
(the poll timeout is the next tone's due time): a tone played *to* an endpoint's phone, or a
generator that *is* the endpoint's phone (a sandbox number: its packets count as received
from it and go through the bridge, and what is forwarded to it counts as sent to it).
Recording hands packet copies to a writer thread.

The thread shares the GIL with the rest of its process: when another thread runs Python (the
engine's trio thread under load), each socket call of the loop can wait up to the switch interval
(see ``engine.media.process``). ``RelayProcess`` runs this same class in a child process.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import heapq
import ipaddress
import itertools
import logging
import os
import random
import select
import socket
import struct
import threading
import time
from collections.abc import Callable, Sequence

from engine.media import fdlimit, g711, mixer, tone
from engine.media.errors import DescriptorsExhausted, MediaError, PortRangeExhausted
from engine.media.leg import Address, Leg
from engine.media.recorder import RecordingInfo, WavRecorder
from engine.media.stats import MediaEndpoint, RelayStatistics, StreamStats

logger = logging.getLogger(__name__)

_BUFFER_SIZE = 65536  # any UDP datagram fits
_MAX_EVENTS = 4096
_TONE_CACHE_SIZE = 16
_SSRC = struct.Struct("!I")  # at offset 8 of an RTP header


class _EndpointState:
    """Control state of an endpoint; fields are changed under the relay's lock."""

    __slots__ = (
        "echo",
        "endpoint",
        "generator",
        "mix",
        "mix_input",
        "partner",
        "receive",
        "recorder",
        "rtcp",
        "rtp",
        "send",
        "tone",
        "tone_channel",
        "tone_recorder",
    )

    def __init__(self, endpoint: MediaEndpoint, rtp: Leg, rtcp: Leg) -> None:
        self.endpoint = endpoint
        self.rtp = rtp
        self.rtcp = rtcp
        self.partner: _EndpointState | None = None
        # in a mix (control state) and what stands in for its partner there (loop state)
        self.mix: mixer.Mix | None = None
        self.mix_input: mixer.MixInput | None = None
        self.send = True  # the relay sends media to this endpoint's phone
        self.receive = True  # the relay forwards media coming from this endpoint's phone
        self.echo = False
        self.tone: tone.ToneSource | None = None  # owned by the loop thread
        # a phone inside the relay (a sandbox number): what it sends (see ``generate``)
        self.generator: tone.ToneSource | None = None
        # a tone played to this phone stands for the other party: recorded on its channel
        self.tone_recorder: Callable[[tuple[int, float, bytes]], None] | None = None
        self.tone_channel = 0
        self.recorder: WavRecorder | None = None


class Relay:
    """RTP/RTCP relay between pairs of endpoints; see the module docstring."""

    def __init__(
        self,
        address: str,
        port_range: tuple[int, int],
        *,
        relatch_after: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``relatch_after``: seconds of silence after which a phone may re-latch from a new
        address with the same SSRC. ``clock``: monotonic seconds (tests may inject one)."""
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            raise MediaError(f"relay address must be an IP address, not {address!r}") from None
        lo, hi = _check_range(port_range)
        self._address = str(ip)
        self._family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
        self._first_port = lo + (lo & 1)
        self._last_port = hi
        self._cursor = self._first_port
        # the descriptor limit, not the port range, may be what bounds the calls (said once)
        fdlimit.check_capacity((hi - self._first_port + 1) // 2)
        self._relatch_after = relatch_after
        self._clock = clock
        self._lock = threading.Lock()
        self._commands: list[Callable[[], None]] = []
        self._epoll = select.epoll()
        self._wake_fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self._epoll.register(self._wake_fd, select.EPOLLIN)
        self._legs: dict[int, Leg] = {}  # fd -> leg, owned by the loop once started
        self._endpoints: dict[int, _EndpointState] = {}
        self._used_ports: set[int] = set()
        self._ids = itertools.count(1)
        # tones, generators and mixes, by due time (a mix's entry has no endpoint state)
        self._tones: list[
            tuple[float, int, _EndpointState | None, tone.ToneSource | mixer.Mix]
        ] = []
        self._tone_order = itertools.count()
        self._mix_members: dict[int, list[_EndpointState]] = {}  # id(mix) -> members, by index
        self._tone_audio: dict[tuple[int, int, float], bytes] = {}
        self._rng = random.Random()
        self._thread: threading.Thread | None = None
        self._running = False
        self._stopping = False
        self._closed = False
        self.loop_iterations = 0

    # ----------------------------------------------------------------- lifecycle

    @property
    def address(self) -> str:
        return self._address

    @property
    def native_thread_id(self) -> int | None:
        """The forwarding thread's OS id (for CPU accounting), None before start()."""
        return None if self._thread is None else self._thread.native_id

    def start(self) -> None:
        """Start the forwarding thread."""
        with self._lock:
            self._check_open()
            if self._thread is not None:
                raise MediaError("relay already started")
            self._thread = threading.Thread(target=self._run, name="media-relay", daemon=True)
            self._running = True
            self._thread.start()

    def close(self) -> None:
        """Stop the thread, close every socket, finish recordings. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._stopping = True
            thread = self._thread
            self._wake()
        if thread is not None and thread is not threading.current_thread():
            thread.join()
        with self._lock:
            self._running = False
            pending, self._commands = self._commands, []
            for command in pending:  # e.g. a release() queued just before close()
                try:
                    command()
                except Exception:
                    logger.exception("relay command failed while closing")
            recorders = {id(s.recorder): s.recorder for s in self._endpoints.values() if s.recorder}
            for state in self._endpoints.values():
                state.recorder = None
                for leg in (state.rtp, state.rtcp):
                    leg.recorder = None
                    leg.sock.close()
            self._endpoints.clear()
            self._legs.clear()
            self._used_ports.clear()
            self._tones.clear()
            self._epoll.close()
            os.close(self._wake_fd)
        for recorder in recorders.values():
            if recorder is not None:
                recorder.close()

    def __enter__(self) -> Relay:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ----------------------------------------------------------------- endpoints

    def allocate(self, kind: str = "audio") -> MediaEndpoint:
        """Bind a free even RTP port and RTP+1 for RTCP from the range."""
        try:
            return self._allocate(kind)
        except (PortRangeExhausted, DescriptorsExhausted):
            # ports and sockets of endpoints released a moment ago are freed by the loop: let
            # it catch up (it may have done so since) and look once more
            self._flush_commands()
        return self._allocate(kind)

    def _allocate(self, kind: str) -> MediaEndpoint:
        with self._lock:
            self._check_open()
            rtp_sock, rtcp_sock, port = self._bind_pair()
            endpoint = MediaEndpoint(next(self._ids), self._address, port, port + 1, kind)
            name = f"{kind} {self._address}:{port}"
            rtp = Leg(rtp_sock, True, f"{name} rtp", self._relatch_after)
            rtcp = Leg(rtcp_sock, False, f"{name} rtcp", self._relatch_after)
            state = _EndpointState(endpoint, rtp, rtcp)
            self._endpoints[endpoint.id] = state
            self._submit(lambda: self._register(rtp, rtcp))
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
                        self._submit(functools.partial(self._detach_recorder, other))
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
            self._submit(lambda: self._apply_remote(state, rtp_dest, rtcp_dest))

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
            self._submit(lambda: self._route(sa, sb))

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
            self._submit(lambda: self._route(state, partner))

    def set_echo(self, ep: MediaEndpoint, on: bool = True) -> None:
        """Echo mode (for tests): send what ``ep``'s phone sends back to it. Not while bridged."""
        with self._lock:
            self._check_open()
            state = self._state(ep)
            if state.partner is not None:
                raise MediaError(f"endpoint {ep.id} is bridged; unbridge it before echo")
            state.echo = on
            self._submit(lambda: self._route(state, None))

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
            pairs = (self._last_port - self._first_port + 1) // 2
            return RelayStatistics(
                endpoints=len(states),
                bridges=sum(1 for s in states if s.partner is not None) // 2,
                tones=sum(1 for s in states if s.tone is not None),
                recordings=len({id(s.recorder) for s in states if s.recorder is not None}),
                free_port_pairs=pairs - len(self._used_ports),
                loop_iterations=self.loop_iterations,
                running=self._running and not self._stopping,
            )

    # ----------------------------------------------------------------- tones

    def play_tone(
        self,
        ep: MediaEndpoint,
        frequency: float = 440.0,
        payload_type: int = g711.PT_PCMU,
        *,
        level_dbfs: float = -10.0,
        duration: float | None = None,
    ) -> None:
        """Send a sine tone (20 ms G.711 packets, random SSRC) to ``ep``'s phone from its own
        RTP socket, until ``stop_tone`` or ``duration`` seconds. Replaces a tone already playing.
        """
        check_tone_request(frequency, payload_type, level_dbfs, duration)
        with self._lock:
            self._check_open()
            self._state(ep)
        audio = self._tone(frequency, payload_type, level_dbfs)
        with self._lock:
            self._check_open()
            state = self._state(ep)
            source = tone.ToneSource(audio, payload_type, self._clock(), duration, self._rng)
            self._submit(lambda: self._start_tone(state, source))

    def stop_tone(self, ep: MediaEndpoint) -> None:
        with self._lock:
            self._check_open()
            state = self._state(ep)
            self._submit(lambda: self._stop_tone(state))

    def generate(
        self,
        ep: MediaEndpoint,
        frequency: float = 440.0,
        payload_type: int = g711.PT_PCMU,
        *,
        level_dbfs: float = -10.0,
    ) -> None:
        """``ep``'s phone is inside the relay (a sandbox number) and sends a sine tone, until
        ``stop_generating``: its packets are counted as received from ``ep``'s phone and
        forwarded to ``ep``'s bridged partner like a real phone's (hold and recording apply),
        and what the relay forwards to ``ep`` is counted as sent to that phone, not dropped.
        """
        check_tone_request(frequency, payload_type, level_dbfs, None)
        audio = self._tone(frequency, payload_type, level_dbfs)
        with self._lock:
            self._check_open()
            state = self._state(ep)
            # its first packet holds its first 20 ms: due then, like a phone's (and a partner
            # made a generator in the same breath is one by then, so nothing is dropped)
            start = self._clock() + tone.PACKET_TIME
            source = tone.ToneSource(audio, payload_type, start, None, self._rng)
            self._submit(lambda: self._start_generator(state, source))

    def stop_generating(self, ep: MediaEndpoint) -> None:
        with self._lock:
            self._check_open()
            state = self._state(ep)
            self._submit(lambda: self._stop_generator(state))

    # ----------------------------------------------------------------- mixing

    def start_mix(
        self,
        eps: Sequence[MediaEndpoint],
        payload_types: Sequence[int],
        hears: Sequence[tuple[int, int]],
    ) -> None:
        """Mix the audio of ``eps`` (see ``engine.media.mixer``): ``payload_types[i]`` is the
        G.711 codec ``eps[i]``'s phone talks, ``hears`` the (listener, speaker) index pairs.
        While mixed, what a phone sends goes to the mix, not to its bridged partner; bridges
        stay as they were and carry the media again after ``stop_mix``."""
        check_mix_request(eps, payload_types, hears)
        with self._lock:
            self._check_open()
            states = [self._state(ep) for ep in eps]
            for s in states:
                if s.mix is not None:
                    raise MediaError(f"endpoint {s.endpoint.id} is already in a mix")
            mix = mixer.Mix(payload_types, hears, self._clock() + mixer.PACKET_TIME, self._rng)
            members = list(zip(states, mix.inputs, strict=True))
            for s in states:
                s.mix = mix
            self._submit(lambda: self._join_mix(mix, members))

    def stop_mix(self, ep: MediaEndpoint) -> None:
        """End the mix ``ep`` is in (for all its members); nothing if it is in none."""
        with self._lock:
            self._check_open()
            mix = self._state(ep).mix
            if mix is not None:
                self._end_mix_locked(mix)

    def _end_mix_locked(self, mix: mixer.Mix) -> None:
        members = [s for s in self._endpoints.values() if s.mix is mix]
        for s in members:
            s.mix = None
        self._submit(lambda: self._leave_mix(mix, members))

    def _tone(self, frequency: float, payload_type: int, level_dbfs: float) -> bytes:
        """One second of the tone, encoded once and cached."""
        key = (round(frequency), payload_type, level_dbfs)
        with self._lock:
            audio = self._tone_audio.get(key)
        if audio is None:
            audio = tone.encode_tone(frequency, payload_type, level_dbfs)
            with self._lock:
                if len(self._tone_audio) >= _TONE_CACHE_SIZE:
                    self._tone_audio.clear()
                self._tone_audio[key] = audio
        return audio

    # ----------------------------------------------------------------- recording

    def start_recording(self, a: MediaEndpoint, b: MediaEndpoint, path: str) -> None:
        """Record what a's phone sends (left channel) and b's phone sends (right) to a WAV file.

        A tone played to a's phone counts as b speaking (right channel) and vice versa, so a
        call to a sandbox number records its tone.
        """
        with self._lock:
            self._check_open()
            sa, sb = self._state(a), self._state(b)
            for s in (sa, sb):
                if s.recorder is not None:
                    raise MediaError(f"endpoint {s.endpoint.id} is already being recorded")
            try:
                recorder = WavRecorder(path, clock=self._clock)
            except (OSError, EOFError) as exc:
                raise MediaError(f"cannot record to {path!r}: {exc}") from None
            sa.recorder = sb.recorder = recorder
            self._submit(lambda: self._attach_recorder(sa, sb, recorder))

    def stop_recording(self, a: MediaEndpoint, b: MediaEndpoint | None = None) -> RecordingInfo:
        """Finish the recording ``a`` (and ``b``) take part in; blocks while the file is
        finalised (from trio: ``trio.to_thread.run_sync``)."""
        with self._lock:
            self._check_open()
            state = self._state(a)
            recorder = state.recorder
            if recorder is None:
                raise MediaError(f"endpoint {a.id} is not being recorded")
            if b is not None and self._state(b).recorder is not recorder:
                raise MediaError(f"endpoints {a.id} and {b.id} are not recorded together")
            for s in self._endpoints.values():
                if s.recorder is recorder:
                    s.recorder = None
                    self._submit(functools.partial(self._detach_recorder, s))
        return recorder.close()

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

    def _state(self, ep: MediaEndpoint) -> _EndpointState:
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
        if self._running:
            self._commands.append(command)
            self._wake()
        else:
            command()

    def _flush_commands(self, timeout: float = 1.0) -> None:
        """Wait until the loop has run the commands queued so far."""
        done = threading.Event()
        with self._lock:
            if not self._running or not self._commands:
                return
            self._commands.append(done.set)
            self._wake()
        done.wait(timeout)

    def _wake(self) -> None:
        with contextlib.suppress(OSError):  # counter saturated: the loop is awake anyway
            os.eventfd_write(self._wake_fd, 1)

    def _bind_pair(self) -> tuple[socket.socket, socket.socket, int]:
        pairs = (self._last_port - self._first_port + 1) // 2
        for _ in range(pairs):
            port = self._cursor
            self._cursor += 2
            if self._cursor + 1 > self._last_port:
                self._cursor = self._first_port
            if port in self._used_ports:
                continue
            rtp = self._bind(port)
            if rtp is None:
                continue
            try:
                rtcp = self._bind(port + 1)
            except MediaError:
                rtp.close()
                raise
            if rtcp is None:
                rtp.close()
                continue
            self._used_ports.add(port)
            return rtp, rtcp, port
        raise PortRangeExhausted(
            f"no free RTP/RTCP port pair in {self._first_port}-{self._last_port} on "
            f"{self._address} ({len(self._used_ports)} pairs in use by this relay)"
        )

    def _bind(self, port: int) -> socket.socket | None:
        try:
            sock = socket.socket(self._family, socket.SOCK_DGRAM)
        except OSError as exc:
            if exc.errno == errno.EMFILE:
                raise DescriptorsExhausted(fdlimit.exhausted_message()) from None
            if exc.errno == errno.ENFILE:
                raise DescriptorsExhausted(
                    "the system's file table is full (ENFILE): raise fs.file-max or stop what "
                    "holds the files"
                ) from None
            raise MediaError(f"cannot make a socket: {exc}") from None
        try:
            sock.bind((self._address, port))
        except OSError as exc:
            sock.close()
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return None
            raise MediaError(f"cannot bind {self._address}:{port}: {exc}") from None
        sock.setblocking(False)
        return sock

    # ----------------------------------------------------------------- commands (loop thread)

    def _register(self, rtp: Leg, rtcp: Leg) -> None:
        for leg in (rtp, rtcp):
            self._legs[leg.fd] = leg
            self._epoll.register(leg.fd, select.EPOLLIN)

    def _unregister(self, state: _EndpointState) -> None:
        state.tone = None
        state.generator = None
        for leg in (state.rtp, state.rtcp):
            if self._legs.pop(leg.fd, None) is not None:
                self._epoll.unregister(leg.fd)
            leg.target = None
            leg.recorder = None
            leg.sock.close()
        self._used_ports.discard(state.endpoint.rtp_port)

    def _apply_remote(self, state: _EndpointState, rtp_dest: Address, rtcp_dest: Address) -> None:
        for leg, dest in ((state.rtp, rtp_dest), (state.rtcp, rtcp_dest)):
            if leg.sdp_dest is not None and leg.sdp_dest != dest:
                leg.src = None
            leg.sdp_dest = dest
            if leg.src is None:
                leg.dest = dest

    def _route(self, state: _EndpointState, partner: _EndpointState | None) -> None:
        for s in (state, partner):
            if s is None:
                continue
            p = s.partner
            if s.mix_input is not None:  # mixed: what it sends goes to the mix
                s.rtp.target = s.mix_input if s.receive else None
                s.rtcp.target = None
            elif p is not None:
                s.rtp.target = p.rtp if s.receive and p.send else None
                s.rtcp.target = p.rtcp
            elif s.echo:
                s.rtp.target = s.rtp if s.receive and s.send else None
                s.rtcp.target = s.rtcp
            else:
                s.rtp.target = s.rtcp.target = None

    def _unbridge_locked(self, sa: _EndpointState, sb: _EndpointState) -> None:
        sa.partner = sb.partner = None
        self._submit(lambda: self._route(sa, sb))

    def _start_tone(self, state: _EndpointState, source: tone.ToneSource) -> None:
        if state.rtp.fd not in self._legs:
            return  # released meanwhile
        state.tone = source
        heapq.heappush(self._tones, (source.due, next(self._tone_order), state, source))

    def _stop_tone(self, state: _EndpointState) -> None:
        state.tone = None

    def _start_generator(self, state: _EndpointState, source: tone.ToneSource) -> None:
        if state.rtp.fd not in self._legs:
            return  # released meanwhile
        state.generator = source
        state.rtp.sink = state.rtcp.sink = True
        heapq.heappush(self._tones, (source.due, next(self._tone_order), state, source))

    def _stop_generator(self, state: _EndpointState) -> None:
        state.generator = None

    def _join_mix(
        self, mix: mixer.Mix, members: list[tuple[_EndpointState, mixer.MixInput]]
    ) -> None:
        if not mix.active:
            return  # ended before it started
        self._mix_members[id(mix)] = [s for s, _input in members]
        for state, mix_input in members:
            state.mix_input = mix_input
            self._route(state, None)
        heapq.heappush(self._tones, (mix.due, next(self._tone_order), None, mix))

    def _leave_mix(self, mix: mixer.Mix, members: list[_EndpointState]) -> None:
        mix.active = False
        self._mix_members.pop(id(mix), None)
        for state in members:
            state.mix_input = None
            self._route(state, state.partner)

    def _tick_mix(self, mix: mixer.Mix, now: float) -> None:
        """The mix's due packets, each sent from its listener's RTP socket to its phone."""
        members = self._mix_members.get(id(mix))
        if members is None:
            return
        mix.catch_up(now)
        while mix.due <= now:
            for state, packet in zip(members, mix.tick(), strict=True):
                leg = state.rtp
                if not state.send or leg.fd not in self._legs:
                    continue
                dest = leg.dest
                if dest is None:
                    if leg.sink:  # a phone inside the relay (a sandbox) hears it
                        leg.packets_sent += 1
                        leg.bytes_sent += len(packet)
                    continue
                try:
                    leg.sendto(packet, dest)
                except OSError:
                    leg.send_errors += 1
                    continue
                leg.packets_sent += 1
                leg.bytes_sent += len(packet)

    def _attach_recorder(self, a: _EndpointState, b: _EndpointState, rec: WavRecorder) -> None:
        for channel, state in enumerate((a, b)):
            state.rtp.rec_channel = channel
            state.rtp.recorder = rec.push
            state.tone_channel = 1 - channel
            state.tone_recorder = rec.push

    def _detach_recorder(self, state: _EndpointState) -> None:
        state.rtp.recorder = None
        state.tone_recorder = None

    def _run_commands(self) -> None:
        with self._lock:
            commands, self._commands = self._commands, []
            for command in commands:
                try:
                    command()
                except Exception:
                    logger.exception("relay command failed")

    # ----------------------------------------------------------------- the loop

    def _run_tones(self, now: float) -> None:
        heap = self._tones
        while heap and heap[0][0] <= now:
            _due, _order, state, source = heapq.heappop(heap)
            if isinstance(source, mixer.Mix):
                if source.active:
                    self._tick_mix(source, now)
                    heapq.heappush(heap, (source.due, next(self._tone_order), None, source))
                continue
            assert state is not None
            if source is state.generator:
                self._generate(state, source, now)
                heapq.heappush(heap, (source.due, next(self._tone_order), state, source))
                continue
            if state.tone is not source:
                continue
            if source.finished(now):
                state.tone = None
                continue
            source.catch_up(now)
            leg = state.rtp
            while source.due <= now:
                packet = source.next_packet()
                dest = leg.dest
                if dest is None or not state.send:
                    continue
                try:
                    leg.sendto(packet, dest)
                except OSError:
                    leg.send_errors += 1
                    continue
                leg.packets_sent += 1
                leg.bytes_sent += len(packet)
                if state.tone_recorder is not None:
                    state.tone_recorder((state.tone_channel, now, bytes(packet)))
            heapq.heappush(heap, (source.due, next(self._tone_order), state, source))

    def _generate(self, state: _EndpointState, source: tone.ToneSource, now: float) -> None:
        """The due packets of a phone inside the relay, as if they had come from it."""
        source.catch_up(now)
        leg = state.rtp
        while source.due <= now:
            packet = source.next_packet()
            size = len(packet)
            leg.packets_received += 1
            leg.bytes_received += size
            leg.note_rtp(source.ssrc, (packet[2] << 8) | packet[3])
            if leg.recorder is not None:
                leg.recorder((leg.rec_channel, now, bytes(packet)))
            out = leg.target
            if out is None:
                leg.dropped += 1
                continue
            dest = out.dest
            if dest is None:
                if out.sink:  # from one phone inside the relay to another
                    out.packets_sent += 1
                    out.bytes_sent += size
                else:
                    leg.dropped += 1
                continue
            try:
                out.sendto(packet, dest)
            except OSError:
                out.send_errors += 1
                continue
            out.packets_sent += 1
            out.bytes_sent += size

    def _run(self) -> None:
        while not self._stopping:
            try:
                self._loop()
            except Exception:  # a bug must not stop every call's media: log, go on
                logger.exception("media relay loop failed; restarting it")

    def _loop(self) -> None:
        buf = bytearray(_BUFFER_SIZE)
        view = memoryview(buf)
        poll = self._epoll.poll
        legs_get = self._legs.get
        wake_fd = self._wake_fd
        tones = self._tones
        monotonic = self._clock
        unpack_ssrc = _SSRC.unpack_from
        iterations = self.loop_iterations
        while not self._stopping:
            timeout = max(tones[0][0] - monotonic(), 0.0) if tones else -1.0
            events = poll(timeout, _MAX_EVENTS)
            iterations += 1
            self.loop_iterations = iterations
            now = monotonic()
            if self._commands:
                self._run_commands()
            for fd, _mask in events:
                leg = legs_get(fd)
                if leg is None:
                    if fd == wake_fd:
                        with contextlib.suppress(OSError):
                            os.eventfd_read(wake_fd)
                        if self._commands:
                            self._run_commands()
                    continue
                try:
                    size, addr = leg.recvfrom_into(buf)
                except OSError:  # EAGAIN after a command closed/reused it, ICMP errors
                    continue
                leg.packets_received += 1
                leg.bytes_received += size
                if addr != leg.src and not leg.accept_source(addr, buf, size, now):
                    leg.dropped += 1
                    continue
                leg.last_rx = now
                if leg.is_rtp and size >= 12 and buf[0] & 0xC0 == 0x80:
                    seq = (buf[2] << 8) | buf[3]
                    ssrc = unpack_ssrc(buf, 8)[0]
                    if ssrc != leg.ssrc:  # a new stream from the same address: count anew
                        leg.new_stream(ssrc, seq)
                    else:
                        max_seq = leg.max_seq
                        udelta = (seq - max_seq) & 0xFFFF
                        if udelta < 3000:  # rtp.MAX_DROPOUT
                            if seq < max_seq:
                                leg.cycles += 65536
                            leg.max_seq = seq
                            leg.received += 1
                        elif udelta > 65436:  # SEQ_MOD - MAX_MISORDER: late or duplicate
                            leg.received += 1
                        else:
                            leg.seq_jump(seq)
                    recorder = leg.recorder
                    if recorder is not None:
                        recorder((leg.rec_channel, now, bytes(view[:size])))
                out = leg.target
                if out is None:
                    leg.dropped += 1
                    continue
                dest = out.dest
                if dest is None:
                    if out.sink:  # a phone inside the relay (a sandbox): it gets the packet
                        out.packets_sent += 1
                        out.bytes_sent += size
                    else:
                        leg.dropped += 1
                    continue
                try:
                    out.sendto(view[:size], dest)
                except OSError:
                    out.send_errors += 1
                    continue
                out.packets_sent += 1
                out.bytes_sent += size
            if tones and tones[0][0] <= now:
                self._run_tones(now)
        self.loop_iterations = iterations


def _check_range(port_range: tuple[int, int]) -> tuple[int, int]:
    try:
        lo, hi = port_range
    except (TypeError, ValueError):
        raise MediaError(f"port range must be (low, high), not {port_range!r}") from None
    if not (isinstance(lo, int) and isinstance(hi, int)) or not 1 <= lo <= hi <= 65535:
        raise MediaError(f"port range must be 1 <= low <= high <= 65535, not {port_range!r}")
    if hi - (lo + (lo & 1)) < 1:
        raise MediaError(f"port range {lo}-{hi} holds no even RTP port with RTP+1 free")
    return lo, hi


def check_tone_request(
    frequency: float, payload_type: int, level_dbfs: float, duration: float | None
) -> None:
    """MediaError naming the first ``play_tone`` argument that cannot be used."""
    if duration is not None and duration <= 0:
        raise MediaError(f"tone duration must be positive, not {duration!r}")
    try:
        tone.check_tone(frequency, payload_type, level_dbfs)
    except ValueError as exc:
        raise MediaError(str(exc)) from None


def check_mix_request(
    eps: Sequence[MediaEndpoint], payload_types: Sequence[int], hears: Sequence[tuple[int, int]]
) -> None:
    """MediaError naming the first ``start_mix`` argument that cannot be used."""
    if len(eps) != len(payload_types):
        raise MediaError(f"{len(eps)} endpoints but {len(payload_types)} payload types")
    if len({getattr(ep, "id", None) for ep in eps}) != len(eps):
        raise MediaError("an endpoint appears twice in the mix")
    try:
        mixer.check_mix(payload_types, hears)
    except ValueError as exc:
        raise MediaError(str(exc)) from None


def remote_address(host: str, port: int, *, ipv6: bool) -> Address:
    """Check a phone's SDP media address for a relay of the given family; MediaError if unusable."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        raise MediaError(f"remote media host must be an IP address, not {host!r}") from None
    if (ip.version == 6) != ipv6:
        raise MediaError(f"remote {host} is not of the relay's address family")
    if not isinstance(port, int) or not 0 < port < 65536:
        raise MediaError(f"remote media port must be 1-65535, not {port!r}")
    return (str(ip), port)
