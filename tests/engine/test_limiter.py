"""FailureLimiter: growing back-off per (user, source), source and user, on explicit time."""

from __future__ import annotations

import logging

import pytest

from engine.limiter import FailureLimiter, LimiterPolicy, source_key

ATTACKER = "198.51.100.7"
PHONE = "192.0.2.10"


def fail(limiter: FailureLimiter, user: str, source: str, now: float, times: int) -> list[bool]:
    """Attempts as a client makes them: refused when blocked, else a counted failure."""
    refused = []
    for _ in range(times):
        wait = limiter.retry_after(user, source, now)
        refused.append(wait is not None)
        if wait is None:
            limiter.failure(user, source, now)
    return refused


def test_a_pair_is_blocked_after_its_threshold_with_a_back_off_that_doubles() -> None:
    limiter = FailureLimiter("test", LimiterPolicy(per_pair=3, first_block=2.0, max_block=16.0))
    assert fail(limiter, "alice", ATTACKER, 0.0, 2) == [False, False]
    assert limiter.failure("alice", ATTACKER, 0.0) is not None  # the 3rd: blocked for 2 s
    assert limiter.retry_after("alice", ATTACKER, 0.5) == pytest.approx(1.5)
    assert fail(limiter, "alice", ATTACKER, 1.0, 100) == [True] * 100  # nothing counted
    blocks = []
    now = 2.0
    for _ in range(5):  # each failure once the block is over doubles it, up to max_block
        assert limiter.retry_after("alice", ATTACKER, now) is None
        block = limiter.failure("alice", ATTACKER, now)
        assert block is not None
        blocks.append(block.seconds)
        now += block.seconds
    assert blocks == [4.0, 8.0, 16.0, 16.0, 16.0]
    # other users and other sources are not touched by this pair's block
    assert limiter.retry_after("bob", ATTACKER, now - 1) is None
    assert limiter.retry_after("alice", PHONE, now - 1) is None


def test_the_real_client_is_not_locked_out_by_an_attacker_elsewhere() -> None:
    limiter = FailureLimiter("test", LimiterPolicy(per_pair=5, per_user=10))
    limiter.success("alice", PHONE, 0.0)  # the phone has been registering all along
    now = 1.0
    for i in range(40):  # a distributed guess: 40 addresses, 5 tries each
        fail(limiter, "alice", f"203.0.113.{i}", now, 5)
    assert limiter.retry_after("alice", PHONE, now) is None  # the known phone goes on
    newcomer = limiter.retry_after("alice", "203.0.113.200", now)
    assert newcomer is not None and newcomer > 0  # a new address for alice waits
    assert limiter.retry_after("bob", "203.0.113.200", now) is None


def test_one_source_trying_many_users_is_blocked_for_all() -> None:
    limiter = FailureLimiter("test", LimiterPolicy(per_pair=5, per_source=10))
    for i in range(10):
        fail(limiter, f"user{i}", ATTACKER, 0.0, 1)
    assert limiter.retry_after("user99", ATTACKER, 0.0) is not None
    assert limiter.retry_after("user99", PHONE, 0.0) is None


def test_success_clears_the_pair_and_failures_are_forgotten() -> None:
    limiter = FailureLimiter("test", LimiterPolicy(per_pair=3, forget=60.0))
    fail(limiter, "alice", PHONE, 0.0, 2)
    limiter.success("alice", PHONE, 1.0)
    fail(limiter, "alice", PHONE, 2.0, 2)
    assert limiter.retry_after("alice", PHONE, 2.0) is None  # 2 since the success, not 4
    fail(limiter, "bob", PHONE, 3.0, 2)
    fail(limiter, "bob", PHONE, 100.0, 2)  # the first two are forgotten
    assert limiter.retry_after("bob", PHONE, 100.0) is None


def test_one_warning_per_block_naming_source_and_user(caplog: pytest.LogCaptureFixture) -> None:
    limiter = FailureLimiter("sip digest", LimiterPolicy(per_pair=3))
    with caplog.at_level(logging.WARNING, logger="engine.limiter"):
        fail(limiter, "0003*210", ATTACKER, 0.0, 300)
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [
        f"sip digest: blocking source {ATTACKER} (user '0003*210') for 1 s after 3 failed "
        "attempts (user at source)"
    ]
    assert caplog.records[0].levelno == logging.WARNING


def test_memory_is_bounded_and_ipv6_is_counted_per_64() -> None:
    limiter = FailureLimiter("test", LimiterPolicy(max_entries=100))
    for i in range(10_000):
        # users that do not exist count for their source only: no per-user memory for them
        limiter.failure(f"user{i}" * 100, f"10.0.{i // 256}.{i % 256}", float(i), known_user=False)
        limiter.success(f"user{i}", "10.9.9.9", float(i))
    assert len(limiter) <= 200
    assert source_key("2001:db8::1") == source_key("2001:db8::ffff") == "2001:db8::/64"
    assert source_key("[2001:db8:0:1::1]") == "2001:db8:0:1::/64"
    assert source_key("::ffff:192.0.2.1") == "192.0.2.1"
    assert source_key("192.0.2.1") == "192.0.2.1"


def test_a_flood_of_new_sources_and_invented_users_does_not_lift_a_block() -> None:
    limiter = FailureLimiter("test", LimiterPolicy(max_entries=100, per_user=20))
    for n in range(4):  # a distributed guess: 4 addresses x 5 wrong passwords for one user
        for _ in range(5):
            limiter.failure("victim", f"198.51.100.{n}", 0.0)
    assert limiter.retry_after("victim", "203.0.113.50", 0.0) == 1.0
    # then thousands of failures from new /64s, for invented users and for the victim
    for i in range(5_000):
        source = f"2001:db8:{i // 65536:x}:{i % 65536:x}::1"
        limiter.failure(f"junk{i}", source, 0.5, known_user=False)
        if i % 10 == 0:
            limiter.failure("victim", source, 0.5)
    assert len(limiter) <= 100 + 1 + 1  # the table, the victim's own counter, nothing else
    wait = limiter.retry_after("victim", "203.0.113.50", 0.5)
    assert wait is not None and wait > 0  # still blocked for newcomers, and for longer
