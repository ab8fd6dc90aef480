"""examples/makefile: real `make -j` over `molexp run`, in a copy of the example."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="needs GNU make")

EXAMPLE = ROOT / "examples" / "makefile"


@pytest.fixture
def example(tmp_path: Path) -> Path:
    work = tmp_path / "makefile"
    shutil.copytree(EXAMPLE, work)
    return work


def make(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    full_env = dict(os.environ)
    full_env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{full_env.get('PATH', '')}"
    full_env.update(env)
    return subprocess.run(
        ["make", "--no-print-directory", *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=240,
        stdin=subprocess.DEVNULL,
    )


def records(cwd: Path) -> list[dict[str, Any]]:
    proc = subprocess.run(
        [sys.executable, "-m", "molexp", "-w", str(cwd), "ls", "--format", "json"],
        capture_output=True,
        text=True,
        check=True,
    )
    return list(json.loads(proc.stdout))


def test_make_j_runs_in_parallel_and_a_second_make_does_nothing(example: Path) -> None:
    first = make(example, "-j4")
    assert first.returncode == 0, first.stdout + first.stderr
    runs = records(example)
    assert sorted((r["profile"], r["replica"]) for r in runs) == sorted(
        (p, i) for p in ("smoke", "full") for i in range(3)
    )
    assert all(r["status"] == "succeeded" and len(r["attempts"]) == 1 for r in runs)
    # runs overlapped in time: make -j4 really ran them side by side
    spans = sorted((a["started_at"], a["finished_at"]) for r in runs for a in r["attempts"])
    assert any(b[0] < a[1] for a, b in zip(spans, spans[1:])), spans
    stamp = json.loads((example / "stamps" / "smoke" / "0.json").read_text())
    assert stamp["status"] == "succeeded" and stamp["action"] == "executed"
    assert len((example / "summary.csv").read_text().splitlines()) == 7

    second = make(example, "-j4")
    assert second.returncode == 0
    assert "Nothing to be done" in second.stdout
    assert records(example) == runs

    # without the stamps, molexp itself knows the runs are done
    shutil.rmtree(example / "stamps")
    third = make(example, "-j4")
    assert third.returncode == 0, third.stderr
    assert third.stderr.count(": up to date") == 6
    assert [len(r["attempts"]) for r in records(example)] == [1] * 6


def test_a_failed_run_stops_make_and_the_next_make_retries_it(example: Path) -> None:
    failed = make(example, "-j2", SIM_FAIL="1")
    assert failed.returncode != 0
    assert "failing on purpose" in failed.stderr and "Error 1" in failed.stderr
    assert not (example / "summary.csv").exists()
    # the failed run left no stamp; its record says failed
    assert not (example / "stamps" / "smoke" / "1.json").exists()
    assert not (example / "stamps" / "full" / "1.json").exists()
    bad = [r for r in records(example) if r["status"] == "failed"]
    assert bad and all(r["replica"] == 1 for r in bad)

    fixed = make(example, "-j4")
    assert fixed.returncode == 0, fixed.stderr
    runs = records(example)
    assert len(runs) == 6 and all(r["status"] == "succeeded" for r in runs)
    retried = {r["id"] for r in bad}
    assert all(len(r["attempts"]) == (2 if r["id"] in retried else 1) for r in runs)
