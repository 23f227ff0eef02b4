"""A finished call leaves no reference cycles behind: reference counting frees it all.

Cycles are what the cycle collector must find, and its full passes over every live object are
what made the tail latency of Python B2BUAs (seconds-long p99 under load). Both sides of a
call run here in one process (our UAC calling our UAS over UDP loopback), are answered and
hung up, and then the collector must find nothing of ours to free.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import trio
import trio.testing

from sip.endpoint import SipEndpoint
from sip.endpoint_incoming import IncomingRequest
from sip.transaction import Peer
from sip.uac_driver import InviteClient
from sip.uas_driver import InviteServer
from sip.uri import NameAddr, SipUri

OFFER = (
    b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    b"m=audio 4000 RTP/AVP 0\r\n"
)


@pytest.fixture
def mock_clock() -> trio.testing.MockClock:
    # jumps over the timers' waits (Timer K, J...), not over loopback packets in flight
    return trio.testing.MockClock(autojump_threshold=0.02)


@contextmanager
def collector_off() -> Iterator[None]:
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()


def our_garbage() -> list[str]:
    """Type names of the objects of ours that only the cycle collector could free."""
    gc.set_debug(gc.DEBUG_SAVEALL)
    gc.collect()
    names = sorted(
        {type(o).__qualname__ for o in gc.garbage if type(o).__module__.startswith("sip.")}
    )
    gc.set_debug(0)
    gc.garbage.clear()
    return names


async def test_answered_and_hung_up_calls_leave_no_cycles(
    mock_clock: trio.testing.MockClock,
) -> None:
    caller, callee = SipEndpoint(), SipEndpoint()

    async def answer(incoming: IncomingRequest) -> None:
        if incoming.request.method != "INVITE":
            await incoming.respond(incoming.request.response(200, to_tag="t"))
            return
        server = InviteServer(callee, incoming)
        await server.answer(OFFER)
        await server.next_event()  # answered, then the caller's BYE

    await caller.listen("udp", "127.0.0.1", 0)
    host, port = await callee.listen("udp", "127.0.0.1", 0)
    uri = SipUri("sip", "bob", None, host, port)

    async def one_call() -> None:
        client = InviteClient(
            caller,
            peer=Peer("udp", host, port),
            request_uri=uri,
            from_addr=NameAddr(SipUri("sip", "alice", None, "127.0.0.1", None)),
            to_addr=NameAddr(uri),
        )
        await client.start(OFFER)
        await client.next_event()
        await client.bye()

    with collector_off():
        async with trio.open_nursery() as nursery:
            await nursery.start(caller.run, answer)
            await nursery.start(callee.run, answer)
            for _ in range(3):  # warm-up: what is made once per process is not per call
                await one_call()
            await trio.sleep(40)  # every transaction of those calls ends (Timer K, J, M...)
            our_garbage()
            for _ in range(20):
                await one_call()
            await trio.sleep(40)
            assert our_garbage() == []
            nursery.cancel_scope.cancel()
