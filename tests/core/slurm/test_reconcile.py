"""What SLURM's answers make of a record (molexp/core/slurm/reconcile.py)."""

from __future__ import annotations

import json
import os
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
    hidden = QueueView()  # squeue left it out, nobody said it is over: still queued
    assert slurm.verdict(_record("queued"), tmp_path, hidden) == ("queued", None)
    status, reason = slurm.verdict(_record("queued"), tmp_path, QueueView(unknown={"7_0"}))
    assert (
        status == "cancelled" and "7_0" in str(reason) and "before the run started" in str(reason)
    )
    assert "SLURM no longer knows the job" in str(reason)
    status, reason = slurm.verdict(_record("queued"), tmp_path, QueueView({"7_0": "CANCELLED"}))
    assert status == "cancelled" and "CANCELLED" in str(reason)
    blind = QueueView(unreachable="down", unknown={"7_0"})
    assert slurm.verdict(_record("queued"), tmp_path, blind)[0] == "queued"


@pytest.mark.parametrize(
    "state, started, status, cause",
    [
        ("TIMEOUT", True, "interrupted", "timeout"),
        ("PREEMPTED", True, "interrupted", "preempted"),
        ("NODE_FAIL", True, "interrupted", "node_failure"),
        ("NODE_FAIL", False, "interrupted", "node_failure"),
        ("FAILED", False, "failed", "launch_failed"),
        ("FAILED", True, "interrupted", "owner_lost"),
        ("COMPLETED", True, "interrupted", "owner_lost"),
        ("CANCELLED", True, "cancelled", "cancelled"),
        ("CANCELLED", False, "cancelled", "cancelled"),
        ("PENDING", True, "interrupted", "requeued"),
    ],
)
def test_every_scheduler_ending_has_a_cause(
    tmp_path: Path, state: str, started: bool, status: str, cause: str
) -> None:
    record = _record("running" if started else "queued")
    got = slurm.judge(record, tmp_path, QueueView({"7_0": state}))
    assert got[0] == status and got[2] == cause
    assert "7_0" in str(got[1])


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
    fake_tool(
        "scontrol",
        'case "$1" in show) echo "AccountingStorageType = accounting_storage/none";; '
        '*) echo "slurm_load_jobs error: Invalid job id specified" >&2; exit 1;; esac',
    )
    (seen,) = slurm.observe_many([queued])
    assert (seen.status, seen.reason, seen.scheduler_state) == ("cancelled", None, "gone")
    record = on_disk(queued)
    assert record["status"] == "cancelled"
    assert "SLURM job 7_0 left the queue before the run started" in record["attempts"][0]["error"]
    assert record["attempts"][0]["cause"] == "cancelled"
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
    fake_tool("squeue", "exit 0")  # leaves it out; scontrol (missing) cannot be asked
    (hidden,) = slurm.observe_many([queued])
    assert hidden.status == "queued" and hidden.reason is not None
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


def test_a_job_of_another_cluster_or_hidden_from_this_user_is_not_judged(
    experiment: Experiment, fake_tool: FakeTool
) -> None:
    run = create_run(experiment)
    sub = {"cluster": "far", "uid": os.getuid() + 1}
    lifecycle.enqueue(run, "7_0", RunOptions(cwd=experiment.runs_dir), sub)
    fake_tool(
        "scontrol",
        'case "$1" in show) echo "ClusterName = ci";; *) echo "Invalid job id" >&2; exit 1;; esac',
    )
    fake_tool("squeue", "echo '7_0 CANCELLED'")  # job 7 of cluster ci: another job
    (seen,) = slurm.observe_many([run])
    assert seen.status == "queued" and "submitted on SLURM cluster far" in str(seen.reason)
    run.record["attempts"][-1]["submission"]["cluster"] = "ci"
    fake_tool("squeue", "exit 0")
    (seen,) = slurm.observe_many([run])
    assert seen.status == "queued" and "does not show job 7_0 to this user" in str(seen.reason)
    assert json.loads(run.path.read_bytes())["status"] == "queued"
