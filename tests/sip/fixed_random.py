"""Random values known in advance, for sans-IO code that takes its randomness from the caller."""

from __future__ import annotations

import itertools
from collections.abc import Callable


def counting_bytes() -> Callable[[int], bytes]:
    """``random_bytes(n)`` whose draws are 1, 2, 3... as ``n``-byte big-endian numbers: every
    draw differs, and a test that depends on one can say which it got."""
    draws = itertools.count(1)
    return lambda n: next(draws).to_bytes(n, "big")


CNONCE = "0a4f113b"  # RFC 2617's example client nonce
