"""File descriptors: the relay's real capacity limit.

Each relayed party holds two sockets (RTP and RTCP), so a bridged call holds four. The usual
soft ``RLIMIT_NOFILE`` is 1,024 (systemd's default for services; login shells too), which stops
a relay at ~250 calls whatever its port range, while the hard limit is usually far higher
(524,288 under systemd). Raising the soft limit to the hard one is allowed without privilege,
so the relay process does it when it starts, and ``b2bua serve`` does it for itself (SIP over
TCP and HTTP connections). What the hard limit does not allow is logged once, at start-up,
with the fix, and an exhausted limit fails the allocation with a message that names it.
"""

from __future__ import annotations

import logging
import resource

logger = logging.getLogger(__name__)

SOCKETS_PER_ENDPOINT = 2  # RTP + RTCP
# Descriptors a process needs besides its media sockets: stdio, the epoll and eventfd, the
# control socket, recordings being written, SIP/HTTP sockets of an embedding process.
RESERVED = 64
# What RLIM_INFINITY becomes (Linux's default fs.nr_open).
_INFINITY_CAP = 1_048_576


def fd_limit() -> int:
    """The soft ``RLIMIT_NOFILE`` in force."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return _INFINITY_CAP if soft == resource.RLIM_INFINITY else int(soft)


def raise_fd_limit() -> int:
    """Raise this process's soft ``RLIMIT_NOFILE`` to its hard limit; return the soft limit
    now in force. Never lowers it; a refusal (an unusual kernel policy) is logged."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = _INFINITY_CAP if hard == resource.RLIM_INFINITY else hard
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError) as exc:
            logger.warning(
                "cannot raise the file descriptor limit from %d to %d: %s", soft, target, exc
            )
    return fd_limit()


def endpoints_within(limit: int) -> int:
    """How many relay endpoints (RTP+RTCP socket pairs) ``limit`` descriptors leave room for."""
    return max(0, (limit - RESERVED) // SOCKETS_PER_ENDPOINT)


def check_capacity(port_pairs: int, limit: int | None = None) -> None:
    """Log when the descriptor limit, not the port range, bounds the relay."""
    limit = fd_limit() if limit is None else limit
    by_fd = endpoints_within(limit)
    if by_fd < port_pairs:
        logger.warning(
            "relay: the file descriptor limit (RLIMIT_NOFILE %d) allows ~%d parties (~%d bridged "
            "calls, %d sockets each), fewer than the media port range's %d; raise the hard "
            "limit (systemd LimitNOFILE=, ulimit -Hn) to use the whole range",
            limit,
            by_fd,
            by_fd // 2,
            2 * SOCKETS_PER_ENDPOINT,
            port_pairs,
        )


def exhausted_message(limit: int | None = None) -> str:
    """What to tell the caller when a socket could not be made for want of descriptors."""
    limit = fd_limit() if limit is None else limit
    return (
        f"out of file descriptors (RLIMIT_NOFILE {limit}, {2 * SOCKETS_PER_ENDPOINT} sockets "
        f"per bridged call: about {endpoints_within(limit) // 2} calls); raise the limit "
        "(systemd LimitNOFILE=, ulimit -n)"
    )
