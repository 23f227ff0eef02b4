"""Checkers of single configuration values (engine/config_values.py)."""

from __future__ import annotations

import pytest

from engine.config_values import parse_transport_address


def test_parse_transport_address() -> None:
    assert parse_transport_address("UDP:10.0.0.1:5060") == ("udp", "10.0.0.1", 5060)
    assert parse_transport_address("tcp:gw.example.com:5080").host == "gw.example.com"
    for bad in ("", "udp", "udp:", "udp:host", "udp:[::1", "udp:[::1]x", "udp:h:-1", "udp: :1"):
        with pytest.raises(ValueError):
            parse_transport_address(bad)
