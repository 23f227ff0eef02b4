"""The repository stands alone: no document, docstring or comment points outside it.

Checked in every Markdown, Python, TOML and XML file and the CI script:
- no path into the machine it was written on (``/work/...``) or to a ``shared/`` folder;
- every ``NAME.md`` mentioned exists in the repository (a note kept elsewhere would not);
- no mention of planning papers or issue numbers of a tracker outside the repository
  (``FORBIDDEN`` below);
- in Markdown, every relative link resolves to a file inside the repository, and absolute
  paths name only scratch or system places a command may use (``/tmp``, ``/dev``, ``/proc``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from .blocks import REPO_ROOT

SKIP_DIRS = {".git", ".venv", "venv", "build", "dist", "__pycache__", "out", "node_modules"}
SKIP_DIRS |= {".venv-bench"}  # the benchmarks' own venv (benchmarks/README.md)
SUFFIXES = {".md", ".py", ".toml", ".xml", ".cfg"}
EXTRA_FILES = [".ci/run"]

# Documents the project was planned with that are not part of it: docs must not send a reader
# to them. (Named here only to keep them out of everything else.)
FORBIDDEN = re.compile(
    r"\bCONTRACT\b|\bcontract\b|TOOLS-NOTES|UAPI-REFERENCE|seed document|\b[Ii]ssue\s*#?\d+"
)
OUTSIDE_PATH = re.compile(r"/work/|(?<![\w-])shared/|\.\./shared")
MD_NAME = re.compile(r"[\w./-]*\b[\w-]+\.md\b")
MD_LINK = re.compile(r"\]\(([^)\s]+)\)")
SYSTEM_TOP = (
    "bin|boot|dev|etc|home|lib|lib64|media|mnt|opt|proc|root|run|sbin|srv|sys|tmp|usr|var|work"
)
ABSOLUTE = re.compile(rf"(?:^|[\s`'\"(=])(/(?:{SYSTEM_TOP})(?:/[^\s`'\")]*)?)")
ALLOWED_ABSOLUTE = ("/tmp/", "/dev/", "/proc/")


def text_files(root: Path) -> Iterator[Path]:
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root)
        if any(part in SKIP_DIRS or part.endswith(".egg-info") for part in relative.parts):
            continue
        if path.is_file() and (path.suffix in SUFFIXES or str(relative) in EXTRA_FILES):
            yield path


def problems_in(path: Path, root: Path, names: set[str]) -> list[str]:
    """What in ``path`` points outside ``root`` (``names``: every file name in the tree)."""
    found: list[str] = []
    if path.name == Path(__file__).name:
        return found  # this file names the forbidden things to find them
    for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
        where = f"{path.relative_to(root)}:{number}"
        for match in OUTSIDE_PATH.finditer(line):
            found.append(f"{where}: path outside the repository {match.group(0)!r}")
        for match in FORBIDDEN.finditer(line):
            found.append(f"{where}: refers to {match.group(0)!r}, not part of the repository")
        for match in MD_NAME.finditer(line):
            mention = match.group(0)
            if mention.startswith(("http", "//")) or "://" in line[: match.start()][-12:]:
                continue
            candidates = [path.parent / mention, root / mention]
            if not any(c.is_file() for c in candidates) and Path(mention).name not in names:
                found.append(f"{where}: {mention!r} is not in the repository")
        if path.suffix != ".md":
            continue
        for match in MD_LINK.finditer(line):
            target = match.group(1).split("#", 1)[0]
            if not target or re.match(r"^[a-z]+:", target):
                continue  # an anchor or a URL
            resolved = (path.parent / target).resolve()
            if not resolved.is_relative_to(root.resolve()) or not resolved.exists():
                found.append(f"{where}: link {match.group(1)!r} leads outside or nowhere")
        for match in ABSOLUTE.finditer(line):
            absolute = match.group(1)
            if not absolute.startswith(ALLOWED_ABSOLUTE):
                found.append(f"{where}: absolute path {absolute!r} outside the repository")
    return found


def all_problems(root: Path) -> list[str]:
    files = list(text_files(root))
    names = {p.name for p in root.rglob("*") if p.is_file() and ".git" not in p.parts}
    return [problem for path in files for problem in problems_in(path, root, names)]


def test_nothing_refers_outside_the_repository() -> None:
    problems = all_problems(REPO_ROOT)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize(
    ("text", "what"),
    [
        ("See /work/shared/CONTRACT.md for details.\n", "path outside"),
        ("as ../shared/notes.txt says\n", "path outside"),
        ("the exit codes (TOOLS-NOTES.md)\n", "TOOLS-NOTES"),
        ("Read [the plan](../PLAN.md).\n", "leads outside"),
        ("run `/opt/venv/bin/python bench.py`\n", "absolute path"),
        ("configured in `/etc/b2bua.toml`\n", "absolute path"),
        ("see docs/MISSING.md\n", "not in the repository"),
        ("the format of the contract\n", "contract"),
        ("## Targets (issue 5)\n", "issue 5"),
    ],
)
def test_each_kind_of_outside_reference_is_caught(tmp_path: Path, text: str, what: str) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "README.md").write_text("# project\n")
    (tmp_path / "docs" / "GUIDE.md").write_text(text)
    problems = all_problems(tmp_path)
    assert any(what in problem for problem in problems), problems


def test_references_inside_the_repository_pass(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "README.md").write_text(
        "See [the guide](docs/GUIDE.md), docs/GUIDE.md, `/uapi/openapi.json`,\n"
        "`--candidate /tmp/before`, `/proc/PID/status` and https://example.com/x.md.\n"
    )
    (tmp_path / "docs" / "GUIDE.md").write_text("Back to [the README](../README.md).\n")
    assert all_problems(tmp_path) == []
