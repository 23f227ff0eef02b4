"""RFC 4475 torture tests: every message of §3.1.1, §3.1.2, §3.2, §3.3 and §3.4.

The messages live byte-exact in ``data/rfc4475/*.dat`` (written by ``data/make_rfc4475.py``);
``data/README.md`` has the table of expectations and outcomes.  Messages that are well formed but
must be refused above the parser (416, 420, 483, ...) are checked here for the property the UAS
core uses to refuse them.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from sip.errors import RemoteProtocolError
from sip.headers import CSeq, Via
from sip.message import Message, Request, Response, StreamParser, parse_message
from sip.uri import AbsoluteUri, SipUri

DATA = Path(__file__).parent / "data" / "rfc4475"

VALID = [
    # 3.1.1
    "wsinv",
    "intmeth",
    "esc01",
    "escnull",
    "esc02",
    "lwsdisp",
    "longreq",
    "dblreq",
    "semiuri",
    "transports",
    "mpart01",
    "unreason",
    "noreason",
    # 3.2
    "badbranch",
    # 3.3: well formed; the application layer refuses some of them
    "unkscm",
    "novelsc",
    "unksm2",
    "bext01",
    "invut",
    "regaut01",
    "bcast",
    "zeromf",
    "cparam01",
    "cparam02",
    "regescrt",
    "sdp01",
    # 3.4
    "inv2543",
]

# name -> status the RFC expects (for responses: the message is dropped; the hint is unused)
INVALID = {
    # 3.1.2
    "badinv01": 400,
    "clerr": 400,
    "ncl": 400,
    "scalar02": 400,
    "scalarlg": 400,
    "quotbal": 400,
    "ltgtruri": 400,
    "lwsruri": 400,
    "lwsstart": 400,
    "trws": 400,
    "escruri": 400,
    "baddate": 400,
    "regbadct": 400,
    "badaspec": 400,
    "baddn": 400,
    "badvers": 505,
    "mismatch01": 400,
    "mismatch02": 400,  # RFC: 501, "a 400 response is also acceptable"
    "bigcode": 400,
    # 3.3 rejected by the message layer
    "insuf": 400,
    "multi01": 400,
    "mcl01": 400,
}


def load(name: str) -> bytes:
    return (DATA / f"{name}.dat").read_bytes()


def parse(name: str) -> Message:
    return parse_message(load(name))


def request(name: str) -> Request:
    msg = parse(name)
    assert isinstance(msg, Request)
    return msg


def test_corpus_is_complete() -> None:
    on_disk = {p.stem for p in DATA.glob("*.dat")}
    assert on_disk == set(VALID) | set(INVALID)


@pytest.mark.parametrize("name", VALID)
def test_valid_messages_parse(name: str) -> None:
    msg = parse(name)
    # The common fields a transaction layer reads are all available.
    assert msg.top_via.transport
    assert msg.call_id
    assert msg.cseq.seq >= 0
    assert msg.from_.uri is not None and msg.to.uri is not None


@pytest.mark.parametrize(("name", "status"), sorted(INVALID.items()))
def test_invalid_messages_rejected(name: str, status: int) -> None:
    with pytest.raises(RemoteProtocolError) as exc:
        parse(name)
    assert exc.value.status_hint == status


@pytest.mark.parametrize("name", VALID)
def test_valid_messages_parse_on_a_stream_when_framed(name: str) -> None:
    msg = parse(name)
    data = load(name)
    if b"\r\nl:" not in data.lower() and b"\r\ncontent-length" not in data.lower():
        pytest.skip("no Content-Length: cannot be framed on a stream (RFC 3261 §18.3)")
    if name == "dblreq":
        pytest.skip("the trailing INVITE is datagram garbage, not a framed message")
    parser = StreamParser()
    out: list[Message] = []
    for i in range(0, len(data), 7):
        out += parser.feed(data[i : i + 7])
    assert out == [msg]


def test_wsinv() -> None:
    req = request("wsinv")
    assert req.method == "INVITE"
    assert req.uri == SipUri(
        "sip", "vivekg", None, "chair-dnrc.example.com", None, (("unknownparam", None),)
    )
    assert req.to.tag == "1918181833n"
    assert req.to.uri == SipUri("sip", "vivekg", None, "chair-dnrc.example.com", None)
    assert req.from_.display_name == 'J Rosenberg \\"'
    assert req.from_.tag == "98asjd8"
    assert req.max_forwards == 68
    assert req.cseq == CSeq(9, "INVITE")
    assert req.vias == [
        Via("UDP", "192.0.2.2", None, (("branch", "390skdjuw"),)),
        Via("TCP", "spindle.example.com", None, (("branch", "z9hG4bK9ikj8"),)),
        Via("UDP", "192.168.255.111", None, (("branch", "z9hG4bK30239"),)),
    ]
    assert req.headers.get("Subject") == ""
    assert req.headers.get("NewFangledHeader") == "newfangled value continued newfangled value"
    assert req.headers.get("UnknownHeaderWithUnusualValue") == ";;,,;;,;"
    route = req.routes[0].uri
    assert isinstance(route, SipUri)
    assert route.has_param("lr") and route.param("unknownwith") == "value"
    [contact] = req.contacts
    assert contact.display_name == 'Quoted string ""'
    assert contact.params == (("newparam", "newvalue"), ("secondparam", None), ("q", "0.33"))
    assert req.content_type == "application/sdp"
    assert len(req.body) == 150


def test_intmeth() -> None:
    req = request("intmeth")
    method = "!interesting-Method0123456789_*+`.%indeed'~"
    assert req.method == method
    assert req.cseq == CSeq(139122385, method)
    uri = req.uri
    assert isinstance(uri, SipUri)
    assert uri.user == "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"
    assert uri.password == "&it+has=1,weird!*pas$wo~d_too.(doesn't-it)"
    assert uri.host == "example.com"
    assert req.top_via.branch == "z9hG4bK-.!%66*_+`'~"
    assert req.to.display_name == "BEL:\x07 NUL:\x00 DEL:\x7f"
    assert req.from_.display_name == "token1~` token2'+_ token3*%!.-"
    assert req.from_.tag == "_token~1'+`*%!-."
    assert req.from_.param("fromParam''~+*_!.-%") == '"работающий"'
    assert req.call_id == "intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{"
    assert req.max_forwards == 255
    assert req.headers.get("extensionHeader-!.%*+_`'~") == "\ufeff大停電"


def test_esc01() -> None:
    req = request("esc01")
    assert isinstance(req.uri, SipUri)
    assert req.uri.user == "sips%3Auser%40example.com"
    assert req.uri.user_unescaped == "sips:user@example.com"
    assert req.uri.host == "example.net"
    to_uri = req.to.uri
    assert isinstance(to_uri, SipUri) and to_uri.user_unescaped == "user"
    from_uri = req.from_.uri
    assert isinstance(from_uri, SipUri) and from_uri.user_unescaped == "I have spaces"
    contact = req.contacts[0].uri
    assert isinstance(contact, SipUri)
    assert contact.user == "cal%6Cer"
    assert contact.params == (("%6c%72", None), ("n%61me", "v%61lue%25%34%31"))
    assert req.call_id == "esc01.239409asdfakjkn23onasd0-3234"
    assert req.content_type == "application/sdp"


def test_escnull() -> None:
    req = request("escnull")
    users = [c.uri.user for c in req.contacts if isinstance(c.uri, SipUri)]
    assert users == ["%00", "%00%00"]
    assert isinstance(req.to.uri, SipUri) and req.to.uri.user_unescaped == "null-\x00-null"


def test_esc02() -> None:
    req = request("esc02")
    assert req.method == "RE%47IST%45R"  # % is not an escape in a method
    assert req.to.display_name == "%Z%45"
    # "C%6Fntact" is an unknown header, not Contact.
    assert [str(c.uri) for c in req.contacts] == [
        "sip:alias1@host1.example.com",
        "sip:alias3@host3.example.com",
    ]
    assert req.headers.get("C%6Fntact") == "<sip:alias2@host2.example.com>"
    assert req.top_via.branch == "z9hG4bK209%fzsnel234"


def test_lwsdisp() -> None:
    req = request("lwsdisp")
    assert req.from_.display_name == "caller"
    assert req.from_.tag == "323"


def test_longreq() -> None:
    req = request("longreq")
    vias = req.vias
    assert len(vias) == 34
    assert vias[0].host == "sip33.example.com"
    assert vias[-1].branch == "very" + "long" * 50 + "branchvalue"
    assert req.to.display_name == "I have a user name of " + "extreme" * 10 + " proportion"
    assert isinstance(req.to.uri, SipUri) and req.to.uri.port == 6000
    assert req.from_.tag == "12" + "982" * 50 + "424"
    assert req.call_id == "longreq.one" + "really" * 20 + "longcallid"


def test_dblreq_extra_datagram_octets_ignored() -> None:
    req = request("dblreq")
    assert req.method == "REGISTER"
    assert req.body == b""
    assert req.call_id == "dblreq.0ha0isndaksdj99sdfafnl3lk233412"


def test_semiuri() -> None:
    req = request("semiuri")
    assert req.uri == SipUri("sip", "user;par=u%40example.net", None, "example.com", None)
    assert req.headers.get_all("Accept") == [
        "application/sdp",
        "application/pkcs7-mime",
        "multipart/mixed",
        "multipart/signed",
        "message/sip",
        "message/sipfrag",
    ]


def test_transports() -> None:
    req = request("transports")
    assert [v.transport for v in req.vias] == ["UDP", "SCTP", "TLS", "UNKNOWN", "TCP"]


def test_mpart01_binary_body() -> None:
    req = request("mpart01")
    assert req.content_type == "multipart/mixed"
    assert len(req.body) == 553
    assert b"\x00" in req.body
    assert req.body.endswith(b"--7a9cbec02ceef655--\r\n")


def test_unreason_and_noreason() -> None:
    resp = parse("unreason")
    assert isinstance(resp, Response)
    assert resp.status == 200
    assert resp.reason == "= 2**3 * 5**2 но сто девяносто девять - простое"
    resp = parse("noreason")
    assert isinstance(resp, Response)
    assert resp.status == 100 and resp.reason == ""


def test_badbranch_is_parsed_for_the_transaction_layer() -> None:
    # 3.2.1: the branch is just the magic cookie; matching falls back to RFC 2543 rules.
    assert request("badbranch").top_via.branch == "z9hG4bK"


@pytest.mark.parametrize("name", ["unkscm", "novelsc"])
def test_unknown_request_uri_scheme_is_flagged_for_416(name: str) -> None:
    req = request(name)
    assert isinstance(req.uri, AbsoluteUri)
    assert not req.uri_scheme_supported


def test_unksm2_unknown_schemes_in_headers() -> None:
    req = request("unksm2")
    assert req.to.uri == AbsoluteUri("isbn", "isbn:2983792873")
    assert req.from_.uri == AbsoluteUri("http", "http://www.example.com")
    assert [c.uri for c in req.contacts] == [AbsoluteUri("name", "name:John_Smith")]


def test_bext01_require_for_420() -> None:
    req = request("bext01")
    assert req.headers.get_all("Require") == ["nothingSupportsThis", "nothingSupportsThisEither"]
    assert req.headers.get_all("Proxy-Require") == [
        "noProxiesSupportThis",
        "norDoAnyProxiesSupportThis",
    ]


def test_invut_content_type_for_415() -> None:
    assert request("invut").content_type == "application/unknownformat"


def test_regaut01_authorization_kept() -> None:
    assert request("regaut01").headers.get("Authorization") == (
        "NoOneKnowsThisScheme opaque-data=here"
    )


def test_bcast_via_visible() -> None:
    resp = parse("bcast")
    assert isinstance(resp, Response)
    assert resp.vias[1].host == "255.255.255.255"


def test_zeromf_max_forwards_zero() -> None:
    assert request("zeromf").max_forwards == 0


def test_cparam_contact_params() -> None:
    [c1] = request("cparam01").contacts
    assert isinstance(c1.uri, SipUri) and c1.uri.params == ()
    assert c1.params == (("unknownparam", None),)
    [c2] = request("cparam02").contacts
    assert isinstance(c2.uri, SipUri) and c2.uri.params == (("unknownparam", None),)
    assert c2.params == ()


def test_regescrt_uri_headers_kept() -> None:
    [contact] = request("regescrt").contacts
    assert isinstance(contact.uri, SipUri)
    assert contact.uri.headers == (("Route", "%3Csip:sip.example.com%3E"),)


def test_sdp01_accept() -> None:
    assert request("sdp01").headers.get("Accept") == "text/nobodyKnowsThis"


def test_inv2543_rfc2543_syntax_accepted() -> None:
    req = request("inv2543")
    assert req.top_via.branch is None
    assert req.max_forwards is None
    assert req.to.param("user") == "phone"  # addr-spec: the param belongs to the header
    assert req.body.endswith(b"m=audio 49217 RTP/AVP 0\r\n")
