"""ConnectionLimits: TCP connections in all and per remote address, refusals logged sparingly."""

from __future__ import annotations

import pytest

from sip.limits import ConnectionLimits


def test_a_source_over_its_limit_is_refused_and_others_are_not() -> None:
    limits = ConnectionLimits(max_total=10, max_per_source=2)
    assert limits.admit("192.0.2.1", 0.0) is None
    assert limits.admit("192.0.2.1", 0.0) is None
    refusal = limits.admit("192.0.2.1", 0.0)
    assert refusal is not None
    assert refusal.reason == (
        "tcp connection from 192.0.2.1 refused: 2 open with that address already"
        " (max_connections_per_source 2)"
    )
    assert limits.admit("192.0.2.2", 0.0) is None
    assert (limits.open, limits.open_from("192.0.2.1"), limits.refused) == (3, 2, 1)
    limits.release("192.0.2.1")  # one closed: room again
    assert limits.admit("192.0.2.1", 0.0) is None


def test_the_total_limit_counts_every_source_but_never_refuses_our_own_connections() -> None:
    limits = ConnectionLimits(max_total=2, max_per_source=1)
    assert limits.admit("192.0.2.1", 0.0) is None
    assert limits.admit("192.0.2.2", 0.0) is None
    refusal = limits.admit("192.0.2.3", 0.0)
    assert refusal is not None
    assert refusal.reason == (
        "tcp connection from 192.0.2.3 refused: 2 open already (max_connections 2)"
    )
    # a flood of incoming connections does not cut us off from our gateways and phones,
    # not even from one on an address that has the most connections in already
    assert limits.admit("192.0.2.1", 0.0, incoming=False) is None
    assert limits.admit("198.51.100.8", 0.0, incoming=False) is None
    assert (limits.open, limits.incoming) == (4, 2)
    limits.release("198.51.100.8", incoming=False)
    limits.release("192.0.2.1")
    assert limits.admit("192.0.2.3", 0.0) is None
    assert (limits.open, limits.incoming) == (3, 2)
    with pytest.raises(ValueError):
        limits.release("192.0.2.9")


def test_one_warning_per_source_and_interval_with_the_count_left_out() -> None:
    limits = ConnectionLimits(max_total=100, max_per_source=1, warn_interval=10.0)
    for source in ("192.0.2.1", "192.0.2.2"):
        assert limits.admit(source, 0.0) is None
    warnings = []
    for t in range(25):  # one refused connection a second from each source
        for source in ("192.0.2.1", "192.0.2.2"):
            refusal = limits.admit(source, float(t))
            assert refusal is not None
            if refusal.warning is not None:
                warnings.append((t, refusal.warning))
    per_source = "open with that address already (max_connections_per_source 1)"
    left_out = " (and 9 more refused like it in the last 10 s)"
    assert warnings == [
        (0, f"tcp connection from 192.0.2.1 refused: 1 {per_source}"),
        (0, f"tcp connection from 192.0.2.2 refused: 1 {per_source}"),
        (10, f"tcp connection from 192.0.2.1 refused: 1 {per_source}{left_out}"),
        (10, f"tcp connection from 192.0.2.2 refused: 1 {per_source}{left_out}"),
        (20, f"tcp connection from 192.0.2.1 refused: 1 {per_source}{left_out}"),
        (20, f"tcp connection from 192.0.2.2 refused: 1 {per_source}{left_out}"),
    ]
    assert limits.refused == 50


def test_refusals_for_the_total_share_one_warning_whatever_the_source() -> None:
    limits = ConnectionLimits(max_total=1, max_per_source=1, warn_interval=10.0)
    assert limits.admit("192.0.2.1", 0.0) is None
    refusals = [limits.admit(f"203.0.113.{i}", 1.0) for i in range(1, 200)]
    assert all(r is not None for r in refusals)
    assert sum(1 for r in refusals if r is not None and r.warning is not None) == 1


def test_a_flood_from_many_addresses_keeps_the_throttle_table_bounded() -> None:
    limits = ConnectionLimits(max_total=100_000, max_per_source=1, warn_interval=10.0)
    for i in range(5000):
        source = f"10.0.{i // 256}.{i % 256}"
        assert limits.admit(source, 0.0) is None
        refusal = limits.admit(source, 0.0)
        assert refusal is not None and refusal.warning is not None  # first from each: logged
    assert len(limits._throttles) <= 1024


def test_release_without_admit_and_bad_limits_are_errors() -> None:
    limits = ConnectionLimits(max_total=1, max_per_source=1)
    with pytest.raises(ValueError, match=r"no tcp connection with 192\.0\.2\.1"):
        limits.release("192.0.2.1")
    with pytest.raises(ValueError, match="at least 1"):
        ConnectionLimits(max_total=0, max_per_source=1)
