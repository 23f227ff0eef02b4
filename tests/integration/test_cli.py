"""The ``b2bua`` command as a user meets it: help, config errors (exit 2 naming the key), demo."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

import pytest

from .harness import (
    LOCALHOST,
    REPO_ROOT,
    B2buaServer,
    b2bua_command,
    free_port,
    free_port_range,
)
from .uapi import Uapi

B2BUA = [sys.executable, "-m", "engine"]


def run(
    *args: str, timeout: float = 60, cwd: Path | None = None, command: list[str] = B2BUA
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*command, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},  # `-m engine` from any folder
    )


@pytest.mark.parametrize(
    "args", [["--help"], ["serve", "--help"], ["demo", "--help"], ["check-config", "--help"]]
)
def test_every_command_has_help(args: list[str]) -> None:
    result = run(*args)
    assert result.returncode == 0
    assert "usage: b2bua" in result.stdout


def test_version_prints_the_package_version() -> None:
    result = run("--version")
    assert result.returncode == 0
    assert result.stdout == f"b2bua {metadata.version('trio-b2bua')}\n"


@pytest.mark.parametrize(
    "command",
    [
        pytest.param(B2BUA, id="python -m engine"),
        pytest.param([sys.executable, "-m", "b2bua"], id="python -m b2bua"),
        pytest.param([str(Path(sys.executable).with_name("b2bua"))], id="console script"),
    ],
)
def test_every_way_to_start_it_is_the_same_command(tmp_path: Path, command: list[str]) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[calls]\ndrain = -1\n")
    version = run("--version", command=command, cwd=tmp_path)
    assert version.returncode == 0, version.stderr
    assert version.stdout == f"b2bua {metadata.version('trio-b2bua')}\n"
    checked = run("check-config", str(bad), command=command, cwd=tmp_path)
    assert checked.returncode == 2
    assert checked.stderr.splitlines()[0].startswith(f"b2bua: {bad}: calls.drain: ")


@pytest.mark.parametrize(
    "args",
    [
        ["-vv", "check-config", "{config}"],
        ["check-config", "-vv", "{config}"],
        ["check-config", "{config}", "--verbose", "--verbose"],
    ],
)
def test_verbose_before_or_after_the_command(tmp_path: Path, args: list[str]) -> None:
    config = tmp_path / "c.toml"
    config.write_text("[calls]\ndrain = 3\n")
    result = run(*(arg.format(config=config) for arg in args))
    assert result.returncode == 0, result.stderr
    assert f"DEBUG engine.config: loaded config from {config}" in result.stderr


def _listen_config(tmp_path: Path, *, sip: str, api: str) -> Path:
    low, high = free_port_range(20)
    config = tmp_path / "listen.toml"
    config.write_text(
        f'[sip]\nlisten = ["{sip}"]\n[api]\nlisten = "{api}"\n'
        f"[media]\nports = [{low}, {high}]\n"
        f'[store]\nurl = "sqlite:///{tmp_path / "b2bua.sqlite"}"\n'
    )
    return config


@pytest.mark.parametrize("taken", ["sip udp", "sip tcp", "api"])
def test_a_taken_port_is_one_line_naming_it_and_exit_2(tmp_path: Path, taken: str) -> None:
    port = free_port()
    kind = socket.SOCK_DGRAM if taken == "sip udp" else socket.SOCK_STREAM
    with socket.socket(socket.AF_INET, kind) as holder:
        holder.bind((LOCALHOST, port))
        if kind == socket.SOCK_STREAM:
            holder.listen()
        if taken == "api":
            config = _listen_config(tmp_path, sip="udp:127.0.0.1:0", api=f"127.0.0.1:{port}")
            what = f"api http://127.0.0.1:{port}"
        else:
            transport = taken.split()[1]
            config = _listen_config(
                tmp_path, sip=f"{transport}:127.0.0.1:{port}", api="127.0.0.1:0"
            )
            what = f"sip {transport} 127.0.0.1:{port}"
        result = run("serve", "--config", str(config))
    assert result.returncode == 2, result
    assert result.stderr == f"b2bua: cannot listen on {what}: address already in use\n"
    assert "listening api" not in result.stdout  # nothing started


def test_a_store_that_cannot_be_opened_is_one_line_and_exit_1(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'missing' / 'b2bua.sqlite'}"
    config = _listen_config(tmp_path, sip="udp:127.0.0.1:0", api="127.0.0.1:0")
    config.write_text(config.read_text().replace(f"sqlite:///{tmp_path / 'b2bua.sqlite'}", url))
    result = run("serve", "--config", str(config))
    assert result.returncode == 1, result
    assert result.stderr == (
        f"b2bua: cannot open store {url!r}: folder {str(tmp_path / 'missing')!r} does not exist\n"
    )


def test_check_config_reports_every_problem_of_both_files(tmp_path: Path) -> None:
    (tmp_path / "dir.toml").write_text(
        '[[organizations]]\nid = 3\ncode = "0003"\n'
        "[[users]]\nid = 12\norganization = 99\n"
        '[[extensions]]\nnumber = "210"\norganization = 3\nuser = 12\ntype = "fax"\n'
    )
    config = tmp_path / "bad.toml"
    config.write_text(
        '[sip]\nlisten = ["udp:127.0.0.1:5060", "foo"]\ndomain = 3\n'
        '[calls]\ndrain = -1\n[directory]\nfile = "dir.toml"\n'
    )
    directory = tmp_path / "dir.toml"
    for command, cwd, config_shown, directory_shown in (
        (["check-config", str(config)], None, str(config), str(directory)),
        (["serve", "--config", str(config)], None, str(config), str(directory)),
        # as typed in the folder of the files: the directory file is shown the same way
        (["check-config", "bad.toml"], tmp_path, "bad.toml", "dir.toml"),
    ):
        result = run(*command, cwd=cwd)
        assert result.returncode == 2, result
        assert result.stderr.splitlines() == [
            f"b2bua: {config_shown}: sip.listen[1]: expected 'udp:HOST:PORT' or "
            "'tcp:HOST:PORT', got 'foo'",
            f"b2bua: {config_shown}: sip.domain: expected a string, got integer 3",
            f"b2bua: {config_shown}: calls.drain: expected a finite number of seconds >= 0, got -1",
            f"b2bua: {directory_shown}: users[0].organization: unknown organization 99",
            f"b2bua: {directory_shown}: extensions[0].type: unknown type 'fax' (one of: "
            "phone_terminal, queue, ivr, voicemail_center, conference, callback)",
            "b2bua: 5 problems",
        ], result.stderr


def test_the_sample_files_pass_check_config() -> None:
    result = run("check-config", "examples/config.toml", cwd=REPO_ROOT)
    assert (result.returncode, result.stdout, result.stderr) == (
        0,
        "examples/config.toml: ok\n",
        "",
    )
    # from another folder: the directory file is found relative to the config file
    result = run("check-config", str(REPO_ROOT / "examples" / "config.toml"), cwd=Path("/"))
    assert result.returncode == 0, result.stderr


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
    assert "promised: 0003*00 answers after 1 s; when it answers, 0003*09 is busy" in result.stdout
    assert "disposition: BUSY" in result.stdout
    assert "OK: the call behaved as the sandbox numbers promise" in result.stdout


class _VerboseServer(B2buaServer):
    """``b2bua serve -v``: the flag after the sub-command, and the drain's log line shown."""

    def command(self) -> list[str]:
        return [*b2bua_command(), "serve", "-v", "--config", str(self.config_file)]


def test_ctrl_c_on_serve_mid_call_drains_and_exits_0(tmp_path: Path) -> None:
    server = _VerboseServer(tmp_path).start()
    try:
        api = Uapi(server.api_url, "test-user-app", "test-user-secret")
        call_id = api.call_id(api.create(["0003*00"], ["0003*01"], query={"callDuration": 60}))
        api.wait(call_id, lambda call: call["state"] == "bridged", timeout=20)
        os.killpg(server.pid, signal.SIGINT)  # what a terminal's Ctrl-C does
        deadline = time.monotonic() + 20
        while server.running and time.monotonic() < deadline:
            time.sleep(0.05)  # waiting for another process to exit, not for logic
        assert not server.running, "still running 20 s after Ctrl-C"
        assert server.stop() == 0, server.describe()  # it has exited: this reads the code
    finally:
        if server.running:
            server.stop(signal.SIGKILL)
    output = server.output()
    assert "signal SIGINT: shutting down" in output
    assert "draining: 1 live calls" in output
    assert "Traceback" not in output and "KeyboardInterrupt" not in output, output


def test_ctrl_c_on_demo_mid_call_hangs_up_and_exits_0() -> None:
    demo = subprocess.Popen(
        [*B2BUA, "demo", "--duration", "60"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, as a terminal gives a job
    )
    try:
        assert demo.stdout is not None
        seen: list[str] = []
        for line in demo.stdout:  # pytest-timeout bounds this
            seen.append(line)
            if "0003*01: on call" in line:
                break
        else:
            pytest.fail("the demo ended before the call was up:\n" + "".join(seen))
        os.killpg(demo.pid, signal.SIGINT)
        out, err = demo.communicate(timeout=30)
    finally:
        if demo.poll() is None:
            os.killpg(demo.pid, signal.SIGKILL)
            demo.wait()
    out = "".join(seen) + out
    assert demo.returncode == 0, out + err
    assert "interrupted: hanging up" in out and out.rstrip().endswith("stopped")
    assert "Traceback" not in out + err and "KeyboardInterrupt" not in out + err, out + err


@pytest.mark.parametrize(
    ("option", "number"),
    [("--destination", "0003*210"), ("--destination", "5551234"), ("--source", "0004*00")],
)
def test_demo_refuses_numbers_that_are_not_its_sandboxes(option: str, number: str) -> None:
    result = run("demo", option, number)
    assert result.returncode == 2
    assert result.stderr == (
        f"b2bua: demo {option}: {number!r} is not a sandbox number: the demo calls the "
        "sandbox numbers 0003*00 to 0003*09\n"
    )
    assert result.stdout == ""  # refused up front: no server started


def test_check_config_names_each_bad_media_backend_key(tmp_path: Path) -> None:
    bad = tmp_path / "media.toml"
    bad.write_text('[media]\nbackend = "kernel"\nrtpengine = ["udp:127.0.0.1:2223", "10.0.0.5"]\n')
    checked = run("check-config", str(bad), cwd=tmp_path)
    assert checked.returncode == 2
    assert checked.stderr.splitlines() == [
        f"b2bua: {bad}: media.backend: expected 'relay' or 'rtpengine', got 'kernel'",
        f"b2bua: {bad}: media.rtpengine[1]: expected 'udp:HOST:PORT', got '10.0.0.5'",
        "b2bua: 2 problems",
    ]
    good = tmp_path / "good.toml"
    good.write_text('[media]\nbackend = "rtpengine"\nrtpengine = ["udp:127.0.0.1:2223"]\n')
    checked = run("check-config", str(good), cwd=tmp_path)
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout == f"{good}: ok\n"
