"""Simple PhoneCalls through the real ``b2bua serve`` with real SIPp gateways and phones.

Each test asserts what the phones saw: who got INVITE, CANCEL and BYE and when, the caller id
each side was shown, and RTP flowing through the relay.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from engine.media.tone import encode_tone

from .harness import DEFAULT_DIRECTORY, B2buaServer, Sipp, SipLogEntry
from .uapi import Uapi

TONE = encode_tone(440.0, 0, -12.0)


@pytest.fixture
def gateway(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[Callable[..., Sipp]]:
    """SIPp gateways/phones; ``tone=True`` streams a 440 Hz tone after answering."""
    started: list[Sipp] = []

    def start(scenario: str, **options: Any) -> Sipp:
        options.setdefault("timeout", 40.0)
        sipp = Sipp(scenario, tmp_path, **options)
        (sipp.workdir / "tone.ulaw").write_bytes(TONE * 3)
        started.append(sipp)
        return sipp.start()

    yield start
    for sipp in started:
        sipp.kill()
    if request.node.rep_call.failed if hasattr(request.node, "rep_call") else False:
        for sipp in started:
            print(sipp.describe())


def routes(**prefixes: Sipp) -> str:
    """Directory [[routes]] sending each prefix (given as p<digits>=sipp) to that SIPp."""
    text = ""
    for key, sipp in prefixes.items():
        text += (
            f'\n[[routes]]\nprefix = "{key.removeprefix("p")}"\n'
            f'gateway = "udp:{sipp.address}"\nrate = 0.02\n'
        )
    return text


def first(entries: list[SipLogEntry]) -> SipLogEntry:
    assert entries, "expected a message, saw none"
    return entries[0]


def media_counters(record: dict[str, Any], index: int) -> dict[str, int]:
    view = record["phoneCallView"][index]
    return dict(view.get("media", {}).get("audio", {}))


def test_seed_example_two_public_sources_one_public_destination(
    gateway: Callable[..., Sipp], b2bua_factory: Callable[..., B2buaServer]
) -> None:
    winner = gateway("gateway_answer_tone.xml", variables={"ring_ms": "1000"})
    loser = gateway("gateway_noanswer.xml")
    dest = gateway("gateway_answer.xml", variables={"ring_ms": "500"}, rtp_echo=True)
    server = b2bua_factory(
        directory=DEFAULT_DIRECTORY
        + routes(p5354353=winner, p5302040=loser, p3235742879=dest)
    )
    api = Uapi(server.api_url, "test-user-app", "test-user-secret")
    reply = api.create(
        ["5354353", "5302040"],
        ["3235742879"],
        query={"callDuration": 4},
        callerId="John Doe <4242425>",
        callerIdDestination="Jane Roe <5550100>",
    )
    call_id = api.call_id(reply)
    assert reply.json()[0]["link"]["self"].endswith(f"/uapi/phoneCalls/@me/210/{call_id}")
    record = api.wait_ended(call_id, timeout=30)
    for sipp in (winner, loser, dest):
        sipp.wait(timeout=15)

    # both sources rang at once; the loser got CANCEL once the winner answered
    invite_a = first(winner.received("INVITE"))
    invite_b = first(loser.received("INVITE"))
    assert abs(invite_a.timestamp - invite_b.timestamp) < 0.5
    answer_a = first(winner.sent(200))
    cancel_b = first(loser.received("CANCEL"))
    assert 0 <= cancel_b.timestamp - answer_a.timestamp < 1.0
    assert not loser.received("BYE")
    # each side was shown the right caller id
    assert invite_a.from_display_name == "John Doe"
    assert "sip:4242425@" in (invite_a.header("From") or "")
    invite_dest = first(dest.received("INVITE"))
    assert invite_dest.from_display_name == "Jane Roe"
    assert "sip:5550100@" in (invite_dest.header("From") or "")
    # the destination is called only after the source answered
    assert invite_dest.timestamp >= answer_a.timestamp
    # BYE on both sides when callDuration (counted from the source's answer) ran out
    bye_a = first(winner.received("BYE"))
    bye_dest = first(dest.received("BYE"))
    assert 3.0 <= bye_a.timestamp - answer_a.timestamp <= 5.5
    assert abs(bye_a.timestamp - bye_dest.timestamp) < 1.0
    # the record
    assert record["disposition"] == 0
    assert record["hangupCause"] == "call duration reached"
    views = {v["number"]: v for v in record["phoneCallView"]}
    assert views["5354353"]["answered"]
    assert views["5302040"].get("hangupCause") == "answered elsewhere"
    assert views["3235742879"]["answered"]
    # media went both ways through the relay (its counters on the record): the winner's tone
    # reached the destination, which echoed it (sipp -rtp_echo), and the echo came back
    source_media = media_counters(record, 0)
    dest_media = media_counters(record, 2)
    assert source_media["rtp_packets_received"] > 50  # the winner's tone, into the relay
    assert dest_media["rtp_packets_sent"] > 50  # ... out to the destination
    assert dest_media["rtp_packets_received"] > 50  # the destination's echo, back in
    assert source_media["rtp_packets_sent"] > 50  # ... out to the source
    api.close()
