"""Digest on the wire and its client side (RFC 8760 / RFC 7616 / RFC 2069 compatibility)."""

from __future__ import annotations

import contextlib
import hashlib
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sip import digest
from sip.auth import AuthStatus, DigestServer
from sip.digest import DigestChallenge, DigestCredentials
from sip.errors import LocalProtocolError, RemoteProtocolError
from tests.sip.fixed_random import counting_bytes

# --- RFC 7616 §3.9.1 example ------------------------------------------------------------------

RFC_CHALLENGE_SHA256 = (
    'Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm=SHA-256, '
    'nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", '
    'opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"'
)
RFC_CNONCE = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"


def _hex(alg: str, text: str) -> str:
    return hashlib.new(alg, text.encode()).hexdigest()


@pytest.mark.parametrize(
    ("algorithm", "hashlib_name", "published"),
    [
        ("MD5", "md5", "8ca523f5e9506fed4657c9700eebdbec"),
        ("SHA-256", "sha256", "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"),
    ],
)
def test_rfc7616_example_vectors(algorithm: str, hashlib_name: str, published: str) -> None:
    # Computed by hand from the RFC's definitions (A1, A2, KD) and checked against the RFC.
    ha1 = _hex(hashlib_name, "Mufasa:http-auth@example.org:Circle of Life")
    ha2 = _hex(hashlib_name, "GET:/dir/index.html")
    nonce = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v"
    by_hand = _hex(hashlib_name, f"{ha1}:{nonce}:00000001:{RFC_CNONCE}:auth:{ha2}")
    assert by_hand == published
    challenge = digest.parse_challenge(RFC_CHALLENGE_SHA256.replace("SHA-256", algorithm))
    creds = digest.build_credentials(
        "GET", "/dir/index.html", challenge, "Mufasa", "Circle of Life", cnonce=RFC_CNONCE, nc=1
    )
    assert creds.response == published
    assert creds.qop == "auth" and creds.nc == "00000001"
    assert creds.opaque == "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"
    value = digest.authorize(
        "GET", "/dir/index.html", challenge, "Mufasa", "Circle of Life", cnonce=RFC_CNONCE
    )
    assert f'response="{published}"' in value
    assert digest.parse_credentials(value) == creds


def test_rfc7616_example_challenge_parses() -> None:
    c = digest.parse_challenge(RFC_CHALLENGE_SHA256)
    assert c.realm == "http-auth@example.org"
    assert c.qop == ("auth", "auth-int")
    assert c.algorithm == "SHA-256"
    assert c.nonce == "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v"
    assert not c.stale and c.supported


def test_sha512_256_and_sess_variants() -> None:
    kwargs: dict[str, Any] = dict(
        username="u", realm="r", password="p", method="INVITE", uri="sip:x@y"
    )
    plain = digest.digest_response(algorithm="SHA-512-256", nonce="n", **kwargs)
    ha1 = _hex("sha512_256", "u:r:p")
    ha2 = _hex("sha512_256", "INVITE:sip:x@y")
    assert plain == _hex("sha512_256", f"{ha1}:n:{ha2}")
    sess = digest.digest_response(
        algorithm="md5-sess", nonce="n", qop="auth", nc="00000001", cnonce="c", **kwargs
    )
    ha1s = _hex("md5", f"{_hex('md5', 'u:r:p')}:n:c")
    assert sess == _hex("md5", f"{ha1s}:n:00000001:c:auth:{_hex('md5', 'INVITE:sip:x@y')}")
    with pytest.raises(LocalProtocolError):
        digest.digest_response(algorithm="SHA-1", nonce="n", **kwargs)


# --- auth-param syntax -----------------------------------------------------------------------


def test_auth_params_quotes_escapes_and_commas() -> None:
    params = digest.parse_auth_params(
        ' Realm = "a, \\"quoted\\" realm" ,nonce="x,y",algorithm=MD5,, stale=TRUE,uri=sip:a@b'
    )
    assert params == [
        ("realm", 'a, "quoted" realm'),
        ("nonce", "x,y"),
        ("algorithm", "MD5"),
        ("stale", "TRUE"),
        ("uri", "sip:a@b"),
    ]
    text = digest.format_auth_params([("realm", 'a "b" \\ c', True), ("qop", "auth", False)])
    assert text == 'realm="a \\"b\\" \\\\ c", qop=auth'
    assert digest.parse_auth_params(text) == [("realm", 'a "b" \\ c'), ("qop", "auth")]


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ('realm="unterminated', "unterminated"),
        ("realm", "no '='"),
        ('realm="a" nonce="b"', "expected ','"),
        ('realm="a", realm="b"', "twice"),
        ("=x", "expected a name"),
        ("realm=", "empty value"),
        ('realm="a\\', "dangling escape"),
    ],
)
def test_bad_auth_params(text: str, fragment: str) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        digest.parse_auth_params(text)
    assert fragment in info.value.reason


def test_format_refuses_header_injection() -> None:
    with pytest.raises(LocalProtocolError):
        digest.format_auth_params([("username", "bob\r\nVia: evil", True)])


def test_challenge_and_credentials_errors() -> None:
    with pytest.raises(RemoteProtocolError, match="not Digest"):
        digest.parse_challenge('Basic realm="x"')
    with pytest.raises(RemoteProtocolError, match="without nonce"):
        digest.parse_challenge('Digest realm="x"')
    with pytest.raises(RemoteProtocolError, match="without response"):
        digest.parse_credentials('Digest username="a", realm="r", nonce="n", uri="sip:x"')
    with pytest.raises(RemoteProtocolError, match="nc and cnonce"):
        digest.parse_credentials(
            'Digest username="a", realm="r", nonce="n", uri="sip:x", response="1", qop=auth'
        )
    with pytest.raises(RemoteProtocolError, match="8 hex"):
        digest.parse_credentials(
            'Digest username="a", realm="r", nonce="n", uri="sip:x", response="1", qop=auth, '
            'cnonce="c", nc=12'
        )


# quoted-string text (RFC 7230 §3.2.6): no control characters; any UTF-8 text otherwise
_text = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cc",)), max_size=20)
_token = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=10)


@given(
    realm=_text,
    nonce=_text,
    opaque=st.none() | _text,
    stale=st.booleans(),
    algorithm=st.sampled_from(["MD5", "SHA-256", "SHA-512-256", "MD5-sess"]),
    qop=st.lists(_token, max_size=3).map(tuple),
)
def test_challenge_roundtrip(
    realm: str,
    nonce: str,
    opaque: str | None,
    stale: bool,
    algorithm: str,
    qop: tuple[str, ...],
) -> None:
    c = DigestChallenge(realm, nonce, algorithm, qop, opaque, stale)
    assert digest.parse_challenge(str(c)) == c


@given(username=_text, uri=_text, cnonce=st.none() | _text, nc=st.integers(1, 2**32 - 1))
def test_credentials_roundtrip(username: str, uri: str, cnonce: str | None, nc: int) -> None:
    qop = None if cnonce is None else "auth"
    nc_text = None if cnonce is None else f"{nc:08x}"
    c = DigestCredentials(
        username, "realm", "nonce", uri, "ab12", "SHA-256", cnonce, None, qop, nc_text
    )
    assert digest.parse_credentials(str(c)) == c


@given(st.text(max_size=120))
def test_arbitrary_text_only_raises_remote_protocol_error(text: str) -> None:
    for parse in (digest.parse_challenge, digest.parse_credentials, digest.parse_auth_params):
        with contextlib.suppress(RemoteProtocolError):
            parse(text)
    server = DigestServer("r", b"k", random_bytes=counting_bytes())
    result = server.verify("INVITE", text, lambda _: "pw", 0.0)
    assert result.status is not AuthStatus.OK


@given(st.text(max_size=80))
def test_arbitrary_digest_params_only_raise_remote_protocol_error(text: str) -> None:
    with contextlib.suppress(RemoteProtocolError):
        digest.parse_credentials("Digest " + text)


def test_auth_int_client() -> None:
    challenge = DigestChallenge("r", "n", "SHA-256", ("auth-int",))
    creds = digest.build_credentials(
        "MESSAGE", "sip:x", challenge, "u", "p", cnonce="c", nc=2, body=b"hello"
    )
    ha1 = _hex("sha256", "u:r:p")
    ha2 = _hex("sha256", f"MESSAGE:sip:x:{hashlib.sha256(b'hello').hexdigest()}")
    assert creds.qop == "auth-int" and creds.nc == "00000002"
    assert creds.response == _hex("sha256", f"{ha1}:n:00000002:c:auth-int:{ha2}")
