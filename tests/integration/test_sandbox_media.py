"""Sandbox parties' media counters through the real ``b2bua serve``: an answered sandbox
sends a tone, and its record shows what it sent and received."""

from __future__ import annotations

from collections.abc import Callable

from .harness import DEFAULT_DIRECTORY, B2buaServer, Sipp
from .test_calls_sipp import routes
from .uapi import Uapi


def audio(record: dict[str, object], index: int) -> dict[str, int]:
    views = record["phoneCallView"]
    assert isinstance(views, list)
    return dict(views[index].get("media", {}).get("audio", {}))


def test_a_sandbox_to_sandbox_call_counts_both_tones_both_ways(b2bua: B2buaServer) -> None:
    api = Uapi(b2bua.api_url, "test-user-app", "test-user-secret")
    call_id = api.call_id(api.create(["0003*00"], ["0003*00"], query={"callDuration": 3}))
    record = api.wait_ended(call_id, timeout=15)
    assert record["disposition"] == 0  # answered
    source, dest = audio(record, 0), audio(record, 1)
    # about 2 s bridged (source answered at 1 s, bridged at 2 s, callDuration from the
    # source's answer: cut at 4 s), 50 packets a second
    for party in (source, dest):
        assert 60 <= party["rtp_packets_received"] <= 130, party  # the tone it sent
        assert party["rtp_lost"] == 0, party
    # each one's tone is what the other received, packet for packet
    assert source["rtp_packets_received"] == dest["rtp_packets_sent"]
    assert dest["rtp_packets_received"] == source["rtp_packets_sent"]
    assert source["rtp_bytes_received"] == 172 * source["rtp_packets_received"]


def test_a_phone_calling_a_sandbox_hears_it_and_the_sandbox_counts_the_echo(
    gateway: Callable[..., Sipp], b2bua_factory: Callable[..., B2buaServer]
) -> None:
    phone = gateway("gateway_answer.xml", rtp_echo=True, timeout=20)
    server = b2bua_factory(directory=DEFAULT_DIRECTORY + routes(p5354353=phone))
    api = Uapi(server.api_url, "test-user-app", "test-user-secret")
    call_id = api.call_id(api.create(["5354353"], ["0003*01"], query={"callDuration": 5}))
    record = api.wait_ended(call_id, timeout=20)
    caller, sandbox = audio(record, 0), audio(record, 1)
    # bridged about 3 s (the sandbox answers 2 s after the caller, callDuration 5 s)
    assert 100 <= sandbox["rtp_packets_received"] <= 200, sandbox  # its tone
    # the phone got the ringback (while the sandbox rang) and then the sandbox's tone
    assert caller["rtp_packets_sent"] >= sandbox["rtp_packets_received"] + 50
    # it echoed both: the ringback's echo went nowhere (not bridged yet), the tone's echo
    # reached the sandbox (the last may still be on their way at the end: up to 0.5 s)
    echoed = sandbox["rtp_packets_sent"]
    assert sandbox["rtp_packets_received"] - 25 <= echoed <= caller["rtp_packets_received"]
    # the echo's SSRC changed from the ringback's to the tone's: loss counted anew, not the
    # gap between their sequence numbers
    assert caller["rtp_lost"] <= 5 and sandbox["rtp_lost"] == 0, (caller, sandbox)
