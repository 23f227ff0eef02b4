"""docs/INTERNAL-API.md names only what exists: every dotted name resolves, every path exists.

A dotted name is a code span that starts with ``sip.``, ``engine.``, ``api.`` or ``b2bua.`` (a
module, or a module's attribute path: class, function, method, or an attribute a class sets in
its body or on ``self``); a path is a code span with a ``/`` that names a file or folder of the
repository.
"""

from __future__ import annotations

import importlib
import inspect
import re
from pathlib import Path

import pytest

from .blocks import REPO_ROOT

DOC = REPO_ROOT / "docs" / "INTERNAL-API.md"
DOTTED = re.compile(r"^(?:sip|engine|api|b2bua)(?:\.\w+)+$")
PATH = re.compile(r"^[\w.-]+(?:/[\w.-]*)+$")


def code_spans(text: str) -> list[str]:
    text = re.sub(r"```.*?```", "", text, flags=re.DOTALL)
    return re.findall(r"`([^`\n]+)`", text)


def _set_by_class(cls: type, name: str) -> bool:
    """``name`` is an attribute that instances of ``cls`` get (annotated or set on self)."""
    for klass in inspect.getmro(cls):
        if name in getattr(klass, "__annotations__", {}):
            return True
        try:
            source = inspect.getsource(klass)
        except (OSError, TypeError):
            continue
        if re.search(rf"\bself\.{name}\s*(?::[^=\n]+)?=", source):
            return True
    return False


def resolves(dotted: str) -> bool:
    parts = dotted.split(".")
    for split in range(len(parts), 0, -1):
        try:
            target: object = importlib.import_module(".".join(parts[:split]))
        except ModuleNotFoundError:
            continue
        for name in parts[split:]:
            if hasattr(target, name):
                target = getattr(target, name)
            elif isinstance(target, type) and _set_by_class(target, name):
                target = None  # an instance attribute: nothing further to walk
            else:
                return False
        return True
    return False


def unknown_names(text: str, root: Path) -> list[str]:
    def exists(span: str) -> bool:
        if DOTTED.match(span):
            return resolves(span)
        if PATH.match(span):
            return (root / span).exists()
        return True  # not a name or a path: prose

    return [span for span in code_spans(text) if not exists(span)]


def test_internal_api_names_exist() -> None:
    text = DOC.read_text()
    assert len([s for s in code_spans(text) if DOTTED.match(s)]) > 50  # the page is the map
    assert unknown_names(text, REPO_ROOT) == []


@pytest.mark.parametrize(
    "span",
    [
        "engine.engine.Engine.originat",  # a method that is not there
        "engine.media.relay.RelayThread",  # a class that is not there
        "engine.nowhere",  # a module that is not there
        "engine.server.serve",  # a module that moved to the composition root
        "engine/media/thread.py",  # a file that is not there
    ],
)
def test_a_name_that_is_not_there_is_found(span: str) -> None:
    assert unknown_names(f"see `{span}`\n", REPO_ROOT) == [span]


def test_names_that_are_there_pass() -> None:
    text = (
        "`engine.engine.Engine.originate`, `engine.engine.Engine.directory` (set on self), "
        "`engine.media`, `sip.sdp.make_offer`, `engine/media/process.py`, `docs/`, "
        "`b2bua.server.serve`"
    )
    assert unknown_names(text, REPO_ROOT) == []
