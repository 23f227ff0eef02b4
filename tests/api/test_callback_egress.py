"""statusCallback egress through the API: refused URLs get 400 at create time; deliveries go
only to vetted addresses (a real local receiver; host names answered by a resolver of the
test, so a name can "rebind" to a metadata address between two events)."""

from __future__ import annotations

import dataclasses
import logging
import random
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
import trio
import trio.testing
from test_egress import FakeResolver
from test_events import Receiver, callback_setup
from uapi_helpers import assert_error, auth, create_call, simple_body, wait_until

from api.egress import CallbackPolicy, EgressRefused, EgressTransport
from api.events import CallbackDispatcher
from engine.config_model import ApiConfig, default_config
from engine.directory import demo_directory
from engine.engine import Engine, open_engine
from engine.store import open_store

CREATE = "/uapi/phoneCalls/@me/simple"


@pytest.fixture
def mock_clock() -> trio.testing.MockClock:
    # real loopback sockets: virtual time runs 10x real time instead of jumping
    return trio.testing.MockClock(rate=10)


@asynccontextmanager
async def engine_allowing(allow: tuple[str, ...]) -> AsyncIterator[Engine]:
    config = dataclasses.replace(default_config(), api=ApiConfig(callback_allow=allow))
    store = open_store("sqlite:///:memory:")
    async with open_engine(config, demo_directory(), store, rng=random.Random(5)) as engine:
        yield engine
    store.close()


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://169.254.169.254/latest/meta-data/", "169.254.169.254 is a cloud metadata address"),
        ("http://[fd00:ec2::254]/latest", "fd00:ec2::254 is a cloud metadata address"),
        ("http://100.100.100.200/latest", "100.100.100.200 is a cloud metadata address"),
        ("https://169.254.0.1:8443/x", "169.254.0.1 is a link-local address"),
        ("http://[fe80::1]/x", "fe80::1 is a link-local address"),
        ("http://224.0.0.1/x", "224.0.0.1 is a multicast address"),
        ("http://[ff02::1]/x", "ff02::1 is a multicast address"),
        ("http://0.0.0.0:8080/x", "0.0.0.0 is an unspecified address"),
        ("http://[::]/x", ":: is the unspecified address"),
        ("http://255.255.255.255/x", "255.255.255.255 is the broadcast address"),
        ("http://2852039166/x", "169.254.169.254 is a cloud metadata address"),
        ("http://[::ffff:169.254.169.254]/x", "169.254.169.254 is a cloud metadata address"),
    ],
)
async def test_create_refuses_a_denied_callback_address(mock_clock, engine, url, why) -> None:
    async with callback_setup(engine, Receiver()) as (client, dispatcher):
        response = await client.post(
            CREATE, json=simple_body(statusCallback=url), headers=await auth(client)
        )
        body = assert_error(response, 400, "pc_status_callback_invalid")
        assert body["error"]["message"] == f"statusCallback is refused: {why}"
        assert dispatcher.active == 0 and engine.store.count_calls() == 0


async def test_create_accepts_loopback_and_names_by_default(mock_clock, engine) -> None:
    """(Private addresses too: tests/api/test_egress.py; no test sends to one.)"""
    trio.socket.set_custom_hostname_resolver(FakeResolver({"hooks.example.com": ["127.0.0.1"]}))
    receiver = Receiver()
    async with callback_setup(engine, receiver, backoff=0.5) as (client, _):
        headers = await auth(client)
        for url in [
            receiver.url,
            f"http://hooks.example.com:{receiver.port}/callback",
        ]:
            body = simple_body(source="0003*09", statusCallback=url)
            response = await client.post(CREATE, json=body, headers=headers)
            assert response.status_code == 202, response.text
        # the name was resolved at delivery and the POSTs went to the address it named
        await wait_until(lambda: receiver.finals() >= 2, step=0.5, limit=120)


async def test_an_allow_list_admits_its_names_and_networks_only(mock_clock, caplog) -> None:
    trio.socket.set_custom_hostname_resolver(
        FakeResolver(
            {
                "hooks.example.com": ["127.0.0.1"],
                "a.apps.example.org": ["127.0.0.1"],
                "evil.example.net": ["127.0.0.1"],
            }
        )
    )
    allow = ("127.0.0.0/8", "hooks.example.com", "*.apps.example.org")
    receiver = Receiver()
    async with (
        engine_allowing(allow) as engine,
        callback_setup(engine, receiver, backoff=0.5) as (client, dispatcher),
    ):
        headers = await auth(client)
        port = receiver.port
        for url, why in [
            (f"http://evil.example.net:{port}/x", "host evil.example.net is not in this"),
            (f"http://apps.example.org:{port}/x", "host apps.example.org is not in this"),
            (f"http://x.hooks.example.com:{port}/x", "host x.hooks.example.com is not in this"),
            ("http://10.1.2.3/x", "address 10.1.2.3 is not in this"),
            ("http://[::1]/x", "address ::1 is not in this"),
            ("http://169.254.169.254/x", "169.254.169.254 is a cloud metadata address"),
        ]:
            response = await client.post(
                CREATE, json=simple_body(statusCallback=url), headers=headers
            )
            message = assert_error(response, 400, "pc_status_callback_invalid")["error"]["message"]
            assert message.startswith(f"statusCallback is refused: {why}"), message
        assert engine.store.count_calls() == 0
        for url in [
            receiver.url,  # 127.0.0.1, within 127.0.0.0/8
            f"http://hooks.example.com:{port}/callback",
            f"http://a.apps.example.org:{port}/callback",
        ]:
            await create_call(client, headers, simple_body(source="0003*09", statusCallback=url))
        await wait_until(lambda: receiver.finals() >= 3, step=0.5, limit=120)
        assert dispatcher.refused == 0
    hosts = {headers["host"] for headers, _ in receiver.requests}
    assert hosts == {
        f"127.0.0.1:{port}",
        f"hooks.example.com:{port}",
        f"a.apps.example.org:{port}",
    }


class Rebinding(FakeResolver):
    """A name whose first lookup answers loopback and every later one the metadata address."""

    async def getaddrinfo(self, host, port, family=0, type=0, proto=0, flags=0):  # type: ignore[override]
        self.table = {
            "rebind.example.com": ["127.0.0.1" if not self.lookups else "169.254.169.254"]
        }
        return await super().getaddrinfo(host, port, family, type, proto, flags)


async def test_delivery_to_a_name_that_rebinds_to_a_denied_address_is_refused(
    mock_clock, engine, caplog
) -> None:
    resolver = Rebinding({})
    trio.socket.set_custom_hostname_resolver(resolver)
    # a new connection per POST, so each one looks the name up again (a kept-alive
    # connection stays on the address checked when it was opened)
    receiver = Receiver(close=True)
    caplog.set_level(logging.WARNING, logger="api.events")
    async with callback_setup(engine, receiver, backoff=0.5) as (client, dispatcher):
        headers = await auth(client)
        url = f"http://rebind.example.com:{receiver.port}/callback"
        # a name: allowed at create time without a lookup
        call_id = await create_call(
            client, headers, simple_body(source="0003*09", statusCallback=url)
        )
        assert resolver.lookups == []
        await wait_until(lambda: engine.get_call(call_id).ended is not None, step=0.5, limit=120)
        await wait_until(lambda: dispatcher.active == 0, step=0.5, limit=120)
    # the first event went to the loopback receiver; every later lookup named the metadata
    # address, so those POSTs were refused, not retried, and nothing reached any receiver
    assert [payload["seq"] for _, payload in receiver.requests] == [1]
    assert receiver.attempts == 1
    events = engine.get_call(call_id).events
    assert events >= 3 and dispatcher.refused == events - 1 == len(resolver.lookups) - 1
    refusals = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert len(refusals) == events - 1
    assert refusals[-1] == (
        f"callback {call_id}:{events} to {url} refused: host rebind.example.com resolves to "
        "169.254.169.254, a cloud metadata address"
    )


async def test_delivery_rechecks_a_literal_address_against_the_current_policy(
    mock_clock, engine, caplog
) -> None:
    """A call created under one policy and delivered under another (a restart with a new
    ``callback_allow``): the delivery follows the policy in force."""
    receiver = Receiver()
    policy = CallbackPolicy(("hooks.example.com",))
    async with trio.open_nursery() as nursery:
        await receiver.serve(nursery)
        dispatcher = CallbackDispatcher(engine, policy=policy)
        async with httpx.AsyncClient(transport=EgressTransport(policy)) as http:
            payload = {"phoneCallId": "0" * 20, "seq": 1}
            assert not await dispatcher.post(http, receiver.url, payload)
        nursery.cancel_scope.cancel()
    assert receiver.attempts == 0 and dispatcher.refused == 1
    assert "address 127.0.0.1 is not in this server's statusCallback allow list" in caplog.text


async def test_the_transport_connects_only_to_vetted_addresses(mock_clock) -> None:
    trio.socket.set_custom_hostname_resolver(
        FakeResolver({"hooks.example.com": ["127.0.0.1"], "meta.example.com": ["169.254.169.254"]})
    )
    receiver = Receiver()
    async with trio.open_nursery() as nursery:
        await receiver.serve(nursery)
        port = receiver.port
        async with httpx.AsyncClient(transport=EgressTransport(CallbackPolicy())) as http:
            reply = await http.post(f"http://hooks.example.com:{port}/cb", json={"n": 1})
            assert reply.status_code == 200
            with pytest.raises(EgressRefused, match=re.escape("169.254.169.254, a cloud metadata")):
                await http.post(f"http://meta.example.com:{port}/cb", json={"n": 2})
            with pytest.raises(
                EgressRefused, match=re.escape("169.254.169.254 is a cloud metadata")
            ):
                await http.post(f"http://[::ffff:169.254.169.254]:{port}/cb", json={"n": 3})
            with pytest.raises(
                httpx.ConnectError, match=re.escape("cannot resolve nowhere.example.com")
            ):
                await http.post(f"http://nowhere.example.com:{port}/cb", json={"n": 4})
            with pytest.raises(httpx.ConnectError):
                await http.post("http://127.0.0.1:9/cb", json={"n": 5})  # nobody listens
        nursery.cancel_scope.cancel()
    assert receiver.attempts == 1
    assert receiver.requests[0][0]["host"] == f"hooks.example.com:{port}"
