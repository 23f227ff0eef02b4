"""``b2bua serve``'s signals: the first SIGINT/SIGTERM drains, a second one stops at once."""

from __future__ import annotations

import os
import signal

import trio
import trio.testing

from b2bua.server import _watch_signals


async def test_first_signal_drains_and_a_second_stops_at_once() -> None:
    shutdown = trio.Event()
    with trio.CancelScope() as everything:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_watch_signals, shutdown, everything)
            await trio.testing.wait_all_tasks_blocked()  # the receiver is installed
            os.kill(os.getpid(), signal.SIGINT)
            await shutdown.wait()
            assert not everything.cancel_called  # draining, not stopped
            os.kill(os.getpid(), signal.SIGTERM)
            with trio.fail_after(10):  # a bound for a broken build, not a timing assumption
                await trio.sleep_forever()  # ends when the second signal cancels everything
    assert everything.cancelled_caught
