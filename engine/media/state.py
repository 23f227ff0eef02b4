"""An endpoint's state in the relay, and the loop-side changes made to it.

:class:`EndpointState` holds both kinds of state of one endpoint: control state (partner, mix,
direction, echo, recorder), changed by control calls under the relay's lock, and the loop's
state (its legs' targets, the tone playing, the mix input), changed only by the functions
below, which the forwarding thread runs as queued commands.
"""

from __future__ import annotations

from collections.abc import Callable

from engine.media import mixer, tone
from engine.media.leg import Address, Leg
from engine.media.recorder import WavRecorder
from engine.media.stats import MediaEndpoint


class EndpointState:
    """Control state of an endpoint; fields are changed under the relay's lock."""

    __slots__ = (
        "dtmf_free",
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
        self.partner: EndpointState | None = None
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
        self.dtmf_free = 0.0  # loop state: when the digits played to this phone are over


def apply_remote(state: EndpointState, rtp_dest: Address, rtcp_dest: Address) -> None:
    """Where the phone said (in SDP) it receives; a new address drops the latch."""
    for leg, dest in ((state.rtp, rtp_dest), (state.rtcp, rtcp_dest)):
        if leg.sdp_dest is not None and leg.sdp_dest != dest:
            leg.src = None
        leg.sdp_dest = dest
        if leg.src is None:
            leg.dest = dest


def route(state: EndpointState, partner: EndpointState | None) -> None:
    """Point the legs of ``state`` (and ``partner``) where their control state says."""
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


def attach_recorder(a: EndpointState, b: EndpointState, rec: WavRecorder) -> None:
    """a's phone on the left channel, b's on the right; a tone to one counts as the other."""
    for channel, state in enumerate((a, b)):
        state.rtp.rec_channel = channel
        state.rtp.recorder = rec.push
        state.tone_channel = 1 - channel
        state.tone_recorder = rec.push


def detach_recorder(state: EndpointState) -> None:
    state.rtp.recorder = None
    state.tone_recorder = None
