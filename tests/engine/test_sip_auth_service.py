"""The SIP service's digest set-up and its request handlers under hostile input.

``SipService`` is built as ``b2bua serve`` builds it (config, store, directory); requests go
through the same parse and RFC 3261 §8.2 checks the endpoint makes before calling the handler.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.config_model import Config, default_config
from engine.directory import demo_directory
from engine.sipservice import ALLOWED_METHODS, SipService
from engine.store import Store, open_store
from sip.digest import authorize, choose_challenge, parse_challenge
from sip.endpoint import SipEndpoint
from sip.errors import RemoteProtocolError
from sip.message import Request, Response, parse_message, serialize
from sip.transaction_types import Peer
from sip.uas import check_request
from tests.sip.fixed_random import CNONCE
from tests.sip.strategies import requests

NOW = 1_800_000_000.0
PEER = Peer("udp", "192.0.2.10", 5062)


@dataclass
class Incoming:
    request: Request
    peer: Peer = PEER
    responses: list[Response] = field(default_factory=list)

    async def respond(self, response: Response) -> None:
        self.responses.append(response)


class NoEngine:
    """An engine that must never be asked to place a call (nobody authenticated)."""

    draining = False

    def start_inbound(self, **_: object) -> None:
        raise AssertionError("an unauthenticated INVITE reached the engine")


def service(
    algorithms: tuple[str, ...] = ("MD5", "SHA-256"),
    *,
    store: Store | None = None,
    config: Config | None = None,
    now: float = NOW,
) -> SipService:
    """A SipService as the server builds one (a fresh store, the demo directory), at ``now``."""
    config = config or default_config()
    config = dataclasses.replace(
        config, sip=dataclasses.replace(config.sip, digest_algorithms=algorithms)
    )
    return SipService(
        SipEndpoint(allowed_methods=ALLOWED_METHODS),
        demo_directory(),
        store or open_store("sqlite:///:memory:"),
        config,
        engine=NoEngine(),  # type: ignore[arg-type]
        wall_clock=lambda: now,
    )


def raw_request(method: str, user: str, extra: list[bytes]) -> bytes:
    uri = f"sip:{'0003*211@' if method == 'INVITE' else ''}voip.example.com"
    lines = [
        f"{method} {uri} SIP/2.0".encode(),
        b"Via: SIP/2.0/UDP 192.0.2.10:5062;branch=z9hG4bK-fuzz",
        f"From: <sip:{user}@voip.example.com>;tag=abc".encode(),
        f"To: <sip:{user if method == 'REGISTER' else '0003*211'}@voip.example.com>".encode(),
        b"Call-ID: fuzz@192.0.2.10",
        f"CSeq: 2 {method}".encode(),
        b"Max-Forwards: 70",
        b"Contact: <sip:desk@192.0.2.10:5062>",
        *extra,
        b"Content-Length: 0",
        b"",
        b"",
    ]
    return b"\r\n".join(lines)


def answer(sip: SipService, data: bytes, peer: Peer = PEER) -> Response | None:
    """What the server sends back for ``data``: None when the endpoint drops it."""
    try:
        request = parse_message(data)
    except RemoteProtocolError:
        return None  # the transport answers 400 or drops it before any handler
    assert isinstance(request, Request)
    try:
        problem = check_request(request, allowed_methods=ALLOWED_METHODS)
    except RemoteProtocolError:
        return None
    if problem is not None:
        return problem
    incoming = Incoming(request, peer)
    trio.run(sip.handle, incoming)
    assert len(incoming.responses) == 1, incoming.responses
    return incoming.responses[0]


def test_md5_only_offers_exactly_one_md5_challenge() -> None:
    reply = answer(service(("MD5",)), raw_request("REGISTER", "0003*210", []))
    assert reply is not None and reply.status == 401
    values = reply.headers.get_all("WWW-Authenticate")
    assert len(values) == 1 and parse_challenge(values[0]).algorithm == "MD5"


def test_challenges_follow_the_configured_order_for_register_and_invite() -> None:
    sip = service(("SHA-256", "MD5"))
    reply = answer(sip, raw_request("REGISTER", "0003*210", []))
    assert reply is not None and reply.status == 401
    values = reply.headers.get_all("WWW-Authenticate")
    assert [parse_challenge(v).algorithm for v in values] == ["SHA-256", "MD5"]
    reply = answer(sip, raw_request("INVITE", "0003*210", []))
    assert reply is not None and reply.status == 407
    values = reply.headers.get_all("Proxy-Authenticate")
    assert [parse_challenge(v).algorithm for v in values] == ["SHA-256", "MD5"]


def test_a_challenge_survives_a_restart_on_the_same_store_but_not_its_replay() -> None:
    store = open_store("sqlite:///:memory:")
    config = default_config()
    before = service(store=store, config=config)
    reply = answer(before, raw_request("REGISTER", "0003*210", []))
    assert reply is not None
    challenge = choose_challenge(reply.headers.get_all("WWW-Authenticate"))
    creds = authorize(
        "REGISTER", "sip:voip.example.com", challenge, "0003*210", "secret210", cnonce=CNONCE
    )
    good = raw_request("REGISTER", "0003*210", [f"Authorization: {creds}".encode()])
    assert (ok := answer(before, good)) is not None and ok.status == 200
    # A restart on the same store: the new process signs nonces with a key of its own (it
    # never saw the old one's counts), so it asks again with stale=true instead of trusting it.
    after = service(store=store, config=config, now=NOW + 5)
    reply = answer(after, good)
    assert reply is not None and reply.status == 401
    assert "stale=true" in (reply.headers.get("WWW-Authenticate") or "")


def cluster_config() -> Config:
    return dataclasses.replace(
        default_config(),
        cluster=dataclasses.replace(
            default_config().cluster, secret="a long shared cluster secret"
        ),
    )


def test_a_challenge_from_one_node_is_answered_on_another_sharing_secret_and_store() -> None:
    # Kamailio may send the REGISTER that answers node A's challenge to node B.
    store = open_store("sqlite:///:memory:")
    node_a, node_b = (service(config=cluster_config(), store=store) for _ in range(2))
    reply = answer(node_a, raw_request("REGISTER", "0003*210", []))
    assert reply is not None and reply.status == 401
    challenge = choose_challenge(reply.headers.get_all("WWW-Authenticate"))
    creds = authorize(
        "REGISTER", "sip:voip.example.com", challenge, "0003*210", "secret210", cnonce=CNONCE
    )
    good = raw_request("REGISTER", "0003*210", [f"Authorization: {creds}".encode()])
    ok = answer(node_b, good)
    assert ok is not None and ok.status == 200
    assert [r.contact_uri for r in store.contacts("0003*210", NOW)] == ["sip:desk@192.0.2.10:5062"]


def test_a_credential_one_node_accepted_is_not_accepted_by_another_on_the_same_secret() -> None:
    # The nonce counts live in the shared store: a captured REGISTER replayed to another node
    # is a replay there too.
    store = open_store("sqlite:///:memory:")
    node_a, node_b = (service(config=cluster_config(), store=store) for _ in range(2))
    reply = answer(node_a, raw_request("REGISTER", "0003*210", []))
    assert reply is not None
    challenge = choose_challenge(reply.headers.get_all("WWW-Authenticate"))
    creds = authorize(
        "REGISTER", "sip:voip.example.com", challenge, "0003*210", "secret210", cnonce=CNONCE
    )
    good = raw_request("REGISTER", "0003*210", [f"Authorization: {creds}".encode()])
    assert (ok := answer(node_a, good)) is not None and ok.status == 200
    replayed = answer(node_b, good, Peer("udp", "203.0.113.9", 5060))
    assert replayed is not None and replayed.status == 401
    assert "stale=true" in (replayed.headers.get("WWW-Authenticate") or "")


def test_without_a_cluster_secret_another_process_does_not_take_our_nonces() -> None:
    store = open_store("sqlite:///:memory:")
    node_a, node_b = (service(store=store) for _ in range(2))
    reply = answer(node_a, raw_request("REGISTER", "0003*210", []))
    assert reply is not None
    challenge = choose_challenge(reply.headers.get_all("WWW-Authenticate"))
    creds = authorize(
        "REGISTER", "sip:voip.example.com", challenge, "0003*210", "secret210", cnonce=CNONCE
    )
    good = raw_request("REGISTER", "0003*210", [f"Authorization: {creds}".encode()])
    other = answer(node_b, good)
    assert other is not None and other.status == 401
    assert "stale=true" in (other.headers.get("WWW-Authenticate") or "")


def test_made_up_nonces_are_not_counted_as_guesses() -> None:
    # Wrong responses to nonces we never issued cost an attacker nothing to send (from forged
    # source addresses too): they must not block the user or the source.
    sip = service(("MD5",))
    forged = authorize(
        "REGISTER",
        "sip:voip.example.com",
        parse_challenge('Digest realm="voip.example.com", nonce="made-up", qop="auth"'),
        "0003*210",
        "guess",
        cnonce=CNONCE,
    )
    for _ in range(100):
        reply = answer(
            sip, raw_request("REGISTER", "0003*210", [f"Authorization: {forged}".encode()])
        )
        assert reply is not None and reply.status == 401  # a fresh challenge, no 403
        assert "stale=true" not in (reply.headers.get("WWW-Authenticate") or "")
    reply = answer(sip, raw_request("REGISTER", "0003*210", []))
    assert reply is not None
    challenge = choose_challenge(reply.headers.get_all("WWW-Authenticate"))
    creds = authorize(
        "REGISTER", "sip:voip.example.com", challenge, "0003*210", "secret210", cnonce=CNONCE
    )
    good = raw_request("REGISTER", "0003*210", [f"Authorization: {creds}".encode()])
    assert (ok := answer(sip, good)) is not None and ok.status == 200


def test_after_a_restart_a_phone_is_not_held_back_by_a_guessing_attack_on_its_user() -> None:
    store = open_store("sqlite:///:memory:")
    store.save_contact(
        "0003*210", "sip:desk@192.0.2.10:5062", "192.0.2.10:5062 udp", NOW + 600, "c", 1
    )
    sip = service(store=store)
    # 4 addresses x 5 wrong passwords: the user is blocked for addresses it never used...
    for n in range(4):
        attacker = Peer("udp", f"203.0.113.{n}", 5060)
        for i in range(5):
            reply = answer(sip, raw_request("REGISTER", "0003*210", []), attacker)
            assert reply is not None
            challenge = choose_challenge(reply.headers.get_all("WWW-Authenticate"))
            guess = authorize(
                "REGISTER", "sip:voip.example.com", challenge, "0003*210", f"g{i}", cnonce=CNONCE
            )
            answer(
                sip,
                raw_request("REGISTER", "0003*210", [f"Authorization: {guess}".encode()]),
                attacker,
            )
    newcomer = Peer("udp", "198.51.100.7", 5060)
    reply = answer(sip, raw_request("REGISTER", "0003*210", []), newcomer)
    assert reply is not None
    challenge = choose_challenge(reply.headers.get_all("WWW-Authenticate"))
    creds = authorize(
        "REGISTER", "sip:voip.example.com", challenge, "0003*210", "secret210", cnonce=CNONCE
    )
    good = raw_request("REGISTER", "0003*210", [f"Authorization: {creds}".encode()])
    refused = answer(sip, good, newcomer)
    assert refused is not None and refused.status == 403
    # ...but the phone's own address, known from its registration in the store, goes on
    reply = answer(sip, raw_request("REGISTER", "0003*210", []))  # PEER is 192.0.2.10
    assert reply is not None
    challenge = choose_challenge(reply.headers.get_all("WWW-Authenticate"))
    creds = authorize(
        "REGISTER", "sip:voip.example.com", challenge, "0003*210", "secret210", cnonce=CNONCE
    )
    good = raw_request("REGISTER", "0003*210", [f"Authorization: {creds}".encode()])
    assert (ok := answer(sip, good)) is not None and ok.status == 200


# --- fuzz: arbitrary credentials and headers through the handlers -------------------------------

_bytes = st.binary(max_size=60).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b""))
_specials = st.sampled_from([b"\xff\xfe", b"\xc3", b"\x00", b"\x7f", b'"', b"\\", b",", b""])
# mostly plausible text with a hostile byte or two in it
_text_or_bytes = st.one_of(
    st.tuples(st.sampled_from([b"", b"abc", b"0003*210", b"00000002"]), _specials).map(b"".join),
    _specials,
    _bytes,
)


@st.composite
def digest_shaped(draw: st.DrawFn, nonce: str) -> bytes:
    """Digest credentials whose parameters are partly arbitrary bytes."""
    params = {
        b"username": b"0003*210",
        b"realm": b"voip.example.com",
        b"nonce": nonce.encode(),
        b"uri": b"sip:voip.example.com",
        b"response": b"0" * 32,
        b"algorithm": b"MD5",
        b"cnonce": b"abcdef",
        b"qop": b"auth",
        b"nc": b"00000001",
    }
    for name in draw(st.lists(st.sampled_from(sorted(params)), min_size=1, max_size=3)):
        params[name] = draw(_text_or_bytes)
    quoted = {b"username", b"realm", b"nonce", b"uri", b"response", b"cnonce"}
    parts = [
        name + b"=" + (b'"' + value + b'"' if name in quoted else value)
        for name, value in params.items()
        if draw(st.integers(0, 19))  # drop one now and then
    ]
    return b"Digest " + b", ".join(parts)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(
    method=st.sampled_from(["REGISTER", "INVITE"]),
    creds=st.data(),
    user=st.one_of(st.just(b"0003*210"), st.just(b"0003*210"), _text_or_bytes),
    extra=st.lists(
        st.tuples(
            st.sampled_from([b"Expires", b"Contact", b"Authorization", b"Proxy-Authorization"]),
            _text_or_bytes,
        ),
        max_size=3,
    ),
)
def test_hostile_auth_headers_get_a_clean_4xx(
    method: str, creds: st.DataObject, user: bytes, extra: list[tuple[bytes, bytes]]
) -> None:
    sip = service()
    header = b"Authorization" if method == "REGISTER" else b"Proxy-Authorization"
    nonce = sip.registrar.digest.make_nonce(NOW)
    value = creds.draw(st.one_of(digest_shaped(nonce), digest_shaped(nonce), _bytes))
    lines = [header + b": " + value] + [name + b": " + v for name, v in extra]
    data = raw_request(method, "USER", lines).replace(b"USER", user or b"x")
    reply = answer(sip, data)
    if reply is None:
        return
    assert 400 <= reply.status < 500, (reply.status, reply.reason)
    serialize(reply)  # it can be sent


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(
    request=st.one_of(requests("REGISTER"), requests("INVITE"), requests()),
    user=st.sampled_from(["0003*210", "0003*211", "nobody"]),
    headers=st.lists(st.sampled_from(["Authorization", "Proxy-Authorization"]), max_size=2),
    data=st.data(),
)
def test_any_valid_request_with_hostile_credentials_gets_a_clean_answer(
    request: Request, user: str, headers: list[str], data: st.DataObject
) -> None:
    """Requests from the shared SIP strategies (random URIs, tags, Vias, extension headers),
    addressed to a known or unknown user, with hostile credentials: never a 5xx."""
    sip = service()
    nonce = sip.registrar.digest.make_nonce(NOW)
    raw = serialize(request)
    head, _, body = raw.partition(b"\r\n\r\n")
    to = f"To: <sip:{user}@voip.example.com>".encode()
    lines = [to if line.lower().startswith(b"to:") else line for line in head.split(b"\r\n")]
    for name in headers:
        value = data.draw(st.one_of(digest_shaped(nonce), _text_or_bytes))
        lines.append(name.encode() + b": " + value)
    reply = answer(sip, b"\r\n".join(lines) + b"\r\n\r\n" + body)
    if reply is None:
        return
    assert reply.status < 500 or reply.status == 501, (reply.status, reply.reason)
    serialize(reply)
