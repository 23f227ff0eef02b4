"""Fenced code blocks of the repository's Markdown files, by the heading they sit under.

The README tests run the commands a reader copies, so they read them from the documents
themselves rather than from a copy that could drift.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]

_FENCE = re.compile(r"^(```+|~~~+)\s*([\w+-]*)\s*$")
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")


@dataclasses.dataclass(frozen=True, slots=True)
class Block:
    """One fenced block: its info string (``sh``, ``text``...), its text and where it is."""

    language: str
    text: str
    heading: str  # the nearest heading above it, without the #s
    line: int  # 1-based line of the opening fence


def fenced_blocks(path: Path) -> list[Block]:
    """Every fenced block of a Markdown file, in order."""
    blocks: list[Block] = []
    heading = ""
    lines = path.read_text().splitlines()
    index = 0
    while index < len(lines):
        fence = _FENCE.match(lines[index])
        if fence is None:
            title = _HEADING.match(lines[index])
            if title is not None:
                heading = title.group(2)
            index += 1
            continue
        marker, language = fence.group(1), fence.group(2)
        start = index
        body: list[str] = []
        index += 1
        while index < len(lines) and not lines[index].startswith(marker):
            body.append(lines[index])
            index += 1
        if index == len(lines):
            raise ValueError(f"{path}:{start + 1}: code fence never closed")
        blocks.append(Block(language, "\n".join(body) + "\n", heading, start + 1))
        index += 1
    return blocks


def blocks_under(path: Path, heading: str, language: str | None = None) -> list[Block]:
    """The blocks right under ``heading`` (exact text), optionally of one language."""
    return [
        block
        for block in fenced_blocks(path)
        if block.heading == heading and (language is None or block.language == language)
    ]


def one_command(block: Block) -> str:
    """A block that holds exactly one shell command (backslash continuations allowed), as one
    line; ``ValueError`` if it holds anything else (several commands, pipes, comments)."""
    text = re.sub(r"\\\n\s*", " ", block.text).strip()
    if "\n" in text or re.search(r"[;&|#<>`$]", text):
        raise ValueError(f"line {block.line}: expected one plain command, got:\n{block.text}")
    return text


def section_text(path: Path, heading: str) -> str:
    """The lines under ``heading`` (exact text) up to the next heading, fences included."""
    out: list[str] = []
    inside = False
    in_fence = False
    for line in path.read_text().splitlines():
        if _FENCE.match(line):
            in_fence = not in_fence
        title = None if in_fence else _HEADING.match(line)
        if title is not None:
            if inside:
                break
            inside = title.group(2) == heading
            continue
        if inside:
            out.append(line)
    if not inside:
        raise ValueError(f"{path}: no heading {heading!r}")
    return "\n".join(out) + "\n"


def inline_commands(path: Path, heading: str, prefix: str) -> list[str]:
    """Inline code spans under ``heading`` that start with ``prefix`` (e.g. a command)."""
    text = section_text(path, heading).replace("\n", " ")
    return [span for span in re.findall(r"`([^`]+)`", text) if span.startswith(prefix)]
