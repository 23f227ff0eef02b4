"""The relay in a child process: same control calls, errors and behaviour as the thread."""

from __future__ import annotations

import contextlib
import os
import pickle
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from media_ports import free_range

from engine.media import MediaEndpoint, MediaError, PortRangeExhausted
from engine.media.process import RelayProcess

HOST = "127.0.0.1"


@pytest.fixture(scope="module")
def relay() -> Iterator[RelayProcess]:
    r = RelayProcess(HOST, free_range(40))
    r.start()
    yield r
    r.close()


@pytest.fixture
def phones() -> Iterator[list[socket.socket]]:
    socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(2)]
    for s in socks:
        s.bind((HOST, 0))
        s.settimeout(2.0)
    yield socks
    for s in socks:
        s.close()


def rtp(seq: int, ssrc: int) -> bytes:
    return struct.pack("!BBHII", 0x80, 0, seq, seq * 160, ssrc) + b"\xff" * 160


def test_forwarding_both_ways_and_counters(
    relay: RelayProcess, phones: list[socket.socket]
) -> None:
    pa, pb = phones
    a, b = relay.allocate(), relay.allocate()
    relay.set_remote(a, HOST, pa.getsockname()[1])
    relay.set_remote(b, HOST, pb.getsockname()[1])
    relay.bridge(a, b)
    relay.sync()  # the commands above are one-way: wait until the child has them
    for seq in (1, 2, 4):
        pa.sendto(rtp(seq, 11), (HOST, a.rtp_port))
        data, source = pb.recvfrom(2048)
        assert data == rtp(seq, 11)
        assert source == (HOST, b.rtp_port)
    pb.sendto(rtp(1, 22), (HOST, b.rtp_port))
    assert pa.recvfrom(2048)[1] == (HOST, a.rtp_port)
    # the forwarding thread counts a packet it sent just after the send: the phone may have it
    # before the count moved, so wait for the count before comparing two readings
    deadline = time.monotonic() + 2
    while relay.stats(a).rtp.packets_sent < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    stats = relay.stats(a)
    assert (stats.ssrc, stats.expected, stats.lost) == (11, 4, 1)
    many = relay.stats_many([b, a])
    assert [s.rtp.packets_received for s in many] == [1, 3]
    assert many[1] == stats
    assert relay.statistics().bridges >= 1
    relay.release(a)
    relay.release(b)


def test_errors_cross_the_process_boundary(relay: RelayProcess) -> None:
    a = relay.allocate()
    with pytest.raises(MediaError, match="itself"):
        relay.bridge(a, a)
    with pytest.raises(MediaError, match="IP address"):
        relay.set_remote(a, "example.com", 4000)
    with pytest.raises(MediaError, match="1-65535"):
        relay.set_remote(a, HOST, 65535)  # its RTCP would be 65536
    with pytest.raises(MediaError, match="frequency"):
        relay.play_tone(a, 5000.0)
    with pytest.raises(MediaError, match="positive"):
        relay.play_tone(a, 440.0, duration=0)
    relay.release(a)
    with pytest.raises(MediaError, match="unknown or released"):
        relay.stats(a)


def test_a_one_way_command_that_fails_in_the_child_is_logged_and_the_channel_goes_on(
    capfd: pytest.CaptureFixture[str],
) -> None:
    with RelayProcess(HOST, free_range(10)) as relay:  # started here: its stderr is captured
        relay.start()
        a, b = relay.allocate(), relay.allocate()
        relay.release(a)
        relay.release(a)  # already gone: only the child can tell
        relay.bridge(a, b)
        relay.sync()
        assert relay.stats(b).rtp.packets_received == 0  # answers still match requests
        relay.release(b)
    err = capfd.readouterr().err
    assert "relay command release failed" in err
    assert "relay command bridge failed" in err


def test_pooled_endpoints_count_as_free() -> None:
    lo, hi = free_range(80)
    r = RelayProcess(HOST, (lo, hi))
    r.start()
    try:
        before = r.statistics()
        a = r.allocate()  # fills the pool with several endpoints in one round trip
        after = r.statistics()
        assert (after.endpoints, after.free_port_pairs) == (1, before.free_port_pairs - 1)
        r.release(a)
        assert r.statistics().endpoints == 0
        many = [r.allocate() for _ in range(20)]  # several refills, asked for ahead
        assert len({ep.rtp_port for ep in many}) == 20
        assert r.statistics().endpoints == 20
    finally:
        r.close()


def test_tone_and_recording_in_the_child(
    relay: RelayProcess, phones: list[socket.socket], tmp_path: Path
) -> None:
    pa, _pb = phones
    a, b = relay.allocate(), relay.allocate()
    relay.set_remote(a, HOST, pa.getsockname()[1])
    path = tmp_path / "rec.wav"
    relay.start_recording(a, b, str(path))
    relay.play_tone(a, 1000.0)
    packet = pa.recv(2048)
    assert len(packet) == 172
    relay.stop_tone(a)
    for seq in range(5):
        pa.sendto(rtp(seq, 33), (HOST, a.rtp_port))
    info = relay.stop_recording(a, b)
    assert path.exists()
    assert info.packets[1] >= 1  # the tone sent to a counts as b speaking
    relay.release(a)
    relay.release(b)


def test_a_generated_party_in_the_child(relay: RelayProcess, phones: list[socket.socket]) -> None:
    pa, _pb = phones
    a, sandbox = relay.allocate(), relay.allocate()
    relay.set_remote(a, HOST, pa.getsockname()[1])
    relay.bridge(a, sandbox)
    relay.generate(sandbox, 440.0)
    assert len(pa.recv(2048)) == 172  # the sandbox's tone, through the bridge
    for seq in range(5):
        pa.sendto(rtp(seq, 34), (HOST, a.rtp_port))
    deadline = time.monotonic() + 2
    while relay.stats(sandbox).rtp.packets_sent < 5 and time.monotonic() < deadline:
        time.sleep(0.01)
    relay.stop_generating(sandbox)
    stats = relay.stats(sandbox)
    assert stats.rtp.packets_received >= 1 and stats.rtp.packets_sent == 5
    with pytest.raises(MediaError, match="frequency"):
        relay.generate(sandbox, 5000.0)
    relay.release(a)
    relay.release(sandbox)


def test_bad_configuration_fails_start_and_close_stops_the_child() -> None:
    with pytest.raises(MediaError, match="IP address"):
        RelayProcess("nowhere", (20000, 20010)).start()
    lo, hi = free_range(4)
    r = RelayProcess(HOST, (lo, hi))
    r.start()
    pid = r.pid
    assert pid is not None
    r.allocate()
    r.allocate()
    with pytest.raises(PortRangeExhausted):
        r.allocate()
    r.close()
    r.close()
    with pytest.raises(MediaError, match="closed"):
        r.allocate()
    for port in range(lo, hi + 1):  # the child closed its sockets on the way out
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind((HOST, port))


def _alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in status


def test_the_child_exits_when_its_parent_dies() -> None:
    lo, hi = free_range(10)
    code = (
        "import os; from engine.media import RelayProcess; "
        f"r = RelayProcess('127.0.0.1', ({lo}, {hi})); r.start(); "
        "print(r.pid, flush=True); os._exit(0)"
    )
    parent = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=True
    )
    child = int(parent.stdout.strip())
    deadline = time.monotonic() + 10
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.01)  # waiting for another process to exit, not for logic
    if _alive(child):
        os.kill(child, signal.SIGKILL)
        pytest.fail("relay child outlived its parent")


def test_signals_for_the_group_leave_the_child_to_its_parent() -> None:
    """A terminal's Ctrl-C (SIGINT to the foreground group) or systemd's SIGTERM to every
    process must not kill the relay under a draining server: only the parent stops it."""
    r = RelayProcess(HOST, free_range(4))
    r.start()
    pid = r.pid
    assert pid is not None
    try:
        assert os.getpgid(pid) != os.getpgid(0)  # not in the terminal's foreground group
        os.kill(pid, signal.SIGINT)
        os.kill(pid, signal.SIGTERM)
        a = r.allocate()  # a round trip after both signals arrived
        assert r.stats(a).expected == 0 and r.alive
    finally:
        r.close()
    assert not _alive(pid)


def test_both_relays_satisfy_the_control_protocol() -> None:
    from engine.media import Relay, RelayControl

    def check(relay: RelayControl) -> str:
        return relay.address

    thread = Relay(HOST, free_range(4))
    try:
        assert check(thread) == HOST
        assert check(RelayProcess(HOST, free_range(4))) == HOST
    finally:
        thread.close()


@contextlib.contextmanager
def hung_relay() -> Iterator[tuple[RelayProcess, MediaEndpoint, int]]:
    """A relay (0.5 s answer timeout) whose child is then stopped: alive, reading nothing."""
    r = RelayProcess(HOST, free_range(10), answer_timeout=0.5)
    r.start()
    pid = r.pid
    assert pid is not None
    try:
        a = r.allocate()
        os.kill(pid, signal.SIGSTOP)
        yield r, a, pid
    finally:
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
        r.close()


def test_a_child_that_stops_answering_is_killed_and_calls_fail_instead_of_hanging(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with hung_relay() as (r, a, pid):
        with pytest.raises(MediaError, match=r"did not answer within 0\.5 s"):
            r.stats(a)
        assert not _alive(pid)
        # the operator's log line, under the relay process's logger name
        assert [
            (rec.name, rec.levelname) for rec in caplog.records if "killing it" in rec.message
        ] == [("engine.media.process", "ERROR")]
        with pytest.raises(MediaError, match="did not answer"):
            r.release(a)  # every later call says why, at once


def test_a_child_that_stops_reading_fails_the_sender_instead_of_blocking_it() -> None:
    with hung_relay() as (r, a, pid):
        with pytest.raises(MediaError, match="stopped reading its commands"):
            for _ in range(1_000_000):  # one-way: they pile up until the socket buffer is full
                r.stop_tone(a)
        assert not _alive(pid)
        assert not r.alive


def test_the_child_runs_our_code_whatever_the_current_folder_holds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server started from a folder with another ``engine/`` (an old checkout, say) must not
    start a relay child from that code."""
    fake = tmp_path / "engine"
    fake.mkdir()
    (fake / "__init__.py").write_text("raise ImportError('the wrong engine package')\n")
    monkeypatch.chdir(tmp_path)
    relay = RelayProcess(HOST, free_range(4))
    relay.start()
    try:
        ep = relay.allocate()
        assert relay.stats(ep).rtp.packets_received == 0
    finally:
        relay.close()


def test_the_child_runs_the_package_copy_its_parent_runs(tmp_path: Path) -> None:
    """The child imports ``engine`` from where the parent did, not from an installed copy:
    a parent running a copy of the package (marked) starts a child that runs that copy."""
    root = Path(__file__).resolve().parents[2]
    copy = tmp_path / "copy"
    shutil.copytree(root / "engine", copy / "engine", ignore=shutil.ignore_patterns("__pycache__"))
    marker = tmp_path / "child-ran-the-copy"
    child = copy / "engine" / "media" / "child.py"
    child.write_text(
        child.read_text().replace(
            "def main(argv: list[str]) -> None:\n",
            f"def main(argv: list[str]) -> None:\n    open({str(marker)!r}, 'w').close()\n",
        )
    )
    script = (
        "import sys\n"
        f"sys.path.insert(0, {str(copy)!r})\n"
        "from engine.media.process import RelayProcess\n"
        f"relay = RelayProcess('127.0.0.1', {free_range(4)!r})\n"
        "relay.start()\n"
        "relay.close()\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, check=True, timeout=60)
    assert marker.exists()


def test_deferred_commands_go_out_together_when_flushed_in_the_order_given(
    phones: list[socket.socket],
) -> None:
    pa, pb = phones
    with RelayProcess(HOST, free_range(10)) as relay:
        relay.start()
        woken: list[int] = []
        relay.defer_casts(lambda: woken.append(len(woken)))
        a, b = relay.allocate(), relay.allocate()
        relay.set_remote(a, HOST, pa.getsockname()[1])
        relay.set_remote(b, HOST, pb.getsockname()[1])
        relay.bridge(a, b)
        assert woken == [0]  # once per batch, at its first command
        pa.sendto(rtp(1, 11), (HOST, a.rtp_port))
        pb.settimeout(0.3)
        with pytest.raises(TimeoutError):  # not bridged yet: the commands wait
            pb.recvfrom(2048)
        relay.flush_casts()
        relay.sync()
        pa.sendto(rtp(2, 11), (HOST, a.rtp_port))
        data, _ = pb.recvfrom(2048)
        assert data == rtp(2, 11)
        relay.unbridge(a, b)
        assert woken == [0, 1]  # a new batch
        relay.sync()  # a round trip sends the batch first
        pa.sendto(rtp(3, 11), (HOST, a.rtp_port))
        with pytest.raises(TimeoutError):
            pb.recvfrom(2048)


def test_a_command_from_another_thread_sends_the_deferred_ones_first(
    phones: list[socket.socket],
) -> None:
    pa, pb = phones
    with RelayProcess(HOST, free_range(10)) as relay:
        relay.start()
        relay.defer_casts(lambda: None)
        a, b = relay.allocate(), relay.allocate()
        relay.set_remote(b, HOST, pb.getsockname()[1])
        relay.bridge(a, b)  # deferred
        worker = threading.Thread(target=relay.set_remote, args=(a, HOST, pa.getsockname()[1]))
        worker.start()
        worker.join()
        conn = relay._conn
        assert conn is not None  # a round trip that sends nothing of ours first:
        conn.send_bytes(pickle.dumps(("sync", (), {}, "call")))
        while conn.recv()[0] != "call":  # a pool refill's answer may come first
            pass
        pa.sendto(rtp(1, 11), (HOST, a.rtp_port))
        data, _ = pb.recvfrom(2048)
        assert data == rtp(1, 11)
