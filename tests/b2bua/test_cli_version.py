"""``b2bua --version``: the installed package's version, else the source tree's."""

from __future__ import annotations

import tomllib
from importlib import metadata
from pathlib import Path

import pytest

from b2bua import cli

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def test_the_installed_version() -> None:
    assert cli.version() == metadata.version("trio-b2bua")


def test_a_source_tree_that_is_not_installed_gives_its_pyproject_version(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def not_installed(name: str) -> str:
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(cli.metadata, "version", not_installed)
    expected = tomllib.loads(PYPROJECT.read_text())["project"]["version"]
    assert cli.version() == expected
    parser = cli.build_parser()
    with pytest.raises(SystemExit) as exit_info:
        parser.parse_args(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out == f"b2bua {expected}\n"
