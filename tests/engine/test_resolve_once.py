"""Each number of a call is resolved once, when its party is made: the legs, the sandbox and
the charge use the party's target, and a caller that resolved it already (the API's checks,
the SIP service) hands it over instead of having it resolved again."""

from __future__ import annotations

import collections
from typing import Any

import pytest
import trio
import trio.testing
from fakes import EXT_A, EXT_B, PUBLIC, FakeInbound, answers, open_harness

from engine.directory import Directory, demo_directory
from engine.numbers import ExtensionTarget, resolve

LOOKUPS = ("organization_by_code", "extension", "find_extension", "route_for")


class CountingDirectory:
    """The demo directory, counting the lookups a number's resolution makes, per number."""

    def __init__(self) -> None:
        self._directory = demo_directory()
        self.lookups: collections.Counter[tuple[str, str]] = collections.Counter()

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._directory, name)
        if name not in LOOKUPS:
            return attr

        def counted(number: str, *args: Any) -> Any:
            self.lookups[(name, number)] += 1
            return attr(number, *args)

        return counted


@pytest.fixture
def mock_clock() -> trio.testing.MockClock:
    return trio.testing.MockClock(autojump_threshold=0)


async def test_sandbox_numbers_are_resolved_once_per_call(mock_clock) -> None:
    directory = CountingDirectory()
    async with open_harness(directory=directory) as h:  # type: ignore[arg-type]
        call_id = await h.originate(["0003*00"], ["0003*01"])
        call = await h.wait_ended(call_id)
    assert call.bridged is not None  # both answered, as the sandbox promises
    # one resolution per number: the sandbox legs use the party's target
    assert directory.lookups == {("organization_by_code", "0003"): 2}


async def test_a_public_party_is_resolved_once_and_charged_at_its_route(mock_clock) -> None:
    directory = CountingDirectory()
    scripts = {EXT_A: [answers(1)], PUBLIC: [answers(1, hangup=62)]}
    async with open_harness(scripts, directory=directory) as h:  # type: ignore[arg-type]
        call_id = await h.originate([EXT_A], [PUBLIC])
        call = await h.wait_ended(call_id)
    assert call.charge == pytest.approx(0.04)  # two started minutes at the route's 0.02
    assert directory.lookups[("route_for", PUBLIC)] == 1
    assert directory.lookups[("extension", EXT_A)] == 1


async def test_numbers_resolved_by_the_caller_are_not_resolved_again(mock_clock) -> None:
    directory = CountingDirectory()
    plain: Directory = demo_directory()
    targets = {n: resolve(n, plain, 3) for n in (EXT_A, PUBLIC)}
    scripts = {EXT_A: [answers(1)], PUBLIC: [answers(1, hangup=62)]}
    async with open_harness(scripts, directory=directory) as h:  # type: ignore[arg-type]
        call_id = await h.originate([EXT_A], [PUBLIC], targets=targets)
        call = await h.wait_ended(call_id)
    assert call.charge == pytest.approx(0.04)
    assert h.legs.leg(EXT_A).started_at is not None
    assert directory.lookups == {}


async def test_an_inbound_call_takes_the_target_the_sip_service_resolved(mock_clock) -> None:
    directory = CountingDirectory()
    target = resolve(EXT_B, demo_directory(), 3)
    assert isinstance(target, ExtensionTarget)
    legs: list[FakeInbound] = []

    def make_leg(index: int, label: str) -> FakeInbound:
        legs.append(FakeInbound(index, label, None))
        return legs[-1]

    async with open_harness({EXT_B: [answers(1, hangup=5)]}, directory=directory) as h:  # type: ignore[arg-type]
        call = h.engine.start_inbound(
            caller_number="+4930111111",
            caller_name=None,
            caller_extension=None,
            organization_id=3,
            destination=EXT_B,
            destination_target=target,
            video=False,
            make_leg=make_leg,
        )
        ended = await h.wait_ended(call.id)
    assert ended.extension == EXT_B  # charged to the extension it reached
    assert h.legs.leg(EXT_B).started_at == 0.0
    assert [key for key in directory.lookups if key[1] == EXT_B] == []
