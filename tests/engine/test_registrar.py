"""The registrar (RFC 3261 §10.3) with digest auth, on an in-memory store and a fake clock."""

from __future__ import annotations

from dataclasses import dataclass

from engine.directory import demo_directory
from engine.registrar import MIN_EXPIRES, Registrar
from engine.store import open_store
from sip.auth import DigestServer
from sip.digest import authorize, choose_challenge
from sip.message import Request, Response, parse_message, serialize
from sip.transaction_types import Peer
from tests.sip.fixed_random import CNONCE, counting_bytes

PEER = Peer("udp", "192.0.2.10", 5062)


@dataclass
class Incoming:
    request: Request
    peer: Peer = PEER


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def register(
    user: str,
    contacts: list[str],
    *,
    expires: int | None = None,
    auth: str = "",
    cseq: int = 2,
    call_id: str = "reg-1@192.0.2.10",
    path: tuple[str, ...] = (),
) -> Request:
    lines = [
        "REGISTER sip:voip.example.com SIP/2.0",
        f"Via: SIP/2.0/UDP 192.0.2.10:5062;branch=z9hG4bK-reg-{cseq}",
        f"From: <sip:{user}@voip.example.com>;tag=abc",
        f"To: <sip:{user}@voip.example.com>",
        f"Call-ID: {call_id}",
        f"CSeq: {cseq} REGISTER",
        "Max-Forwards: 70",
        *[f"Contact: {c}" for c in contacts],
        *[f"Path: {p}" for p in path],
    ]
    if expires is not None:
        lines.append(f"Expires: {expires}")
    if auth:
        lines.append(f"Authorization: {auth}")
    lines += ["Content-Length: 0", "", ""]
    message = parse_message("\r\n".join(lines).encode())
    assert isinstance(message, Request)
    return message


def make(max_tcp_expires: int | None = None) -> tuple[Registrar, Clock]:
    clock = Clock()
    registrar = Registrar(
        demo_directory(),
        open_store("sqlite:///:memory:"),
        DigestServer(
            "voip.example.com",
            b"k" * 32,
            algorithms=("MD5", "SHA-256"),
            random_bytes=counting_bytes(),
        ),
        wall_clock=clock,
        max_tcp_expires=max_tcp_expires,
    )
    return registrar, clock


def authed(
    registrar: Registrar,
    user: str,
    password: str,
    contacts: list[str],
    peer: Peer = PEER,
    **kw: object,
) -> Response:
    first = registrar.process(Incoming(register(user, contacts, **kw), peer))  # type: ignore[arg-type]
    assert first.status == 401
    challenge = choose_challenge(first.headers.get_all("WWW-Authenticate"))
    credentials = authorize(
        "REGISTER", "sip:voip.example.com", challenge, user, password, cnonce=CNONCE
    )
    request = register(user, contacts, auth=credentials, **kw)  # type: ignore[arg-type]
    return registrar.process(Incoming(request, peer))  # type: ignore[arg-type]


def test_challenge_then_register_then_the_binding_is_stored() -> None:
    registrar, clock = make()
    reply = authed(registrar, "0003*210", "secret210", ["<sip:alice@10.0.0.5:5062>"])
    assert reply.status == 200
    assert "expires=3600" in (reply.headers.get("Contact") or "")
    bindings = registrar.store.contacts("0003*210", clock.now)
    assert [b.contact_uri for b in bindings] == ["sip:alice@10.0.0.5:5062"]
    assert bindings[0].received == "192.0.2.10:5062 udp"  # where INVITEs will go (NAT)


def test_wrong_password_is_forbidden_and_nothing_is_stored() -> None:
    registrar, clock = make()
    reply = authed(registrar, "0003*210", "guess", ["<sip:alice@10.0.0.5>"])
    assert reply.status == 403
    assert registrar.store.contacts("0003*210", clock.now) == []


def test_one_cannot_register_someone_else() -> None:
    registrar, _ = make()
    first = registrar.process(Incoming(register("0003*211", ["<sip:x@10.0.0.5>"])))  # type: ignore[arg-type]
    challenge = choose_challenge(first.headers.get_all("WWW-Authenticate"))
    creds = authorize(
        "REGISTER", "sip:voip.example.com", challenge, "0003*210", "secret210", cnonce=CNONCE
    )
    request = register("0003*211", ["<sip:x@10.0.0.5>"], auth=creds)
    assert registrar.process(Incoming(request)).status == 403  # type: ignore[arg-type]


def test_several_devices_expiry_and_unregister() -> None:
    registrar, clock = make()
    assert (
        authed(registrar, "0003*210", "secret210", ["<sip:desk@10.0.0.5>;expires=120"]).status
        == 200
    )
    assert (
        authed(
            registrar, "0003*210", "secret210", ["<sip:mobile@10.0.0.6>"], expires=600, cseq=3
        ).status
        == 200
    )
    assert len(registrar.store.contacts("0003*210", clock.now)) == 2
    clock.now += 121  # the desk phone's binding expires
    assert [b.contact_uri for b in registrar.store.contacts("0003*210", clock.now)] == [
        "sip:mobile@10.0.0.6"
    ]
    reply = authed(registrar, "0003*210", "secret210", ["*"], expires=0, cseq=4)
    assert reply.status == 200
    assert registrar.store.contacts("0003*210", clock.now) == []


def test_a_late_register_of_the_same_call_id_cannot_undo_a_newer_one() -> None:
    # RFC 3261 §10.3 step 7: same Call-ID, CSeq not higher -> the update is aborted.
    registrar, clock = make()
    phone = ["<sip:desk@10.0.0.5>"]
    assert authed(registrar, "0003*210", "secret210", phone, cseq=7).status == 200
    late = authed(registrar, "0003*210", "secret210", phone, expires=0, cseq=6)
    assert late.status == 500
    assert late.reason == "Out of order REGISTER (CSeq not above the binding's)"
    assert authed(registrar, "0003*210", "secret210", ["*"], expires=0, cseq=7).status == 500
    assert [b.cseq for b in registrar.store.contacts("0003*210", clock.now)] == [7]
    # a phone that restarted (a new Call-ID) starts its CSeq again: accepted
    assert (
        authed(registrar, "0003*210", "secret210", phone, expires=0, cseq=1, call_id="new@x").status
        == 200
    )
    assert registrar.store.contacts("0003*210", clock.now) == []


def test_too_brief_an_interval_gets_423_and_nothing_changes() -> None:
    registrar, clock = make()
    reply = authed(
        registrar,
        "0003*210",
        "secret210",
        ["<sip:ok@10.0.0.5>;expires=600", f"<sip:brief@10.0.0.5>;expires={MIN_EXPIRES - 1}"],
    )
    assert reply.status == 423
    assert reply.headers.get("Min-Expires") == str(MIN_EXPIRES)
    assert registrar.store.contacts("0003*210", clock.now) == []  # all or nothing


def test_star_needs_expires_zero() -> None:
    registrar, _ = make()
    assert authed(registrar, "0003*210", "secret210", ["*"], expires=60).status == 400


def test_a_tcp_binding_expires_before_its_connection_could_go_idle() -> None:
    # INVITEs reach a TCP device only over the connection it registered on, which is closed
    # after tcp_idle_timeout without a SIP message: its refresh must come sooner than that.
    registrar, clock = make(max_tcp_expires=300)
    tcp = Peer("tcp", "192.0.2.10", 40312)
    reply = authed(registrar, "0003*210", "secret210", ["<sip:a@10.0.0.5;transport=tcp>"], tcp)
    assert reply.status == 200
    assert "expires=300" in (reply.headers.get("Contact") or "")  # asked for the default 3600
    [binding] = registrar.store.contacts("0003*210", clock.now)
    assert binding.expires_at == clock.now + 300
    assert binding.received == "192.0.2.10:40312 tcp"
    shorter = authed(
        registrar, "0003*211", "secret211", ["<sip:b@10.0.0.6;transport=tcp>"], tcp, expires=120
    )
    assert "expires=120" in (shorter.headers.get("Contact") or "")  # shorter ones as asked
    # over UDP there is no connection to keep
    udp = authed(registrar, "0003*212", "secret212", ["<sip:c@10.0.0.7>"], expires=3600)
    assert "expires=3600" in (udp.headers.get("Contact") or "")


# --- replays, guessing, bad bytes ---------------------------------------------------------------


def test_a_replayed_register_from_elsewhere_is_challenged_and_binds_nothing() -> None:
    registrar, clock = make()
    first = registrar.process(Incoming(register("0003*210", ["<sip:desk@10.0.0.5>"])))  # type: ignore[arg-type]
    challenge = choose_challenge(first.headers.get_all("WWW-Authenticate"))
    creds = authorize(
        "REGISTER", "sip:voip.example.com", challenge, "0003*210", "secret210", cnonce=CNONCE
    )
    genuine = register("0003*210", ["<sip:desk@10.0.0.5>"], auth=creds)
    assert registrar.process(Incoming(genuine)).status == 200  # type: ignore[arg-type]
    # the attacker replays the captured Authorization with its own Contact, from elsewhere
    forged = register(
        "0003*210", ["<sip:evil@203.0.113.9>"], auth=creds, cseq=9, call_id="evil@203.0.113.9"
    )
    reply = registrar.process(Incoming(forged, Peer("udp", "203.0.113.9", 5060)))  # type: ignore[arg-type]
    assert reply.status == 401
    assert all("stale=true" in v for v in reply.headers.get_all("WWW-Authenticate"))
    bindings = registrar.store.contacts("0003*210", clock.now)
    assert [b.contact_uri for b in bindings] == ["sip:desk@10.0.0.5"]
    # the phone itself goes on with the next count of the same nonce
    again = authorize(
        "REGISTER", "sip:voip.example.com", challenge, "0003*210", "secret210", nc=2, cnonce=CNONCE
    )
    request = register("0003*210", ["<sip:desk@10.0.0.5>"], auth=again, cseq=3)
    assert registrar.process(Incoming(request)).status == 200  # type: ignore[arg-type]


def test_guessing_is_refused_with_retry_after_but_the_phone_elsewhere_registers() -> None:
    registrar, clock = make()
    assert authed(registrar, "0003*210", "secret210", ["<sip:desk@10.0.0.5>"]).status == 200
    attacker = Peer("udp", "203.0.113.9", 5060)
    statuses = []
    for i in range(300):
        first = registrar.process(Incoming(register("0003*210", ["<sip:x@y>"]), attacker))  # type: ignore[arg-type]
        challenge = choose_challenge(first.headers.get_all("WWW-Authenticate"))
        guess = authorize(
            "REGISTER", "sip:voip.example.com", challenge, "0003*210", f"pw{i}", cnonce=CNONCE
        )
        reply = registrar.process(
            Incoming(register("0003*210", ["<sip:x@y>"], auth=guess), attacker)  # type: ignore[arg-type]
        )
        statuses.append((reply.status, reply.reason))
        if reply.reason == "Forbidden (too many failed attempts)":
            assert reply.headers.get("Retry-After") == "1"
    # the clock did not move: after the first 5 wrong passwords every attempt was refused unseen
    assert statuses[:5] == [(403, "Forbidden (bad credentials)")] * 5
    assert statuses[5:] == [(403, "Forbidden (too many failed attempts)")] * 295
    assert authed(registrar, "0003*210", "secret210", ["<sip:desk@10.0.0.5>"], cseq=5).status == 200
    clock.now += 1  # the attacker's block (1 s) is over: one more guess, then 2 s
    assert authed(registrar, "0003*210", "secret211", ["<sip:x@y>"]).status == 403


def test_not_utf8_credentials_get_400_and_count_as_no_guess() -> None:
    registrar, _ = make()
    first = registrar.process(Incoming(register("0003*210", ["<sip:desk@10.0.0.5>"])))  # type: ignore[arg-type]
    challenge = choose_challenge(first.headers.get_all("WWW-Authenticate"))
    creds = authorize(
        "REGISTER", "sip:voip.example.com", challenge, "0003*210", "secret210", cnonce=CNONCE
    )
    good = register("0003*210", ["<sip:desk@10.0.0.5>"], auth=creds)
    raw = serialize(good).replace(b'cnonce="', b'cnonce="\xff\xfe')
    bad = parse_message(raw)
    assert isinstance(bad, Request)
    for _ in range(50):
        reply = registrar.process(Incoming(bad))  # type: ignore[arg-type]
        assert reply.status == 400
        assert "cnonce holds bytes that are not UTF-8" in reply.reason
    assert registrar.process(Incoming(good)).status == 200  # type: ignore[arg-type]


def test_path_is_stored_with_the_binding_and_returned_in_the_200() -> None:
    # RFC 3327: Kamailio in front adds its Path; a proxy further out may have added another
    registrar, clock = make()
    kamailio = "<sip:192.0.2.1:5060;lr;received=sip:192.0.2.10:5062>"
    reply = authed(
        registrar,
        "0003*210",
        "secret210",
        ["<sip:alice@10.0.0.5:5062>"],
        path=(kamailio, "<sip:edge.example.com;lr>, <sip:far.example.com;lr>"),
    )
    assert reply.status == 200
    expected = [kamailio, "<sip:edge.example.com;lr>", "<sip:far.example.com;lr>"]
    assert reply.headers.get_all("Path") == expected
    assert "path" in (reply.headers.get("Supported") or "")
    (binding,) = registrar.store.contacts("0003*210", clock.now)
    assert list(binding.path) == expected


def test_a_register_without_path_binds_none_and_a_bad_path_is_refused() -> None:
    registrar, clock = make()
    reply = authed(registrar, "0003*210", "secret210", ["<sip:alice@10.0.0.5:5062>"])
    assert reply.status == 200 and reply.headers.get_all("Path") == []
    assert registrar.store.contacts("0003*210", clock.now)[0].path == ()
    bad = authed(
        registrar,
        "0003*211",
        "secret211",
        ["<sip:bob@10.0.0.6:5062>"],
        path=("<tel:+15551234>",),
        call_id="reg-2@192.0.2.10",
    )
    assert bad.status == 400 and "Path" in bad.reason
    assert registrar.store.contacts("0003*211", clock.now) == []
