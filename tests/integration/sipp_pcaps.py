"""The captures SIPp ships (Debian's sip-tester), for scenarios that play one."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SIPP_PCAPS = Path("/usr/share/sip-tester")  # Debian's sip-tester ships SIPp's captures here


def sipp_pcap(name: str) -> bytes:
    """One of the captures SIPp ships (e.g. ``dtmf_2833_1.pcap``); missing fails in CI."""
    path = SIPP_PCAPS / name
    if not path.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{path} is missing: .ci/run installs sip-tester, which ships it")
        pytest.skip(f"{path} is missing (the sip-tester package ships it)")
    return path.read_bytes()
