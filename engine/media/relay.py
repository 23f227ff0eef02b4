"""The RTP/RTCP relay: one ``select.epoll`` loop in one dedicated thread.

Theory of operation
-------------------
Each endpoint owns an even RTP port and RTP+1 for RTCP (RFC 3550 section 11) bound on the relay's
address. ``bridge(a, b)`` makes what arrives at a's sockets leave from b's sockets towards b's
phone and vice versa, so each phone sees the relay's port of its own side as the source
(symmetric RTP, RFC 4961). Where the phone is comes from SDP first (``set_remote``) and then from
latching on the packets it sends (see ``engine.media.leg``).

This module is the control side: the calls the engine makes; here those of what the relay itself
plays, mixes and records (tones, sandbox generators, DTMF, mixes, recordings). Its parts, each in
a module:

- ``engine.media.relay_core``: ``RelayCore``, the base of ``Relay``: the forwarding thread's
  start and close, allocating and releasing endpoints, bridging, hold, echo and counters;
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
from collections.abc import Sequence

from engine.media import g711, mixer, tone
from engine.media.checks import check_dtmf_request, check_mix_request, check_tone_request
from engine.media.errors import MediaError
from engine.media.recorder import RecordingInfo, WavRecorder
from engine.media.relay_core import RelayCore
from engine.media.state import attach_recorder, detach_recorder
from engine.media.stats import MediaEndpoint
from engine.media.telephone_event import DigitReport, read_reports

_TONE_CACHE_SIZE = 16


class Relay(RelayCore):
    """RTP/RTCP relay between pairs of endpoints; see the module docstring."""

    def __enter__(self) -> Relay:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

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
