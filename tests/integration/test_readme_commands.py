"""The commands of README.md and sipp_scenarios/README.md, run as a reader pastes them.

Each test reads its blocks from the Markdown itself and fails if a block no longer has the
shape it checks (so a changed command cannot silently drop out of the test). The only changes
made to a command before running it:

- host ports that must be free are swapped for free ones: the embedded default's SIP
  ``127.0.0.1:5060`` and API ``http://127.0.0.1:8080`` become those of a real ``b2bua serve``
  started on port 0 with the same built-in demo directory, and SIPp's own ``-p``, ``-cp`` and
  ``-mp`` ports become a free group; each swapped text must occur exactly where expected;
- SIPp gets ``-trace_msg -message_file FILE`` appended, so the test can read what the phone
  received (observation only).

The blocks run with bash in a folder that stands for the repository root: its top-level
entries link to the repository's, and ``.venv`` to the environment running the tests, so the
``b2bua`` under test is this checkout's and nothing is written into the repository.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from readme.blocks import REPO_ROOT, Block, blocks_under, inline_commands, one_command

from .harness import (
    B2buaServer,
    Direction,
    SipLogEntry,
    free_port_group,
    parse_message_log,
)
from .uapi import Uapi

README = REPO_ROOT / "README.md"
SCENARIOS_README = REPO_ROOT / "sipp_scenarios" / "README.md"
DEMO = "1. The demo"
TOUR = "2. The server and curl"
REAL_PHONES = "3. Real phones"
BY_HAND = "By hand"


# ------------------------------------------------------------------------------------ helpers


@pytest.fixture
def repo_root(tmp_path: Path) -> Path:
    """A folder that stands for the repository root (see the module docstring)."""
    venv = Path(sys.prefix)
    if not (venv / "bin" / "b2bua").exists():
        pytest.fail(f"run the tests from the project's virtualenv: no {venv}/bin/b2bua")
    root = tmp_path / "repo"
    root.mkdir()
    for entry in REPO_ROOT.iterdir():
        if entry.name not in (".venv", ".git"):
            (root / entry.name).symlink_to(entry)
    (root / ".venv").symlink_to(venv)
    return root


def substitute(text: str, swaps: Mapping[str, str]) -> str:
    """Replace each key of ``swaps`` (a whole token) by its value; each must occur once."""
    for old, new in swaps.items():
        pattern = re.compile(rf"(?<![\w.:-]){re.escape(old)}(?![\w.:])")
        found = len(pattern.findall(text))
        assert found == 1, f"expected {old!r} once in the command, found {found}:\n{text}"
        text = pattern.sub(new, text)
    return text


class ShellCommand:
    """A README command run with bash in its own session (killed at the end if still up)."""

    def __init__(self, command: str, cwd: Path, output: Path) -> None:
        self.command = command
        self.output_file = output
        self._sink = output.open("wb")
        self.process = subprocess.Popen(
            ["bash", "-c", command],
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=self._sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def signal(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, sig)

    def wait(self, timeout: float) -> int:
        try:
            return self.process.wait(timeout)
        finally:
            self._sink.flush()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.signal(signal.SIGKILL)
            self.process.wait(5)
        self._sink.close()

    def output(self) -> str:
        self._sink.flush()
        return self.output_file.read_text(errors="replace")


@pytest.fixture
def shell(tmp_path: Path, repo_root: Path) -> Iterator[Callable[[str, str], ShellCommand]]:
    started: list[ShellCommand] = []

    def start(name: str, command: str) -> ShellCommand:
        run = ShellCommand(command, repo_root, tmp_path / f"{name}.out")
        started.append(run)
        return run

    yield start
    for run in started:
        run.stop()


def sipp_command(block: Block, server: B2buaServer, log: Path, sip: int, cp: int, mp: int) -> str:
    """A README SIPp command pointed at ``server``, its own ports (``sip``, ``cp``, ``mp`` as
    the README gives them) swapped for a free group, tracing its messages into ``log``."""
    ports = free_port_group()
    command = substitute(
        one_command(block),
        {
            "127.0.0.1:5060": server.sip_address,
            f"-p {sip}": f"-p {ports.sip}",
            f"-cp {cp}": f"-cp {ports.control}",
            f"-mp {mp}": f"-mp {ports.media}",
        },
    )
    return f"{command} -trace_msg -message_file {log}"


def messages(log: Path) -> list[SipLogEntry]:
    return parse_message_log(log.read_text(errors="replace")) if log.exists() else []


def wait_for(log: Path, what: str | int, direction: Direction, timeout: float) -> SipLogEntry:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for entry in messages(log):
            if entry.matches(what, direction):
                return entry
        time.sleep(0.1)
    raise AssertionError(f"never {direction.value} {what}; log:\n{messages(log)}")


def the_one(entries: list[SipLogEntry], what: str | int, direction: Direction) -> SipLogEntry:
    found = [e for e in entries if e.matches(what, direction)]
    assert len(found) == 1, f"expected one {what} {direction.value}, got {len(found)}"
    return found[0]


def stop_like_a_user(phone: ShellCommand) -> None:
    """Ctrl-C, as the README says (SIGINT to the foreground process group)."""
    phone.signal(signal.SIGINT)
    phone.wait(10)  # TimeoutExpired if it did not stop


def json_lines(text: str) -> list[Any]:
    parsed = []
    for line in text.splitlines():
        with contextlib.suppress(ValueError):
            parsed.append(json.loads(line))
    return parsed


# ------------------------------------------------------------------------------- the tour


def test_demo_with_a_busy_destination_as_written(
    shell: Callable[[str, str], ShellCommand],
) -> None:
    commands = inline_commands(README, DEMO, ".venv/bin/b2bua demo")
    assert len(commands) == 1, commands
    assert "0003*09" in commands[0], "the busy sandbox number"
    run = shell("demo", commands[0])
    code = run.wait(60)
    assert code == 0, run.output()
    assert "disposition: BUSY" in run.output()


_VARIABLE = [
    (re.compile(r"\b[0-9a-f]{20}\b"), "ID"),
    (re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z"), "TIME"),
    (re.compile(r"127\.0\.0\.1:\d+"), "ADDRESS"),
]


def normalised(line: str) -> str:
    for pattern, name in _VARIABLE:
        line = pattern.sub(name, line)
    return line


def shown_lines_match(shown: str, printed: str) -> list[str]:
    """The lines of ``shown`` (the README's "It prints" block) that the real output does not
    back: each must match a printed line, in order, where "..." stands for anything and ids,
    times and addresses may differ; a line that is only "..." stands for lines left out."""
    real = [normalised(line) for line in printed.splitlines() if line.strip()]
    missing: list[str] = []
    position = 0
    for line in shown.splitlines():
        if not line.strip() or line.strip() == "...":
            continue
        parts = [re.escape(part) for part in normalised(line).split("...")]
        pattern = re.compile("^" + ".*".join(parts) + "$")
        for index in range(position, len(real)):
            if pattern.match(real[index]):
                position = index + 1
                break
        else:
            missing.append(line)
    return missing


def test_tour_block_runs_as_pasted(shell: Callable[[str, str], ShellCommand]) -> None:
    blocks = blocks_under(README, TOUR)
    assert [b.language for b in blocks] == ["sh", "text"], "the tour: one sh block, its output"
    script, shown = blocks
    assert "5060" not in script.text and "8080" not in script.text, "the tour uses free ports"

    run = shell("tour", script.text)
    try:
        code = run.wait(90)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the tour block did not finish in 90 s:\n{run.output()}")
    printed = run.output()
    assert code == 0, printed

    assert re.search(r"^API at http://127\.0\.0\.1:\d+$", printed, re.MULTILINE), printed
    replies = json_lines(printed)
    created = [r for r in replies if isinstance(r, list)]
    assert len(created) == 1, printed
    call_id = created[0][0]["id"]
    assert re.fullmatch(r"[0-9a-f]{20}", call_id)
    assert created[0][0]["link"]["self"].endswith(f"/uapi/phoneCalls/@me/0003*210/{call_id}")

    records = [
        r["entry"][0]
        for r in replies
        if isinstance(r, dict) and "entry" in r and "state" in r["entry"][0]
    ]
    assert [r["id"] for r in records] == [call_id, call_id], printed
    first, last = records
    assert first["state"] in ("created", "calling_source", "calling_destination", "bridged")
    assert last["state"] == "ended"
    assert last["hangupCause"] == "hung up via the API"
    for event in ("created", "source_answered", "bridged"):
        assert f"event: {event}\n" in printed, printed

    # it cleaned up: nothing of its session is left (the server and its relay process)
    deadline = time.monotonic() + 10
    while True:
        try:
            os.killpg(run.process.pid, 0)
        except ProcessLookupError:
            break
        assert time.monotonic() < deadline, "the tour left processes running"
        time.sleep(0.1)

    missing = shown_lines_match(shown.text, printed)
    assert not missing, f"README shows lines the tour does not print: {missing}\n{printed}"


def test_shown_output_check_catches_a_wrong_line() -> None:
    printed = (
        'id: 1\nevent: created\n{"entry":[{"id":"0123456789abcdef0123","x":1,"state":"ended"}]}\n'
    )
    shown = 'event: created\n{"entry":[{"id":"ffffffffffffffffffff",...,"state":"ended"}]}\n'
    assert shown_lines_match(shown, printed) == []
    assert shown_lines_match("event: bridged\n", printed) == ["event: bridged"]
    assert shown_lines_match('{"entry":[...,"state":"bridged"}]}\n', printed)
    assert shown_lines_match("event: created\nid: 1\n", printed) == ["id: 1"]  # order counts


# ------------------------------------------------------------------------------ real phones


def test_real_phones_flow(
    b2bua_factory: Callable[..., B2buaServer],
    shell: Callable[[str, str], ShellCommand],
    tmp_path: Path,
) -> None:
    blocks = blocks_under(README, REAL_PHONES, "sh")
    assert len(blocks) == 3, "Real phones: the server, the phone, the App's call"
    serve, phone_block, call_block = blocks
    assert serve.text.strip() == ".venv/bin/b2bua serve"
    duration_match = re.search(r"callDuration=(\d+)", call_block.text)
    assert duration_match, call_block.text
    duration = int(duration_match.group(1))

    # the embedded default (demo directory), on free ports instead of 5060 and 8080
    server = b2bua_factory(directory=None)
    log = tmp_path / "phone-messages.log"
    phone = shell("phone", sipp_command(phone_block, server, log, 5062, 8890, 6100))
    wait_for(log, 200, Direction.RECEIVED, timeout=15)  # registered

    uses = call_block.text.count("http://127.0.0.1:8080")
    assert uses >= 2, call_block.text  # the token and the create
    call_script = call_block.text.replace("http://127.0.0.1:8080", server.api_url)
    assert "8080" not in call_script and "5060" not in call_script
    call = shell("call", call_script)
    assert call.wait(30) == 0, call.output()
    created = [r for r in json_lines(call.output()) if isinstance(r, list)]
    assert len(created) == 1, call.output()
    call_id = created[0][0]["id"]

    api = Uapi(server.api_url, "demo-user-app", "demo-user-secret")
    record = api.wait_ended(call_id, timeout=duration + 30)
    api.close()
    assert record["hangupCause"] == "call duration reached", record
    assert record["disposition"] == 0  # answered
    phone_view = record["phoneCallView"][0]
    assert phone_view["number"] == "0003*210"
    audio = phone_view["media"]["audio"]
    # the sandbox's tone went out to the phone and came back (SIPp echoes what it hears)
    assert audio["rtp_packets_sent"] > 25 * duration, audio
    assert audio["rtp_packets_received"] > 25 * duration, audio

    # what the phone saw: rang, answered, BYE callDuration after its answer, 200 to it
    wait_for(log, 200, Direction.SENT, timeout=5)
    entries = messages(log)
    the_one(entries, "INVITE", Direction.RECEIVED)
    assert [e for e in entries if e.matches(180, Direction.SENT)]
    answer = next(
        e for e in entries if e.matches(200, Direction.SENT) and e.cseq_method == "INVITE"
    )
    the_one(entries, "ACK", Direction.RECEIVED)
    bye = the_one(entries, "BYE", Direction.RECEIVED)
    assert abs(bye.timestamp - answer.timestamp - duration) < 2.0
    assert any(e.matches(200, Direction.SENT) and e.cseq_method == "BYE" for e in entries)

    assert phone.process.poll() is None, "the phone stays up until stopped"
    stop_like_a_user(phone)


def test_sipp_scenarios_by_hand(
    b2bua_factory: Callable[..., B2buaServer],
    shell: Callable[[str, str], ShellCommand],
    tmp_path: Path,
) -> None:
    blocks = blocks_under(SCENARIOS_README, BY_HAND, "sh")
    assert len(blocks) == 2, "By hand: the registered phone, the calling phone"
    phone_block, caller_block = blocks

    server = b2bua_factory(directory=None)
    phone_log = tmp_path / "phone-messages.log"
    phone = shell("phone", sipp_command(phone_block, server, phone_log, 5062, 8890, 6100))
    wait_for(phone_log, 200, Direction.RECEIVED, timeout=15)  # registered

    caller_log = tmp_path / "caller-messages.log"
    caller = shell("caller", sipp_command(caller_block, server, caller_log, 5064, 8892, 6200))
    assert caller.wait(60) == 0, caller.output()[-3000:]  # SIPp: every call succeeded

    wait_for(phone_log, "BYE", Direction.RECEIVED, timeout=10)
    invite = the_one(messages(phone_log), "INVITE", Direction.RECEIVED)
    assert invite.from_display_name == "Jane Roe"  # 0003*211's caller id
    assert phone.process.poll() is None
    stop_like_a_user(phone)


# -------------------------------------------------------------------------------- embedding


def test_embedding_example_runs(repo_root: Path, tmp_path: Path) -> None:
    blocks = blocks_under(README, "Embedding", "python")
    assert len(blocks) == 1
    script = tmp_path / "embed.py"
    script.write_text(blocks[0].text)
    result = subprocess.run(
        [str(repo_root / ".venv" / "bin" / "python"), str(script)],
        cwd=repo_root,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "bridged bridged" in lines, result.stdout
    assert lines[-1] == "ended ended", result.stdout
