"""Write the RFC 4475 torture-test messages as byte-exact files (one ``NAME.dat`` per message).

The messages are reconstructed from RFC 4475 §3 with its notation expanded (§2.1 <allOneLine>,
§2.2 <hex>, §2.3 <repeat>): every line ends in CRLF, non-ASCII and control octets are written
as the bytes the RFC specifies.  Run ``python tests/sip/data/make_rfc4475.py`` to regenerate the
files; the tests read the ``.dat`` files, not this script.
"""

from __future__ import annotations

from pathlib import Path

OUT = Path(__file__).with_name("rfc4475")


def crlf(text: str) -> bytes:
    """Message text with "\\n" line ends -> bytes with CRLF line ends (UTF-8 for non-ASCII)."""
    return text.replace("\n", "\r\n").encode("utf-8")


SDP_1 = """v=0
o=mhandley 29739 7272939 IN IP4 192.0.2.1
s=-
c=IN IP4 192.0.2.1
t=0 0
m=audio 49217 RTP/AVP 0 12
m=video 3227 RTP/AVP 31
a=rtpmap:31 LPC
"""


def sdp(address: str, origin: str | None = None, t: str = "0 0") -> str:
    return (
        f"v=0\no=mhandley 29739 7272939 IN IP4 {origin or address}\ns=-\n"
        f"c=IN IP4 {address}\nt={t}\nm=audio 49217 RTP/AVP 0 12\n"
        "m=video 3227 RTP/AVP 31\na=rtpmap:31 LPC\n"
    )


MESSAGES: dict[str, bytes] = {}

# ---------------------------------------------------------------- 3.1.1 Valid messages
MESSAGES["wsinv"] = crlf(
    "INVITE sip:vivekg@chair-dnrc.example.com;unknownparam SIP/2.0\n"
    "TO :\n"
    " sip:vivekg@chair-dnrc.example.com ;   tag    = 1918181833n\n"
    'from   : "J Rosenberg \\\\\\""       <sip:jdrosen@example.com>\n'
    "  ;\n"
    "  tag = 98asjd8\n"
    "MaX-fOrWaRdS: 0068\n"
    "Call-ID: wsinv.ndaksdj@192.0.2.1\n"
    "Content-Length   : 150\n"
    "cseq: 0009\n"
    "  INVITE\n"
    "Via  : SIP  /   2.0\n"
    " /UDP\n"
    "    192.0.2.2;branch=390skdjuw\n"
    "s :\n"
    "NewFangledHeader:   newfangled value\n"
    " continued newfangled value\n"
    "UnknownHeaderWithUnusualValue: ;;,,;;,;\n"
    "Content-Type: application/sdp\n"
    "Route:\n"
    " <sip:services.example.com;lr;unknownwith=value;unknown-no-value>\n"
    "v:  SIP  / 2.0  / TCP     spindle.example.com   ;\n"
    "  branch  =   z9hG4bK9ikj8  ,\n"
    " SIP  /    2.0   / UDP  192.168.255.111   ; branch=\n"
    " z9hG4bK30239\n"
    'm:"Quoted string \\"\\"" <sip:jdrosen@example.com> ; newparam =\n'
    "      newvalue ;\n"
    "  secondparam ; q = 0.33\n"
    "\n" + sdp("192.0.2.4", "192.0.2.3")
)

_INTMETH_METHOD = "!interesting-Method0123456789_*+`.%indeed'~"
_INTMETH_USER = "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"
MESSAGES["intmeth"] = (
    crlf(
        f"{_INTMETH_METHOD} sip:{_INTMETH_USER}:&it+has=1,weird!*pas$wo~d_too.(doesn't-it)"
        "@example.com SIP/2.0\n"
        "Via: SIP/2.0/TCP host1.example.com;branch=z9hG4bK-.!%66*_+`'~\n"
    )
    + b'To: "BEL:\\\x07 NUL:\\\x00 DEL:\\\x7f" <sip:'
    + _INTMETH_USER.encode()
    + b"@example.com>\r\n"
    + b"From: token1~` token2'+_ token3*%!.- <sip:mundane@example.com>;fromParam''~+*_!.-%=\""
    + bytes.fromhex("D180D0B0D0B1D0BED182D0B0D18ED189D0B8D0B9")
    + b"\";tag=_token~1'+`*%!-.\r\n"
    + crlf(
        "Call-ID: intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{\n"
        f"CSeq: 139122385 {_INTMETH_METHOD}\n"
        "Max-Forwards: 255\n"
    )
    + b"extensionHeader-!.%*+_`'~:"
    + bytes.fromhex("EFBBBFE5A4A7E5819CE99BBB")
    + b"\r\nContent-Length: 0\r\n\r\n"
)

MESSAGES["esc01"] = crlf(
    "INVITE sip:sips%3Auser%40example.com@example.net SIP/2.0\n"
    "To: sip:%75se%72@example.com\n"
    "From: <sip:I%20have%20spaces@example.net>;tag=938\n"
    "Max-Forwards: 87\n"
    "i: esc01.239409asdfakjkn23onasd0-3234\n"
    "CSeq: 234234 INVITE\n"
    "Via: SIP/2.0/UDP host5.example.net;branch=z9hG4bKkdjuw\n"
    "C: application/sdp\n"
    "Contact:\n"
    "  <sip:cal%6Cer@host5.example.net;%6C%72;n%61me=v%61lue%25%34%31>\n"
    "Content-Length: 150\n"
    "\n" + SDP_1
)

MESSAGES["escnull"] = crlf(
    "REGISTER sip:example.com SIP/2.0\n"
    "To: sip:null-%00-null@example.com\n"
    "From: sip:null-%00-null@example.com;tag=839923423\n"
    "Max-Forwards: 70\n"
    "Call-ID: escnull.39203ndfvkjdasfkq3w4otrq0adsfdfnavd\n"
    "CSeq: 14398234 REGISTER\n"
    "Via: SIP/2.0/UDP host5.example.com;branch=z9hG4bKkdjuw\n"
    "Contact: <sip:%00@host5.example.com>\n"
    "Contact: <sip:%00%00@host5.example.com>\n"
    "L:0\n"
    "\n"
)

MESSAGES["esc02"] = crlf(
    "RE%47IST%45R sip:registrar.example.com SIP/2.0\n"
    'To: "%Z%45" <sip:resource@example.com>\n'
    'From: "%Z%45" <sip:resource@example.com>;tag=f232jadfj23\n'
    "Call-ID: esc02.asdfnqwo34rq23i34jrjasdcnl23nrlknsdf\n"
    "Via: SIP/2.0/TCP host.example.com;branch=z9hG4bK209%fzsnel234\n"
    "CSeq: 29344 RE%47IST%45R\n"
    "Max-Forwards: 70\n"
    "Contact: <sip:alias1@host1.example.com>\n"
    "C%6Fntact: <sip:alias2@host2.example.com>\n"
    "Contact: <sip:alias3@host3.example.com>\n"
    "l: 0\n"
    "\n"
)

MESSAGES["lwsdisp"] = crlf(
    "OPTIONS sip:user@example.com SIP/2.0\n"
    "To: sip:user@example.com\n"
    "From: caller<sip:caller@example.com>;tag=323\n"
    "Max-Forwards: 70\n"
    "Call-ID: lwsdisp.1234abcd@funky.example.com\n"
    "CSeq: 60 OPTIONS\n"
    "Via: SIP/2.0/UDP funky.example.com;branch=z9hG4bKkdjuw\n"
    "l: 0\n"
    "\n"
)

_LONG_VIAS = "".join(
    f"{name}SIP/2.0/TCP sip{n}.example.com\n"
    for name, n in zip(
        [
            "Via: ", "v: ", "V: ", "Via: ", "ViA: ", "VIa: ", "VIA: ", "via: ", "viA: ",
            "vIa: ", "vIA: ", "V :  ", "v :  ", "V  : ", "v  : ", "Via : ", "Via  : ",
        ]
        + ["Via: "] * 16,
        range(33, 0, -1),
        strict=True,
    )
)  # fmt: skip
MESSAGES["longreq"] = crlf(
    "INVITE sip:user@example.com SIP/2.0\n"
    'To: "I have a user name of ' + "extreme" * 10 + ' proportion"<sip:user@example.com:6000;'
    "unknownparam1=very" + "long" * 20 + "value;"
    "longparam" + "name" * 25 + "=shortvalue;"
    "very" + "long" * 25 + "ParameterNameWithNoValue>\n"
    "F: sip:" + "amazinglylongcallername" * 5 + "@example.net;tag=12" + "982" * 50 + "424;"
    "unknownheaderparam" + "name" * 20 + "=unknowheaderparam" + "value" * 15 + ";"
    "unknownValueless" + "paramname" * 10 + "\n"
    "Call-ID: longreq.one" + "really" * 20 + "longcallid\n"
    "CSeq: 3882340 INVITE\n"
    "Unknown-"
    + "Long" * 20
    + "-Name: unknown-"
    + "long" * 20
    + "-value; unknown-"
    + "long" * 20
    + "-parameter-name = unknown-"
    + "long" * 20
    + "-parameter-value\n"
    + _LONG_VIAS
    + "Via: SIP/2.0/TCP host.example.com;received=192.0.2.5;branch=very"
    + "long" * 50
    + "branchvalue\n"
    "Max-Forwards: 70\n"
    "Contact: <sip:" + "amazinglylongcallername" * 5 + "@host5.example.net>\n"
    "Content-Type: application/sdp\n"
    "l: 150\n"
    "\n" + SDP_1
)

MESSAGES["dblreq"] = crlf(
    "REGISTER sip:example.com SIP/2.0\n"
    "To: sip:j.user@example.com\n"
    "From: sip:j.user@example.com;tag=43251j3j324\n"
    "Max-Forwards: 8\n"
    "I: dblreq.0ha0isndaksdj99sdfafnl3lk233412\n"
    "Contact: sip:j.user@host.example.com\n"
    "CSeq: 8 REGISTER\n"
    "Via: SIP/2.0/UDP 192.0.2.125;branch=z9hG4bKkdjuw23492\n"
    "Content-Length: 0\n"
    "\n"
    "\n"
    "INVITE sip:joe@example.com SIP/2.0\n"
    "t: sip:joe@example.com\n"
    "From: sip:caller@example.net;tag=141334\n"
    "Max-Forwards: 8\n"
    "Call-ID: dblreq.0ha0isnda977644900765@192.0.2.15\n"
    "CSeq: 8 INVITE\n"
    "Via: SIP/2.0/UDP 192.0.2.15;branch=z9hG4bKkdjuw380234\n"
    "Content-Type: application/sdp\n"
    "Content-Length: 150\n"
    "\n" + sdp("192.0.2.15")
)

MESSAGES["semiuri"] = crlf(
    "OPTIONS sip:user;par=u%40example.net@example.com SIP/2.0\n"
    "To: sip:j_user@example.com\n"
    "From: sip:caller@example.org;tag=33242\n"
    "Max-Forwards: 3\n"
    "Call-ID: semiuri.0ha0isndaksdj\n"
    "CSeq: 8 OPTIONS\n"
    "Accept: application/sdp, application/pkcs7-mime,\n"
    "        multipart/mixed, multipart/signed,\n"
    "        message/sip, message/sipfrag\n"
    "Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKkdjuw\n"
    "l: 0\n"
    "\n"
)

MESSAGES["transports"] = crlf(
    "OPTIONS sip:user@example.com SIP/2.0\n"
    "To: sip:user@example.com\n"
    "From: <sip:caller@example.com>;tag=323\n"
    "Max-Forwards: 70\n"
    "Call-ID:  transports.kijh4akdnaqjkwendsasfdj\n"
    "Accept: application/sdp\n"
    "CSeq: 60 OPTIONS\n"
    "Via: SIP/2.0/UDP t1.example.com;branch=z9hG4bKkdjuw\n"
    "Via: SIP/2.0/SCTP t2.example.com;branch=z9hG4bKklasjdhf\n"
    "Via: SIP/2.0/TLS t3.example.com;branch=z9hG4bK2980unddj\n"
    "Via: SIP/2.0/UNKNOWN t4.example.com;branch=z9hG4bKasd0f3en\n"
    "Via: SIP/2.0/TCP t5.example.com;branch=z9hG4bK0a9idfnee\n"
    "l: 0\n"
    "\n"
)

_MPART_DER = bytes.fromhex(
    "3082015206092A86"
    "4886F70D010702A08201433082013F02"
    "01013109300706052B0E03021A300B06"
    "092A864886F70D010701318201203082"
    "011C020101307C3070310B3009060355"
    "04061302555331133011060355040813"
    "0A43616C69666F726E69613111300F06"
    "03550407130853616E204A6F7365310E"
    "300C060355040A130573697069743129"
    "3027060355040B132053697069742054"
    "6573742043657274696669636174652"
    "0"
    "417574686F7269747902080195007102"
    "330113300706052B0E03021A300D0609"
    "2A864886F70D01010105000481808EF4"
    "66F948F0522DD2E5978E9D95AAE9F2FE"
    "15A06659716292E8DA2AA8D8350A68CE"
    "FFAE3CBD2BFF1675DDD5648E593DD647"
    "28F26220F7E941749E330D9A15EDABDB"
    "93D10C42102E7B7289D29CC0C9AE2EFB"
    "C7C0CFF9172F3B027E4FC027E1546DE4"
    "B6AA3ABB3E66CCCB5DD6C64B8383149C"
    "B8E6FF182D944FE57B65BC99D005"
)
MESSAGES["mpart01"] = (
    crlf(
        "MESSAGE sip:kumiko@example.org SIP/2.0\n"
        "Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-d87543-4dade06d0bdb11ee-1--d87543-;rport\n"
        "Max-Forwards: 70\n"
        "Route: <sip:127.0.0.1:5080>\n"
        "Identity: r5mwreLuyDRYBi/0TiPwEsY3rEVsk/G2WxhgTV1PF7hHuLIK0YWVKZhKv9Mj8UeXqkMVbnVq37CD+"
        "813gvYjcBUaZngQmXc9WNZSDNGCzA+fWl9MEUHWIZo1CeJebdY/XlgKeTa0Olvq0rt70Q5jiSfbqMJmQFteeivU"
        "hkMWYUA=\n"
        "Contact: <sip:fluffy@127.0.0.1:5070>\n"
        "To: <sip:kumiko@example.org>\n"
        "From: <sip:fluffy@example.com>;tag=2fb0dcc9\n"
        "Call-ID: 3d9485ad0c49859b@Zmx1ZmZ5LW1hYy0xNi5sb2NhbA..\n"
        "CSeq: 1 MESSAGE\n"
        "Content-Transfer-Encoding: binary\n"
        "Content-Type: multipart/mixed;boundary=7a9cbec02ceef655\n"
        "Date: Sat, 15 Oct 2005 04:44:56 GMT\n"
        "User-Agent: SIPimp.org/0.2.5 (curses)\n"
        "Content-Length: 553\n"
        "\n"
        "--7a9cbec02ceef655\n"
        "Content-Type: text/plain\n"
        "Content-Transfer-Encoding: binary\n"
        "\n"
        "Hello\n"
        "--7a9cbec02ceef655\n"
        "Content-Type: application/octet-stream\n"
        "Content-Transfer-Encoding: binary\n"
        "\n"
    )
    + _MPART_DER
    + b"\r\n--7a9cbec02ceef655--\r\n"
)

MESSAGES["unreason"] = crlf(
    "SIP/2.0 200 = 2**3 * 5**2 но сто девяносто девять - простое\n"
    "Via: SIP/2.0/UDP 192.0.2.198;branch=z9hG4bK1324923\n"
    "Call-ID: unreason.1234ksdfak3j2erwedfsASdf\n"
    "CSeq: 35 INVITE\n"
    "From: sip:user@example.com;tag=11141343\n"
    "To: sip:user@example.edu;tag=2229\n"
    "Content-Length: 154\n"
    "Content-Type: application/sdp\n"
    "Contact: <sip:user@host198.example.com>\n"
    "\n" + sdp("192.0.2.198")
)

MESSAGES["noreason"] = crlf(
    "SIP/2.0 100 \n"
    "Via: SIP/2.0/UDP 192.0.2.105;branch=z9hG4bK2398ndaoe\n"
    "Call-ID: noreason.asndj203insdf99223ndf\n"
    "CSeq: 35 INVITE\n"
    "From: <sip:user@example.com>;tag=39ansfi3\n"
    "To: <sip:user@example.edu>;tag=902jndnke3\n"
    "Content-Length: 0\n"
    "Contact: <sip:user@host105.example.com>\n"
    "\n"
)

# ---------------------------------------------------------------- 3.1.2 Invalid messages
MESSAGES["badinv01"] = crlf(
    "INVITE sip:user@example.com SIP/2.0\n"
    "To: sip:j.user@example.com\n"
    "From: sip:caller@example.net;tag=134161461246\n"
    "Max-Forwards: 7\n"
    "Call-ID: badinv01.0ha0isndaksdjasdf3234nas\n"
    "CSeq: 8 INVITE\n"
    "Via: SIP/2.0/UDP 192.0.2.15;;,;,,\n"
    'Contact: "Joe" <sip:joe@example.org>;;;;\n'
    "Content-Length: 152\n"
    "Content-Type: application/sdp\n"
    "\n" + sdp("192.0.2.15")
)

MESSAGES["clerr"] = crlf(
    "INVITE sip:user@example.com SIP/2.0\n"
    "Max-Forwards: 80\n"
    "To: sip:j.user@example.com\n"
    "From: sip:caller@example.net;tag=93942939o2\n"
    "Contact: <sip:caller@hungry.example.net>\n"
    "Call-ID: clerr.0ha0isndaksdjweiafasdk3\n"
    "CSeq: 8 INVITE\n"
    "Via: SIP/2.0/UDP host5.example.com;branch=z9hG4bK-39234-23523\n"
    "Content-Type: application/sdp\n"
    "Content-Length: 9999\n"
    "\n" + sdp("192.0.2.155")
)

MESSAGES["ncl"] = crlf(
    "INVITE sip:user@example.com SIP/2.0\n"
    "Max-Forwards: 254\n"
    "To: sip:j.user@example.com\n"
    "From: sip:caller@example.net;tag=32394234\n"
    "Call-ID: ncl.0ha0isndaksdj2193423r542w35\n"
    "CSeq: 0 INVITE\n"
    "Via: SIP/2.0/UDP 192.0.2.53;branch=z9hG4bKkdjuw\n"
    "Contact: <sip:caller@example53.example.net>\n"
    "Content-Type: application/sdp\n"
    "Content-Length: -999\n"
    "\n" + sdp("192.0.2.53")
)

MESSAGES["scalar02"] = crlf(
    "REGISTER sip:example.com SIP/2.0\n"
    "Via: SIP/2.0/TCP host129.example.com;branch=z9hG4bK342sdfoi3\n"
    "To: <sip:user@example.com>\n"
    "From: <sip:user@example.com>;tag=239232jh3\n"
    "CSeq: 36893488147419103232 REGISTER\n"
    "Call-ID: scalar02.23o0pd9vanlq3wnrlnewofjas9ui32\n"
    "Max-Forwards: 300\n"
    "Expires: 1" + "0" * 100 + "\n"
    "Contact: <sip:user@host129.example.com>\n"
    "  ;expires=280297596632815\n"
    "Content-Length: 0\n"
    "\n"
)

MESSAGES["scalarlg"] = crlf(
    "SIP/2.0 503 Service Unavailable\n"
    "Via: SIP/2.0/TCP host129.example.com;branch=z9hG4bKzzxdiwo34sw;received=192.0.2.129\n"
    "To: <sip:user@example.com>\n"
    "From: <sip:other@example.net>;tag=2easdjfejw\n"
    "CSeq: 9292394834772304023312 OPTIONS\n"
    "Call-ID: scalarlg.noase0of0234hn2qofoaf0232aewf2394r\n"
    "Retry-After: 949302838503028349304023988\n"
    'Warning: 1812 overture "In Progress"\n'
    "Content-Length: 0\n"
    "\n"
)

MESSAGES["quotbal"] = crlf(
    "INVITE sip:user@example.com SIP/2.0\n"
    'To: "Mr. J. User <sip:j.user@example.com>\n'
    "From: sip:caller@example.net;tag=93334\n"
    "Max-Forwards: 10\n"
    "Call-ID: quotbal.aksdj\n"
    "Contact: <sip:caller@host59.example.net>\n"
    "CSeq: 8 INVITE\n"
    "Via: SIP/2.0/UDP 192.0.2.59:5050;branch=z9hG4bKkdjuw39234\n"
    "Content-Type: application/sdp\n"
    "Content-Length: 152\n"
    "\n" + sdp("192.0.2.15")
)

MESSAGES["ltgtruri"] = crlf(
    "INVITE <sip:user@example.com> SIP/2.0\n"
    "To: sip:user@example.com\n"
    "From: sip:caller@example.net;tag=39291\n"
    "Max-Forwards: 23\n"
    "Call-ID: ltgtruri.1@192.0.2.5\n"
    "CSeq: 1 INVITE\n"
    "Via: SIP/2.0/UDP 192.0.2.5\n"
    "Contact: <sip:caller@host5.example.net>\n"
    "Content-Type: application/sdp\n"
    "Content-Length: 159\n"
    "\n" + sdp("192.0.2.5", t="3149328700 0")
)

MESSAGES["lwsruri"] = crlf(
    "INVITE sip:user@example.com; lr SIP/2.0\n"
    "To: sip:user@example.com;tag=3xfe-9921883-z9f\n"
    "From: sip:caller@example.net;tag=231413434\n"
    "Max-Forwards: 5\n"
    "Call-ID: lwsruri.asdfasdoeoi2323-asdfwrn23-asd834rk423\n"
    "CSeq: 2130706432 INVITE\n"
    "Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKkdjuw2395\n"
    "Contact: <sip:caller@host1.example.net>\n"
    "Content-Type: application/sdp\n"
    "Content-Length: 159\n"
    "\n" + sdp("192.0.2.1", t="3149328700 0")
)

MESSAGES["lwsstart"] = crlf(
    "INVITE  sip:user@example.com  SIP/2.0\n"
    "Max-Forwards: 8\n"
    "To: sip:user@example.com\n"
    "From: sip:caller@example.net;tag=8814\n"
    "Call-ID: lwsstart.dfknq234oi243099adsdfnawe3@example.com\n"
    "CSeq: 1893884 INVITE\n"
    "Via: SIP/2.0/UDP host1.example.com;branch=z9hG4bKkdjuw3923\n"
    "Contact: <sip:caller@host1.example.net>\n"
    "Content-Type: application/sdp\n"
    "Content-Length: 150\n"
    "\n" + SDP_1
)

MESSAGES["trws"] = crlf(
    "OPTIONS sip:remote-target@example.com SIP/2.0  \n"
    "Via: SIP/2.0/TCP host1.examle.com;branch=z9hG4bK299342093\n"
    "To: <sip:remote-target@example.com>\n"
    "From: <sip:local-resource@example.com>;tag=329429089\n"
    "Call-ID: trws.oicu34958239neffasdhr2345r\n"
    "Accept: application/sdp\n"
    "CSeq: 238923 OPTIONS\n"
    "Max-Forwards: 70\n"
    "Content-Length: 0\n"
    "\n"
)

MESSAGES["escruri"] = crlf(
    "INVITE sip:user@example.com?Route=%3Csip:example.com%3E SIP/2.0\n"
    "To: sip:user@example.com\n"
    "From: sip:caller@example.net;tag=341518\n"
    "Max-Forwards: 7\n"
    "Contact: <sip:caller@host39923.example.net>\n"
    "Call-ID: escruri.23940-asdfhj-aje3br-234q098w-fawerh2q-h4n5\n"
    "CSeq: 149209342 INVITE\n"
    "Via: SIP/2.0/UDP host-of-the-hour.example.com;branch=z9hG4bKkdjuw\n"
    "Content-Type: application/sdp\n"
    "Content-Length: 150\n"
    "\n" + SDP_1
)

MESSAGES["baddate"] = crlf(
    "INVITE sip:user@example.com SIP/2.0\n"
    "To: sip:user@example.com\n"
    "From: sip:caller@example.net;tag=2234923\n"
    "Max-Forwards: 70\n"
    "Call-ID: baddate.239423mnsadf3j23lj42--sedfnm234\n"
    "CSeq: 1392934 INVITE\n"
    "Via: SIP/2.0/UDP host.example.com;branch=z9hG4bKkdjuw\n"
    "Date: Fri, 01 Jan 2010 16:00:00 EST\n"
    "Contact: <sip:caller@host5.example.net>\n"
    "Content-Type: application/sdp\n"
    "Content-Length: 150\n"
    "\n" + sdp("192.0.2.5")
)

MESSAGES["regbadct"] = crlf(
    "REGISTER sip:example.com SIP/2.0\n"
    "To: sip:user@example.com\n"
    "From: sip:user@example.com;tag=998332\n"
    "Max-Forwards: 70\n"
    "Call-ID: regbadct.k345asrl3fdbv@10.0.0.1\n"
    "CSeq: 1 REGISTER\n"
    "Via: SIP/2.0/UDP 135.180.130.133:5060;branch=z9hG4bKkdjuw\n"
    "Contact: sip:user@example.com?Route=%3Csip:sip.example.com%3E\n"
    "l: 0\n"
    "\n"
)

MESSAGES["badaspec"] = crlf(
    "OPTIONS sip:user@example.org SIP/2.0\n"
    "Via: SIP/2.0/UDP host4.example.com:5060;branch=z9hG4bKkdju43234\n"
    "Max-Forwards: 70\n"
    'From: "Bell, Alexander" <sip:a.g.bell@example.com>;tag=433423\n'
    'To: "Watson, Thomas" < sip:t.watson@example.org >\n'
    "Call-ID: badaspec.sdf0234n2nds0a099u23h3hnnw009cdkne3\n"
    "Accept: application/sdp\n"
    "CSeq: 3923239 OPTIONS\n"
    "l: 0\n"
    "\n"
)

MESSAGES["baddn"] = crlf(
    "OPTIONS sip:t.watson@example.org SIP/2.0\n"
    "Via:     SIP/2.0/UDP c.example.com:5060;branch=z9hG4bKkdjuw\n"
    "Max-Forwards:      70\n"
    "From:    Bell, Alexander <sip:a.g.bell@example.com>;tag=43\n"
    "To:      Watson, Thomas <sip:t.watson@example.org>\n"
    "Call-ID: baddn.31415@c.example.com\n"
    "Accept: application/sdp\n"
    "CSeq:    3923239 OPTIONS\n"
    "l: 0\n"
    "\n"
)

MESSAGES["badvers"] = crlf(
    "OPTIONS sip:t.watson@example.org SIP/7.0\n"
    "Via:     SIP/7.0/UDP c.example.com;branch=z9hG4bKkdjuw\n"
    "Max-Forwards:     70\n"
    "From:    A. Bell <sip:a.g.bell@example.com>;tag=qweoiqpe\n"
    "To:      T. Watson <sip:t.watson@example.org>\n"
    "Call-ID: badvers.31417@c.example.com\n"
    "CSeq:    1 OPTIONS\n"
    "l: 0\n"
    "\n"
)

MESSAGES["mismatch01"] = crlf(
    "OPTIONS sip:user@example.com SIP/2.0\n"
    "To: sip:j.user@example.com\n"
    "From: sip:caller@example.net;tag=34525\n"
    "Max-Forwards: 6\n"
    "Call-ID: mismatch01.dj0234sxdfl3\n"
    "CSeq: 8 INVITE\n"
    "Via: SIP/2.0/UDP host.example.com;branch=z9hG4bKkdjuw\n"
    "l: 0\n"
    "\n"
)

MESSAGES["mismatch02"] = crlf(
    "NEWMETHOD sip:user@example.com SIP/2.0\n"
    "To: sip:j.user@example.com\n"
    "From: sip:caller@example.net;tag=34525\n"
    "Max-Forwards: 6\n"
    "Call-ID: mismatch02.dj0234sxdfl3\n"
    "CSeq: 8 INVITE\n"
    "Contact: <sip:caller@host.example.net>\n"
    "Via: SIP/2.0/UDP host.example.net;branch=z9hG4bKkdjuw\n"
    "Content-Type: application/sdp\n"
    "l: 138\n"
    "\n"
    "v=0\n"
    "o=mhandley 29739 7272939 IN IP4 192.0.2.1\n"
    "c=IN IP4 192.0.2.1\n"
    "m=audio 49217 RTP/AVP 0 12\n"
    "m=video 3227 RTP/AVP 31\n"
    "a=rtpmap:31 LPC\n"
)

MESSAGES["bigcode"] = crlf(
    "SIP/2.0 4294967301 better not break the receiver\n"
    "Via: SIP/2.0/UDP 192.0.2.105;branch=z9hG4bK2398ndaoe\n"
    "Call-ID: bigcode.asdof3uj203asdnf3429uasdhfas3ehjasdfas9i\n"
    "CSeq: 353494 INVITE\n"
    "From: <sip:user@example.com>;tag=39ansfi3\n"
    "To: <sip:user@example.edu>;tag=902jndnke3\n"
    "Content-Length: 0\n"
    "Contact: <sip:user@host105.example.com>\n"
    "\n"
)

# ---------------------------------------------------------------- 3.2 Transaction layer
MESSAGES["badbranch"] = crlf(
    "OPTIONS sip:user@example.com SIP/2.0\n"
    "To: sip:user@example.com\n"
    "From: sip:caller@example.org;tag=33242\n"
    "Max-Forwards: 3\n"
    "Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK\n"
    "Accept: application/sdp\n"
    "Call-ID: badbranch.sadonfo23i420jv0as0derf3j3n\n"
    "CSeq: 8 OPTIONS\n"
    "l: 0\n"
    "\n"
)

# ---------------------------------------------------------------- 3.3 Application layer
MESSAGES["insuf"] = crlf(
    "INVITE sip:user@example.com SIP/2.0\n"
    "CSeq: 193942 INVITE\n"
    "Via: SIP/2.0/UDP 192.0.2.95;branch=z9hG4bKkdj.insuf\n"
    "Content-Type: application/sdp\n"
    "l: 152\n"
    "\n" + sdp("192.0.2.95")
)

MESSAGES["unkscm"] = crlf(
    "OPTIONS nobodyKnowsThisScheme:totallyopaquecontent SIP/2.0\n"
    "To: sip:user@example.com\n"
    "From: sip:caller@example.net;tag=384\n"
    "Max-Forwards: 3\n"
    "Call-ID: unkscm.nasdfasser0q239nwsdfasdkl34\n"
    "CSeq: 3923423 OPTIONS\n"
    "Via: SIP/2.0/TCP host9.example.com;branch=z9hG4bKkdjuw39234\n"
    "Content-Length: 0\n"
    "\n"
)

MESSAGES["novelsc"] = crlf(
    "OPTIONS soap.beep://192.0.2.103:3002 SIP/2.0\n"
    "To: sip:user@example.com\n"
    "From: sip:caller@example.net;tag=384\n"
    "Max-Forwards: 3\n"
    "Call-ID: novelsc.asdfasser0q239nwsdfasdkl34\n"
    "CSeq: 3923423 OPTIONS\n"
    "Via: SIP/2.0/TCP host9.example.com;branch=z9hG4bKkdjuw39234\n"
    "Content-Length: 0\n"
    "\n"
)

MESSAGES["unksm2"] = crlf(
    "REGISTER sip:example.com SIP/2.0\n"
    "To: isbn:2983792873\n"
    "From: <http://www.example.com>;tag=3234233\n"
    "Call-ID: unksm2.daksdj@hyphenated-host.example.com\n"
    "CSeq: 234902 REGISTER\n"
    "Max-Forwards: 70\n"
    "Via: SIP/2.0/UDP 192.0.2.21:5060;branch=z9hG4bKkdjuw\n"
    "Contact: <name:John_Smith>\n"
    "l: 0\n"
    "\n"
)

MESSAGES["bext01"] = crlf(
    "OPTIONS sip:user@example.com SIP/2.0\n"
    "To: sip:j_user@example.com\n"
    "From: sip:caller@example.net;tag=242etr\n"
    "Max-Forwards: 6\n"
    "Call-ID: bext01.0ha0isndaksdj\n"
    "Require: nothingSupportsThis, nothingSupportsThisEither\n"
    "Proxy-Require: noProxiesSupportThis, norDoAnyProxiesSupportThis\n"
    "CSeq: 8 OPTIONS\n"
    "Via: SIP/2.0/TLS fold-and-staple.example.com;branch=z9hG4bKkdjuw\n"
    "Content-Length: 0\n"
    "\n"
)

MESSAGES["invut"] = crlf(
    "INVITE sip:user@example.com SIP/2.0\n"
    "Contact: <sip:caller@host5.example.net>\n"
    "To: sip:j.user@example.com\n"
    "From: sip:caller@example.net;tag=8392034\n"
    "Max-Forwards: 70\n"
    "Call-ID: invut.0ha0isndaksdjadsfij34n23d\n"
    "CSeq: 235448 INVITE\n"
    "Via: SIP/2.0/UDP somehost.example.com;branch=z9hG4bKkdjuw\n"
    "Content-Type: application/unknownformat\n"
    "Content-Length: 40\n"
    "\n"
    "<audio>\n"
    ' <pcmu port="443"/>\n'
    "</audio>\n"
)

MESSAGES["regaut01"] = crlf(
    "REGISTER sip:example.com SIP/2.0\n"
    "To: sip:j.user@example.com\n"
    "From: sip:j.user@example.com;tag=87321hj23128\n"
    "Max-Forwards: 8\n"
    "Call-ID: regaut01.0ha0isndaksdj\n"
    "CSeq: 9338 REGISTER\n"
    "Via: SIP/2.0/TCP 192.0.2.253;branch=z9hG4bKkdjuw\n"
    "Authorization: NoOneKnowsThisScheme opaque-data=here\n"
    "Content-Length:0\n"
    "\n"
)

MESSAGES["multi01"] = crlf(
    "INVITE sip:user@company.com SIP/2.0\n"
    "Contact: <sip:caller@host25.example.net>\n"
    "Via: SIP/2.0/UDP 192.0.2.25;branch=z9hG4bKkdjuw\n"
    "Max-Forwards: 70\n"
    "CSeq: 5 INVITE\n"
    "Call-ID: multi01.98asdh@192.0.2.1\n"
    "CSeq: 59 INVITE\n"
    "Call-ID: multi01.98asdh@192.0.2.2\n"
    "From: sip:caller@example.com;tag=3413415\n"
    "To: sip:user@example.com\n"
    "To: sip:other@example.net\n"
    "From: sip:caller@example.net;tag=2923420123\n"
    "Content-Type: application/sdp\n"
    "l: 154\n"
    "Contact: <sip:caller@host36.example.net>\n"
    "Max-Forwards: 5\n"
    "\n" + sdp("192.0.2.25") + "\n"
)

MESSAGES["mcl01"] = crlf(
    "OPTIONS sip:user@example.com SIP/2.0\n"
    "Via: SIP/2.0/UDP host5.example.net;branch=z9hG4bK293423\n"
    "To: sip:user@example.com\n"
    "From: sip:other@example.net;tag=3923942\n"
    "Call-ID: mcl01.fhn2323orihawfdoa3o4r52o3irsdf\n"
    "CSeq: 15932 OPTIONS\n"
    "Content-Length: 13\n"
    "Max-Forwards: 60\n"
    "Content-Length: 5\n"
    "Content-Type: text/plain\n"
    "\n"
    "There's no way to know how many octets are supposed to be here.\n"
)

MESSAGES["bcast"] = crlf(
    "SIP/2.0 200 OK\n"
    "Via: SIP/2.0/UDP 192.0.2.198;branch=z9hG4bK1324923\n"
    "Via: SIP/2.0/UDP 255.255.255.255;branch=z9hG4bK1saber23\n"
    "Call-ID: bcast.0384840201234ksdfak3j2erwedfsASdf\n"
    "CSeq: 35 INVITE\n"
    "From: sip:user@example.com;tag=11141343\n"
    "To: sip:user@example.edu;tag=2229\n"
    "Content-Length: 154\n"
    "Content-Type: application/sdp\n"
    "Contact: <sip:user@host28.example.com>\n"
    "\n" + sdp("192.0.2.198")
)

MESSAGES["zeromf"] = crlf(
    "OPTIONS sip:user@example.com SIP/2.0\n"
    "To: sip:user@example.com\n"
    "From: sip:caller@example.net;tag=3ghsd41\n"
    "Call-ID: zeromf.jfasdlfnm2o2l43r5u0asdfas\n"
    "CSeq: 39234321 OPTIONS\n"
    "Via: SIP/2.0/UDP host1.example.com;branch=z9hG4bKkdjuw2349i\n"
    "Max-Forwards: 0\n"
    "Content-Length: 0\n"
    "\n"
)

MESSAGES["cparam01"] = crlf(
    "REGISTER sip:example.com SIP/2.0\n"
    "Via: SIP/2.0/UDP saturn.example.com:5060;branch=z9hG4bKkdjuw\n"
    "Max-Forwards: 70\n"
    "From: sip:watson@example.com;tag=DkfVgjkrtMwaerKKpe\n"
    "To: sip:watson@example.com\n"
    "Call-ID: cparam01.70710@saturn.example.com\n"
    "CSeq: 2 REGISTER\n"
    "Contact: sip:+19725552222@gw1.example.net;unknownparam\n"
    "l: 0\n"
    "\n"
)

MESSAGES["cparam02"] = crlf(
    "REGISTER sip:example.com SIP/2.0\n"
    "Via: SIP/2.0/UDP saturn.example.com:5060;branch=z9hG4bKkdjuw\n"
    "Max-Forwards: 70\n"
    "From: sip:watson@example.com;tag=838293\n"
    "To: sip:watson@example.com\n"
    "Call-ID: cparam02.70710@saturn.example.com\n"
    "CSeq: 3 REGISTER\n"
    "Contact: <sip:+19725552222@gw1.example.net;unknownparam>\n"
    "l: 0\n"
    "\n"
)

MESSAGES["regescrt"] = crlf(
    "REGISTER sip:example.com SIP/2.0\n"
    "To: sip:user@example.com\n"
    "From: sip:user@example.com;tag=8\n"
    "Max-Forwards: 70\n"
    "Call-ID: regescrt.k345asrl3fdbv@192.0.2.1\n"
    "CSeq: 14398234 REGISTER\n"
    "Via: SIP/2.0/UDP host5.example.com;branch=z9hG4bKkdjuw\n"
    "M: <sip:user@example.com?Route=%3Csip:sip.example.com%3E>\n"
    "L:0\n"
    "\n"
)

MESSAGES["sdp01"] = crlf(
    "INVITE sip:user@example.com SIP/2.0\n"
    "To: sip:j_user@example.com\n"
    "Contact: <sip:caller@host15.example.net>\n"
    "From: sip:caller@example.net;tag=234\n"
    "Max-Forwards: 5\n"
    "Call-ID: sdp01.ndaksdj9342dasdd\n"
    "Accept: text/nobodyKnowsThis\n"
    "CSeq: 8 INVITE\n"
    "Via: SIP/2.0/UDP 192.0.2.15;branch=z9hG4bKkdjuw\n"
    "Content-Length: 150\n"
    "Content-Type: application/sdp\n"
    "\n" + sdp("192.0.2.5")
)

# ---------------------------------------------------------------- 3.4 Backward compatibility
MESSAGES["inv2543"] = crlf(
    "INVITE sip:UserB@example.com SIP/2.0\n"
    "Via: SIP/2.0/UDP iftgw.example.com\n"
    "From: <sip:+13035551111@ift.client.example.net;user=phone>\n"
    "Record-Route: <sip:UserB@example.com;maddr=ss1.example.com>\n"
    "To: sip:+16505552222@ss1.example.net;user=phone\n"
    "Call-ID: inv2543.1717@ift.client.example.com\n"
    "CSeq: 56 INVITE\n"
    "Content-Type: application/sdp\n"
    "\n"
    "v=0\n"
    "o=mhandley 29739 7272939 IN IP4 192.0.2.5\n"
    "s=-\n"
    "c=IN IP4 192.0.2.5\n"
    "t=0 0\n"
    "m=audio 49217 RTP/AVP 0\n"
)


def main() -> None:
    OUT.mkdir(exist_ok=True)
    for name, data in MESSAGES.items():
        (OUT / f"{name}.dat").write_bytes(data)


if __name__ == "__main__":
    main()
