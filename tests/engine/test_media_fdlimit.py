"""File descriptors as the relay's limit: raised where allowed, named when exhausted.

Each case runs in its own interpreter with a lowered soft RLIMIT_NOFILE, so the test process's
own limit is never touched.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import textwrap

import pytest
from media_ports import free_range


def _run(code: str, *args: object) -> dict[str, object]:
    proc = subprocess.run(
        # a socket left to the garbage collector says so (ResourceWarning) on stderr
        [
            sys.executable,
            "-W",
            "always::ResourceWarning",
            "-c",
            textwrap.dedent(code),
            *(json.dumps(a) for a in args),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    result: dict[str, object] = json.loads(proc.stdout.strip().splitlines()[-1])
    result["stderr"] = proc.stderr
    return result


def _need_hard_limit(descriptors: int) -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < descriptors:
        pytest.skip(f"the hard RLIMIT_NOFILE {hard} is below the {descriptors} this test needs")


def test_raise_fd_limit_lifts_the_soft_limit_to_the_hard_one() -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    out = _run(
        """
        import json, resource
        from engine.media.fdlimit import raise_fd_limit
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))
        print(json.dumps({"limit": raise_fd_limit(),
                          "soft": resource.getrlimit(resource.RLIMIT_NOFILE)[0]}))
        """
    )
    expected = 1_048_576 if hard == resource.RLIM_INFINITY else hard
    assert out["limit"] == out["soft"] == expected


def test_exhausted_descriptors_fail_allocation_with_the_limit_named_and_leak_nothing() -> None:
    first, last = free_range(400)
    out = _run(
        """
        import json, logging, os, resource, sys
        logging.basicConfig(level=logging.WARNING)
        from engine.media import MediaError
        from engine.media.relay import Relay

        def open_fds(limit):  # counted without opening one (listdir would need a descriptor)
            count = 0
            for fd in range(limit):
                try:
                    os.fstat(fd)
                except OSError:
                    continue
                count += 1
            return count

        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        resource.setrlimit(resource.RLIMIT_NOFILE, (90, hard))
        first, last = json.loads(sys.argv[1]), json.loads(sys.argv[2])
        relay = Relay("127.0.0.1", (first, last))
        relay.start()
        # room for exactly 10 pairs and one odd socket: the 11th pair binds its RTP socket,
        # then finds no descriptor for RTCP (the half-made pair must not leak)
        baseline = open_fds(90)
        limit = baseline + 2 * 10 + 1
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, hard))
        held = []
        error = kind = ""
        while True:
            try:
                held.append(relay.allocate())
            except MediaError as exc:
                error, kind = str(exc), type(exc).__name__
                break
        open_after_failure = open_fds(limit)
        relay.release(held.pop())
        again = relay.allocate()  # waits for the loop to close the released sockets
        relay.close()
        print(json.dumps({"held": len(held) + 1, "error": error, "limit": limit,
                          "kind": kind, "baseline": baseline,
                          "open_after_failure": open_after_failure, "again": again.rtp_port}))
        """,
        first,
        last,
    )
    # the start-up warning said the limit, not the 200-pair range, bounds the relay
    assert "RLIMIT_NOFILE 90" in str(out["stderr"])
    assert "fewer than the media port range's 200" in str(out["stderr"])
    # the failure names the limit in force and the fix, not a bare errno
    assert out["kind"] == "DescriptorsExhausted"
    assert f"out of file descriptors (RLIMIT_NOFILE {out['limit']}" in str(out["error"])
    assert "LimitNOFILE" in str(out["error"])
    assert out["held"] == 10
    # exactly the held pairs are open: the 11th pair's RTP socket was closed again, by us, not
    # left to the garbage collector
    assert out["open_after_failure"] == int(str(out["baseline"])) + 2 * 10
    assert "ResourceWarning" not in str(out["stderr"])
    assert first <= int(str(out["again"])) <= last


def test_the_relay_process_raises_its_own_limit() -> None:
    """A server started with the usual soft limit still relays more parties than it allows."""
    _need_hard_limit(700)  # 250 parties
    first, last = free_range(600)
    out = _run(
        """
        import json, resource, sys
        from engine.media.process import RelayProcess
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        resource.setrlimit(resource.RLIMIT_NOFILE, (128, hard))
        first, last = json.loads(sys.argv[1]), json.loads(sys.argv[2])
        relay = RelayProcess("127.0.0.1", (first, last))
        relay.start()
        held = [relay.allocate() for _ in range(250)]  # 500 sockets in the child
        stats = relay.statistics()
        relay.close()
        print(json.dumps({"held": len(held), "endpoints": stats.endpoints}))
        """,
        first,
        last,
    )
    assert out["held"] == 250
    assert int(str(out["endpoints"])) >= 250


def test_the_relay_process_reports_exhausted_descriptors_to_the_engine() -> None:
    """Through the child and its endpoint pool, the engine gets the same named error."""
    _need_hard_limit(100)  # the limit the test sets
    first, last = free_range(400)
    out = _run(
        """
        import json, resource, sys
        from engine.media import DescriptorsExhausted, MediaError
        from engine.media.process import RelayProcess
        resource.setrlimit(resource.RLIMIT_NOFILE, (100, 100))  # the child inherits the hard one
        first, last = json.loads(sys.argv[1]), json.loads(sys.argv[2])
        relay = RelayProcess("127.0.0.1", (first, last))
        relay.start()
        held, error, kind = [], "", ""
        while len(held) < 200:
            try:
                held.append(relay.allocate())
            except MediaError as exc:
                error, kind = str(exc), type(exc).__name__
                break
        relay.close()
        print(json.dumps({"held": len(held), "error": error, "kind": kind}))
        """,
        first,
        last,
    )
    assert 10 < int(str(out["held"])) < 50
    assert out["kind"] == "DescriptorsExhausted"
    assert "out of file descriptors (RLIMIT_NOFILE 100" in str(out["error"])
