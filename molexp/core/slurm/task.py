"""One SLURM array task (SPEC §13): continue the attempt queued for it, or do nothing.

The batch script of a submission ends in ``exec molexp -w WS run-task REF``; the
task's molexp *is* the job, so SLURM's word about the job is the word about it.
The task runs the run only if it is still queued for *this* task's job id (a
cancel or a later submission may have moved it on), through the same lifecycle
as a local ``run``: the queued attempt becomes the running one.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from molexp.core.execution.batch import exit_code_for
from molexp.core.execution.execute import SignalState
from molexp.core.execution.lifecycle import (
    Outcome,
    RunOptions,
    execute_run,
    latest,
)
from molexp.core.records.refs import resolve
from molexp.core.records.runs import ACTIVE, Run
from molexp.core.records.workspace import Workspace
from molexp.errors import UsageError

TASK_LOCK_PATIENCE = 60.0


@dataclass
class TaskResult:
    """What one array task did: its job id, the run's outcome, any signal received."""

    job: str
    outcome: Outcome
    signal: int | None

    @property
    def exit_code(self) -> int:
        return exit_code_for([self.outcome], self.signal)


def task_job_id(env: Mapping[str, str] | None = None) -> str:
    """``<array>_<index>`` of the current SLURM array task, from its environment."""
    env = os.environ if env is None else env
    array, index = env.get("SLURM_ARRAY_JOB_ID"), env.get("SLURM_ARRAY_TASK_ID")
    if not array or index is None:
        raise UsageError(
            "run-task runs inside a SLURM array task (SLURM_ARRAY_JOB_ID is not set)",
            "Use `molexp run --executor slurm` to submit runs.",
        )
    return f"{array}_{index}"


def run_ref(ws: Workspace, ref: str, env: Mapping[str, str] | None = None) -> TaskResult:
    """`molexp run-task REF`: the run ``ref`` names, run by the current array task."""
    job = task_job_id(env)
    target = resolve(ws, ref)
    if target.kind != "run" or target.experiment is None or target.run_id is None:
        raise UsageError(f"run-task needs PROJECT/EXPERIMENT/RUN_ID, got {ref!r}")
    run = Run.load(target.experiment, target.run_id)
    outcome, signal = run_task(run, job)
    return TaskResult(job, outcome, signal)


def run_task(
    run: Run, job: str, patience: float = TASK_LOCK_PATIENCE
) -> tuple[Outcome, int | None]:
    """Continue the attempt queued for ``job``; do nothing if it is not queued for it.

    A short-lived lock holder (a listing recording another run, a `cancel`) is
    waited for up to ``patience`` seconds.  Returns the outcome and any signal.
    """
    attempt = latest(run.record)
    if run.status not in ACTIVE or attempt.get("scheduler_job_id") != job:
        return Outcome(
            run,
            "skipped",
            run.status,
            message=f"not queued for SLURM job {job} (status {run.status}); nothing to do",
        ), None
    sub = attempt.get("submission") or {}
    options = RunOptions(
        argv=sub.get("argv") or None,
        command=sub.get("command"),
        cwd=Path(attempt.get("cwd") or os.getcwd()),
        executor="slurm-task",
        scheduler_job_id=job,
    )
    signals = SignalState()
    signals.install()
    try:
        deadline = time.monotonic() + patience
        while True:
            outcome = execute_run(run, options, signals)
            if outcome.action != "held" or time.monotonic() > deadline or signals.received:
                return outcome, signals.received
            time.sleep(0.5)
            run.reload()
    finally:
        signals.uninstall()
