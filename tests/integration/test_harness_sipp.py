"""The harness and the scenarios in sipp_scenarios/, checked against real SIPp peers.

Each scenario plays its role against another SIPp (built-in ``-sn uac`` or one of ours), and the
test reads what the phones saw in their message logs, as the engine's tests will.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path

import pytest

from .harness import (
    SCENARIO_DIR,
    B2buaServer,
    Direction,
    RtpEndpoint,
    Sipp,
    SippExit,
    display_name,
    free_port_group,
    free_port_range,
    free_ports,
    parse_message_log,
    parse_stats,
    sdp_media_port,
)
from .sipp_pcaps import sipp_pcap

SippFactory = Callable[..., Sipp]
RtpFactory = Callable[..., RtpEndpoint]


# ---------------------------------------------------------------------------------- parsers

STATS = (
    "StartTime;CurrentTime;TotalCallCreated;SuccessfulCall(P);SuccessfulCall(C);"
    "FailedCall(P);FailedCall(C);Retransmissions(P);Retransmissions(C);\n"
    "2026-01-01\t10:00:00.0;2026-01-01\t10:00:01.0;0;0;0;0;0;0;0;\n"
    "2026-01-01\t10:00:00.0;2026-01-01\t10:00:05.0;3;1;2;0;1;0;4;\n"
)

LOG = """\
----------------------------------------------- 2026-01-01 10:00:00.250000
UDP message received [300] bytes :

INVITE sip:0003*210@127.0.0.1:5060 SIP/2.0
v: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1
f: "Jane \\"J\\" Roe" <sip:4242426@example.com>;tag=a
To: <sip:0003*210@example.com>
i: call-1
CSeq: 7 INVITE
Content-Length: 0


----------------------------------------------- 2026-01-01 10:00:01.750000
UDP message sent (200 bytes):

SIP/2.0 200 OK
Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1
From: "Jane \\"J\\" Roe" <sip:4242426@example.com>;tag=a
To: <sip:0003*210@example.com>;tag=b
Call-ID: call-1
CSeq: 7 INVITE
Content-Type: application/sdp
Content-Length: 40

v=0
m=audio 4000 RTP/AVP 0

"""


def test_stats_reads_the_final_row() -> None:
    stats = parse_stats(STATS)
    assert (stats.successful, stats.failed, stats.retransmissions) == (2, 1, 4)
    assert stats.created == 3


def test_stats_without_data_row_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="no data row"):
        parse_stats("StartTime;SuccessfulCall(C)\n")


def test_message_log_gives_methods_statuses_headers_and_times() -> None:
    invite, ok = parse_message_log(LOG)
    assert invite.direction is Direction.RECEIVED and invite.method == "INVITE"
    assert invite.call_id == "call-1" and (invite.header("Via") or "").startswith("SIP/2.0/UDP")
    assert invite.from_display_name == 'Jane "J" Roe'
    assert ok.direction is Direction.SENT and ok.status == 200 and ok.cseq_method == "INVITE"
    assert ok.timestamp - invite.timestamp == pytest.approx(1.5)
    assert sdp_media_port(ok.body) == 4000


@pytest.mark.parametrize(
    ("value", "name"),
    [
        ('"Alice" <sip:a@x>;tag=1', "Alice"),
        ("Bob Smith <sip:b@x>", "Bob Smith"),
        ("<sip:c@x>", None),
        ("sip:d@x;tag=2", None),
    ],
)
def test_display_name(value: str, name: str | None) -> None:
    assert display_name(value) == name


# ------------------------------------------------------------------------------------ ports


def test_port_group_is_free_and_distinct() -> None:
    group = free_port_group()
    ports = {group.sip, group.control, group.media, group.media + 2}
    assert len(ports) == 4 and group.media % 2 == 0
    for port in ports:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind(("127.0.0.1", port))


def test_free_ports_and_ranges() -> None:
    ports = free_ports(5)
    assert len(set(ports)) == 5
    first, last = free_port_range(50)
    assert first % 2 == 0 and last - first + 1 == 50


# ------------------------------------------------------------------------------- scenarios


def test_every_scenario_loads(sipp_factory: SippFactory) -> None:
    """A malformed scenario makes SIPp exit 255 at once; a loadable one waits for its peer."""
    scenarios = sorted(SCENARIO_DIR.glob("*.xml"))
    assert len(scenarios) >= 10
    dtmf = sipp_pcap("dtmf_2833_1.pcap")
    runs = []
    for path in scenarios:
        calls_out = path.name.startswith(("caller", "phone_register"))
        runs.append(
            sipp_factory(
                path.name,
                # nobody answers on the discard port: a caller gives up after 300 ms
                remote="127.0.0.1:9" if calls_out else None,
                extra_args=["-recv_timeout", "300"] if calls_out else [],
                keywords={"caller": "load-check"} if path.name.startswith("caller") else None,
                variables={"user": "u", "password": "p"} if "registrar" in path.name else None,
                # for scenarios that rtp_stream or play_pcap_audio them
                files={"tone.ulaw": b"\xff" * 1600, "dtmf.pcap": dtmf},
                timeout=1,
            )
        )
    codes = {run.name: run.wait(15) for run in runs}
    expected = {run.name: SippExit.SOME_FAILED if run.remote else SippExit.TIMEOUT for run in runs}
    wrong = [run.describe() for run in runs if codes[run.name] != expected[run.name]]
    assert codes == expected, wrong


def test_phone_answer_against_builtin_uac(
    sipp_factory: SippFactory, rtp_factory: RtpFactory
) -> None:
    phone = sipp_factory(
        "phone_answer.xml", rtp_echo=True, variables={"ring_ms": "300"}, timeout=15
    )
    caller = sipp_factory("uac", remote=phone.address, pause_ms=800, timeout=15)
    # while the call is up, the phone's media port echoes RTP back (-rtp_echo)
    phone.wait_for_message("ACK", timeout=10)
    with rtp_factory() as rtp:
        rtp.send(("127.0.0.1", phone.media_port), count=10, interval=0.005)
        assert rtp.wait_received(10).received == 10
    assert caller.wait() == SippExit.ALL_OK, caller.describe()
    assert phone.wait() == SippExit.ALL_OK, phone.describe()
    assert phone.stats().successful == 1
    ringing, answer = phone.sent(180)[0], phone.sent(200)[0]
    assert answer.timestamp - ringing.timestamp >= 0.25  # rang for ring_ms
    assert sdp_media_port(answer.body) == phone.media_port
    bye = phone.received("BYE")[0]
    assert bye.timestamp - answer.timestamp >= 0.7  # the caller talked for -d 800


def test_phone_busy_gives_486(sipp_factory: SippFactory) -> None:
    phone = sipp_factory("phone_busy.xml", timeout=10)
    caller = sipp_factory("uac", remote=phone.address, timeout=10)
    assert caller.wait() == SippExit.SOME_FAILED  # the built-in uac wanted a 200
    assert [m.status for m in caller.received() if m.status and m.status >= 200] == [486]
    assert phone.wait() == SippExit.ALL_OK, phone.describe()
    assert phone.received("ACK")


def test_phone_decline_gives_603_after_ringing(sipp_factory: SippFactory) -> None:
    phone = sipp_factory("phone_decline.xml", variables={"ring_ms": "200"}, timeout=10)
    caller = sipp_factory("uac", remote=phone.address, timeout=10)
    assert caller.wait() == SippExit.SOME_FAILED
    assert caller.received(180) and caller.received(603)
    assert phone.wait() == SippExit.ALL_OK, phone.describe()


def test_phone_noanswer_is_cancelled(sipp_factory: SippFactory) -> None:
    phone = sipp_factory("phone_noanswer.xml", timeout=10)
    caller = sipp_factory(
        "caller_cancel.xml", remote=phone.address, pause_ms=300, keywords={"caller": "alice"}
    )
    assert caller.wait() == SippExit.ALL_OK, caller.describe()
    assert phone.wait() == SippExit.ALL_OK, phone.describe()
    cancel = phone.received("CANCEL")
    assert len(cancel) == 1, "the CANCEL reached the phone"
    assert [m.status for m in phone.sent() if m.status and m.status >= 200] == [200, 487]
    assert phone.received("ACK")


def test_ringing_phone_answer_accepts_a_cancel(sipp_factory: SippFactory) -> None:
    phone = sipp_factory("phone_answer.xml", variables={"ring_ms": "5000"}, timeout=10)
    caller = sipp_factory(
        "caller_cancel.xml", remote=phone.address, pause_ms=200, keywords={"caller": "alice"}
    )
    assert caller.wait() == SippExit.ALL_OK, caller.describe()
    assert phone.wait() == SippExit.ALL_OK, phone.describe()
    assert phone.sent(487) and not phone.sent(200)[1:]


def test_caller_invite_and_phone_answer_hangup(sipp_factory: SippFactory) -> None:
    phone = sipp_factory("phone_answer_hangup.xml", variables={"talk_ms": "500"}, timeout=10)
    caller = sipp_factory(
        "caller_invite.xml",
        remote=phone.address,
        keywords={"caller": "alice"},
        pause_ms=5000,
        timeout=10,
    )
    assert phone.wait() == SippExit.ALL_OK, phone.describe()
    caller.wait()  # the built-in BYE handling of a pausing caller counts its call as failed
    answer = phone.sent(200)[0]
    bye = phone.sent("BYE")[0]
    assert 0.4 <= bye.timestamp - answer.timestamp < 3
    assert caller.received("BYE"), "the phone's BYE reached the caller"


def test_caller_invite_talks_then_hangs_up(sipp_factory: SippFactory) -> None:
    phone = sipp_factory("phone_answer.xml", rtp_echo=True, timeout=10)
    caller = sipp_factory(
        "caller_invite.xml", remote=phone.address, keywords={"caller": "alice"}, pause_ms=300
    )
    assert caller.wait() == SippExit.ALL_OK, caller.describe()
    assert phone.wait() == SippExit.ALL_OK, phone.describe()
    invite = phone.received("INVITE")[0]
    assert "<sip:alice@" in (invite.header("From") or "")
    assert "PCMU" in invite.body


def test_caller_hold_against_phone_reinvite(sipp_factory: SippFactory) -> None:
    phone = sipp_factory("phone_reinvite.xml", timeout=10)
    caller = sipp_factory(
        "caller_hold.xml", remote=phone.address, keywords={"caller": "alice"}, pause_ms=200
    )
    assert caller.wait() == SippExit.ALL_OK, caller.describe()
    assert phone.wait() == SippExit.ALL_OK, phone.describe()
    invites = phone.received("INVITE")
    assert len(invites) == 2 and "a=sendonly" in invites[1].body
    answers = [m for m in phone.sent(200) if m.cseq_method == "INVITE"]
    assert "a=recvonly" in answers[-1].body


def test_phone_register_with_digest_then_answers(sipp_factory: SippFactory) -> None:
    registrar = sipp_factory(
        "registrar_challenge.xml",
        variables={"user": "0003*210", "password": "secret210"},
        timeout=15,
    )
    phone = sipp_factory(
        "phone_register.xml",
        remote=registrar.address,
        service="0003*210",
        auth=("0003*210", "secret210"),
        ooc_scenario="phone_answer.xml",
        pause_ms=2500,
        timeout=15,
    )
    registrar.wait_for_message(200, Direction.SENT, timeout=10)
    caller = sipp_factory("uac", remote=phone.address, pause_ms=100, timeout=10)
    assert caller.wait() == SippExit.ALL_OK, caller.describe()
    assert phone.wait() == SippExit.ALL_OK, phone.describe()
    assert registrar.wait() == SippExit.ALL_OK, registrar.describe()
    registers = registrar.received("REGISTER")
    assert len(registers) == 4
    assert 'username="0003*210"' in (registers[1].header("Authorization") or "")
    assert [m.status for m in registrar.sent()] == [401, 200, 401, 200]
    assert phone.received("INVITE"), "the call reached the registered phone"


def test_phone_answer_video_answers_video_only_when_offered(
    sipp_factory: SippFactory, tmp_path: Path
) -> None:
    audio_only = sipp_factory("phone_answer_video.xml", timeout=10)
    caller = sipp_factory("uac", remote=audio_only.address, timeout=10)
    assert caller.wait() == SippExit.ALL_OK, caller.describe()
    assert "m=video" not in audio_only.sent(200)[0].body

    offer_video = tmp_path / "caller_video.xml"
    offer_video.write_text(
        (SCENARIO_DIR / "caller_invite.xml")
        .read_text()
        .replace(
            "a=sendrecv\n",
            "a=sendrecv\nm=video [media_port+2] RTP/AVP 96\na=rtpmap:96 H264/90000\n",
            1,
        )
    )
    video = sipp_factory("phone_answer_video.xml", timeout=10)
    caller = sipp_factory(
        offer_video, remote=video.address, keywords={"caller": "alice"}, pause_ms=100
    )
    assert caller.wait() == SippExit.ALL_OK, caller.describe()
    answer = video.sent(200)[0].body
    assert sdp_media_port(answer, "video") == video.media_port + 2


# ----------------------------------------------------------------------------- the server


def test_b2bua_server_fixture_reads_addresses_and_drains(
    b2bua_factory: Callable[..., B2buaServer],
) -> None:
    import httpx

    server = b2bua_factory(config={"calls": {"drain": 1}})
    udp_host, udp_port = server.sip_udp or ("", 0)
    tcp_host, tcp_port = server.sip_tcp or ("", 0)
    assert udp_host == tcp_host == "127.0.0.1" and udp_port > 0 and tcp_port > 0
    assert udp_port != 5060 and server.api_url.startswith("http://127.0.0.1:")
    with socket.create_connection((tcp_host, tcp_port), timeout=5):
        pass  # the SIP TCP listener accepts
    token = httpx.post(
        f"{server.api_url}/oauth/token.php",
        data={
            "grant_type": "client_credentials",
            "client_id": "test-user-app",
            "client_secret": "test-user-secret",
        },
        timeout=10,
    )
    assert token.status_code == 200, token.text  # the directory file we wrote was loaded
    assert token.json()["token_type"] == "Bearer"
    assert server.stop() == 0, server.describe()  # SIGTERM drains and exits 0


async def test_waiting_from_trio_keeps_the_event_loop_running(sipp_factory: SippFactory) -> None:
    import trio

    phone = sipp_factory("phone_decline.xml", variables={"ring_ms": "300"}, timeout=10)
    caller = sipp_factory("uac", remote=phone.address, timeout=10)
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            await trio.sleep(0.01)
            ticks += 1

    async with trio.open_nursery() as nursery:
        nursery.start_soon(tick)
        ringing = await phone.wait_for_message_async(180, Direction.SENT)
        assert await caller.wait_async() == SippExit.SOME_FAILED
        nursery.cancel_scope.cancel()
    assert ringing.status == 180 and ticks > 5  # the loop ran while SIPp was being waited for
