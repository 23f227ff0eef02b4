"""A test that needs a missing part fails in CI and skips (with its reason) elsewhere."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.requires import require_module, unavailable

MISSING = "no_such_module_for_b2bua_tests"


def test_a_missing_module_fails_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match=rf"CI: {MISSING} cannot be imported.*pip"):
        require_module(MISSING, "pip install it")


def test_a_missing_module_skips_with_its_reason_elsewhere(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match=rf"{MISSING} cannot be imported.*pip"):
        require_module(MISSING, "pip install it")


def test_a_present_module_is_returned(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    assert require_module("json", "stdlib").dumps([1]) == "[1]"


def test_unavailable_fails_in_ci_and_skips_elsewhere(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "1")
    with pytest.raises(pytest.fail.Exception, match="CI: kamailio is not installed"):
        unavailable("kamailio is not installed")
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception, match="kamailio is not installed"):
        unavailable("kamailio is not installed")


def test_no_test_uses_importorskip() -> None:
    """``pytest.importorskip`` skips in CI too: real parts go through ``tests.requires``."""
    root = Path(__file__).parent
    found = [
        f"{path.relative_to(root)}:{n}"
        for path in sorted(root.rglob("*.py"))
        if path.name != Path(__file__).name
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if re.search(r"\bimportorskip\(", line)
    ]
    assert found == []
