"""Every address the engine writes into SIP reads back unchanged through our own parser.

A phone echoes our From and To in its answers; a From our parser rejects (``sip:@domain``,
``sip:x@::1``) made the engine drop the 200 OK of the call it had placed. So: for every
From/To/Contact/Request-URI the engine builds, over callers that are numbers, names,
anonymous or escaped, and hosts that are names, IPv4 or IPv6 (bracketed in config or not),
``parse(str(built)) == built``, and the caller keeps its own identity.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.config import config_from_dict
from engine.config_model import ConfigError
from engine.numbers import format_caller_id
from engine.sipaddr import (
    ANONYMOUS_HOST,
    caller_address,
    caller_number,
    gateway_uri,
    local_address,
    split_caller_id,
)
from sip.endpoint import contact_uri
from sip.uri import NameAddr, SipUri, parse_name_addr, parse_uri, uri_host

_ALNUM = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
# what a user part may hold unescaped (RFC 3261 §25.1 unreserved + user-unreserved)
_USER_SAFE = "-_.!~*'()&=+$,;?/"

anonymous = st.sampled_from(["anonymous", "Anonymous", "ANONYMOUS"])
alphanumeric = st.text(_ALNUM, min_size=1, max_size=12)
plus_digits = st.text("0123456789", min_size=1, max_size=15).map(lambda d: "+" + d)
extended = st.tuples(st.integers(0, 9999), st.integers(0, 999)).map(lambda t: f"{t[0]:04d}*{t[1]}")
# any text as a phone would write it: escaped where the grammar needs it
escaped = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=12).map(
    lambda text: quote(text, safe=_USER_SAFE)
)
users = st.one_of(anonymous, alphanumeric, plus_digits, extended, escaped)

_labels = st.text("abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=10)
domains = st.lists(_labels, min_size=1, max_size=4).map(".".join)
ipv4 = st.tuples(*[st.integers(0, 255)] * 4).map(lambda t: ".".join(map(str, t)))
ipv6 = st.one_of(
    st.just("::1"),
    st.integers(1, 0xFFFF).map(lambda n: f"2001:db8::{n:x}"),
    st.integers(1, 0xFFFF).map(lambda n: f"fd00:{n:x}::2"),
)
# as the config file may write [sip] domain: IPv6 with or without brackets, any case
config_domains = st.one_of(
    domains,
    domains.map(str.upper),
    ipv4,
    ipv6,
    ipv6.map(lambda h: f"[{h}]"),
)
# as a listener or a directory route keeps them: IPv6 without brackets
hosts = st.one_of(domains, ipv4, ipv6)
ports = st.one_of(st.none(), st.integers(1, 65535))
display_names = st.none() | st.text(
    st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=20
)


def configured_domain(text: str) -> str:
    """The domain as the engine gets it from a config file's ``[sip] domain``."""
    return config_from_dict({"sip": {"domain": text}}, Path(".")).sip.domain


def round_trips_name_addr(addr: NameAddr) -> None:
    text = str(addr)
    assert parse_name_addr(text) == addr, text


def round_trips_uri(uri: SipUri) -> None:
    text = str(uri)
    assert parse_uri(text) == uri, text


@given(user=users, name=display_names, caller_host=hosts, domain=config_domains)
def test_an_inbound_callers_identity_reaches_the_destination_and_reads_back(
    user: str, name: str | None, caller_host: str, domain: str
) -> None:
    """The INVITE's From (as the caller wrote it) -> the call's caller id -> the From of the
    leg to the destination: parseable, and the caller's own identity, anonymous kept."""
    host = ANONYMOUS_HOST if user.lower() == "anonymous" else caller_host
    inbound = NameAddr(SipUri("sip", user, None, host if ":" not in host else f"[{host}]", None))
    inbound = parse_name_addr(str(NameAddr(inbound.uri, name)))
    number = caller_number(inbound.uri)
    caller_id = format_caller_id(inbound.display_name, number)

    ours = configured_domain(domain)
    built = caller_address(caller_id, "0003*210", ours)

    round_trips_name_addr(built)
    assert isinstance(built.uri, SipUri)
    if user.lower() == "anonymous":
        assert (built.uri.user, built.uri.host) == ("anonymous", "anonymous.invalid")
    else:
        assert built.uri.user == user  # never the extension of the peer's organization
        assert built.uri.host == uri_host(ours)
    if name is not None and name.strip():
        assert built.display_name == " ".join(name.split())


@given(
    number=st.one_of(plus_digits, extended, st.text("0123456789", min_size=3, max_size=12)),
    name=st.none() | st.from_regex(r"[A-Za-z][A-Za-z0-9 .'-]{0,20}", fullmatch=True),
    domain=config_domains,
)
def test_an_api_caller_id_becomes_a_from_that_reads_back(
    number: str, name: str | None, domain: str
) -> None:
    built = caller_address(format_caller_id(name, number), "0003*210", configured_domain(domain))
    round_trips_name_addr(built)
    assert isinstance(built.uri, SipUri) and built.uri.user == number


@given(
    caller_id=st.none() | st.sampled_from(["", "<>", "John <>", "bad id<", "a b", "é"]),
    fallback=st.sampled_from(["0003*210", ""]),
    domain=config_domains,
)
def test_no_usable_caller_id_falls_back_and_never_writes_an_empty_user(
    caller_id: str | None, fallback: str, domain: str
) -> None:
    built = caller_address(caller_id, fallback, configured_domain(domain))
    round_trips_name_addr(built)
    assert isinstance(built.uri, SipUri)
    assert built.uri.user == (fallback or "anonymous")


@given(user=users, domain=config_domains)
def test_the_to_of_a_device_leg_reads_back(user: str, domain: str) -> None:
    round_trips_name_addr(local_address(user, configured_domain(domain)))


@given(
    number=st.one_of(plus_digits, st.text("0123456789", min_size=3, max_size=20)),
    transport=st.sampled_from(["udp", "tcp"]),
    host=hosts,
    port=ports,
)
def test_the_request_uri_to_a_gateway_reads_back(
    number: str, transport: str, host: str, port: int | None
) -> None:
    uri = gateway_uri(number, transport, host, port)
    round_trips_uri(uri)
    round_trips_name_addr(NameAddr(uri))  # the To of the same INVITE
    assert uri.user == number and uri.transport in (None, "tcp")


@given(host=hosts, port=st.integers(1, 65535), transport=st.sampled_from(["udp", "tcp", "TCP"]))
def test_our_contact_reads_back(host: str, port: int, transport: str) -> None:
    uri = contact_uri(host, port, transport)
    round_trips_uri(uri)
    round_trips_name_addr(NameAddr(uri))


def test_anonymous_and_named_callers_keep_their_identity() -> None:
    anon = parse_name_addr('"Anonymous" <sip:anonymous@anonymous.invalid>;tag=1')
    assert caller_number(anon.uri) == "anonymous"
    built = caller_address(format_caller_id("Anonymous", "anonymous"), "0003*210", "::1")
    assert str(built) == '"Anonymous" <sip:anonymous@anonymous.invalid>'
    alice = parse_name_addr("<sip:alice@198.51.100.7:5070>;tag=2")
    assert caller_number(alice.uri) == "alice"
    assert str(caller_address("alice", "0003*210", "::1")) == "<sip:alice@[::1]>"
    assert str(caller_address("alice", "", "voip.example.com")) == "<sip:alice@voip.example.com>"
    assert caller_number(parse_uri("tel:+15551234")) == "+15551234"  # type: ignore[arg-type]
    assert caller_number(parse_uri("sip:198.51.100.7")) == "anonymous"  # type: ignore[arg-type]
    assert split_caller_id("John Doe <4242425>") == ("John Doe", "4242425")
    assert split_caller_id("not <a user>") is None


@pytest.mark.parametrize("text", ["::1", "[::1]", "[2001:DB8::5]"])
def test_an_ipv6_domain_is_accepted_with_or_without_brackets(text: str) -> None:
    domain = configured_domain(text)
    assert ":" in domain and not domain.startswith("[")
    assert str(local_address("0003*210", domain)) == f"<sip:0003*210@[{domain}]>"


@pytest.mark.parametrize("text", ["[::1", "x::y", "-bad.example.com", "bad host"])
def test_a_domain_no_sip_uri_can_carry_is_a_config_error(text: str) -> None:
    with pytest.raises(ConfigError, match=r"sip\.domain"):
        configured_domain(text)
