"""What SLURM's answers make of a record (molexp/core/slurm/reconcile.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from molexp.core.execution import lifecycle
from molexp.core.execution.lifecycle import RunOptions
from molexp.core.records.runs import Run, create_run
from molexp.core.records.workspace import Experiment
from molexp.core.slurm import reconcile as slurm
from molexp.core.slurm.scheduler import QueueView
from tests.core.slurm.conftest import FakeTool


def _record(status: str, job: str = "7_0") -> dict[str, object]:
    return {
        "status": status,
        "attempts": [{"n": 1, "status": status, "executor": "slurm", "scheduler_job_id": job}],
    }


def test_verdict_of_a_queued_run(tmp_path: Path) -> None:
    alive = QueueView({"7_0": "PENDING"})
    assert slurm.verdict(_record("queued"), tmp_path, alive) == ("queued", None)
    status, reason = slurm.verdict(_record("queued"), tmp_path, QueueView())
    assert (
        status == "cancelled" and "7_0" in str(reason) and "before the run started" in str(reason)
    )
    status, reason = slurm.verdict(_record("queued"), tmp_path, QueueView({"7_0": "CANCELLED"}))
    assert status == "cancelled" and "CANCELLED" in str(reason)
    blind = QueueView(unreachable="down")
    assert slurm.verdict(_record("queued"), tmp_path, blind)[0] == "queued"


def test_verdict_of_a_running_run(tmp_path: Path) -> None:
    from molexp.core.store import lock

    held = lock.acquire(tmp_path, root=tmp_path)  # this live process owns it
    try:
        done = QueueView({"7_0": "FAILED"})
        assert slurm.verdict(_record("running"), tmp_path, done)[0] == "running"
    finally:
        held.release()
    status, reason = slurm.verdict(_record("running"), tmp_path, QueueView({"7_0": "FAILED"}))
    assert status == "interrupted" and "FAILED" in str(reason)
    running = QueueView({"7_0": "RUNNING"})
    # no lock at all but SLURM runs it: the run.json re-read cannot find a record, keep it
    assert slurm.verdict(_record("running"), tmp_path, running)[0] == "running"


@pytest.fixture
def queued(experiment: Experiment) -> Run:
    """A run queued as SLURM job 7_0."""
    run = create_run(experiment)
    outcome = lifecycle.enqueue(run, "7_0", RunOptions(cwd=experiment.runs_dir), {})
    assert outcome.action == "submitted"
    return run


def on_disk(run: Run) -> dict[str, Any]:
    record: dict[str, Any] = json.loads(run.path.read_bytes())
    return record


def test_a_job_slurm_forgot_is_recorded_cancelled_by_the_lifecycle(
    queued: Run, fake_tool: FakeTool
) -> None:
    fake_tool("squeue", "echo 'slurm_load_jobs error: Invalid job id specified' >&2; exit 1")
    (seen,) = slurm.observe_many([queued])
    assert (seen.status, seen.reason, seen.scheduler_state) == ("cancelled", None, "gone")
    record = on_disk(queued)
    assert record["status"] == "cancelled"
    assert "SLURM job 7_0 left the queue before the run started" in record["attempts"][0]["error"]
    assert slurm.annotate(seen) == seen.record  # the record says it now: nothing to add


def test_without_fix_the_verdict_is_only_reported(queued: Run, fake_tool: FakeTool) -> None:
    fake_tool("squeue", "echo '7_0 CANCELLED'")
    before = queued.path.read_bytes()
    (seen,) = slurm.observe_many([queued], fix=False)
    assert seen.status == "cancelled" and "job state CANCELLED" in str(seen.reason)
    assert queued.path.read_bytes() == before
    shown = slurm.annotate(seen)
    assert (shown["status"], shown["recorded_status"]) == ("cancelled", "queued")
    assert shown["status_reason"] == seen.reason and "scheduler_state" not in shown


def test_a_waiting_job_and_an_unreachable_slurm_change_nothing(
    queued: Run, fake_tool: FakeTool
) -> None:
    before = queued.path.read_bytes()
    fake_tool("squeue", "echo '7_0 PENDING'")
    (seen,) = slurm.observe_many([queued])
    assert (seen.status, seen.reason, seen.scheduler_state) == ("queued", None, "PENDING")
    assert slurm.annotate(seen)["scheduler_state"] == "PENDING"
    fake_tool("squeue", "echo 'squeue: error: Unable to contact slurm controller' >&2; exit 1")
    (blind,) = slurm.observe_many([queued])
    assert (blind.status, blind.scheduler_state) == ("queued", "unknown")
    assert str(blind.reason).startswith("SLURM could not be asked (squeue failed: Unable to")
    assert queued.path.read_bytes() == before
    assert slurm.observe_many([]) == []


def test_slurm_active_records() -> None:
    assert slurm.is_slurm_active(_record("queued")) and slurm.is_slurm_active(_record("running"))
    assert not slurm.is_slurm_active(_record("cancelled"))
    local = {"status": "running", "attempts": [{"n": 1, "executor": "local"}]}
    assert not slurm.is_slurm_active(local)
    assert not slurm.is_slurm_active({"status": "pending", "attempts": []})
