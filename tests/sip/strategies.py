"""Hypothesis strategies for SIP values and messages (reusable by other SIP tests).

Everything generated here is valid on the wire and survives ``parse_message(serialize(m))``
unchanged: header values carry no leading/trailing whitespace, hosts and parameter names are
lowercase, and no generated header collides with a mandatory one.
"""

from __future__ import annotations

from hypothesis import strategies as st

from sip.headers import Headers, Via
from sip.message import Message, Request, Response
from sip.uri import NameAddr, SipUri

TOKEN_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!%*_+`'~"
LOWER_TOKEN_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789-.!%*_+`'~"
UNRESERVED = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.!~*'()"

tokens = st.text(TOKEN_CHARS, min_size=1, max_size=12)
lower_tokens = st.text(LOWER_TOKEN_CHARS, min_size=1, max_size=12)
methods = st.one_of(
    st.sampled_from(["INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "REGISTER", "INFO", "UPDATE"]),
    tokens,
)

_labels = st.text("abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=10)
hostnames = st.lists(_labels, min_size=1, max_size=4).map(".".join)
ipv4 = st.tuples(*[st.integers(0, 255)] * 4).map(lambda t: ".".join(map(str, t)))
ipv6 = st.integers(1, 0xFFFF).map(lambda n: f"[2001:db8::{n:x}]")
hosts = st.one_of(hostnames, ipv4, ipv6)
ports = st.one_of(st.none(), st.integers(1, 65535))

_escapes = st.integers(0, 255).map(lambda b: f"%{b:02X}")
users = st.lists(
    st.one_of(st.sampled_from(list(UNRESERVED + "&=+$,;?/")), _escapes), min_size=1, max_size=12
).map("".join)
_paramchars = st.text(UNRESERVED + "[]/:&+$", min_size=1, max_size=10)
uri_params = st.lists(
    st.tuples(st.text(UNRESERVED.lower(), min_size=1, max_size=8), st.none() | _paramchars),
    max_size=3,
).map(tuple)


@st.composite
def sip_uris(draw: st.DrawFn) -> SipUri:
    return SipUri(
        draw(st.sampled_from(["sip", "sips"])),
        draw(st.none() | users),
        None,
        draw(hosts),
        draw(ports),
        draw(uri_params),
    )


header_params = st.lists(st.tuples(lower_tokens, st.none() | tokens), max_size=3).map(tuple)
display_names = st.none() | st.text(
    st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=20
)


@st.composite
def name_addrs(draw: st.DrawFn, tag: bool | None = None) -> NameAddr:
    na = NameAddr(draw(sip_uris()), draw(display_names), draw(header_params))
    if tag is True or (tag is None and draw(st.booleans())):
        na = na.with_tag(draw(tokens))
    elif tag is False:
        na = NameAddr(na.uri, na.display_name, tuple(p for p in na.params if p[0] != "tag"))
    return na


@st.composite
def vias(draw: st.DrawFn) -> Via:
    params: tuple[tuple[str, str | None], ...] = (("branch", "z9hG4bK" + draw(tokens)),)
    if draw(st.booleans()):
        params += (("rport", None),)
    return Via(draw(st.sampled_from(["UDP", "TCP", "TLS"])), draw(hosts), draw(ports), params)


# Extension header values: any text without CR/LF, no surrounding whitespace.
header_values = st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=30).map(
    str.strip
)
extension_headers = st.lists(st.tuples(tokens.map(lambda t: "X-" + t), header_values), max_size=4)
bodies = st.binary(max_size=300)
call_ids = st.text(TOKEN_CHARS + "@:()<>/[]?{}", min_size=1, max_size=30)


@st.composite
def _common_headers(draw: st.DrawFn, method: str) -> list[tuple[str, str]]:
    items = [("Via", str(v)) for v in draw(st.lists(vias(), min_size=1, max_size=3))]
    items += [
        ("From", str(draw(name_addrs(tag=True)))),
        ("To", str(draw(name_addrs()))),
        ("Call-ID", draw(call_ids)),
        ("CSeq", f"{draw(st.integers(0, 2**31 - 1))} {method}"),
    ]
    if draw(st.booleans()):
        items.append(("Contact", str(draw(name_addrs(tag=False)))))
    items += draw(extension_headers)
    return items


@st.composite
def requests(draw: st.DrawFn, method: str | None = None) -> Request:
    """A valid request (``method`` fixed if given, e.g. ``requests("INVITE")``)."""
    method = draw(methods) if method is None else method
    items = draw(_common_headers(method))
    items.insert(1, ("Max-Forwards", str(draw(st.integers(0, 255)))))
    return Request(method, draw(sip_uris()), Headers(items), draw(bodies))


@st.composite
def responses(
    draw: st.DrawFn, status: st.SearchStrategy[int] | None = None, method: str | None = None
) -> Response:
    """A valid response (status drawn from ``status`` if given; CSeq ``method`` if given)."""
    reason = draw(st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=20))
    return Response(
        draw(st.integers(100, 699) if status is None else status),
        reason,
        Headers(draw(_common_headers(draw(methods) if method is None else method))),
        draw(bodies),
    )


def messages() -> st.SearchStrategy[Message]:
    return st.one_of(requests(), responses())
