"""The relay's forwarding loop: one level-triggered ``select.epoll`` over every leg's socket.

The per-packet path is one ``recvfrom_into`` into a preallocated buffer, a few int updates, and
one ``sendto`` of a memoryview slice; one datagram per ready socket per poll keeps many quiet
sockets (50 packets/s each) cheap. Queued commands run before the packets of each poll; the
poll timeout is the next timer's due time (see ``engine.media.timers``). An RTP packet whose
payload type is its phone's telephone-event one takes ``engine.media.telephone_event``'s path.
"""

from __future__ import annotations

import logging
import select
import struct
from collections.abc import Callable

from engine.media.commands import CommandQueue
from engine.media.leg import Leg
from engine.media.state import EndpointState
from engine.media.telephone_event import EventSink, on_event_packet
from engine.media.timers import Timers

logger = logging.getLogger(__name__)

_BUFFER_SIZE = 65536  # any UDP datagram fits
_MAX_EVENTS = 4096
_SSRC = struct.Struct("!I")  # at offset 8 of an RTP header


class Forwarder:
    """The sockets' fast state (fd -> leg, timers), owned by the loop thread once it runs."""

    def __init__(
        self, commands: CommandQueue, clock: Callable[[], float], events: EventSink
    ) -> None:
        self._commands = commands
        self._clock = clock
        self.events = events  # digit ends seen in the phones' RTP (RFC 4733)
        self._epoll = select.epoll()
        self._epoll.register(commands.wake_fd, select.EPOLLIN)
        self.legs: dict[int, Leg] = {}  # fd -> leg
        self.timers = Timers(self.legs)
        self.stopping = False
        self.loop_iterations = 0

    def register(self, rtp: Leg, rtcp: Leg) -> None:
        for leg in (rtp, rtcp):
            self.legs[leg.fd] = leg
            self._epoll.register(leg.fd, select.EPOLLIN)

    def unregister(self, state: EndpointState) -> None:
        """Stop polling ``state``'s sockets and close them."""
        state.tone = None
        state.generator = None
        for leg in (state.rtp, state.rtcp):
            if self.legs.pop(leg.fd, None) is not None:
                self._epoll.unregister(leg.fd)
            leg.target = None
            leg.recorder = None
            leg.sock.close()

    def close(self) -> None:
        """Forget every leg and timer, close the epoll (after the loop stopped)."""
        self.legs.clear()
        self.timers.clear()
        self._epoll.close()

    def run(self) -> None:
        """The thread's body: the loop, until ``stopping``."""
        while not self.stopping:
            try:
                self._loop()
            except Exception:  # a bug must not stop every call's media: log, go on
                logger.exception("media relay loop failed; restarting it")

    def _loop(self) -> None:
        buf = bytearray(_BUFFER_SIZE)
        view = memoryview(buf)
        poll = self._epoll.poll
        legs_get = self.legs.get
        commands = self._commands
        wake_fd = commands.wake_fd
        tones = self.timers.heap
        monotonic = self._clock
        unpack_ssrc = _SSRC.unpack_from
        digit_sink = self.events
        iterations = self.loop_iterations
        while not self.stopping:
            timeout = max(tones[0][0] - monotonic(), 0.0) if tones else -1.0
            events = poll(timeout, _MAX_EVENTS)
            iterations += 1
            self.loop_iterations = iterations
            now = monotonic()
            if commands.pending:
                commands.run_pending()
            for fd, _mask in events:
                leg = legs_get(fd)
                if leg is None:
                    if fd == wake_fd:
                        commands.take_wakeup()
                        if commands.pending:
                            commands.run_pending()
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
                    if buf[1] & 0x7F == leg.te_pt:  # RFC 4733: map its PT, note its end
                        on_event_packet(leg, buf, size, digit_sink)
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
                self.timers.run(now)
        self.loop_iterations = iterations
