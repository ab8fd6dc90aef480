"""One SLURM array task (molexp/core/slurm/task.py), without a SLURM."""

from __future__ import annotations

import json

import pytest

from molexp.core.execution import lifecycle
from molexp.core.execution.lifecycle import RunOptions
from molexp.core.records.runs import create_run
from molexp.core.records.workspace import Experiment
from molexp.core.slurm import task as slurm
from molexp.errors import UsageError


def test_task_job_id_from_the_environment() -> None:
    assert slurm.task_job_id({"SLURM_ARRAY_JOB_ID": "41", "SLURM_ARRAY_TASK_ID": "3"}) == "41_3"
    with pytest.raises(UsageError, match="SLURM array task"):
        slurm.task_job_id({})


TASK_ENV = {"SLURM_ARRAY_JOB_ID": "7", "SLURM_ARRAY_TASK_ID": "0"}


def test_the_task_runs_the_run_queued_for_it(experiment: Experiment) -> None:
    run = create_run(experiment)
    lifecycle.enqueue(run, "7_0", RunOptions(cwd=experiment.workspace.root), {})
    done = slurm.run_ref(experiment.workspace, run.ref, TASK_ENV)
    assert done.job == "7_0" and done.signal is None and done.exit_code == 0
    assert (done.outcome.action, done.outcome.status, done.outcome.attempt) == (
        "executed",
        "succeeded",
        1,
    )
    (attempt,) = json.loads(run.path.read_bytes())["attempts"]
    assert attempt["status"] == "succeeded" and attempt["scheduler_job_id"] == "7_0"
    assert (run.attempt_dir(1) / "stdout.log").read_text() == "0\n"
    again = slurm.run_ref(experiment.workspace, run.ref, TASK_ENV)  # SLURM started it twice
    assert again.outcome.action == "skipped" and again.exit_code == 0
    assert again.outcome.message == "not queued for SLURM job 7_0 (status succeeded); nothing to do"


def test_the_task_of_another_job_does_nothing(experiment: Experiment) -> None:
    run = create_run(experiment)
    lifecycle.enqueue(run, "8_0", RunOptions(cwd=experiment.workspace.root), {})
    done = slurm.run_ref(experiment.workspace, run.id, TASK_ENV)  # an id prefix names it too
    assert (
        done.outcome.action == "skipped" and "not queued for SLURM job 7_0" in done.outcome.message
    )
    assert json.loads(run.path.read_bytes())["status"] == "queued"


def test_run_ref_needs_a_task_and_a_run(experiment: Experiment) -> None:
    with pytest.raises(UsageError, match="SLURM array task"):
        slurm.run_ref(experiment.workspace, "no/such/thing", {})
    with pytest.raises(UsageError, match="run-task needs PROJECT/EXPERIMENT/RUN_ID, got 'p/e'"):
        slurm.run_ref(experiment.workspace, "p/e", TASK_ENV)
