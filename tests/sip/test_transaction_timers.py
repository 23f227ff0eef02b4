"""TimerConfig (RFC 3261 Table 4, RFC 6026) and the lazy-cancel TimerQueue."""

from __future__ import annotations

import gc
import random

import pytest
from test_transaction_helpers import UAC, UAS, fixed_tags, reply, request

from sip.timers import TimerConfig, TimerQueue
from sip.transaction import RequestReceived, TransactionLayer


def test_timer_values_derive_from_t1_t2_t4() -> None:
    config = TimerConfig()
    assert (config.timer_a, config.timer_e, config.timer_g) == (0.5, 0.5, 0.5)
    assert {config.timer_b, config.timer_d, config.timer_f, config.timer_h} == {32.0}
    assert (config.timer_j, config.timer_l, config.timer_m) == (32.0, 32.0, 32.0)
    assert (config.timer_i, config.timer_k) == (5.0, 5.0)
    fast = TimerConfig(t1=0.01, t2=0.08, t4=0.1)
    assert fast.timer_b == pytest.approx(0.64) and fast.timer_k == 0.1


@pytest.mark.parametrize(("t1", "t2", "t4"), [(0, 4, 5), (1, 0.5, 5), (0.5, 4, 0), (-1, 4, 5)])
def test_timer_config_rejects_nonsense(t1: float, t2: float, t4: float) -> None:
    with pytest.raises(ValueError, match="TimerConfig"):
        TimerConfig(t1=t1, t2=t2, t4=t4)


def test_queue_pops_in_deadline_order_and_skips_cancelled() -> None:
    queue: TimerQueue[str] = TimerQueue()
    tokens = {
        name: queue.schedule(deadline, name)
        for name, deadline in [("c", 3.0), ("a", 1.0), ("b", 2.0), ("a2", 1.0)]
    }
    queue.cancel(tokens["b"])
    queue.cancel(tokens["b"])  # twice is harmless
    assert len(queue) == 3 and queue.earliest() == 1.0
    assert queue.pop_due(0.5) is None
    assert queue.pop_due(10.0) == ("a", tokens["a"])  # equal deadlines: scheduling order
    assert queue.pop_due(10.0) == ("a2", tokens["a2"])
    assert queue.pop_due(10.0) == ("c", tokens["c"])  # "b" was cancelled
    assert queue.pop_due(10.0) is None and queue.earliest() is None
    queue.cancel(tokens["c"])  # already fired: ignored
    assert len(queue) == 0


def test_queue_memory_follows_live_timers_under_churn() -> None:
    queue: TimerQueue[int] = TimerQueue()
    rng = random.Random(7)
    live: list[int] = []
    for i in range(20_000):
        live.append(queue.schedule(rng.uniform(0, 100), i))
        if len(live) > 10:
            queue.cancel(live.pop(rng.randrange(len(live))))
    assert len(queue) == 10
    assert len(queue._heap) <= 2 * 10 + 64 + 1  # dead entries are compacted away
    deadlines = []
    while (item := queue.pop_due(1000.0)) is not None:
        deadlines.append(item)
    assert len(deadlines) == 10


def test_finished_transactions_leave_no_garbage_cycles() -> None:
    """Per-transaction state must not form reference cycles (no full-GC work per call)."""
    gc.collect()
    gc.disable()
    try:
        layer = TransactionLayer(tag_factory=fixed_tags())
        for i in range(20):
            invite = request(branch=f"z9hG4bKc{i}")  # client INVITE, 180, 486 (ACK)
            layer.send_request(invite, UAS, 0.0)
            layer.receive(reply(invite, 180), UAS, 0.1)
            layer.receive(reply(invite, 486), UAS, 0.2)
            bye = request("BYE", branch=f"z9hG4bKb{i}", to_tag="t")  # client non-INVITE
            layer.send_request(bye, UAS, 0.0)
            layer.receive(reply(bye, 200), UAS, 0.1)
            incoming = request(branch=f"z9hG4bKs{i}")  # server INVITE, CANCEL, 487, ACK
            layer.receive(incoming, UAC, 0.0)
            layer.receive(request("CANCEL", branch=f"z9hG4bKs{i}"), UAC, 0.1)
            for event in layer.events():
                if isinstance(event, RequestReceived) and event.key is not None:
                    layer.send_response(event.key, reply(incoming, 487), 0.2)
            layer.receive(request("ACK", branch=f"z9hG4bKs{i}", to_tag="totag1"), UAC, 0.3)
        while (deadline := layer.get_timer()) is not None:
            layer.handle_timer(deadline)
        layer.events()
        assert len(layer) == 0
        del layer
        assert gc.collect() == 0
    finally:
        gc.enable()
