"""What a test needs from the machine: in CI (env CI set) a missing part fails the test, never
skips it silently; on a developer's machine it skips with a reason that says how to get it."""

from __future__ import annotations

import importlib
import os
from types import ModuleType
from typing import NoReturn

import pytest


def unavailable(message: str) -> NoReturn:
    """Fail (in CI) or skip (elsewhere) because ``message`` names a missing part."""
    if os.environ.get("CI"):
        pytest.fail(f"CI: {message}")
    pytest.skip(message)


def require_module(name: str, hint: str) -> ModuleType:
    """``import name``; when it cannot be imported, ``unavailable`` with ``hint``."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        unavailable(f"{name} cannot be imported ({exc}); {hint}")
