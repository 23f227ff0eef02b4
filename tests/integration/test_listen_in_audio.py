"""Monitor, Whisper and BargeIn with real audio: three pjsua2 softphones at the real server.

Alice (0003*210) plays 700 Hz, Bob (0003*211) 1100 Hz, the supervisor Carol (0003*212)
1500 Hz. The App calls Alice -> Bob, then acts on the call; after each action every phone
records what it hears for a moment, and a Goertzel filter on each recording says which of the
three tones are in it. What a user checks: who hears whom, who must not hear whom, that the
call is the plain two-party call again when the supervisor hangs up, and that a party hanging
up ends the call for the supervisor too.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from .harness import DEFAULT_DIRECTORY, B2buaServer
from .softphone import Softphone, goertzel_power, rms, wait_for_wav, write_tone_wav
from .uapi import Uapi

TONES = {"alice": 700.0, "bob": 1100.0, "carol": 1500.0}
SUPERVISOR = """
[[extensions]]
number = "212"
organization = 3
user = 12
type = "phone_terminal"
caller_id = "Team Lead <4242427>"
password = "secret212"
allow_caller_id = true
"""
DOMAIN = "voip.example.com"


def tones_in(samples: list[int], rate: int) -> set[str]:
    """Whose tones a recording holds: each tone's share of the recording's power."""
    if rms(samples) < 300:
        return set()
    total = sum(s * s for s in samples) / len(samples)
    return {name for name, hz in TONES.items() if goertzel_power(samples, rate, hz) / total > 0.04}


class Call:
    """The App's call between Alice and Bob, and the phones' own call ids."""

    def __init__(self, server: B2buaServer, phones: dict[str, Softphone], tmp: Path) -> None:
        self.phones = phones
        self.tmp = tmp
        self.api = Uapi(server.api_url, "test-user-app", "test-user-secret")
        reply = self.api.create(["0003*210"], ["0003*211"], query={"callDuration": 120})
        self.id = self.api.call_id(reply)
        self.legs = {
            name: int(phones[name].wait_incoming(timeout=15)["call"]) for name in ("alice", "bob")
        }
        self.api.wait(self.id, lambda r: r.get("state") == "bridged", timeout=15)
        for name in ("alice", "bob"):
            phones[name].wait_call_state(self.legs[name], "CONFIRMED")
        self.carol_calls: list[int] = []
        self.phases = 0

    def act(self, body: dict[str, Any]) -> dict[str, Any]:
        """The action, then Carol answers; returns the record once she is on the call."""
        reply = self.api.act(self.id, {"sendCallTo": "212", **body})
        assert reply.status_code == 200, reply.text
        carol = self.phones["carol"]
        seen = set(self.carol_calls)
        incoming = carol.wait_event("incoming_call", predicate=lambda e: e["call"] not in seen)
        self.legs["carol"] = int(incoming["call"])
        self.carol_calls.append(self.legs["carol"])
        carol.wait_call_state(self.legs["carol"], "CONFIRMED")
        return self.api.wait(
            self.id, lambda r: _supervisor(r) is not None and _supervisor(r)["status"] == 5
        )

    def heard(self, names: tuple[str, ...] = ("alice", "bob", "carol")) -> dict[str, set[str]]:
        """What each phone hears now: 1.5 s recorded by all at once, the first 0.4 s left out
        (the phones' jitter buffers settle after the stream changed)."""
        self.phases += 1
        time.sleep(0.3)
        for name in names:
            path = self.tmp / f"{name}-{self.phases}.wav"
            self.phones[name].record(self.legs[name], path)
        time.sleep(1.5)
        heard = {}
        for name in names:
            samples, rate = wait_for_wav(self.phones[name].stop_record(self.legs[name]))
            heard[name] = tones_in(samples[int(0.4 * rate) :], rate)
        return heard

    def carol_hangs_up(self) -> dict[str, Any]:
        self.phones["carol"].hangup(self.legs["carol"])
        self.phones["carol"].wait_call_state(self.legs["carol"], "DISCONNECTED")
        return self.api.wait(self.id, lambda r: _supervisor(r) is None)


def _supervisor(record: dict[str, Any]) -> dict[str, Any] | None:
    """The supervisor's view while it is in the call."""
    for view in record["phoneCallView"]:
        if view["role"] in ("monitor", "whisper", "bargein") and view.get("ended") is None:
            return dict(view)
    return None


@pytest.fixture
def call(
    softphone_factory: Callable[..., Softphone],
    b2bua_factory: Callable[..., B2buaServer],
    tmp_path: Path,
) -> Call:
    server = b2bua_factory(directory=DEFAULT_DIRECTORY + SUPERVISOR)
    phones = {}
    for name, (ext, password) in {
        "alice": ("0003*210", "secret210"),
        "bob": ("0003*211", "secret211"),
        "carol": ("0003*212", "secret212"),
    }.items():
        tone = write_tone_wav(tmp_path / f"{name}.wav", frequency=TONES[name], seconds=5)
        phones[name] = softphone_factory(name=name, auto_answer=0.2, play_wav=tone)
        assert phones[name].register(server.sip_address, ext, password, domain=DOMAIN) == 200
    return Call(server, phones, tmp_path)


def test_who_hears_whom_in_monitor_whisper_and_barge_in(call: Call) -> None:
    everyone = {"alice", "bob", "carol"}

    # Monitor: Carol hears both; nobody hears her
    record = call.act({"action": "Monitor", "callerId": "Quality <4242499>"})
    view = _supervisor(record)
    assert view is not None and view["role"] == "monitor" and view["extension"] == "0003*212"
    assert view["callerId"] == "Quality <4242499>"
    incoming = call.phones["carol"].events("incoming_call")[-1]
    assert "Quality" in incoming["remote_uri"]  # the callerId is what Carol's phone shows
    assert call.heard() == {"alice": {"bob"}, "bob": {"alice"}, "carol": {"alice", "bob"}}
    # Carol leaves: the plain two-party call again
    record = call.carol_hangs_up()
    assert record["state"] == "bridged"
    assert call.heard(("alice", "bob")) == {"alice": {"bob"}, "bob": {"alice"}}

    # Whisper to Alice (both parties are extensions: the view names her): only Alice hears Carol
    call.act({"action": "Whisper", "phoneCallViewId": "00"})
    assert call.heard() == {"alice": {"bob", "carol"}, "bob": {"alice"}, "carol": {"alice", "bob"}}
    call.carol_hangs_up()

    # Whisper with privateW: Carol hears nobody
    call.act({"action": "Whisper", "phoneCallViewId": "01", "privateW": "1"})
    assert call.heard() == {"alice": {"bob"}, "bob": {"alice", "carol"}, "carol": set()}
    call.carol_hangs_up()

    # BargeIn: all three hear each other
    call.act({"action": "BargeIn", "phoneCallViewId": "00"})
    heard = call.heard()
    assert heard == {name: everyone - {name} for name in everyone}
    # Alice hangs up: the call ends for Bob and for Carol
    call.phones["alice"].hangup(call.legs["alice"])
    call.phones["bob"].wait_call_state(call.legs["bob"], "DISCONNECTED")
    call.phones["carol"].wait_call_state(call.legs["carol"], "DISCONNECTED")
    record = call.api.wait_ended(call.id)
    assert record["disposition"] == 0
    assert [v["role"] for v in record["phoneCallView"]] == [
        "source",
        "destination",
        "monitor",
        "whisper",
        "whisper",
        "bargein",
    ]
