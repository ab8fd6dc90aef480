"""The benchmark script runs (a smoke test: timings are printed, never asserted)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT


@pytest.mark.slow
def test_the_quick_benchmark_runs_and_reports_every_figure(tmp_path: Path) -> None:
    env = dict(os.environ)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    table = tmp_path / "table.md"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "run.py"), "--quick", "--no-goals",
         "--reps", "1", "--dir", str(tmp_path / "bench"), "--markdown", str(table)],
        capture_output=True, text=True, env=env, timeout=900,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    for figure in (
        "molexp --version",
        "molexp --help",
        "molexp show RUN --json",
        "molexp run (no-op, succeeded)",
        "molexp run -- true: overhead",
        "overhead per executed run (100-point grid of true, --jobs 1)",
        "ls --status failed --format json (2000 runs)",
        "ls --format ids (2000 runs)",
        "peak memory: ls --format ids",
        "show P/E/RUN --json among 2000 runs",
        "create a run: molexp time beyond the filesystem's",
        "ls (a table), warm (2000 runs)",
        "ls --format json, warm (2000 runs)",
        "peak memory: ls (a table), issue #17 goal",
        "index rebuild after deleting .molexp/, warm (2000 runs)",
    ):
        assert figure in proc.stdout, figure
    # Correctness is checked even here: the index changes no output.
    (row,) = [line for line in proc.stdout.splitlines() if "with the index = without" in line]
    assert row.rstrip().endswith("yes")
    # ... and so are records changed behind molexp's back (a hand edit, an rsync).
    (row,) = [line for line in proc.stdout.splitlines() if "sees a hand edit" in line]
    assert row.rstrip().endswith("yes")
    assert table.read_text().count("\n| ") >= 20


@pytest.mark.slow
def test_the_query_benchmark_runs_and_reports_every_figure(tmp_path: Path) -> None:
    import json

    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_query.py"), "--quick", "--reps", "1",
         "--dir", str(tmp_path / "bench"), "--json", "--no-goals"],
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    names = [f["name"] for f in json.loads(proc.stdout)["figures"]]
    for figure in (
        "ls --status failed --format ids (5000 runs)",
        "ls --where 'results.y>0.5'   (50% match) --format table",
        "ls --sort -metrics.loss --limit 10 --format ids",
        "compare --aggregate (2000 runs, 200 points)",
        "ctx.log per call (amortised, 20000 calls)",
    ):
        assert figure in names, figure


@pytest.mark.slow
def test_the_environment_benchmark_runs_and_reports_every_figure(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_env.py"), "--reps", "1",
         "--dir", str(tmp_path / "bench")],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    for figure in ("MOLEXP_ENV=off", "MOLEXP_ENV=full, warm", "MOLEXP_ENV=full, changed",
                   "capture, warm", "capture, changed", "capture, cold"):  # fmt: skip
        assert figure in proc.stdout, figure
    # off and basic store nothing; each changed round is a new environment
    assert "package lists stored: 4 " in proc.stdout, proc.stdout
