"""The pjsua2 softphone harness: two softphones call each other directly (no b2bua).

What a user checks on a real call: it connects, the callee hears the caller's tone (not silence,
and at the tone's pitch), and hanging up ends the call on both sides.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from .softphone import (
    Softphone,
    SoftphoneError,
    dominant_frequency,
    read_wav,
    rms,
    wait_for_wav,
    write_tone_wav,
)

SoftphoneFactory = Callable[..., Softphone]
TONE_HZ = 700.0


def test_tone_helpers_find_the_pitch(tmp_path: Path) -> None:
    samples, rate = read_wav(write_tone_wav(tmp_path / "t.wav", frequency=1100, seconds=0.5))
    assert rate == 16000 and len(samples) == 8000
    assert rms(samples) > 10000
    assert dominant_frequency(samples, rate) == pytest.approx(1100, abs=25)
    assert rms([0] * 100) == 0


def test_direct_call_carries_the_tone(softphone_factory: SoftphoneFactory, tmp_path: Path) -> None:
    tone = write_tone_wav(tmp_path / "tone.wav", frequency=TONE_HZ, seconds=2)
    bob = softphone_factory(name="bob", auto_answer=0.2, record=True)
    alice = softphone_factory(name="alice", play_wav=tone)

    call = alice.call(bob.uri)
    alice.wait_call_state(call, "CONFIRMED", timeout=10)
    incoming = bob.wait_incoming()
    assert "alice" in incoming["remote_uri"]
    bob.wait_event("media_state", call=incoming["call"], active=True)
    time.sleep(1.5)  # real audio flows in real time
    alice.hangup(call)
    ended = bob.wait_call_state(incoming["call"], "DISCONNECTED", timeout=10)
    alice.wait_call_state(call, "DISCONNECTED", timeout=10)

    samples, rate = wait_for_wav(Path(ended["recording"]))
    heard = samples[rate // 2 :]  # skip the first half second (jitter buffer warm-up)
    assert len(heard) > rate // 2, "at least half a second was recorded"
    assert rms(heard) > 1000, "bob heard sound, not silence"
    assert dominant_frequency(heard, rate) == pytest.approx(TONE_HZ, abs=50)


def test_unanswered_call_rings_then_caller_gives_up(softphone_factory: SoftphoneFactory) -> None:
    bob = softphone_factory(name="bob")  # no auto-answer: it only rings
    alice = softphone_factory(name="alice")
    call = alice.call(bob.uri)
    ringing = alice.wait_call_state(call, "EARLY", timeout=10)
    assert ringing["code"] == 180
    incoming = bob.wait_incoming()
    alice.hangup(call)
    assert bob.wait_call_state(incoming["call"], "DISCONNECTED")["code"] == 487


def test_bad_command_is_a_clear_error(softphone_factory: SoftphoneFactory) -> None:
    phone = softphone_factory(name="carol")
    with pytest.raises(SoftphoneError, match="no live call 42"):
        phone.answer(42)
    with pytest.raises(SoftphoneError, match="unknown command"):
        phone.request("dance")
    assert phone.calls() == []


def test_taken_sip_port_is_a_clear_error(
    softphone_factory: SoftphoneFactory,
) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        with pytest.raises(SoftphoneError, match="did not start"):
            softphone_factory(name="dave", sip_port=taken.getsockname()[1], start_timeout=5)
