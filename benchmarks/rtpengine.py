"""rtpengine (Debian ``rtpengine-daemon``) in userspace mode as a reference relay for benchmarks.

The daemon is started by ``tests/integration/rtpengine_daemon.py`` (the command line the tests
use too); calls are set up over ng with the product's client (``engine.rtpengine``):

- ``bridge_calls``: calls set up the way a SIP proxy would (offer with A's SDP, answer with B's),
  returning the ports each phone must send to;
- ``delete_calls``: their sessions deleted.

Install: ``apt-get install -y rtpengine-daemon`` (not the ``rtpengine`` metapackage, which pulls
in the kernel module build). Benchmarks are programs, not library code.
"""

from __future__ import annotations

import contextlib
import re
import sys
from collections.abc import Sequence
from pathlib import Path

import trio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.rtpengine import Instance, NgClient, NgError, open_ng_client
from tests.integration.rtpengine_daemon import HOST, Rtpengine

__all__ = ["HOST", "Rtpengine", "audio_sdp", "bridge_calls", "delete_calls", "sdp_audio_port"]


def audio_sdp(port: int, session: int, host: str = HOST) -> str:
    """A one-stream PCMU offer/answer for a phone receiving on ``host:port``."""
    return (
        "v=0\r\n"
        f"o=- {session} 1 IN IP4 {host}\r\n"
        "s=-\r\n"
        f"c=IN IP4 {host}\r\n"
        "t=0 0\r\n"
        f"m=audio {port} RTP/AVP 0\r\n"
        "a=rtpmap:0 PCMU/8000\r\n"
        "a=sendrecv\r\n"
    )


def sdp_audio_port(sdp: str) -> int:
    match = re.search(r"^m=audio (\d+) ", sdp, re.MULTILINE)
    if match is None:
        raise NgError(f"no m=audio line in rtpengine's SDP: {sdp!r}")
    return int(match.group(1))


async def _bridge(
    client: NgClient, at: Instance, call_id: str, pa: int, pb: int
) -> tuple[int, int]:
    offer = await client.request(
        at, "offer", call_id=call_id, from_tag=f"{call_id}-a", sdp=audio_sdp(pa, 1)
    )
    answer = await client.request(
        at,
        "answer",
        call_id=call_id,
        from_tag=f"{call_id}-a",
        to_tag=f"{call_id}-b",
        sdp=audio_sdp(pb, 2),
    )
    # The offer's rewritten SDP goes to B (where B sends), the answer's to A.
    return sdp_audio_port(str(answer.get("sdp", ""))), sdp_audio_port(str(offer.get("sdp", "")))


def bridge_calls(ng_port: int, calls: Sequence[tuple[str, int, int]]) -> list[tuple[int, int]]:
    """Set up each (call id, A's port, B's port); returns (where A sends, where B sends)."""

    async def run() -> list[tuple[int, int]]:
        at = Instance(HOST, ng_port)
        async with open_ng_client([at], timeout=2.0) as client:
            return [await _bridge(client, at, cid, pa, pb) for cid, pa, pb in calls]

    return trio.run(run)


def delete_calls(ng_port: int, call_ids: Sequence[str]) -> None:
    async def run() -> None:
        at = Instance(HOST, ng_port)
        async with open_ng_client([at], timeout=2.0) as client:
            for call_id in call_ids:
                with contextlib.suppress(NgError):
                    await client.request(at, "delete", call_id=call_id, from_tag=f"{call_id}-a")

    trio.run(run)


if __name__ == "__main__":  # smoke test: start, one call, delete, stop
    with Rtpengine((30000, 30099)) as daemon:
        print(
            "call ports (A sends to, B sends to):",
            bridge_calls(daemon.ng_port, [("x1", 40000, 40002)]),
        )
        delete_calls(daemon.ng_port, ["x1"])
