"""Immutable snapshots of the relay's counters and the endpoint handle given to callers."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class MediaEndpoint:
    """One side of a media stream: an even RTP port and RTP+1 for RTCP on ``address``.

    A handle only: the relay keeps the sockets and state. Write ``address``/``rtp_port`` into SDP.
    """

    id: int
    address: str
    rtp_port: int
    rtcp_port: int
    kind: str = "audio"


@dataclass(frozen=True, slots=True)
class ChannelStats:
    """Counters of one socket (RTP or RTCP) of an endpoint.

    ``received`` counts every datagram that reached the socket; ``sent`` those the relay sent
    from it towards this endpoint's phone; ``dropped`` the received ones that were not forwarded
    (not bridged, on hold, no destination known, or from a foreign source); ``foreign`` the
    received ones from an address other than the latched one that did not cause a re-latch.
    """

    packets_received: int
    bytes_received: int
    packets_sent: int
    bytes_sent: int
    packets_dropped: int
    packets_foreign: int
    send_errors: int
    latched: tuple[str, int] | None  # where the phone's packets come from (and where we send)


@dataclass(frozen=True, slots=True)
class StreamStats:
    """Snapshot of an endpoint: RTP and RTCP counters and RTP loss (RFC 3550 A.3).

    ``expected``/``lost`` describe the RTP stream received from this endpoint's phone since
    the last (re)synchronisation: a new SSRC or a re-latch starts counting anew.
    """

    rtp: ChannelStats
    rtcp: ChannelStats
    ssrc: int | None
    expected: int
    lost: int

    @property
    def fraction_lost(self) -> float:
        """Lost / expected, 0.0 when nothing was expected."""
        return self.lost / self.expected if self.expected > 0 else 0.0


@dataclass(frozen=True, slots=True)
class RelayStatistics:
    """The relay as a whole (trio-style ``statistics()``)."""

    endpoints: int
    bridges: int
    tones: int
    recordings: int
    free_port_pairs: int
    loop_iterations: int
    running: bool
