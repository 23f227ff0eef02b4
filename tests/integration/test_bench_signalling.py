"""The signalling benchmark's harness with the real ``b2bua serve`` and SIPp: one short step gives
the figures the benchmark judges a tree by (clean, main-thread CPU per call, p99 INVITE->200, the
step's GC pauses), a cProfile of the server covers just that step, any checkout runs as a system,
and Sippy's ``b2bua_simple`` carries calls where Sippy is installed (here, or in the benchmarks'
own venv ``.venv-bench``: Sippy's wheel does not belong beside the tests)."""

from __future__ import annotations

import importlib.util
import math
import pstats
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


common = _load("common")  # bench_signalling imports it by this name
bench = _load("bench_signalling")

RATE = 10
WINDOW = 2.0


@pytest.fixture(scope="module")
def uas() -> Iterator[Any]:
    """The route's gateway: SIPp's built-in uas."""
    sipp = common.Sipp(["-sn", "uas", "-timeout", "300s"], "uas-test").start()
    try:
        yield sipp
    finally:
        sipp.cleanup()


@pytest.fixture(scope="module")
def ours(uas: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, Any]]:
    """``b2bua serve`` of this checkout through the harness's launcher, GC pauses recorded."""
    gc_log = tmp_path_factory.mktemp("gc") / "gc.txt"
    server = common.OursServer(common.free_port(), uas.port, env={"BENCH_GC_LOG": str(gc_log)})
    with server as system:
        yield server, system


def _step(system: Any, uas: Any, profile_to: Path | None = None, **options: Any) -> dict[str, Any]:
    return bench.run_step(system, uas, 0, "short", RATE, WINDOW, None, profile_to, **options)


def test_a_step_of_ours_gives_clean_cpu_per_call_p99_and_its_gc_pauses(
    ours: tuple[Any, Any], uas: Any
) -> None:
    server, system = ours
    row = _step(system, uas, control=server.control, gc_log=True)
    assert row["clean"], row
    assert row["successful"] == RATE * WINDOW
    assert row["failed"] == 0
    assert 0 < row["main_ms_call"] <= row["cpu_ms_call"]
    assert not math.isnan(row["p99_ms"])
    # the server answered the harness: the step's collections are counted (maybe none)
    assert row["gc_n"] >= row["gc_full"] >= 0
    assert row["gc_ms"] >= row["gc_max_ms"] >= 0


def test_a_cprofile_covers_the_step_and_names_our_code(
    ours: tuple[Any, Any], uas: Any, tmp_path: Path
) -> None:
    server, system = ours
    prof = tmp_path / "step.prof"
    row = _step(system, uas, profile_to=prof, control=server.control, profiler_kind="cprofile")
    assert row["clean"], row
    stats = pstats.Stats(str(prof))
    files = {filename for filename, _line, _name in stats.stats}  # type: ignore[attr-defined]
    assert any(f.startswith(str(BENCHMARKS.parent / "sip")) for f in files)
    assert 0 < stats.total_tt < 10 * WINDOW  # type: ignore[attr-defined]
    assert "by cumulative" in prof.with_suffix(".txt").read_text()


def test_a_checkout_runs_through_its_own_command_module(tmp_path: Path) -> None:
    assert common.server_entry(BENCHMARKS.parent) == "engine"
    moved = tmp_path / "moved"
    (moved / "b2bua").mkdir(parents=True)
    (moved / "b2bua" / "__main__.py").write_text("")
    assert common.server_entry(moved) == "b2bua"
    with pytest.raises(SystemExit, match=str(tmp_path / "empty")):
        common.server_entry(tmp_path / "empty")


def _sippy_python() -> str | None:
    """This interpreter if it has Sippy, else the benchmarks' venv's if that has it."""
    if importlib.util.find_spec("sippy") is not None:
        return sys.executable
    bench_python = BENCHMARKS.parent / ".venv-bench" / "bin" / "python"
    if bench_python.exists():
        check = [str(bench_python), "-c", "import sippy.b2bua_simple"]
        if subprocess.run(check, capture_output=True, timeout=60).returncode == 0:
            return str(bench_python)
    return None


def test_sippy_b2bua_simple_carries_the_calls(uas: Any) -> None:
    python = _sippy_python()
    if python is None:
        pytest.skip("Sippy is a benchmark extra: .venv-bench/bin/pip install -e '.[bench]'")
    with common.SippySimpleServer(uas.port, python=python) as system:
        row = _step(system, uas)
    assert system.name == "sippy_simple"
    assert row["clean"], row
    assert row["successful"] == RATE * WINDOW
    assert row["main_ms_call"] > 0


def test_the_headline_compares_ours_and_the_candidate_with_the_faster_sippy() -> None:
    rows = [
        {"system": system, "mode": "short", "rate": rate, "clean": clean}
        for system, rate, clean in [
            ("ours", 200, True),
            ("ours", 300, False),
            ("candidate", 300, True),
            ("sippy", 100, True),
            ("sippy_simple", 200, True),
            ("sippy_simple", 300, False),
        ]
    ]
    line = bench.headline(rows, ["ours", "candidate", "sippy", "sippy_simple"], "short")
    assert "ours 200 calls/s, candidate 300 calls/s, sippy 100 calls/s" in line
    assert "ours/sippy_simple = 1.00x" in line
    assert "candidate/sippy_simple = 1.50x" in line
    assert "candidate/ours = 1.50x" in line
