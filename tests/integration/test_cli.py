"""The ``b2bua`` command as a user meets it: help, config errors (exit 2 naming the key), demo."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

B2BUA = [sys.executable, "-m", "engine"]


def run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*B2BUA, *args], capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
    )


@pytest.mark.parametrize(
    "args", [["--help"], ["serve", "--help"], ["demo", "--help"], ["check-config", "--help"]]
)
def test_every_command_has_help(args: list[str]) -> None:
    result = run(*args)
    assert result.returncode == 0
    assert "usage: b2bua" in result.stdout


def test_no_command_is_a_usage_error() -> None:
    result = run()
    assert result.returncode == 2
    assert "COMMAND" in result.stderr


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ('[sip]\nlisten = ["udp:127.0.0.1:5060", "foo"]\n', "sip.listen[1]"),
        ("[media]\nports = [20001, 20000]\n", "media.ports"),
        ('[calls]\nwait_for_pickup = "soon"\n', "calls.wait_for_pickup"),
        ("[sipp]\nlisten = []\n", "sipp"),
        ('[directory]\nfile = "missing.toml"\n', "directory.file"),
        ("[api\nlisten = 1\n", "toml"),
    ],
)
def test_a_bad_config_names_the_key_and_exits_2(tmp_path: Path, text: str, key: str) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(text)
    for command in (["serve", "--config", str(config)], ["check-config", str(config)]):
        result = run(*command)
        assert result.returncode == 2, result
        assert key.lower() in result.stderr.lower(), result.stderr
        assert "Traceback" not in result.stderr


def test_a_bad_directory_names_the_entry(tmp_path: Path) -> None:
    (tmp_path / "dir.toml").write_text(
        '[[organizations]]\nid = 3\ncode = "0003"\nname = "X"\n'
        '[[users]]\nid = 12\norganization = 99\nname = "Y"\n'
    )
    config = tmp_path / "c.toml"
    config.write_text('[directory]\nfile = "dir.toml"\n')
    result = run("check-config", str(config))
    assert result.returncode == 2
    assert "users[0].organization" in result.stderr


def test_a_missing_config_file_exits_2(tmp_path: Path) -> None:
    result = run("serve", "--config", str(tmp_path / "nope.toml"))
    assert result.returncode == 2
    assert "nope.toml" in result.stderr


def test_demo_places_a_sandbox_call_and_exits_0() -> None:
    result = run("demo", "--duration", "4", timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "202 Accepted" in out
    assert "0003*00: on call" in out and "0003*01: on call" in out
    assert "OK: the call behaved as the sandbox numbers promise" in out


def test_demo_with_a_busy_destination_reports_busy() -> None:
    result = run("demo", "--destination", "0003*09", timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "disposition: BUSY" in result.stdout
