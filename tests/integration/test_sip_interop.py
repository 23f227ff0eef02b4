"""Our SIP stack (endpoint, InviteClient, InviteServer) against unmodified SIPp peers.

SIPp's built-in ``uac``/``uas`` scenarios over UDP and TCP, OPTIONS both ways, and scenarios
that drop or repeat a message so that our side has to retransmit (a 2xx until its ACK, an
INVITE until a response) or absorb a retransmission (re-ACK a repeated 2xx).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio

from sip.endpoint import IncomingRequest, SipEndpoint
from sip.headers import Headers
from sip.leg_events import LegAnswered, LegHungUp, LegRinging
from sip.message import Request
from sip.transaction import Peer
from sip.uac_driver import InviteClient
from sip.uas import options_response
from sip.uas_driver import InviteServer
from sip.uri import NameAddr, SipUri, parse_uri

from .harness import Sipp, free_port

pytestmark = pytest.mark.integration

SippFactory = Callable[..., Sipp]

SDP = (
    b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    b"m=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
)
TRANSPORTS = [("udp", "u1"), ("tcp", "t1")]


class DemoUas:
    """A tiny UAS: rings, answers with SDP, waits for BYE; answers OPTIONS."""

    def __init__(self) -> None:
        self.endpoint = SipEndpoint()
        self.ended: list[object] = []
        self.options = 0

    async def __call__(self, incoming: IncomingRequest) -> None:
        request = incoming.request
        if request.method == "OPTIONS":
            self.options += 1
            allow = self.endpoint.allowed_methods
            await incoming.respond(options_response(request, allow, ("application/sdp",)))
            return
        if request.method != "INVITE":
            await incoming.respond(request.response(405, to_tag="x"))
            return
        server = InviteServer(self.endpoint, incoming)
        await server.progress(180)
        await server.answer(SDP)
        self.ended.append(await server.next_event())


@asynccontextmanager
async def serving(
    uas: DemoUas | None = None,
) -> AsyncIterator[tuple[SipEndpoint, int]]:
    """One endpoint listening on the same free port for UDP and TCP.

    The port comes from the harness's range, free for both: an ephemeral UDP port taken with
    port 0 can be in use for TCP already (by any outgoing connection on the machine)."""
    uas = uas or DemoUas()
    endpoint = uas.endpoint
    port = free_port()
    await endpoint.listen("udp", "127.0.0.1", port)
    await endpoint.listen("tcp", "127.0.0.1", port)
    async with trio.open_nursery() as nursery:
        await nursery.start(endpoint.run, uas)
        yield endpoint, port
        await endpoint.aclose()


async def start_sipp(factory: SippFactory, scenario: str | Path, **options: object) -> Sipp:
    return await trio.to_thread.run_sync(lambda: factory(scenario, **options))


def write_scenario(tmp_path: Path, name: str, body: str) -> Path:
    path = tmp_path / f"{name}.xml"
    path.write_text(
        '<?xml version="1.0" encoding="ISO-8859-1" ?>\n'
        f'<scenario name="{name}">\n{body}\n</scenario>\n'
    )
    return path


# --------------------------------------------------------------------- SIPp calls us


@pytest.mark.parametrize(("transport", "flag"), TRANSPORTS)
async def test_sipp_uac_calls_our_uas(sipp_factory: SippFactory, transport: str, flag: str) -> None:
    uas = DemoUas()
    async with serving(uas) as (_, port):
        sipp = await start_sipp(
            sipp_factory,
            "uac",
            remote=f"127.0.0.1:{port}",
            transport=flag,
            calls=3,
            rate=10,
            pause_ms=100,
            timeout=20,
        )
        code = await sipp.wait_async()
        assert code == 0, sipp.describe()
        assert sipp.stats().successful == 3
        with trio.fail_after(5):
            while len(uas.ended) < 3:
                await trio.sleep(0.05)
        assert uas.ended == [LegHungUp("caller hung up")] * 3
        assert len(sipp.received(180)) == 3


# --------------------------------------------------------------------- we call SIPp


def invite_client(endpoint: SipEndpoint, sipp: Sipp, transport: str) -> InviteClient:
    host, port = sipp.address.split(":")
    return InviteClient(
        endpoint,
        peer=Peer(transport, host, int(port)),
        request_uri=SipUri("sip", "service", None, host, int(port)),
        from_addr=NameAddr(SipUri("sip", "4242425", None, "127.0.0.1", None), "John Doe"),
        to_addr=NameAddr(SipUri("sip", "service", None, host, int(port))),
    )


@pytest.mark.parametrize(("transport", "flag"), TRANSPORTS)
async def test_our_uac_calls_sipp_uas(sipp_factory: SippFactory, transport: str, flag: str) -> None:
    async with serving() as (endpoint, _):
        sipp = await start_sipp(sipp_factory, "uas", transport=flag, calls=1, timeout=20)
        call = invite_client(endpoint, sipp, transport)
        await call.start(SDP)
        with trio.fail_after(10):
            assert await call.next_event() == LegRinging(180, None)
            answered = await call.next_event()
        assert isinstance(answered, LegAnswered) and answered.sdp is not None
        assert b"m=audio" in answered.sdp
        await call.bye()
        code = await sipp.wait_async()
        assert code == 0, sipp.describe()
        assert sipp.stats().successful == 1
        invite = sipp.received("INVITE")[0]
        assert invite.from_display_name == "John Doe"
        assert len(sipp.received("ACK")) == 1 and len(sipp.received("BYE")) == 1


# --------------------------------------------------------------------- OPTIONS both ways

OPTIONS_UAC = """
  <send retrans="500">
    <![CDATA[
      OPTIONS sip:ping@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:sipp@[local_ip]:[local_port]>;tag=[call_number]
      To: <sip:ping@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 OPTIONS
      Max-Forwards: 70
      Content-Length: 0
    ]]>
  </send>
  <recv response="200">
    <action>
      <ereg regexp="INVITE" search_in="hdr" header="Allow:" check_it="true" assign_to="1"/>
    </action>
  </recv>
  <Reference variables="1"/>
"""

OPTIONS_UAS = """
  <recv request="OPTIONS"/>
  <send>
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Allow: INVITE, ACK, BYE, CANCEL, OPTIONS
      Content-Length: 0
    ]]>
  </send>
"""


async def test_options_both_ways(sipp_factory: SippFactory, tmp_path: Path) -> None:
    uas = DemoUas()
    async with serving(uas) as (endpoint, port):
        pinger = await start_sipp(
            sipp_factory,
            write_scenario(tmp_path, "options_uac", OPTIONS_UAC),
            remote=f"127.0.0.1:{port}",
            calls=1,
            timeout=10,
        )
        assert await pinger.wait_async() == 0, pinger.describe()
        assert uas.options == 1

        answerer = await start_sipp(
            sipp_factory, write_scenario(tmp_path, "options_uas", OPTIONS_UAS), timeout=10
        )
        host, sipp_port = answerer.address.split(":")
        peer = Peer("udp", host, int(sipp_port))
        request = Request(
            "OPTIONS",
            parse_uri(f"sip:ping@{answerer.address}"),
            Headers(
                [
                    ("Via", str(endpoint.make_via("udp"))),
                    ("Max-Forwards", "70"),
                    ("From", f"<sip:probe@127.0.0.1:{port}>;tag=p1"),
                    ("To", f"<sip:ping@{answerer.address}>"),
                    ("Call-ID", endpoint.new_call_id()),
                    ("CSeq", "1 OPTIONS"),
                ]
            ),
        )
        with trio.fail_after(10):
            responses = [r async for r in endpoint.request(request, peer)]
        assert [r.status for r in responses] == [200]
        assert "OPTIONS" in (responses[0].headers.get("Allow") or "")
        assert await answerer.wait_async() == 0, answerer.describe()


# --------------------------------------------------------------------- lost and repeated messages

UAC_WITHHOLDS_ACK = """
  <send retrans="500">
    <![CDATA[
      INVITE sip:service@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[call_number]
      To: <sip:service@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 INVITE
      Contact: <sip:sipp@[local_ip]:[local_port]>
      Max-Forwards: 70
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=user1 53655765 2353687637 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [media_port] RTP/AVP 0
      a=rtpmap:0 PCMU/8000
    ]]>
  </send>
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="200"/>
  <!-- the first ACK is lost (and so is its repetition on every retransmitted 200): the UAS
       must retransmit its 200 (RFC 3261 13.3.1.4: after T1 = 0.5 s, then 1 s later) until
       the second ACK, 2 s later, gets through -->
  <send lost="100">
    <![CDATA[
      ACK sip:service@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[call_number]
      To: <sip:service@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: 1 ACK
      Max-Forwards: 70
      Content-Length: 0
    ]]>
  </send>
  <pause milliseconds="2000"/>
  <send>
    <![CDATA[
      ACK sip:service@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[call_number]
      To: <sip:service@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: 1 ACK
      Max-Forwards: 70
      Content-Length: 0
    ]]>
  </send>
  <pause milliseconds="200"/>
  <send retrans="500">
    <![CDATA[
      BYE sip:service@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[call_number]
      To: <sip:service@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: 2 BYE
      Max-Forwards: 70
      Content-Length: 0
    ]]>
  </send>
  <recv response="200"/>
"""


async def test_our_uas_retransmits_200_until_the_ack(
    sipp_factory: SippFactory, tmp_path: Path
) -> None:
    uas = DemoUas()
    async with serving(uas) as (_, port):
        sipp = await start_sipp(
            sipp_factory,
            write_scenario(tmp_path, "uac_withholds_ack", UAC_WITHHOLDS_ACK),
            remote=f"127.0.0.1:{port}",
            calls=1,
            timeout=15,
        )
        assert await sipp.wait_async() == 0, sipp.describe()
        # read the raw log: the harness parser skips the entry after a "voluntary lost" line
        log = sipp.message_file.read_text(errors="replace")
        received = log.split("message received")[1:]
        oks = [m for m in received if "SIP/2.0 200 OK" in m and "CSeq: 1 INVITE" in m]
        assert len(oks) == 3  # the first 200 and its retransmissions at +0.5 s and +1.5 s
        assert log.count("voluntary lost") == 3  # the first ACK and its two repetitions
        with trio.fail_after(5):
            while not uas.ended:
                await trio.sleep(0.05)
        assert uas.ended == [
            LegHungUp("caller hung up")
        ]  # the ACK arrived in time: no "no ACK" BYE


UAS_SLOW = """
  <recv request="INVITE"/>
  <!-- no answer for 1 s, as if the INVITE had been lost: the UAC must retransmit it after
       T1 = 0.5 s (Timer A) -->
  <pause milliseconds="1000"/>
  <send>
    <![CDATA[
      SIP/2.0 180 Ringing
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:[local_ip]:[local_port];transport=[transport]>
      Content-Length: 0
    ]]>
  </send>
  <send retrans="500">
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:[local_ip]:[local_port];transport=[transport]>
      Content-Length: 0
    ]]>
  </send>
  <recv request="ACK"/>
  <recv request="BYE"/>
  <send>
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0
    ]]>
  </send>
"""


async def test_our_uac_retransmits_an_unanswered_invite(
    sipp_factory: SippFactory, tmp_path: Path
) -> None:
    async with serving() as (endpoint, _):
        sipp = await start_sipp(
            sipp_factory, write_scenario(tmp_path, "uas_slow", UAS_SLOW), timeout=15
        )
        call = invite_client(endpoint, sipp, "udp")
        await call.start(SDP)
        with trio.fail_after(10):
            assert isinstance(await call.next_event(), LegRinging)
            assert await call.next_event() == LegAnswered(None)
        await call.bye()
        assert await sipp.wait_async() == 0, sipp.describe()
        assert len(sipp.received("INVITE")) == 2  # sent at 0 s and (Timer A) 0.5 s


async def test_our_uac_reacks_when_its_ack_is_lost(sipp_factory: SippFactory) -> None:
    async with serving() as (endpoint, _):
        transport = endpoint.transport
        send_nowait = transport.send_nowait
        dropped: list[Request] = []

        def lossy_send_nowait(message: object, peer: Peer) -> bool:
            if isinstance(message, Request) and message.method == "ACK" and not dropped:
                dropped.append(message)  # the first ACK never leaves this process
                return True
            return send_nowait(message, peer)  # type: ignore[arg-type]

        transport.send_nowait = lossy_send_nowait  # type: ignore[method-assign]
        sipp = await start_sipp(sipp_factory, "uas", calls=1, timeout=15)
        call = invite_client(endpoint, sipp, "udp")
        await call.start(SDP)
        with trio.fail_after(10):
            assert isinstance(await call.next_event(), LegRinging)
            assert isinstance(await call.next_event(), LegAnswered)
            while not sipp.received("ACK"):
                await trio.sleep(0.05)
        await call.bye()
        assert await sipp.wait_async() == 0, sipp.describe()
        assert len(dropped) == 1
        # SIPp retransmitted its 200 (T1 = 0.5 s) and our second ACK got through
        assert len([m for m in sipp.sent(200) if m.cseq_method == "INVITE"]) >= 2
        acks = sipp.received("ACK")
        assert len(acks) == 1 and acks[0].header("via") == dropped[0].headers.get("Via")


UAC_WAITS_FOR_BYE = """
  <send retrans="500">
    <![CDATA[
      INVITE sip:service@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[call_number]
      To: <sip:service@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 INVITE
      Contact: sip:sipp@[local_ip]:[local_port]
      Max-Forwards: 70
      Content-Length: 0
    ]]>
  </send>
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="200"/>
  <send>
    <![CDATA[
      ACK sip:service@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[call_number]
      To: <sip:service@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: 1 ACK
      Max-Forwards: 70
      Content-Length: 0
    ]]>
  </send>
  <recv request="BYE"/>
  <send>
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0
    ]]>
  </send>
"""


class HangingUpUas(DemoUas):
    """Answers, then hangs up itself once the ACK is in."""

    async def __call__(self, incoming: IncomingRequest) -> None:
        if incoming.request.method != "INVITE":
            await super().__call__(incoming)
            return
        server = InviteServer(self.endpoint, incoming)
        await server.answer(SDP)
        with trio.fail_after(5):
            await server.acked.wait()
        await server.bye()
        self.ended.append("bye sent")


@pytest.mark.parametrize(("transport", "flag"), TRANSPORTS)
async def test_our_uas_hangs_up_sipp_uac(
    sipp_factory: SippFactory, tmp_path: Path, transport: str, flag: str
) -> None:
    uas = HangingUpUas()
    async with serving(uas) as (_, port):
        sipp = await start_sipp(
            sipp_factory,
            write_scenario(tmp_path, "uac_waits_for_bye", UAC_WAITS_FOR_BYE),
            remote=f"127.0.0.1:{port}",
            transport=flag,
            calls=1,
            timeout=15,
        )
        assert await sipp.wait_async() == 0, sipp.describe()
        bye = sipp.received("BYE")[0]
        # the BYE goes to SIPp's Contact (over TCP: on the connection SIPp opened)
        assert bye.is_request and bye.transport.upper() == transport.upper()
        assert uas.ended == ["bye sent"]
