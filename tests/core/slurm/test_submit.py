"""Submitting runs as one job array (molexp/core/slurm/submit.py), with fake SLURM tools."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from molexp.core.execution import lifecycle
from molexp.core.execution.lifecycle import RunOptions
from molexp.core.records.plan import RunSpec, plan
from molexp.core.records.profiles import ResolvedConfig
from molexp.core.records.runs import ensure_run
from molexp.core.records.workspace import Experiment
from molexp.core.slurm import submit as slurm
from molexp.core.store import lock as locks
from molexp.errors import ExecutorError, UsageError
from tests.conftest import snapshot
from tests.core.slurm.conftest import FakeTool


@pytest.fixture
def three(experiment: Experiment) -> tuple[Experiment, list[RunSpec]]:
    exp = experiment.project.experiment("three", replicas=3, command="echo {replica}")
    return exp, plan(exp, ResolvedConfig(None, {}, None))


def options(exp: Experiment, **more: Any) -> RunOptions:
    return RunOptions(cwd=exp.workspace.root, **more)


def records(exp: Experiment) -> list[dict[str, Any]]:
    found = [json.loads(p.read_bytes()) for p in exp.runs_dir.glob("*/run.json")]
    return sorted(found, key=lambda r: r["replica"])


def fake_slurm(fake_tool: FakeTool, log: Path, release: str = "exit 0") -> None:
    fake_tool("sbatch", f'cat >/dev/null; echo sbatch "$@" >>{log}; echo 77')
    fake_tool("scontrol", f'echo scontrol "$@" >>{log}; {release}')
    fake_tool("scancel", f'echo scancel "$@" >>{log}')
    fake_tool("squeue", "exit 0")


def test_prepare_plans_and_writes_nothing(three: tuple[Experiment, list[RunSpec]]) -> None:
    exp, specs = three
    ensure_run(exp, specs[0])  # exists, pending
    done = ensure_run(exp, specs[1])
    lifecycle.enqueue(done, "5_1", options(exp), {})
    lifecycle.close_attempt(done, 1, "succeeded")
    before = snapshot(exp.workspace.root)
    sub = slurm.prepare(exp, specs, options(exp), ["--time=5"])
    assert snapshot(exp.workspace.root) == before
    assert [(o.action, o.message) for o in sub.outcomes] == [
        ("planned", "submit to SLURM"),
        ("skipped", "up to date"),
        ("planned", "submit to SLURM (new run)"),
    ]
    assert [i for i, _ in sub.pending] == [0, 2] and sub.job_id is None
    assert sub.sbatch_args == ["--time=5"]
    assert sub.script is not None and "#SBATCH --array=0-1" in sub.script
    assert "#SBATCH --time=5" in sub.script
    forced = slurm.prepare(exp, specs, options(exp, force=True), [])
    assert [o.action for o in forced.outcomes] == ["planned"] * 3


def test_prepare_refuses_before_anything(experiment: Experiment) -> None:
    bare = experiment.project.experiment("bare")
    specs = plan(bare, ResolvedConfig(None, {}, None))
    with pytest.raises(UsageError, match="has no command"):
        slurm.prepare(bare, specs, options(bare), [])
    with pytest.raises(UsageError, match="molexp sets --array itself"):
        slurm.prepare(bare, specs, options(bare, argv=["true"]), ["--array=0-3"])


def test_submit_queues_every_run_then_releases_the_array(
    three: tuple[Experiment, list[RunSpec]], fake_tool: FakeTool, tmp_path: Path
) -> None:
    exp, specs = three
    log = tmp_path / "calls"
    fake_slurm(fake_tool, log)
    sub = slurm.submit(exp, specs, options(exp), [])
    assert sub.job_id == "77" and log.read_text().splitlines() == [
        "sbatch --parsable --hold",
        "scontrol release 77",
    ]
    assert sub.script_path == exp.workspace.root / ".molexp/slurm/77.sh"
    assert sub.script_path.read_text() == sub.script
    assert [(o.action, o.attempt) for o in sub.outcomes] == [("submitted", 1)] * 3
    recorded = records(exp)
    assert [r["status"] for r in recorded] == ["queued"] * 3
    assert [r["attempts"][0]["scheduler_job_id"] for r in recorded] == ["77_0", "77_1", "77_2"]
    assert recorded[2]["attempts"][0]["submission"]["output"] == str(
        exp.workspace.root / ".molexp/slurm/77_2.out"
    )
    fake_tool("squeue", 'printf "77_0 PENDING\\n77_1 RUNNING\\n77_2 PENDING\\n"')
    again = slurm.submit(exp, specs, options(exp), [])
    assert again.job_id is None and again.script is None
    assert [o.message for o in again.outcomes] == [
        f"already queued as SLURM job 77_{i}" for i in range(3)
    ]
    assert len(log.read_text().splitlines()) == 2  # sbatch was not asked again


def test_a_run_claimed_meanwhile_keeps_its_record_and_its_task_is_cancelled(
    three: tuple[Experiment, list[RunSpec]], fake_tool: FakeTool, tmp_path: Path
) -> None:
    exp, specs = three
    log = tmp_path / "calls"
    fake_slurm(fake_tool, log)
    busy = ensure_run(exp, specs[1])
    got = locks.acquire(busy.dir, "run", root=exp.workspace.root)
    try:
        sub = slurm.submit(exp, specs, options(exp), [])
    finally:
        got.release()
    assert [o.action for o in sub.outcomes] == ["submitted", "held", "submitted"]
    assert log.read_text().splitlines()[1:] == ["scancel 77_1", "scontrol release 77"]
    assert [r["status"] for r in records(exp)] == ["queued", "pending", "queued"]


def test_a_failed_release_cancels_the_array_and_closes_the_attempts(
    three: tuple[Experiment, list[RunSpec]], fake_tool: FakeTool, tmp_path: Path
) -> None:
    exp, specs = three
    log = tmp_path / "calls"
    fake_slurm(fake_tool, log, release="echo 'release refused' >&2; exit 1")
    with pytest.raises(ExecutorError, match="scontrol release 77 failed: release refused"):
        slurm.submit(exp, specs, options(exp), [])
    assert log.read_text().splitlines()[-1] == "scancel 77"
    for record in records(exp):
        attempt = record["attempts"][-1]
        assert record["status"] == "cancelled" == attempt["status"]
        assert attempt["error"].startswith("submission failed: scontrol release 77 failed")
