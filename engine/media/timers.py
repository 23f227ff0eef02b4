"""The relay's timers: tones played to phones, phones inside the relay, and mixes.

All run on the forwarding thread, from one heap ordered by due time (the loop's poll timeout
is the first entry's due time). A tone is played *to* an endpoint's phone from its own RTP
socket; a generator *is* the endpoint's phone (a sandbox number: its packets count as received
from it and go through the bridge, and what is forwarded to it counts as sent to it); a mix
sends each listener its mixed packet from the listener's RTP socket; a digit
(``engine.media.telephone_event.DtmfSource``) is played to a phone like a tone, then forgotten.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import random

from engine.media import mixer, tone
from engine.media.leg import Leg
from engine.media.state import EndpointState, route
from engine.media.telephone_event import DtmfSource

logger = logging.getLogger(__name__)

DTMF_GAP = 0.06  # seconds of silence between two digits played to one phone

# (due, order, state, source); a mix's entry has no endpoint state
TimerEntry = tuple[float, int, EndpointState | None, tone.ToneSource | mixer.Mix | DtmfSource]


class Timers:
    """Tones, generators and mixes by due time. Every method runs on the loop thread."""

    def __init__(self, legs: dict[int, Leg]) -> None:
        self.heap: list[TimerEntry] = []
        self._legs = legs  # the loop's fd -> leg table: a released endpoint's fds are gone
        self._order = itertools.count()
        self._mix_members: dict[int, list[EndpointState]] = {}  # id(mix) -> members, by index

    def clear(self) -> None:
        self.heap.clear()

    def _push(
        self, state: EndpointState | None, source: tone.ToneSource | mixer.Mix | DtmfSource
    ) -> None:
        heapq.heappush(self.heap, (source.due, next(self._order), state, source))

    def start_tone(self, state: EndpointState, source: tone.ToneSource) -> None:
        if state.rtp.fd not in self._legs:
            return  # released meanwhile
        state.tone = source
        self._push(state, source)

    def stop_tone(self, state: EndpointState) -> None:
        state.tone = None

    def start_generator(self, state: EndpointState, source: tone.ToneSource) -> None:
        if state.rtp.fd not in self._legs:
            return  # released meanwhile
        state.generator = source
        state.rtp.sink = state.rtcp.sink = True
        self._push(state, source)

    def stop_generator(self, state: EndpointState) -> None:
        state.generator = None

    def start_dtmf(
        self, state: EndpointState, event: int, duration_ms: int, now: float, rng: random.Random
    ) -> None:
        """Play a telephone-event to ``state``'s phone with the payload type it agreed to."""
        if state.rtp.fd not in self._legs:
            return  # released meanwhile
        if state.rtp.te_pt < 0:
            logger.debug("%s: no telephone-event payload type, digit not played", state.rtp.name)
            return
        # digits follow one another (RFC 4733 §2.5.1.3: one event at a time), with a gap
        start = max(now, state.dtmf_free)
        source = DtmfSource(event, duration_ms, state.rtp.te_pt, start, rng)
        state.dtmf_free = start + source.length + DTMF_GAP
        self._push(state, source)

    def join_mix(self, mix: mixer.Mix, members: list[tuple[EndpointState, mixer.MixInput]]) -> None:
        if not mix.active:
            return  # ended before it started
        self._mix_members[id(mix)] = [s for s, _input in members]
        for state, mix_input in members:
            state.mix_input = mix_input
            route(state, None)
        self._push(None, mix)

    def leave_mix(self, mix: mixer.Mix, members: list[EndpointState]) -> None:
        mix.active = False
        self._mix_members.pop(id(mix), None)
        for state in members:
            state.mix_input = None
            route(state, state.partner)

    def run(self, now: float) -> None:
        """Send what is due at ``now``."""
        heap = self.heap
        while heap and heap[0][0] <= now:
            _due, _order, state, source = heapq.heappop(heap)
            if isinstance(source, mixer.Mix):
                if source.active:
                    self._tick_mix(source, now)
                    self._push(None, source)
                continue
            assert state is not None
            if isinstance(source, DtmfSource):
                self._play_dtmf(state, source, now)
                if not source.finished:
                    self._push(state, source)
                continue
            if source is state.generator:
                self._generate(state, source, now)
                self._push(state, source)
                continue
            if state.tone is not source:
                continue
            if source.finished(now):
                state.tone = None
                continue
            self._play(state, source, now)
            self._push(state, source)

    def _play(self, state: EndpointState, source: tone.ToneSource, now: float) -> None:
        """The due packets of a tone played to ``state``'s phone."""
        source.catch_up(now)
        leg = state.rtp
        while source.due <= now:
            packet = source.next_packet()
            dest = leg.dest
            if dest is None or not state.send or not _send(leg, packet, dest):
                continue
            if state.tone_recorder is not None:
                state.tone_recorder((state.tone_channel, now, bytes(packet)))

    def _play_dtmf(self, state: EndpointState, source: DtmfSource, now: float) -> None:
        """The due packets of a digit played to ``state``'s phone (not while it is held)."""
        leg = state.rtp
        while source.due <= now and not source.finished:
            packet = source.next_packet()
            dest = leg.dest
            if dest is None or not state.send or leg.fd not in self._legs:
                continue
            _send(leg, packet, dest)

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
                _send(leg, packet, dest)

    def _generate(self, state: EndpointState, source: tone.ToneSource, now: float) -> None:
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
            _send(out, packet, dest)


def _send(
    leg: Leg | mixer.MixInput, packet: bytes | bytearray | memoryview, dest: tuple[str, int]
) -> bool:
    """Send a packet the relay made itself from ``leg``'s socket, counting it as sent (or as a
    send error); whether it went."""
    try:
        leg.sendto(packet, dest)
    except OSError:
        leg.send_errors += 1
        return False
    leg.packets_sent += 1
    leg.bytes_sent += len(packet)
    return True
