"""The RTP/RTCP relay: one ``select.epoll`` loop in one dedicated thread.

Theory of operation
-------------------
Each endpoint owns an even RTP port and RTP+1 for RTCP (RFC 3550 section 11) bound on the relay's
address. ``bridge(a, b)`` makes what arrives at a's sockets leave from b's sockets towards b's
phone and vice versa, so each phone sees the relay's port of its own side as the source
(symmetric RTP, RFC 4961). Where the phone is comes from SDP first (``set_remote``) and then from
latching on the packets it sends (see ``engine.media.leg``).

This module is the control side: the calls the engine makes. Its parts, each in a module:

- ``engine.media.ports``: the port table (binding RTP/RTCP pairs from the range);
- ``engine.media.state``: each endpoint's state and how its legs are routed;
- ``engine.media.commands``: how a control call reaches the forwarding thread;
- ``engine.media.forwarding``: the forwarding loop (the per-packet path);
- ``engine.media.timers``: tones, phones inside the relay (sandbox numbers) and mixes;
- ``engine.media.checks``: argument checks shared with ``RelayProcess``.

Threads: the forwarding loop owns the sockets' fast state (legs, tones). Control calls come from
any thread (the engine's trio thread): they validate and update the control state under a lock,
then queue a small command and wake the loop through an eventfd; the loop runs queued commands,
under the same lock, before it looks at the packets of each poll, so a packet sent after a
control call returned is handled with that call in effect. Before ``start()`` commands run at
once. Counters are read without the loop's help (see ``Leg``). Recording hands packet copies to
a writer thread.

The thread shares the GIL with the rest of its process: when another thread runs Python (the
engine's trio thread under load), each socket call of the loop can wait up to the switch interval
(see ``engine.media.process``). ``RelayProcess`` runs this same class in a child process.
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

from engine.media import fdlimit, g711, mixer, tone
from engine.media.checks import (
    check_dtmf_request,
    check_mix_request,
    check_range,
    check_tone_request,
    remote_address,
)
from engine.media.commands import CommandQueue
from engine.media.errors import DescriptorsExhausted, MediaError, PortRangeExhausted
from engine.media.forwarding import Forwarder
from engine.media.leg import Address, Leg
from engine.media.ports import PortTable
from engine.media.recorder import RecordingInfo, WavRecorder
from engine.media.state import (
    EndpointState,
    apply_remote,
    attach_recorder,
    detach_recorder,
    route,
)
from engine.media.stats import MediaEndpoint, RelayStatistics, StreamStats
from engine.media.telephone_event import DigitReport, EventSink, event_socketpair, read_reports

_TONE_CACHE_SIZE = 16


class Relay:
    """RTP/RTCP relay between pairs of endpoints; see the module docstring."""

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
            self._submit(lambda: self._timers.start_tone(state, source))

    def play_audio(self, ep: MediaEndpoint, path: str, payload_type: int = g711.PT_PCMU) -> None:
        """Send an 8 kHz mono 16-bit WAV file to ``ep``'s phone, looped, like a tone (until
        ``stop_tone``; replaces a tone already playing). The file is read and encoded once per
        payload type; ValueError names what is wrong with it."""
        key = (path, payload_type)
        with self._lock:
            self._check_open()
            self._state(ep)
            audio = self._file_audio.get(key)
        if audio is None:
            audio = tone.encode_samples(tone.read_wav(path), payload_type)
            with self._lock:
                if len(self._file_audio) >= _TONE_CACHE_SIZE:
                    self._file_audio.clear()
                self._file_audio[key] = audio
        with self._lock:
            self._check_open()
            state = self._state(ep)
            source = tone.ToneSource(audio, payload_type, self._clock(), None, self._rng)
            self._submit(lambda: self._timers.start_tone(state, source))

    def stop_tone(self, ep: MediaEndpoint) -> None:
        with self._lock:
            self._check_open()
            state = self._state(ep)
            self._submit(lambda: self._timers.stop_tone(state))

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
            self._submit(lambda: self._timers.start_generator(state, source))

    def stop_generating(self, ep: MediaEndpoint) -> None:
        with self._lock:
            self._check_open()
            state = self._state(ep)
            self._submit(lambda: self._timers.stop_generator(state))

    # ----------------------------------------------------------------- DTMF (RFC 4733)

    def set_telephone_event(self, ep: MediaEndpoint, payload_type: int | None) -> None:
        """The payload type ``ep``'s phone uses for telephone-events (None: it agreed to none):
        its digits are mapped to the partner's payload type and reported when they end."""
        check_dtmf_request(payload_type)
        pt = -1 if payload_type is None else payload_type
        with self._lock:
            self._check_open()
            leg = self._state(ep).rtp
            self._submit(lambda: setattr(leg, "te_pt", pt))

    def send_dtmf(self, ep: MediaEndpoint, event: int, duration_ms: int) -> None:
        """Play telephone-event ``event`` (0-15: 0-9 * # A-D) for ``duration_ms`` to ``ep``'s
        phone, with its payload type; nothing if it has none."""
        check_dtmf_request(event=event)
        with self._lock:
            self._check_open()
            state = self._state(ep)
            now, rng = self._clock(), self._rng
            self._submit(lambda: self._timers.start_dtmf(state, event, duration_ms, now, rng))

    def event_fileno(self) -> int:
        """Readable when digit reports wait (``read_events``)."""
        if self._event_reader is None:
            raise MediaError("this relay reports to its parent process")
        return self._event_reader.fileno()

    def read_events(self) -> list[DigitReport] | None:
        """The digit reports waiting (never blocks); None once the relay is closed."""
        if self._event_reader is None or self._closed:
            return None
        return read_reports(self._event_reader)

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
            self._submit(lambda: self._timers.join_mix(mix, members))

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
        self._submit(lambda: self._timers.leave_mix(mix, members))

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
            self._submit(lambda: attach_recorder(sa, sb, recorder))

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
                    self._submit(functools.partial(detach_recorder, s))
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
