"""Crash billing: the node's heartbeat in the store, and recovery counting up to it.

After kill -9 nothing says when the process died but its last heartbeat: a call that was live
then is ended at that beat on restart, timed and charged up to it (within one interval of the
truth); a call bridged after the last beat lasted 0 s; a store with no beat ends such calls at
the restart, uncharged, as before heartbeats existed.
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from pathlib import Path

import pytest
import trio
import trio.testing
from fakes import BASE, PUBLIC, SANDBOX, Clock, FakeLegProvider, FakeMediaFactory, answers, at
from fakes import request as make_request

from engine.config_model import Config, default_config
from engine.directory import demo_directory
from engine.engine import open_engine
from engine.heartbeat import heartbeat
from engine.model import CallState, Disposition, Party, PhoneCall
from engine.store import SqliteStore, open_store

NODE = "node-a"
RATE = 0.02  # the demo directory's route: per started minute


@pytest.fixture
def mock_clock() -> trio.testing.MockClock:
    return trio.testing.MockClock(autojump_threshold=0)


def config(heartbeat_interval: float = 2.0) -> Config:
    base = default_config()
    cluster = dataclasses.replace(base.cluster, node=NODE, heartbeat=heartbeat_interval)
    return dataclasses.replace(base, cluster=cluster)


def wall() -> float:
    """Epoch seconds that follow trio's (mock) clock, like ``Clock`` does for datetimes."""
    return (BASE + timedelta(seconds=trio.current_time())).timestamp()


class CountingStore(SqliteStore):
    def __init__(self) -> None:
        super().__init__(":memory:")
        self.beats: list[tuple[str, float]] = []

    def beat(self, node: str, at: float, api: str | None = None) -> None:
        self.beats.append((node, at))
        super().beat(node, at, api)


async def test_the_heartbeat_beats_at_once_then_every_interval(mock_clock) -> None:
    store = CountingStore()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(lambda: heartbeat(store, NODE, 2.0, wall_clock=wall))
        await trio.sleep(7)
        nursery.cancel_scope.cancel()
    assert [t - BASE.timestamp() for _node, t in store.beats] == [0.0, 2.0, 4.0, 6.0]
    assert store.last_beat(NODE) == at(6).timestamp()
    assert store.last_beat("another-node") is None


async def test_a_store_that_refuses_a_beat_does_not_stop_the_heartbeat(
    mock_clock, caplog: pytest.LogCaptureFixture
) -> None:
    store = CountingStore()
    failures = iter([True, True, False])

    def flaky_beat(node: str, at: float, api: str | None = None) -> None:
        if next(failures, False):
            raise OSError("disk I/O error")
        CountingStore.beat(store, node, at, api)

    store.beat = flaky_beat  # type: ignore[method-assign]
    async with trio.open_nursery() as nursery:
        nursery.start_soon(lambda: heartbeat(store, NODE, 2.0, wall_clock=wall))
        await trio.sleep(5)
        nursery.cancel_scope.cancel()
    assert store.last_beat(NODE) == at(4).timestamp()
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warnings == [f"heartbeat of node {NODE} not recorded: disk I/O error"]  # said once


async def test_a_crashed_call_is_timed_and_charged_up_to_the_last_heartbeat(
    mock_clock, tmp_path: Path
) -> None:
    """The whole chain on MockClock: a call from a public number answered at 1 s, bridged to
    a sandbox at 2 s; the process dies at 8.5 s (its last beat at 8 s); a new process
    starts on the same store."""
    url = f"sqlite:///{tmp_path}/calls.sqlite"
    store = open_store(url)
    legs = FakeLegProvider({PUBLIC: [answers(1)]})
    ids: list[str] = []

    async def first_process(task_status=trio.TASK_STATUS_IGNORED) -> None:
        async with (
            open_engine(
                config(),
                demo_directory(),
                store,
                legs=legs,
                media=FakeMediaFactory(),
                wall_clock=Clock(),
            ) as engine,
            trio.open_nursery() as nursery,
        ):
            nursery.start_soon(lambda: heartbeat(store, NODE, 2.0, wall_clock=wall))
            call, _ = await engine.originate(make_request([PUBLIC], [SANDBOX]))
            ids.append(call.id)
            task_status.started()
            await trio.sleep_forever()

    async with trio.open_nursery() as nursery:
        await nursery.start(first_process)
        await trio.sleep(8.5)
        assert store.get_call(ids[0]).bridged == at(2)  # type: ignore[union-attr]
        store.close()  # kill -9: nothing more reaches the database
        nursery.cancel_scope.cancel()

    await trio.sleep(100)  # down for a while: the restart is at 108.5 s
    store2 = open_store(url)
    async with open_engine(config(), demo_directory(), store2, wall_clock=Clock()) as engine2:
        call = engine2.get_call(ids[0])
    assert call is not None and call.state is CallState.ENDED
    assert call.disposition is Disposition.ANSWERED
    assert call.ended == at(8)  # the last beat, not the restart
    assert call.billable_seconds == 6  # bridged at 2 s, true length 6.5 s: within one beat
    assert call.charge == pytest.approx(RATE)  # one started minute of the public party
    assert all(p.ended == at(8) for p in call.parties)


def live_call(call_id: str, *, bridged: float | None, answered: float = 0.0) -> PhoneCall:
    source = Party(PUBLIC, "source", "public", answered=at(answered), ringing=at(0))
    dest = Party(SANDBOX, "destination", "sandbox")
    call = PhoneCall(
        id=call_id,
        user_id=12,
        organization_id=3,
        extension="0003*210",
        sources=[PUBLIC],
        destinations=[SANDBOX],
        published=at(0),
        answered=at(answered),
        parties=[source, dest],
    )
    if bridged is not None:
        dest.answered = at(bridged)
        call.bridged = at(bridged)
        call.state = CallState.BRIDGED
    else:
        call.state = CallState.CALLING_DESTINATION
    return call


async def recovered(store: SqliteStore, now: float, *ids: str) -> list[PhoneCall]:
    clock = lambda: at(now)  # noqa: E731
    async with open_engine(config(), demo_directory(), store, wall_clock=clock) as engine:
        calls = [engine.get_call(call_id) for call_id in ids]
    assert all(c is not None for c in calls)
    return calls  # type: ignore[return-value]


async def test_recovery_counts_each_live_call_up_to_the_last_beat(mock_clock) -> None:
    store = open_store("sqlite:///:memory:")
    store.save_call(live_call("a" * 20, bridged=10))  # bridged before the last beat
    store.save_call(live_call("b" * 20, bridged=200, answered=190))  # after it
    store.save_call(live_call("c" * 20, bridged=None))  # still ringing its destination
    store.beat(NODE, at(130).timestamp())
    store.beat("node-b", at(900).timestamp())  # another node's beat is not ours

    long, late, ringing = await recovered(store, 1000, "a" * 20, "b" * 20, "c" * 20)

    assert long.ended == at(130) and long.billable_seconds == 120
    assert long.charge == pytest.approx(2 * RATE)  # 120 s bridged: 2 started minutes
    assert late.ended == at(200) and late.billable_seconds == 0 and late.charge == 0
    assert ringing.ended == at(130) and ringing.disposition is Disposition.FAILED
    assert ringing.charge == 0


async def test_without_any_beat_recovery_ends_calls_at_the_restart_uncharged(mock_clock) -> None:
    store = open_store("sqlite:///:memory:")
    store.save_call(live_call("d" * 20, bridged=10))
    (call,) = await recovered(store, 1000, "d" * 20)
    assert call.ended == at(1000)
    assert call.charge == 0
    assert "restart" in (call.hangup_cause or "")
