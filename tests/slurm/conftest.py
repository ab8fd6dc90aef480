"""A real SLURM for the tests of `--executor slurm` (ci/slurm-ci.sh up starts one).

Without a reachable controller the tests skip with the reason, except under
``MOLEXP_REQUIRE_SLURM=1`` (CI), where they fail: CI must never pass by skipping.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Cli


@functools.lru_cache(maxsize=1)
def slurm_problem() -> str | None:
    """Why SLURM cannot be used here, or None when the controller answers."""
    for tool in ("sbatch", "squeue", "scancel", "scontrol"):
        if shutil.which(tool) is None:
            return f"`{tool}` is not on PATH (SLURM is not installed)"
    try:
        proc = subprocess.run(["scontrol", "ping"], capture_output=True, text=True, timeout=30)
    except subprocess.TimeoutExpired:
        return "`scontrol ping` did not answer within 30s"
    if proc.returncode != 0 or " is UP" not in proc.stdout:
        said = next((x.strip() for x in (proc.stdout + proc.stderr).splitlines() if x.strip()), "")
        return f"the SLURM controller is not reachable (`scontrol ping`: {said})"
    return None


@dataclass
class Slurm:
    """Helpers over the real SLURM, scoped to one test's directory."""

    root: Path
    cli: Cli

    def jobs(self) -> dict[str, str]:
        """``{job: STATE}`` of the jobs this test submitted that SLURM still lists."""
        out = subprocess.run(
            ["squeue", "-h", "-r", "-t", "all", "-o", "%i %T %Z"],
            capture_output=True,
            text=True,
            timeout=60,
        ).stdout
        jobs = {}
        for line in out.splitlines():
            job, state, workdir = line.split(maxsplit=2)
            if workdir.startswith(str(self.root)):
                jobs[job] = state
        return jobs

    def active_jobs(self) -> dict[str, str]:
        return {j: s for j, s in self.jobs().items() if s in ("PENDING", "RUNNING", "COMPLETING")}

    def records(self, ref: str) -> list[dict[str, Any]]:
        res = self.cli("ls", ref, "--format", "json")
        assert res.exit_code == 0, res.output
        records: list[dict[str, Any]] = json.loads(res.stdout)
        return records

    def wait_for(
        self, ref: str, done: Callable[[list[dict[str, Any]]], bool], timeout: float = 90
    ) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while True:
            records = self.records(ref)
            if done(records):
                return records
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"timed out after {timeout:.0f}s: {[r['status'] for r in records]}; "
                    f"SLURM: {self.jobs()}"
                )
            time.sleep(0.3)


@pytest.fixture
def slurm(tmp_path: Path, cli: Cli) -> Iterator[Slurm]:
    problem = slurm_problem()
    if problem is not None:
        if os.environ.get("MOLEXP_REQUIRE_SLURM") == "1":
            pytest.fail(f"MOLEXP_REQUIRE_SLURM=1 but {problem}", pytrace=False)
        pytest.skip(f"no SLURM here: {problem}; `ci/slurm-ci.sh up` starts one")
    helper = Slurm(tmp_path, cli)
    yield helper
    left = [job for job in helper.active_jobs()]
    if left:
        subprocess.run(["scancel", *left], capture_output=True, timeout=30)
