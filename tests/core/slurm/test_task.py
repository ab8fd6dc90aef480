"""One SLURM array task (molexp/core/slurm/task.py), without a SLURM."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from molexp.core.execution import lifecycle
from molexp.core.execution.lifecycle import RunOptions
from molexp.core.records.runs import create_run
from molexp.core.records.workspace import Experiment
from molexp.core.slurm import task as slurm
from molexp.errors import UsageError
from tests.core.slurm.conftest import FakeTool


def test_task_job_id_from_the_environment() -> None:
    assert slurm.task_job_id({"SLURM_ARRAY_JOB_ID": "41", "SLURM_ARRAY_TASK_ID": "3"}) == "41_3"
    with pytest.raises(UsageError, match="SLURM array task"):
        slurm.task_job_id({})


TASK_ENV = {"SLURM_ARRAY_JOB_ID": "7", "SLURM_ARRAY_TASK_ID": "0"}


def test_the_task_runs_the_run_queued_for_it(experiment: Experiment) -> None:
    run = create_run(experiment)
    lifecycle.enqueue(run, "7_0", RunOptions(cwd=experiment.workspace.root), {})
    done = slurm.run_refs(experiment.workspace, [run.ref], TASK_ENV)
    assert done.job == "7_0" and done.signal is None and done.exit_code == 0
    assert (done.outcomes[0].action, done.outcomes[0].status, done.outcomes[0].attempt) == (
        "executed",
        "succeeded",
        1,
    )
    (attempt,) = json.loads(run.path.read_bytes())["attempts"]
    assert attempt["status"] == "succeeded" and attempt["scheduler_job_id"] == "7_0"
    assert (run.attempt_dir(1) / "stdout.log").read_text() == "0\n"
    again = slurm.run_refs(experiment.workspace, [run.ref], TASK_ENV)  # SLURM started it twice
    assert again.outcomes[0].action == "skipped" and again.exit_code == 0
    assert again.outcomes[0].message == "up to date"


def test_the_task_of_another_job_does_nothing(experiment: Experiment) -> None:
    run = create_run(experiment)
    lifecycle.enqueue(run, "8_0", RunOptions(cwd=experiment.workspace.root), {})
    done = slurm.run_refs(experiment.workspace, [run.id], TASK_ENV)  # an id prefix names it too
    assert (
        done.outcomes[0].action == "skipped"
        and "not queued for SLURM job 7_0" in done.outcomes[0].message
    )
    assert json.loads(run.path.read_bytes())["status"] == "queued"


def test_run_ref_needs_a_task_and_a_run(experiment: Experiment) -> None:
    with pytest.raises(UsageError, match="SLURM array task"):
        slurm.run_refs(experiment.workspace, ["no/such/thing"], {})
    with pytest.raises(UsageError, match="run-task needs PROJECT/EXPERIMENT/RUN_ID, got 'p/e'"):
        slurm.run_refs(experiment.workspace, ["p/e"], TASK_ENV)


def test_a_packed_task_runs_its_runs_in_turn(experiment: Experiment) -> None:
    runs = [create_run(experiment) for _ in range(3)]
    for run in runs[:2]:
        lifecycle.enqueue(run, "7_0", RunOptions(cwd=experiment.workspace.root), {})
    lifecycle.enqueue(runs[2], "9_0", RunOptions(cwd=experiment.workspace.root), {})
    done = slurm.run_refs(experiment.workspace, [r.ref for r in runs], TASK_ENV)
    assert [o.action for o in done.outcomes] == ["executed", "executed", "skipped"]
    assert done.exit_code == 0


def test_what_slurmstepd_wrote_names_the_cause(tmp_path: Path) -> None:
    out = tmp_path / "7_0.out"
    assert slurm.stepd_cause(None) is None and slurm.stepd_cause(str(out)) is None
    out.write_text(
        "slurmstepd: error: *** JOB 8 ON n1 CANCELLED AT 2026-12-01T22:10:24 DUE TO JOB REQUEUE ***\n"
        "start 2\n"
        "slurmstepd: error: *** JOB 8 ON n1 CANCELLED AT 2026-12-01T22:14:33 DUE TO PREEMPTION ***\n"
    )
    assert slurm.stepd_cause(str(out)) == "preempted"
    with open(out, "a") as fh:
        fh.write("slurmstepd: error: *** JOB 8 ON n1 CANCELLED AT 2026-12-01T23:00:00 ***\n")
    assert slurm.stepd_cause(str(out)) is None  # a plain scancel, the last word


def test_the_task_fills_in_its_own_output_name() -> None:
    env = {"SLURM_JOB_ID": "12", "SLURMD_NODENAME": "n7"}
    assert slurm.task_output({"output_pattern": "/l/%%x-%j-%N.out"}, env) == "/l/%x-12-n7.out"
    assert slurm.task_output({"output": "/l/50%j.out"}, env) == "/l/50%j.out"
    assert slurm.task_output({}, env) is None
    assert slurm.lock_patience() > 120  # outwaits the lock of a start lost with its node


def test_a_sigterm_from_slurm_is_explained(fake_tool: FakeTool, tmp_path: Path) -> None:
    import signal

    fake_tool(
        "scontrol",
        "echo 'JobId=12 ArrayJobId=7 ArrayTaskId=0 JobState=COMPLETING Reason=TimeLimit Restarts=0'",
    )
    explain = slurm.explainer("7_0", "12", 0, None)
    assert explain(signal.SIGINT) is None
    status, cause, error = explain(signal.SIGTERM) or ("", "", "")
    assert (status, cause) == ("interrupted", "timeout") and "time limit" in error
    fake_tool(
        "scontrol",
        "echo 'JobId=12 ArrayJobId=7 ArrayTaskId=0 JobState=COMPLETING Reason=None Restarts=1'",
    )
    out = tmp_path / "o"
    out.write_text("*** JOB 12 ON n CANCELLED AT 2026 DUE TO PREEMPTION ***\n")
    assert (explain(signal.SIGTERM) or ("",))[0] == "interrupted"
    assert (slurm.explainer("7_0", "12", 0, str(out))(signal.SIGTERM) or ("", ""))[1] == "preempted"
    fake_tool(
        "scontrol",
        "echo 'JobId=12 ArrayJobId=7 ArrayTaskId=0 JobState=CANCELLED Reason=None Restarts=0'",
    )
    assert explain(signal.SIGTERM) is None  # a cancel: recorded as one
    assert slurm.earlier_cause("7_0")() == "requeued"  # no accounting: the generic cause
