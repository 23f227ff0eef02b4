"""Real audio through the relay: two pjsua2 softphones registered at the real server.

The App makes a Simple PhoneCall from extension 0003*210 (alice, who plays a 700 Hz tone) to
0003*211 (bob, who records). What a user checks: bob heard sound, not silence, at alice's pitch;
and both phones were hung up when callDuration ran out.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from .harness import B2buaServer
from .softphone import Softphone, dominant_frequency, rms, wait_for_wav, write_tone_wav
from .uapi import Uapi

TONE_HZ = 700.0


@pytest.mark.parametrize("media", ["relay", "rtpengine"], indirect=True)
def test_tone_from_one_party_is_heard_by_the_other_through_the_relay(
    media: dict[str, object],
    softphone_factory: Callable[..., Softphone],
    b2bua_factory: Callable[..., B2buaServer],
    tmp_path: Path,
) -> None:
    server = b2bua_factory()
    tone = write_tone_wav(tmp_path / "tone.wav", frequency=TONE_HZ, seconds=2)
    alice = softphone_factory(name="alice", auto_answer=0.2, play_wav=tone)
    bob = softphone_factory(name="bob", auto_answer=0.2, record=True)
    domain = "voip.example.com"
    assert alice.register(server.sip_address, "0003*210", "secret210", domain=domain) == 200
    assert bob.register(server.sip_address, "0003*211", "secret211", domain=domain) == 200

    api = Uapi(server.api_url, "test-user-app", "test-user-secret")
    call_id = api.call_id(api.create(["0003*210"], ["0003*211"], query={"callDuration": 5}))
    record = api.wait_ended(call_id, timeout=30)
    assert record["disposition"] == 0, record

    ended = bob.wait_event(
        "call_state", timeout=10, predicate=lambda e: e.get("state") == "DISCONNECTED"
    )
    alice.wait_event("call_state", timeout=10, predicate=lambda e: e.get("state") == "DISCONNECTED")
    samples, rate = wait_for_wav(Path(ended["recording"]))
    heard = samples[rate:]  # skip the first second (ringback, jitter buffer warm-up)
    assert len(heard) > rate, "bob recorded more than a second of the call"
    assert rms(heard) > 500, "bob heard sound, not silence"
    assert dominant_frequency(heard, rate) == pytest.approx(TONE_HZ, abs=60)
    # and the relay counted the media both ways on the record
    views = record["phoneCallView"]
    assert views[0]["media"]["audio"]["rtp_packets_received"] > 100
    assert views[1]["media"]["audio"]["rtp_packets_sent"] > 100


@pytest.mark.parametrize("media", ["relay", "rtpengine"], indirect=True)
def test_a_phone_calling_the_sandbox_hears_its_tone(
    media: dict[str, object],
    softphone_factory: Callable[..., Softphone],
    b2bua_factory: Callable[..., B2buaServer],
) -> None:
    """The sandbox's 440 Hz tone (not the 425 Hz ringback before it) reaches a real phone."""
    server = b2bua_factory()
    alice = softphone_factory(name="alice", auto_answer=0.2, record=True)
    assert alice.register(server.sip_address, "0003*210", "secret210") == 200
    api = Uapi(server.api_url, "test-user-app", "test-user-secret")
    # 0003*00 answers 1 s after it is called: ringback first, then its tone
    call_id = api.call_id(api.create(["0003*210"], ["0003*00"], query={"callDuration": 5}))
    assert api.wait_ended(call_id, timeout=30)["disposition"] == 0
    ended = alice.wait_event(
        "call_state", timeout=10, predicate=lambda e: e.get("state") == "DISCONNECTED"
    )
    samples, rate = wait_for_wav(Path(ended["recording"]))
    heard = samples[2 * rate :]  # past the ringback
    assert len(heard) > rate, "alice recorded more than a second of the tone"
    assert rms(heard) > 500, "alice heard sound, not silence"
    assert dominant_frequency(heard, rate, low=400, high=480, step=5) == pytest.approx(440, abs=5)
