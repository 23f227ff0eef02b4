"""Call features on both media backends (``[media] backend = "relay"`` and ``"rtpengine"``, a
real rtpengine in userspace started once for the module), and rtpengine failing under calls.

What a user checks: the phones' SIP (re-INVITEs for hold, the caller's own hold answered), the
record (disposition, hangupCause, media counters), the API's answers, and the server staying up.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from .conftest import need_rtpengine
from .harness import (
    DEFAULT_DIRECTORY,
    B2buaServer,
    RtpEndpoint,
    Sipp,
    free_port,
    free_port_range,
    sdp_media_port,
)
from .rtpengine_daemon import Rtpengine
from .test_calls_sipp import first, media_counters, registered_phone, routes
from .uapi import Uapi

BOTH = pytest.mark.parametrize("media", ["relay", "rtpengine"], indirect=True)


@BOTH
def test_rtp_goes_both_ways_counted_at_the_phone(
    media: dict[str, object],
    gateway: Callable[..., Sipp],
    b2bua_factory: Callable[..., B2buaServer],
    rtp_factory: Callable[..., RtpEndpoint],
) -> None:
    """Phone A's media is played by the test: what it sends to the address its INVITE named
    reaches the destination (which echoes it), and the echo comes back to it."""
    a = gateway("gateway_answer.xml")
    dest = gateway("gateway_answer.xml", rtp_echo=True)
    server = b2bua_factory(directory=DEFAULT_DIRECTORY + routes(p5354353=a, p3235742879=dest))
    api = Uapi(server.api_url, "test-user-app", "test-user-secret")
    call_id = api.call_id(api.create(["5354353"], ["3235742879"], query={"callDuration": 5}))
    api.wait(call_id, lambda r: r.get("state") == "bridged", timeout=15)
    port = sdp_media_port(first(a.received("INVITE")).body)
    assert port is not None
    phone = rtp_factory()
    phone.send(("127.0.0.1", port), count=100, interval=0.01)
    counts = phone.wait_received(90, timeout=5)  # the first may go out before latching
    assert counts.received >= 90, counts
    record = api.wait_ended(call_id, timeout=20)
    assert media_counters(record, 0)["rtp_packets_received"] >= 100
    assert media_counters(record, 1)["rtp_packets_received"] >= 90  # the echo
    api.close()


@BOTH
def test_hold_and_unhold_through_the_api_reinvite_the_party(
    media: dict[str, object],
    gateway: Callable[..., Sipp],
    b2bua_factory: Callable[..., B2buaServer],
) -> None:
    a = gateway("gateway_answer_tone.xml", variables={"ring_ms": "200"})
    dest = gateway("phone_reinvite.xml", variables={"ring_ms": "200"}, rtp_echo=True)
    server = b2bua_factory(directory=DEFAULT_DIRECTORY + routes(p5354353=a, p3235742879=dest))
    api = Uapi(server.api_url, "test-user-app", "test-user-secret")
    call_id = api.call_id(api.create(["5354353"], ["3235742879"], query={"callDuration": 6}))
    api.wait(call_id, lambda r: r.get("state") == "bridged", timeout=15)
    view = api.get(call_id)["phoneCallView"][1]["id"]
    held = api.act(call_id, {"action": "OnHold", "phoneCallViewId": view})
    assert held.status_code == 200, held.text
    api.wait(call_id, lambda r: bool(r["phoneCallView"][1].get("onHold")), timeout=10)
    resumed = api.act(call_id, {"action": "OffHold", "phoneCallViewId": view})
    assert resumed.status_code == 200, resumed.text
    record = api.wait_ended(call_id, timeout=20)
    assert record["disposition"] == 0, record
    dest.wait(timeout=10)
    reinvites = dest.received("INVITE")[1:]
    assert len(reinvites) == 2, [m.body for m in dest.received("INVITE")]
    assert "a=sendonly" in reinvites[0].body
    assert "a=sendrecv" in reinvites[1].body
    # the far end still talks to the same media address it was given first
    assert _media_port(reinvites[0].body) == _media_port(first(dest.received("INVITE")).body)
    # media flowed both ways before and after: the source's tone in, the echo back
    assert media_counters(record, 0)["rtp_packets_received"] > 50
    assert media_counters(record, 1)["rtp_packets_received"] > 50
    api.close()


@BOTH
def test_a_caller_putting_us_on_hold_gets_its_answer(
    media: dict[str, object],
    gateway: Callable[..., Sipp],
    b2bua_factory: Callable[..., B2buaServer],
) -> None:
    """A phone's own re-INVITE (a=sendonly) is answered a=recvonly, the call goes on."""
    server = b2bua_factory()
    registered_phone(gateway, server, "0003*211", "secret211")
    caller = gateway(
        "caller_hold.xml",
        remote=server.sip_address,
        service="211",
        keywords={"caller": "0003*210"},
        auth=("0003*210", "secret210"),
        rtp_echo=True,
        pause_ms=1500,
    )
    assert caller.wait(timeout=20) == 0, caller.describe()
    answers = [m for m in caller.received(200) if "a=" in m.body]
    assert any("a=recvonly" in m.body or "a=inactive" in m.body for m in answers)


@BOTH
def test_a_sandbox_party_counts_and_the_call_ends_on_time(
    media: dict[str, object],
    gateway: Callable[..., Sipp],
    b2bua_factory: Callable[..., B2buaServer],
) -> None:
    """A registered phone calls the sandbox: the phone hears its tone (and echoes it back, so
    what the phone sent into the media backend is counted), BYE when callDuration runs out."""
    server = b2bua_factory()
    phone = registered_phone(gateway, server, "0003*210", "secret210")
    api = Uapi(server.api_url, "test-user-app", "test-user-secret")
    call_id = api.call_id(api.create(["0003*210"], ["0003*00"], query={"callDuration": 4}))
    record = api.wait_ended(call_id, timeout=20)
    assert record["disposition"] == 0, record
    assert phone.received("BYE")
    # about 3 s of ringback then tone, each echoed by the phone: 50 packets a second
    assert media_counters(record, 0)["rtp_packets_received"] > 100, record
    api.close()


@BOTH
def test_transfer_connects_the_media_of_the_party_staying_to_the_new_one(
    media: dict[str, object],
    gateway: Callable[..., Sipp],
    b2bua_factory: Callable[..., B2buaServer],
) -> None:
    a = gateway("gateway_answer_tone.xml", variables={"ring_ms": "200"}, timeout=30)
    b = gateway("gateway_answer.xml", variables={"ring_ms": "200"}, rtp_echo=True)
    c = gateway("gateway_answer.xml", variables={"ring_ms": "200"}, rtp_echo=True)
    server = b2bua_factory(
        directory=DEFAULT_DIRECTORY + routes(p5354353=a, p3235742879=b, p3235742880=c),
        config={"calls": {"wait_for_pickup": 10}},
    )
    api = Uapi(server.api_url, "test-user-app", "test-user-secret")
    reply = api.create(
        ["5354353"], ["3235742879"], query={"callDuration": 7, "allowPublicTransfer": "true"}
    )
    call_id = api.call_id(reply)
    api.wait(call_id, lambda r: r.get("state") == "bridged", timeout=15)
    time.sleep(1)
    moved = api.act(
        call_id,
        {"action": "Transfer", "sendCallTo": "3235742880", "transferFromNumber": "3235742879"},
    )
    assert moved.status_code == 200, moved.text
    record = api.wait_ended(call_id, timeout=20)
    views = {v["number"]: v for v in record["phoneCallView"]}
    assert views["3235742879"].get("hangupCause") == "transferred"
    assert views["3235742880"]["answered"]
    # the new party echoed the source's tone: it heard it through the media backend
    assert views["3235742880"]["media"]["audio"]["rtp_packets_received"] > 50, views
    assert first(b.received("BYE")) and first(c.received("BYE"))
    assert len(a.received("INVITE")) == 1  # the source stayed up through the transfer
    api.close()


@BOTH
def test_early_media_reaches_the_ringing_destination(
    media: dict[str, object],
    gateway: Callable[..., Sipp],
    b2bua_factory: Callable[..., B2buaServer],
) -> None:
    """The destination's 183 with SDP connects the media before the answer: it echoes the
    source's tone while it rings (3 s) and after it answered (about 3 s)."""
    a = gateway("gateway_answer_tone.xml", variables={"ring_ms": "200"}, timeout=30)
    d = gateway("gateway_early_media.xml", variables={"ring_ms": "3000"}, rtp_echo=True)
    server = b2bua_factory(directory=DEFAULT_DIRECTORY + routes(p5354353=a, p3235742879=d))
    api = Uapi(server.api_url, "test-user-app", "test-user-secret")
    call_id = api.call_id(api.create(["5354353"], ["3235742879"], query={"callDuration": 6}))
    record = api.wait_ended(call_id, timeout=20)
    assert record["disposition"] == 0, record
    assert first(d.sent(183))
    # 50 packets a second: well over the ~140 of the bridged time alone
    assert media_counters(record, 1)["rtp_packets_received"] > 220, record
    api.close()


def test_recording_and_listen_in_are_refused_clearly_with_rtpengine(
    rtpengine_daemon: Rtpengine,
    gateway: Callable[..., Sipp],
    b2bua_factory: Callable[..., B2buaServer],
) -> None:
    a = gateway("gateway_answer.xml", rtp_echo=True)
    server = b2bua_factory(
        directory=DEFAULT_DIRECTORY + routes(p5354353=a),
        config={"media": {"backend": "rtpengine", "rtpengine": [rtpengine_daemon.address]}},
    )
    api = Uapi(server.api_url, "test-user-app", "test-user-secret")
    call_id = api.call_id(api.create(["5354353"], ["0003*00"], query={"callDuration": 3}))
    api.wait(call_id, lambda r: r.get("state") == "bridged", timeout=15)
    reply = api.act(call_id, {"action": "StartRecording"})
    assert reply.status_code == 501, reply.text
    assert reply.json()["error"]["code"] == "request_not_implemented"
    assert "rtpengine" in reply.json()["error"]["message"]
    # the listen-in actions need the relay's mixer: refused the same way, before anyone rings
    reply = api.act(call_id, {"action": "Monitor", "sendCallTo": "0003*01"})
    assert reply.status_code == 501, reply.text
    assert reply.json()["error"]["code"] == "request_not_implemented"
    assert "rtpengine" in reply.json()["error"]["message"]
    assert api.wait_ended(call_id, timeout=15)["disposition"] == 0  # the call went on
    api.close()


def test_rtpengine_not_answering_fails_the_call_naming_it_and_the_next_call_works(
    gateway: Callable[..., Sipp],
    b2bua_factory: Callable[..., B2buaServer],
    tmp_path: Path,
) -> None:
    """rtpengine killed under a live call: the call ends with a cause naming rtpengine, the
    server stays up, a call while it is down fails the same way, and once it is back (same ng
    port) the next call works."""
    need_rtpengine()
    daemon = Rtpengine(free_port_range(100), log_path=tmp_path / "rtpengine.log").start()
    try:
        a = gateway("gateway_answer.xml", rtp_echo=True, timeout=60)
        server = b2bua_factory(
            directory=DEFAULT_DIRECTORY + routes(p5354353=a),
            config={"media": {"backend": "rtpengine", "rtpengine": [daemon.address]}},
        )
        api = Uapi(server.api_url, "test-user-app", "test-user-secret")
        live = api.call_id(api.create(["5354353"], ["0003*00"], query={"callDuration": 60}))
        api.wait(live, lambda r: r.get("state") == "bridged", timeout=15)
        daemon.kill()
        killed = time.monotonic()
        record = api.wait_ended(live, timeout=15)
        assert time.monotonic() - killed < 10
        assert f"rtpengine {daemon.address}" in record["hangupCause"], record
        assert record["disposition"] == 0  # it was answered: the cause says why it ended
        assert first(a.received("BYE"))  # the phone was hung up

        # while it is down: the call fails at once, saying so; the server answers
        down = api.call_id(api.create(["0003*00"], ["0003*01"], query={"callDuration": 2}))
        failed = api.wait_ended(down, timeout=15)
        assert "rtpengine" in failed["hangupCause"], failed
        assert server.returncode is None

        daemon.start()  # back on the same ng port
        # 0003*00 answers after 1 s, 0003*01 2 s after that: bridged for about 2 s
        again = api.call_id(api.create(["0003*00"], ["0003*01"], query={"callDuration": 5}))
        record = api.wait_ended(again, timeout=20)
        assert record["disposition"] == 0, record["hangupCause"]
        assert record["hangupCause"] == "call duration reached"
        api.close()
    finally:
        daemon.stop()


def test_calls_move_on_from_an_rtpengine_that_does_not_answer(
    rtpengine_daemon: Rtpengine, b2bua_factory: Callable[..., B2buaServer]
) -> None:
    """Two instances, the first one dead (nothing on its port): each call ends up on the live
    one and is bridged; the dead one is named in the log."""
    dead = f"udp:127.0.0.1:{free_port('udp')}"
    server = b2bua_factory(
        config={"media": {"backend": "rtpengine", "rtpengine": [dead, rtpengine_daemon.address]}},
    )
    api = Uapi(server.api_url, "test-user-app", "test-user-secret")
    for _ in range(2):
        # 0003*00 answers after 1 s, then the destination after 1 s more: bridged for 2 s
        call_id = api.call_id(api.create(["0003*00"], ["0003*00"], query={"callDuration": 3}))
        record = api.wait_ended(call_id, timeout=20)
        assert record["disposition"] == 0, record["hangupCause"]
        assert record["hangupCause"] == "call duration reached"
    assert f"rtpengine {dead} did not answer offer" in server.output()
    assert f"the call moves to rtpengine {rtpengine_daemon.address}" in server.output()
    api.close()


def _media_port(body: str) -> str:
    for line in body.splitlines():
        if line.startswith("m=audio"):
            return line.split()[1]
    raise AssertionError(f"no m=audio in {body!r}")
