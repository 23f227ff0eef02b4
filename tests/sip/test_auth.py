"""Digest authentication for SIP, the server side: nonces, verification, replays."""

from __future__ import annotations

import base64
import hashlib

import pytest

from sip import auth, digest
from sip.auth import AuthStatus, DigestServer
from sip.digest import DigestChallenge
from sip.errors import LocalProtocolError, RemoteProtocolError
from tests.sip.fixed_random import CNONCE, counting_bytes


def _hex(alg: str, text: str) -> str:
    return hashlib.new(alg, text.encode()).hexdigest()


# --- server <-> client ------------------------------------------------------------------------

REALM = "b2bua.example"
USERS = {"0003*210": "secret210", "0003*211": "secret211"}


def _server(**kwargs: object) -> DigestServer:
    kwargs.setdefault("random_bytes", counting_bytes())
    return DigestServer(REALM, b"server secret", 60.0, **kwargs)  # type: ignore[arg-type]


def test_challenges_sha256_first_one_per_algorithm() -> None:
    server = _server()
    values = server.challenge_values(1000.0)
    assert [digest.parse_challenge(v).algorithm for v in values] == ["SHA-256", "MD5"]
    for value in values:
        c = digest.parse_challenge(value)
        assert c.realm == REALM and c.qop == ("auth",) and not c.stale
    assert server.status == 401 and server.challenge_header == "WWW-Authenticate"
    proxy = _server(proxy=True)
    assert proxy.status == 407 and proxy.challenge_header == "Proxy-Authenticate"
    assert proxy.credentials_header == "Proxy-Authorization"
    assert all("stale=true" in v for v in server.challenge_values(0.0, stale=True))


@pytest.mark.parametrize("preferred", ["SHA-256", "MD5", "SHA-512-256"])
def test_round_trip_each_algorithm(preferred: str) -> None:
    server = _server(algorithms=(preferred,))
    challenge = digest.choose_challenge(server.challenge_values(100.0))
    assert challenge.algorithm == preferred
    value = digest.authorize(
        "INVITE", "sip:0003*211@b2bua", challenge, "0003*210", "secret210", cnonce=CNONCE
    )
    result = server.verify("INVITE", value, USERS.get, 130.0)
    assert result.ok and result.username == "0003*210" and result.status is AuthStatus.OK


def test_client_picks_strongest_supported_challenge() -> None:
    values = [
        'Digest realm="r", nonce="1", algorithm=MD5, qop="auth"',
        'Digest realm="r", nonce="2", algorithm=SHA-256, qop="auth"',
        'Digest realm="r", nonce="3", algorithm=SHA-3, qop="auth"',
        "Basic realm=r",
    ]
    assert digest.choose_challenge(values).nonce == "2"
    with pytest.raises(RemoteProtocolError, match="no usable"):
        digest.choose_challenge(values[2:])


def test_stale_nonce() -> None:
    server = _server()
    challenge = digest.choose_challenge(server.challenge_values(100.0))
    value = digest.authorize(
        "REGISTER", "sip:b2bua", challenge, "0003*210", "secret210", nc=1, cnonce=CNONCE
    )
    assert server.verify("REGISTER", value, USERS.get, 160.0).ok  # exactly at the TTL
    result = server.verify("REGISTER", value, USERS.get, 160.5)
    assert result.status is AuthStatus.STALE and "expired" in result.reason
    assert result.username == "0003*210"
    # An expired nonce with a *wrong* password is not stale (the client must not retry
    # blindly), nor is it a guess at the password: a guess needs a live nonce of ours.
    bad = digest.authorize("REGISTER", "sip:b2bua", challenge, "0003*210", "nope", cnonce=CNONCE)
    assert server.verify("REGISTER", bad, USERS.get, 500.0).status is AuthStatus.UNKNOWN_NONCE
    made_up = bad.replace(f'nonce="{challenge.nonce}"', 'nonce="made-up"')
    assert server.verify("REGISTER", made_up, USERS.get, 100.0).status is AuthStatus.UNKNOWN_NONCE
    # the same wrong password against a live nonce of ours is a guess
    assert server.verify("REGISTER", bad, USERS.get, 110.0).status is AuthStatus.REJECTED


def test_nonce_from_another_server_or_restart_is_stale_not_ok() -> None:
    other = DigestServer(REALM, b"other secret", 60.0, random_bytes=counting_bytes())
    challenge = digest.choose_challenge(other.challenge_values(100.0))
    value = digest.authorize("INVITE", "sip:x", challenge, "0003*210", "secret210", cnonce=CNONCE)
    result = _server().verify("INVITE", value, USERS.get, 100.0)
    assert result.status is AuthStatus.STALE and "not issued by us" in result.reason
    # A nonce we issued, but for a clock far in the future (e.g. the clock went back).
    server = _server()
    future = digest.choose_challenge(server.challenge_values(10_000.0))
    value = digest.authorize("INVITE", "sip:x", future, "0003*210", "secret210", cnonce=CNONCE)
    assert server.verify("INVITE", value, USERS.get, 100.0).status is AuthStatus.STALE


def test_nonce_salts_and_cnonces_come_from_the_caller() -> None:
    # sans-IO: the salt is random_bytes' draw (1, 2... from counting_bytes), the cnonce the
    # client's argument; nothing here draws a random value of its own
    server = _server()
    first, second = server.challenges(100.0)  # one nonce for both algorithms' challenges
    assert first.nonce == second.nonce
    salt = base64.urlsafe_b64decode(first.nonce + "==")[8:16]
    assert salt == (1).to_bytes(8, "big")
    again = server.challenges(100.0)[0].nonce
    assert again != first.nonce  # the same instant, the next draw: another nonce
    assert base64.urlsafe_b64decode(again + "==")[8:16] == (2).to_bytes(8, "big")
    value = digest.authorize("INVITE", "sip:x", first, "0003*210", "secret210", cnonce="c0ffee")
    assert digest.parse_credentials(value).cnonce == "c0ffee"
    assert server.verify("INVITE", value, USERS.get, 101.0).ok
    with pytest.raises(LocalProtocolError):  # qop=auth needs a cnonce: none is made up here
        digest.authorize("INVITE", "sip:x", first, "0003*210", "secret210", cnonce="")


def test_tampered_nonce_is_not_accepted() -> None:
    server = _server()
    nonce = server.make_nonce(100.0, salt=b"12345678")
    assert server.nonce_age(nonce, 105.0) == pytest.approx(5.0)
    tampered = ("A" if nonce[0] != "A" else "B") + nonce[1:]
    assert server.nonce_age(tampered, 105.0) is None
    assert server.nonce_age("!!!", 105.0) is None


def test_wrong_password_unknown_user_wrong_realm() -> None:
    server = _server()
    challenge = digest.choose_challenge(server.challenge_values(0.0))
    wrong_pw = digest.authorize(
        "INVITE", "sip:x", challenge, "0003*210", "secret211", cnonce=CNONCE
    )
    result = server.verify("INVITE", wrong_pw, USERS.get, 1.0)
    assert result.status is AuthStatus.REJECTED and "password" in result.reason
    unknown = digest.authorize("INVITE", "sip:x", challenge, "0003*999", "x", cnonce=CNONCE)
    result = server.verify("INVITE", unknown, USERS.get, 1.0)
    assert result.status is AuthStatus.REJECTED and result.reason == "unknown user"
    other_realm = DigestChallenge("elsewhere", challenge.nonce, "SHA-256", ("auth",))
    value = digest.authorize("INVITE", "sip:x", other_realm, "0003*210", "secret210", cnonce=CNONCE)
    result = server.verify("INVITE", value, USERS.get, 1.0)
    assert result.status is AuthStatus.REJECTED and "realm" in result.reason


def test_method_and_uri_are_bound() -> None:
    server = _server()
    challenge = digest.choose_challenge(server.challenge_values(0.0))
    value = digest.authorize("INVITE", "sip:a@b", challenge, "0003*210", "secret210", cnonce=CNONCE)
    assert server.verify("BYE", value, USERS.get, 1.0).status is AuthStatus.REJECTED
    assert server.verify("INVITE", value, USERS.get, 1.0, uri="sip:a@b").ok
    assert server.verify("INVITE", value, USERS.get, 1.0, uri="sip:c@d").status is (
        AuthStatus.REJECTED
    )


def test_algorithm_not_offered_is_rejected() -> None:
    server = _server(algorithms=("SHA-256",))
    nonce = server.make_nonce(0.0)
    md5 = DigestChallenge(REALM, nonce, "MD5", ("auth",))
    value = digest.authorize("INVITE", "sip:x", md5, "0003*210", "secret210", cnonce=CNONCE)
    result = server.verify("INVITE", value, USERS.get, 1.0)
    assert result.status is AuthStatus.REJECTED and "algorithm" in result.reason


def test_rfc2069_client_compatibility() -> None:
    # A server that sends no qop: the client answers without cnonce/nc (RFC 3261 §22.4).
    legacy = DigestChallenge("r", "abc", "MD5")
    value = digest.authorize("INVITE", "sip:x", legacy, "u", "p", cnonce=CNONCE)
    creds = digest.parse_credentials(value)
    assert creds.qop is None and creds.nc is None and creds.cnonce is None
    ha1, ha2 = _hex("md5", "u:r:p"), _hex("md5", "INVITE:sip:x")
    assert creds.response == _hex("md5", f"{ha1}:abc:{ha2}")
    # Our server refuses such credentials unless told otherwise.
    server = _server()
    nonce = server.make_nonce(0.0)
    value = digest.authorize(
        "INVITE", "sip:x", DigestChallenge(REALM, nonce), "0003*210", "secret210", cnonce=CNONCE
    )
    assert server.verify("INVITE", value, USERS.get, 1.0).status is AuthStatus.REJECTED
    assert _server(require_qop=False).verify("INVITE", value, USERS.get, 1.0).ok


def test_malformed_credentials_are_reported_not_raised() -> None:
    server = _server()
    for value in ["", "Digest", 'Digest username="a', "Basic dXNlcjpwdw==", "Digest a=b"]:
        result = server.verify("INVITE", value, USERS.get, 0.0)
        assert result.status is AuthStatus.MALFORMED
        assert result.reason.startswith("auth")


def test_server_misuse() -> None:
    with pytest.raises(LocalProtocolError):
        DigestServer("r", b"", random_bytes=counting_bytes())
    with pytest.raises(LocalProtocolError):
        DigestServer("r", b"k", algorithms=("SHA-1",), random_bytes=counting_bytes())
    with pytest.raises(LocalProtocolError):
        DigestServer("r", b"k", algorithms=(), random_bytes=counting_bytes())


# --- replay: nonce counts ---------------------------------------------------------------------


def test_a_replayed_credential_is_stale_and_counts_must_increase() -> None:
    server = _server()
    challenge = digest.choose_challenge(server.challenge_values(100.0))

    def creds(nc: int) -> str:
        return digest.authorize(
            "REGISTER", "sip:b2bua", challenge, "0003*210", "secret210", nc=nc, cnonce=CNONCE
        )

    first = creds(1)
    assert server.verify("REGISTER", first, USERS.get, 101.0).ok
    replay = server.verify("REGISTER", first, USERS.get, 102.0)
    assert replay.status is AuthStatus.STALE and "nc 00000001" in replay.reason
    assert server.verify("REGISTER", creds(3), USERS.get, 103.0).ok  # counts may skip
    assert server.verify("REGISTER", creds(2), USERS.get, 104.0).status is AuthStatus.STALE
    assert server.verify("REGISTER", creds(3), USERS.get, 104.0).status is AuthStatus.STALE
    assert server.verify("REGISTER", creds(4), USERS.get, 105.0).ok
    # a fresh nonce starts its own count
    fresh = digest.choose_challenge(server.challenge_values(106.0))
    value = digest.authorize(
        "REGISTER", "sip:b2bua", fresh, "0003*210", "secret210", nc=1, cnonce=CNONCE
    )
    assert server.verify("REGISTER", value, USERS.get, 107.0).ok


def test_a_wrong_password_does_not_use_up_a_count() -> None:
    server = _server()
    challenge = digest.choose_challenge(server.challenge_values(0.0))
    bad = digest.authorize("INVITE", "sip:x", challenge, "0003*210", "guess", nc=1, cnonce=CNONCE)
    assert server.verify("INVITE", bad, USERS.get, 1.0).status is AuthStatus.REJECTED
    good = digest.authorize(
        "INVITE", "sip:x", challenge, "0003*210", "secret210", nc=1, cnonce=CNONCE
    )
    assert server.verify("INVITE", good, USERS.get, 1.0).ok


def test_credentials_without_qop_are_accepted_once_per_nonce() -> None:
    server = _server(require_qop=False)
    nonce = server.make_nonce(0.0)
    legacy = DigestChallenge(REALM, nonce)  # no qop: RFC 2069 style answer, no nc
    value = digest.authorize("INVITE", "sip:x", legacy, "0003*210", "secret210", cnonce=CNONCE)
    assert server.verify("INVITE", value, USERS.get, 1.0).ok
    again = server.verify("INVITE", value, USERS.get, 2.0)
    assert again.status is AuthStatus.STALE and "once" in again.reason
    # nor can an nc added to such credentials (it is not covered by the response) reopen it
    forged = value.replace("Digest ", "Digest nc=00000009, ", 1)
    assert server.verify("INVITE", forged, USERS.get, 3.0).status is AuthStatus.STALE


def test_servers_sharing_a_memory_refuse_each_others_replays() -> None:
    counts = auth.MemoryNonceCounts()
    registrar = _server(counts=counts)
    proxy = _server(counts=counts, proxy=True)
    challenge = digest.choose_challenge(registrar.challenge_values(0.0))
    value = digest.authorize(
        "INVITE", "sip:x", challenge, "0003*210", "secret210", nc=1, cnonce=CNONCE
    )
    assert proxy.verify("INVITE", value, USERS.get, 1.0).ok
    assert registrar.verify("INVITE", value, USERS.get, 1.0).status is AuthStatus.STALE


def test_memory_forgets_expired_nonces_and_stays_bounded() -> None:
    counts = auth.MemoryNonceCounts(max_entries=3)
    for i in range(3):
        assert counts.advance(f"n{i}", 1, issued=float(i), expires=i + 60.0, now=float(i))
    assert len(counts) == 3
    # full: the oldest entry goes, and the floor rises to its issue time, so that nonce
    # (which the memory no longer holds) can never be replayed
    assert counts.advance("n3", 1, issued=3.0, expires=63.0, now=3.0)
    assert len(counts) == 3 and counts.floor == 0.0
    assert not counts.advance("n0", 2, issued=0.0, expires=60.0, now=4.0)
    assert counts.advance("n1", 2, issued=1.0, expires=61.0, now=4.0)  # still held
    # entries leave with their nonce
    assert counts.advance("n4", 1, issued=62.5, expires=122.5, now=62.5)
    assert counts.advance("n5", 1, issued=62.6, expires=122.6, now=62.6)
    assert len(counts) <= 3 and counts.floor == 0.0  # dropped by expiry, not evicted
    assert not counts.advance("late", 1, issued=0.5, expires=60.5, now=62.7)  # expired


def test_memory_refuses_nonces_issued_before_it_began() -> None:
    # A restarted process (empty memory) cannot know which counts were used before.
    server = _server(counts=auth.MemoryNonceCounts(since=50.0))
    old = digest.choose_challenge(server.challenge_values(49.0))
    value = digest.authorize("INVITE", "sip:x", old, "0003*210", "secret210", cnonce=CNONCE)
    assert server.verify("INVITE", value, USERS.get, 51.0).status is AuthStatus.STALE
    new = digest.choose_challenge(server.challenge_values(51.0))
    value = digest.authorize("INVITE", "sip:x", new, "0003*210", "secret210", cnonce=CNONCE)
    assert server.verify("INVITE", value, USERS.get, 52.0).ok


def test_bytes_that_are_not_utf8_make_credentials_malformed() -> None:
    server = _server()
    challenge = digest.choose_challenge(server.challenge_values(0.0))
    value = digest.authorize(
        "REGISTER", "sip:b2bua", challenge, "0003*210", "secret210", cnonce=CNONCE
    )
    for name in ("cnonce", "response", "username", "uri"):
        start = value.index(f'{name}="') + len(name) + 2
        raw = value.encode()[:start] + b"\xff\xfe" + value.encode()[start:]
        text = raw.decode("utf-8", "surrogateescape")  # what the message parser hands over
        result = server.verify("REGISTER", text, USERS.get, 1.0)
        assert result.status is AuthStatus.MALFORMED
        assert f"{name} holds bytes that are not UTF-8" in result.reason
