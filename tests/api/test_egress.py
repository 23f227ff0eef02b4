"""The statusCallback egress policy: what is refused by default, what an allow list admits, and
what a host name resolves to at delivery time (names answered by a resolver of the test)."""

from __future__ import annotations

import re
import socket
from collections.abc import Mapping, Sequence

import pytest
import trio

from api.egress import MAX_LOOKUPS, CallbackPolicy, EgressRefused, literal_address


class FakeResolver(trio.abc.HostnameResolver):
    """Answers ``trio.socket.getaddrinfo`` for the names of a table (no DNS); counts lookups."""

    def __init__(self, table: Mapping[str, Sequence[str]]) -> None:
        self.table = table
        self.lookups: list[str] = []

    async def getaddrinfo(  # type: ignore[override]
        self, host: bytes | None, port: object, family=0, type=0, proto=0, flags=0
    ) -> list[tuple[object, ...]]:
        name = (host or b"").decode()
        self.lookups.append(name)
        if name not in self.table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        answers: list[tuple[object, ...]] = []
        for address in self.table[name]:
            if ":" in address:
                answers.append((socket.AF_INET6, socket.SOCK_STREAM, 6, "", (address, port, 0, 0)))
            else:
                answers.append((socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port)))
        return answers

    async def getnameinfo(self, sockaddr: object, flags: int) -> tuple[str, str]:
        raise NotImplementedError


@pytest.mark.parametrize(
    ("host", "why"),
    [
        ("169.254.169.254", "169.254.169.254 is a cloud metadata address"),
        ("[fd00:ec2::254]", "fd00:ec2::254 is a cloud metadata address"),
        ("100.100.100.200", "100.100.100.200 is a cloud metadata address"),
        ("169.254.1.1", "169.254.1.1 is a link-local address"),
        ("[fe80::1]", "fe80::1 is a link-local address"),
        ("224.0.0.251", "224.0.0.251 is a multicast address"),
        ("239.1.2.3", "239.1.2.3 is a multicast address"),
        ("[ff02::1]", "ff02::1 is a multicast address"),
        ("0.0.0.0", "0.0.0.0 is an unspecified address"),
        ("[::]", ":: is the unspecified address"),
        ("255.255.255.255", "255.255.255.255 is the broadcast address"),
        # other spellings of a denied address are the address they name
        ("[::ffff:169.254.169.254]", "169.254.169.254 is a cloud metadata address"),
        ("2852039166", "169.254.169.254 is a cloud metadata address"),
        ("0xa9.0xfe.0xa9.0xfe", "169.254.169.254 is a cloud metadata address"),
        ("169.254.43518", "169.254.169.254 is a cloud metadata address"),
        ("0", "0.0.0.0 is an unspecified address"),
    ],
)
def test_the_default_policy_refuses(host: str, why: str) -> None:
    assert CallbackPolicy().refusal(host) == why


@pytest.mark.parametrize(
    "host",
    [
        *("127.0.0.1", "[::1]", "10.1.2.3", "192.168.1.20", "172.16.0.1", "[fd00::1]", "8.8.8.8"),
        # names are checked at delivery, by what they resolve to
        *("localhost", "hooks.example.com", "metadata.google.internal"),
    ],
)
def test_the_default_policy_allows_loopback_private_public_and_every_name(host: str) -> None:
    assert CallbackPolicy().refusal(host) is None


def test_literal_addresses() -> None:
    assert str(literal_address("[::ffff:10.0.0.1]")) == "10.0.0.1"
    assert str(literal_address("127.1")) == "127.0.0.1"
    assert literal_address("example.com") is None
    assert literal_address("1.2.3.4.5") is None  # no address: a name that will not resolve


ALLOW = ("10.0.0.0/8", "192.0.2.7", "hooks.example.com", "*.apps.example.org", "169.254.10.0/24")


@pytest.mark.parametrize(
    "host",
    [
        "10.200.0.1",
        "192.0.2.7",
        "[::ffff:10.0.0.1]",
        "hooks.example.com",
        "HOOKS.Example.com.",
        "a.apps.example.org",
        "b.a.apps.example.org",
        "169.254.10.9",  # link-local, but listed explicitly
    ],
)
def test_an_allow_list_admits_only_its_entries(host: str) -> None:
    assert CallbackPolicy(ALLOW).refusal(host) is None


@pytest.mark.parametrize(
    ("host", "why"),
    [
        ("127.0.0.1", "address 127.0.0.1 is not in this server's statusCallback allow list"),
        ("192.0.2.8", "address 192.0.2.8 is not in this server's statusCallback allow list"),
        ("example.com", "host example.com is not in this server's statusCallback allow list"),
        ("x.hooks.example.com", "host x.hooks.example.com is not in this server's"),
        ("apps.example.org", "host apps.example.org is not in this server's"),
        ("evilapps.example.org", "host evilapps.example.org is not in this server's"),
        ("169.254.169.254", "169.254.169.254 is a cloud metadata address"),
    ],
)
def test_an_allow_list_refuses_the_rest(host: str, why: str) -> None:
    refusal = CallbackPolicy(ALLOW).refusal(host)
    assert refusal is not None and refusal.startswith(why)


async def test_delivery_refuses_a_name_that_resolves_to_a_denied_address() -> None:
    resolver = FakeResolver(
        {
            "hooks.example.com": ["127.0.0.1", "::1"],
            "rebind.example.com": ["169.254.169.254"],
            "mixed.example.com": ["93.184.216.34", "fe80::1"],
            "mapped.example.com": ["::ffff:169.254.169.254"],
        }
    )
    trio.socket.set_custom_hostname_resolver(resolver)
    policy = CallbackPolicy()
    assert await policy.resolve("hooks.example.com", 80) == ["127.0.0.1", "::1"]
    for name, why in [
        ("rebind.example.com", "resolves to 169.254.169.254, a cloud metadata address"),
        ("mixed.example.com", "resolves to fe80::1, a link-local address"),
        ("mapped.example.com", "resolves to 169.254.169.254, a cloud metadata address"),
    ]:
        with pytest.raises(EgressRefused, match=re.escape(f"host {name} {why}")):
            await policy.resolve(name, 80)
    with pytest.raises(OSError):
        await policy.resolve("nowhere.example.com", 80)
    # an allow list refuses an unlisted name before any lookup
    resolver.lookups.clear()
    with pytest.raises(EgressRefused, match="not in this server's statusCallback allow list"):
        await CallbackPolicy(ALLOW).resolve("rebind.example.com", 80)
    assert resolver.lookups == []


async def test_an_explicit_cidr_admits_what_an_allowed_name_resolves_to() -> None:
    trio.socket.set_custom_hostname_resolver(
        FakeResolver({"hooks.example.com": ["169.254.10.20"], "a.apps.example.org": ["fe80::2"]})
    )
    policy = CallbackPolicy(ALLOW)
    assert await policy.resolve("hooks.example.com", 443) == ["169.254.10.20"]
    with pytest.raises(EgressRefused, match="fe80::2, a link-local address"):
        await policy.resolve("a.apps.example.org", 443)


async def test_a_slow_resolver_is_a_failed_attempt_not_a_stall(mock_clock) -> None:
    class Slow(FakeResolver):
        async def getaddrinfo(self, *args: object, **kwargs: object) -> list[tuple[object, ...]]:
            await trio.sleep_forever()
            raise AssertionError

    trio.socket.set_custom_hostname_resolver(Slow({}))
    policy = CallbackPolicy(resolve_timeout=5)
    started = trio.current_time()
    with pytest.raises(TimeoutError, match="did not resolve in 5s"):
        await policy.resolve("slow.example.com", 80)
    assert trio.current_time() - started == pytest.approx(5)


@pytest.mark.parametrize(
    "host",
    [
        "[::169.254.169.254]",  # IPv4-compatible
        "[64:ff9b::169.254.169.254]",  # NAT64 well-known prefix
        "[::ffff:0:169.254.169.254]",  # SIIT
        "[2002:a9fe:a9fe::1]",  # 6to4 of 169.254.169.254
        "168.63.129.16",  # Azure's WireServer
    ],
)
def test_ipv4_hidden_in_ipv6_and_other_metadata_addresses_are_refused(host: str) -> None:
    refusal = CallbackPolicy().refusal(host)
    assert refusal is not None and "a cloud metadata address" in refusal


@pytest.mark.parametrize("host", ["[::1]", "[64:ff9b::7f00:1]", "[2001:db8::1]"])
def test_loopback_and_ordinary_ipv6_stay_allowed(host: str) -> None:
    assert CallbackPolicy().refusal(host) is None


async def test_hung_lookups_cannot_take_more_than_their_own_threads(mock_clock) -> None:
    class Hung(FakeResolver):
        async def getaddrinfo(self, *args: object, **kwargs: object) -> list[tuple[object, ...]]:
            await trio.sleep_forever()
            raise AssertionError

    trio.socket.set_custom_hostname_resolver(Hung({}))
    policy = CallbackPolicy(resolve_timeout=5)
    async with trio.open_nursery() as nursery:
        for n in range(MAX_LOOKUPS):
            nursery.start_soon(lambda n=n: _timed_out(policy, f"slow{n}.example.com"))
    # the hung lookups go on in their threads (their callers gave up): no slot is left, so a
    # further lookup fails at once instead of taking one more thread
    started = trio.current_time()
    with pytest.raises(OSError, match="DNS lookups are still under way"):
        await policy.resolve("next.example.com", 80)
    assert trio.current_time() == started


async def _timed_out(policy: CallbackPolicy, name: str) -> None:
    with pytest.raises(TimeoutError):
        await policy.resolve(name, 80)
