"""The cluster's engine parts: Path as a pre-loaded route set, the dialog state of answered
legs in the store, the BYE built from it, and the failover claim (on MockClock).

The SIP parts run on a real endpoint on 127.0.0.1 with a plain UDP socket playing the proxy
(the first Path hop) and the phone behind it, so what is checked is what goes on the wire.
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest
import trio
import trio.testing
from fakes import BASE, PUBLIC, SANDBOX, Clock, at, party_sdp

from engine.cluster import ClusterMonitor, bye_stored_legs
from engine.config import Config, default_config
from engine.dialogs import LegDialog
from engine.directory import demo_directory
from engine.engine import open_engine
from engine.model import CallState, Disposition, Party, PhoneCall
from engine.sipservice import SipLegs, make_endpoint
from engine.store import SqliteStore, open_store
from engine.store.service import StoreService
from sip.dialog import Dialog, DialogState
from sip.leg_events import LegAnswered
from sip.message import Request, parse_message, serialize
from sip.transaction_types import Peer
from sip.uri import parse_name_addr, parse_uri

RATE = 0.02  # the demo directory's route: per started minute


def cluster_config(node: str, failover: float = 10.0) -> Config:
    base = default_config()
    cluster = dataclasses.replace(base.cluster, node=node, heartbeat=2, failover=failover)
    return dataclasses.replace(base, cluster=cluster)


def wall() -> float:
    return (BASE + timedelta(seconds=trio.current_time())).timestamp()


def live_call(call_id: str, node: str, *, bridged: float = 10.0) -> PhoneCall:
    source = Party(PUBLIC, "source", "public", answered=at(0), ringing=at(0))
    dest = Party(SANDBOX, "destination", "sandbox", answered=at(bridged))
    return PhoneCall(
        id=call_id,
        user_id=12,
        organization_id=3,
        extension="0003*210",
        sources=[PUBLIC],
        destinations=[SANDBOX],
        published=at(0),
        answered=at(0),
        bridged=at(bridged),
        state=CallState.BRIDGED,
        parties=[source, dest],
        node=node,
    )


# --- the failover claim -------------------------------------------------------------------


@pytest.fixture
def mock_clock() -> trio.testing.MockClock:
    return trio.testing.MockClock(autojump_threshold=0)


async def test_a_silent_node_loses_its_live_calls_to_exactly_one_survivor(mock_clock) -> None:
    store = open_store("sqlite:///:memory:")
    store.save_call(live_call("a" * 20, "node-b"))
    store.save_call(live_call("c" * 20, "node-c"))  # a live node's call stays its own
    store.beat("node-b", at(130).timestamp())
    await trio.sleep(130)
    settled: list[list[PhoneCall]] = []
    async with (
        open_engine(cluster_config("node-a"), demo_directory(), store, wall_clock=Clock()) as a,
        open_engine(cluster_config("node-d"), demo_directory(), store, wall_clock=Clock()) as d,
    ):
        monitors = [
            ClusterMonitor(
                engine, make_endpoint(engine.config), on_settled=settled.append, wall_clock=wall
            )
            for engine in (a, d)
        ]
        for monitor in monitors:
            assert await monitor.check() == []  # the store answers from now on
        await trio.sleep(9)
        store.beat("node-c", wall())
        assert [await m.check() for m in monitors] == [[], []]  # 9 s of silence: not dead yet
        await trio.sleep(2)
        store.beat("node-c", wall())
        taken = [await m.check() for m in monitors]
    assert [len(t) for t in taken] == [1, 0]  # node-a claimed, node-d found nothing left
    (calls,) = taken[0]
    assert [c.id for c in calls] == ["a" * 20] and settled == [calls]
    call = store.get_call("a" * 20)
    assert call is not None and call.state is CallState.ENDED and call.node == "node-a"
    assert call.ended == at(130)  # the dead node's last beat
    assert call.disposition is Disposition.ANSWERED
    assert call.billable_seconds == 120 and call.charge == pytest.approx(2 * RATE)
    assert call.hangup_cause == "node node-b failed (silent for 10 s)"
    other = store.get_call("c" * 20)
    assert other is not None and other.state is CallState.BRIDGED and other.node == "node-c"


class FlakyStore(SqliteStore):
    def __init__(self) -> None:
        super().__init__(":memory:")
        self.down = False

    def nodes(self):  # type: ignore[no-untyped-def]
        if self.down:
            raise OSError("connection refused")
        return super().nodes()


async def test_heartbeats_missed_while_the_store_was_down_make_no_node_dead(mock_clock) -> None:
    store = FlakyStore()
    store.save_call(live_call("a" * 20, "node-b"))
    async with open_engine(
        cluster_config("node-a"), demo_directory(), store, wall_clock=Clock()
    ) as engine:
        monitor = ClusterMonitor(engine, make_endpoint(engine.config), wall_clock=wall)
        store.beat("node-b", wall())
        assert await monitor.check() == []
        store.down = True  # 30 s without a store: nobody can beat
        for _ in range(30):
            await trio.sleep(1)
            assert await monitor.check() == []
        store.down = False
        await trio.sleep(1)
        # node-b's beat is 31 s old, but the store just came back
        assert await monitor.check() == []
        store.beat("node-b", wall())  # node-b beats again: it was alive all along
        await trio.sleep(9)
        assert await monitor.check() == []
        await trio.sleep(3)  # now it is silent for 12 s with the store up: dead
        assert [[c.id for c in calls] for calls in await monitor.check()] == [["a" * 20]]


# --- Path, stored dialog state and the BYE built from it ---------------------------------


class Proxy:
    """A UDP socket standing for the first Path hop (Kamailio) and the phone behind it."""

    def __init__(self) -> None:
        self.sock = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)

    async def bind(self) -> int:
        await self.sock.bind(("127.0.0.1", 0))
        return int(self.sock.getsockname()[1])

    async def receive(self) -> tuple[Request, tuple[str, int]]:
        while True:
            data, addr = await self.sock.recvfrom(65535)
            message = parse_message(data)
            if isinstance(message, Request):
                return message, addr

    async def send(self, data: bytes, addr: tuple[str, int]) -> None:
        await self.sock.sendto(data, addr)


async def test_a_path_binding_is_called_through_its_path_and_byed_from_the_stored_state(
    tmp_path,
) -> None:
    store = open_store(f"sqlite:///{tmp_path}/calls.sqlite")
    config = cluster_config("node-a")
    proxy = Proxy()
    port = await proxy.bind()
    path = (f"<sip:127.0.0.1:{port};lr;received=sip:10.0.0.5:5062>", "<sip:edge.example;lr>")
    store.save_contact("0003*210", "sip:alice@10.0.0.5:5062", "127.0.0.1:9 udp", 2e9, "r1", 1, path)
    endpoint = make_endpoint(config)
    await endpoint.listen("udp", "127.0.0.1", 0)
    legs = SipLegs(endpoint, demo_directory(), store, config)
    call = live_call("e" * 20, "node-a")
    party = Party("0003*210", "destination", "extension", "0003*210")

    async def no_requests(incoming):  # type: ignore[no-untyped-def]
        await incoming.respond(incoming.request.response(481))

    async with trio.open_nursery() as nursery:
        await nursery.start(endpoint.run, no_requests)
        (leg,) = legs.legs_for(call, party, None)
        await leg.start(party_sdp(4000))
        with trio.fail_after(5):
            invite, addr = await proxy.receive()
        # loose routing: the Request-URI is the Contact, the Path is the Route set, in order
        assert invite.method == "INVITE"
        assert str(invite.uri) == "sip:alice@10.0.0.5:5062"
        assert invite.headers.get_all("Route") == list(path)
        record_route = f"<sip:127.0.0.1:{port};lr>"
        ok = invite.response(
            200,
            to_tag="phone-tag",
            headers=[
                ("Record-Route", record_route),
                ("Contact", "<sip:alice@10.0.0.5:5062>"),
                ("Content-Type", "application/sdp"),
            ],
            body=party_sdp(5000),
        )
        await proxy.send(serialize(ok), addr)
        with trio.fail_after(5):
            assert isinstance(await leg.next_event(), LegAnswered)
            ack, _ = await proxy.receive()
        assert ack.method == "ACK"
        (stored,) = store.dialogs_of(call.id)
        state = LegDialog.from_json(stored.data)
        assert (state.call_id, state.local_tag, state.remote_tag) == (
            invite.call_id,
            invite.from_.tag,
            "phone-tag",
        )
        assert state.route_set == (record_route,) and state.local_seq == 1
        assert (state.host, state.port) == ("127.0.0.1", port)

        # the node is gone; another endpoint BYEs the leg from the stored state alone
        other = make_endpoint(config)
        await other.listen("udp", "127.0.0.1", 0)
        await nursery.start(other.run, no_requests)
        nursery.start_soon(bye_stored_legs, other, StoreService.of(store), [call])
        with trio.fail_after(5):
            bye, bye_addr = await proxy.receive()
        assert bye.method == "BYE" and bye.cseq.seq == 2  # above the stored CSeq
        assert str(bye.uri) == "sip:alice@10.0.0.5:5062"
        assert bye.headers.get_all("Route") == [record_route]
        assert (bye.call_id, bye.from_.tag, bye.to.tag) == (
            invite.call_id,
            invite.from_.tag,
            "phone-tag",
        )
        await proxy.send(serialize(bye.response(200)), bye_addr)
        with trio.fail_after(5):
            while store.dialogs_of(call.id):
                await trio.sleep(0.01)
        nursery.cancel_scope.cancel()


def test_the_stored_state_survives_its_round_trip_and_routes_through_a_strict_router() -> None:
    dialog = Dialog(
        call_id="c1@h",
        local_tag="l",
        remote_tag="r",
        local_seq=7,
        remote_seq=None,
        local_addr=parse_name_addr("<sip:210@voip.example.com>;tag=l"),
        remote_addr=parse_name_addr("<sip:gw@192.0.2.1>;tag=r"),
        remote_target=parse_uri("sip:gw@192.0.2.1:5080"),
        route_set=(parse_name_addr("<sip:192.0.2.9:5070>"),),  # no lr: a strict router
        state=DialogState.CONFIRMED,
    )
    state = LegDialog.of(dialog, Peer("udp", "192.0.2.9", 5070))
    again = LegDialog.from_json(state.to_json())
    assert again == state
    rebuilt, peer = again.bye()
    bye = rebuilt.create_request("BYE")
    assert bye.cseq.seq == 8
    assert str(bye.uri) == "sip:192.0.2.9:5070"  # the strict router is the Request-URI
    assert bye.headers.get_all("Route") == ["<sip:gw@192.0.2.1:5080>"]
    assert peer == Peer("udp", "192.0.2.9", 5070)
    with pytest.raises(ValueError):
        LegDialog.from_json('{"call_id": "x"}')
