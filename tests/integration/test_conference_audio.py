"""A conference with real audio: three pjsua2 softphones in conference 0003*400.

Alice (0003*210) plays 700 Hz, Bob (0003*211) 1100 Hz, Carol (0003*212) 1500 Hz. Alice and
Bob are invited by the App (ConferenceInvite), Carol dials the conference herself. Each phone
records what it hears and a Goertzel filter says whose tones are in it: each hears the two
others and never itself. When Carol hangs up, Alice and Bob still hear each other.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from .harness import DEFAULT_DIRECTORY, B2buaServer
from .softphone import Softphone, goertzel_power, rms, wait_for_wav, write_tone_wav
from .uapi import Uapi

TONES = {"alice": 700.0, "bob": 1100.0, "carol": 1500.0}
EXTENSIONS = """
[[extensions]]
number = "212"
organization = 3
user = 12
type = "phone_terminal"
password = "secret212"

[[extensions]]
number = "400"
organization = 3
user = 12
type = "conference"
"""
DOMAIN = "voip.example.com"


def tones_in(samples: list[int], rate: int) -> set[str]:
    """Whose tones a recording holds: each tone's share of the recording's power."""
    if rms(samples) < 300:
        return set()
    total = sum(s * s for s in samples) / len(samples)
    return {name for name, hz in TONES.items() if goertzel_power(samples, rate, hz) / total > 0.04}


def heard(
    phones: dict[str, Softphone], legs: dict[str, int], tmp: Path, phase: str
) -> dict[str, set[str]]:
    """What each phone hears now: 1.5 s recorded by all at once, the first 0.4 s left out."""
    time.sleep(0.3)
    for name, leg in legs.items():
        phones[name].record(leg, tmp / f"{name}-{phase}.wav")
    time.sleep(1.5)
    result = {}
    for name, leg in legs.items():
        samples, rate = wait_for_wav(phones[name].stop_record(leg))
        result[name] = tones_in(samples[int(0.4 * rate) :], rate)
    return result


def test_three_parties_in_a_conference_each_hear_the_two_others(
    softphone_factory: Callable[..., Softphone],
    b2bua_factory: Callable[..., B2buaServer],
    tmp_path: Path,
) -> None:
    server = b2bua_factory(directory=DEFAULT_DIRECTORY + EXTENSIONS)
    phones = {}
    for name, (ext, password) in {
        "alice": ("0003*210", "secret210"),
        "bob": ("0003*211", "secret211"),
        "carol": ("0003*212", "secret212"),
    }.items():
        tone = write_tone_wav(tmp_path / f"{name}.wav", frequency=TONES[name], seconds=8)
        phones[name] = softphone_factory(name=name, auto_answer=0.2, play_wav=tone)
        assert phones[name].register(server.sip_address, ext, password, domain=DOMAIN) == 200
    api = Uapi(server.api_url, "test-user-app", "test-user-secret")
    legs: dict[str, int] = {}
    ids = {}
    for name, number in (("alice", "210"), ("bob", "211")):
        reply = api.client.post(
            "/uapi/phoneCalls/@me/conferenceInvite",
            params={"number": "400", "callDuration": 120},
            json={"phoneCallView": [{"destination": number}]},
            headers=api.headers,
        )
        ids[name] = api.call_id(reply)
        legs[name] = int(phones[name].wait_incoming(timeout=15)["call"])
        phones[name].wait_call_state(legs[name], "CONFIRMED")
    legs["carol"] = phones["carol"].call(f"sip:400@{server.sip_address}")
    phones["carol"].wait_call_state(legs["carol"], "CONFIRMED", timeout=15)
    for call_id in ids.values():
        api.wait(call_id, lambda r: r.get("state") == "bridged", extension="400")

    everyone = set(TONES)
    assert heard(phones, legs, tmp_path, "three") == {name: everyone - {name} for name in everyone}

    # Carol leaves: Alice and Bob go on hearing each other (a mix of two)
    phones["carol"].hangup(legs.pop("carol"))
    time.sleep(0.5)
    assert heard(phones, legs, tmp_path, "two") == {"alice": {"bob"}, "bob": {"alice"}}
    for call_id in ids.values():
        assert api.get(call_id, extension="400")["state"] == "bridged"
