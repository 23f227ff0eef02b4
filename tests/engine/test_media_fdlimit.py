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

from media_ports import free_range


def _run(code: str, *args: object) -> dict[str, object]:
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *(json.dumps(a) for a in args)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    result: dict[str, object] = json.loads(proc.stdout.strip().splitlines()[-1])
    result["stderr"] = proc.stderr
    return result


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
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        resource.setrlimit(resource.RLIMIT_NOFILE, (90, hard))
        first, last = json.loads(sys.argv[1]), json.loads(sys.argv[2])
        relay = Relay("127.0.0.1", (first, last))
        relay.start()
        held = []
        error = kind = ""
        while True:
            try:
                held.append(relay.allocate())
            except MediaError as exc:
                error, kind = str(exc), type(exc).__name__
                break
        open_after_failure = len(os.listdir("/proc/self/fd"))
        relay.release(held.pop())
        again = relay.allocate()  # waits for the loop to close the released sockets
        relay.close()
        print(json.dumps({"held": len(held) + 1, "error": error,
                          "kind": kind, "open_after_failure": open_after_failure,
                          "again": again.rtp_port}))
        """,
        first,
        last,
    )
    # the start-up warning said the limit, not the 200-pair range, bounds the relay
    assert "RLIMIT_NOFILE 90" in str(out["stderr"])
    assert "fewer than the media port range's 200" in str(out["stderr"])
    # the failure names the limit and the fix, not a bare errno
    assert out["kind"] == "DescriptorsExhausted"
    assert "out of file descriptors (RLIMIT_NOFILE 90" in str(out["error"])
    assert "LimitNOFILE" in str(out["error"])
    held = int(str(out["held"]))
    assert 10 < held < 45  # 2 sockets each, under 90 descriptors
    # a half-made pair was closed: every descriptor but the limit's last one is in use
    assert int(str(out["open_after_failure"])) >= 89
    assert first <= int(str(out["again"])) <= last


def test_the_relay_process_raises_its_own_limit() -> None:
    """A server started with the usual soft limit still relays more parties than it allows."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
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
    if hard != resource.RLIM_INFINITY and hard < 700:
        return  # a hard limit this low cannot hold 250 parties; nothing to check
    assert out["held"] == 250
    assert int(str(out["endpoints"])) >= 250


def test_the_relay_process_reports_exhausted_descriptors_to_the_engine() -> None:
    """Through the child and its endpoint pool, the engine gets the same named error."""
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
