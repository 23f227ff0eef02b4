"""Argument checks shared by :class:`~engine.media.relay.Relay` and its child-process proxy.

Each raises :class:`MediaError` naming the first argument that cannot be used, so a bad call
fails in the caller's thread before anything reaches the forwarding loop (or the child).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from engine.media import mixer, tone
from engine.media.errors import MediaError
from engine.media.leg import Address
from engine.media.stats import MediaEndpoint


def check_range(port_range: tuple[int, int]) -> tuple[int, int]:
    """The relay's (low, high) port range, checked: it must hold an even port and the next."""
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


def check_dtmf_request(payload_type: int | None = None, event: int = 0) -> None:
    """MediaError naming a telephone-event payload type or event code that cannot be used."""
    if payload_type is not None and not 0 <= payload_type <= 127:
        raise MediaError(f"payload type must be 0-127, not {payload_type!r}")
    if not 0 <= event <= 255:
        raise MediaError(f"telephone-event must be 0-255, not {event!r}")
