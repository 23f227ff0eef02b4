"""A free port range for relay tests: every port of it bindable right now on 127.0.0.1.

Random even bases below the kernel's ephemeral range, probed port by port, so relay tests do
not trip over ports that SIPp, a benchmark or a second test run on the same machine hold.
"""

from __future__ import annotations

import random
import socket

HOST = "127.0.0.1"


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


def free_range(size: int) -> tuple[int, int]:
    """``(first, last)``: an even-based range of ``size`` ports, all free when probed."""
    rng = random.SystemRandom()
    for _ in range(200):
        base = rng.randrange(10000, 30000 - size, 2)
        if all(_bindable(port) for port in range(base, base + size)):
            return base, base + size - 1
    raise RuntimeError(f"no free range of {size} UDP ports on {HOST}")
