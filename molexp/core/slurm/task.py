"""One SLURM array task (SPEC §13): run the runs queued for it, in turn.

The batch script of a submission ends in ``exec molexp -w WS run-task REF...``
(one run per task, or K with ``--pack K``); the task's molexp *is* the job, so
SLURM's word about the job is the word about it.  A run is run only if it is
still queued for *this* task (a cancel or a later submission may have moved it
on), through the same lifecycle as a local ``run``: the queued attempt becomes
the running one.  A task SLURM starts again (``SLURM_RESTART_COUNT``: node
failure, preemption, ``scontrol requeue``) opens a new attempt of each run it
had not finished.

SIGUSR1/SIGUSR2 go to the command and change nothing else.  When SLURM ends
the task with SIGTERM, the task asks ``scontrol show job`` (and reads the line
slurmstepd wrote into the task's output) why, so the attempt records
``timeout``, ``preempted``, ``requeued``... instead of a plain cancel.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from molexp.core.execution.batch import exit_code_for
from molexp.core.execution.execute import SignalState
from molexp.core.execution.lifecycle import (
    CAUSE_STATUS,
    Outcome,
    RunOptions,
    TaskStart,
    execute_run,
    latest,
)
from molexp.core.records.refs import resolve
from molexp.core.records.runs import Run
from molexp.core.records.workspace import Workspace
from molexp.core.slurm import scheduler
from molexp.core.slurm.reconcile import STATE_CAUSE, STEPD_CAUSE, describe
from molexp.core.slurm.script import expand_pattern
from molexp.core.store.lock import heartbeat_timeout
from molexp.errors import ExecutorError, UsageError

LOCK_MARGIN = 30.0  # seconds beyond the heartbeat timeout a task waits for a run's lock


def lock_patience() -> float:
    """How long a task waits for a run's lock: longer than another host's lock takes
    to go stale, so a task SLURM requeued after its node died outwaits the dead
    start's lock instead of giving up."""
    return heartbeat_timeout() + LOCK_MARGIN


@dataclass
class TaskResult:
    """What one array task did: its job id, each run's outcome, any signal received."""

    job: str
    outcomes: list[Outcome]
    signal: int | None

    @property
    def exit_code(self) -> int:
        return exit_code_for(self.outcomes, self.signal)


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


def stepd_cause(output: str | None) -> str | None:
    """The cause slurmstepd gave in the last ``*** JOB ... ***`` line of a task's
    output file ("CANCELLED AT ... DUE TO TIME LIMIT"), or None."""
    if not output:
        return None
    try:
        with open(output, "rb") as fh:
            fh.seek(max(0, os.fstat(fh.fileno()).st_size - 16384))
            tail = fh.read().decode("utf-8", "replace")
    except OSError:
        return None
    lines = [line for line in tail.splitlines() if "*** JOB " in line and "CANCELLED AT" in line]
    if not lines:
        return None
    return next((c for text, c in STEPD_CAUSE.items() if text in lines[-1]), None)


def explainer(
    job: str, raw_id: str, restart: int, output: str | None
) -> Callable[[int], tuple[str, str, str] | None]:
    """Why SLURM sent the task a SIGTERM: ``(status, cause, error)``, None for a cancel."""

    def explain(sig: int) -> tuple[str, str, str] | None:
        if sig != signal.SIGTERM:
            return None
        cause = None
        try:
            info = next(iter(scheduler.show_job(raw_id)[0]), None)
        except ExecutorError:
            info = None
        if info is not None:
            if info.reason == "TimeLimit":
                cause = "timeout"
            elif info.restarts > restart:
                cause = "requeued"
            else:
                cause = STATE_CAUSE.get(info.state)
        said = stepd_cause(output)
        if said is not None and cause in (None, "requeued", "cancelled"):
            cause = said  # slurmstepd names preemption and node failure; scontrol does not
        if cause is None or cause == "cancelled":
            return None
        return CAUSE_STATUS[cause], cause, describe(cause, job, "SIGTERM from SLURM")

    return explain


def earlier_cause(job: str) -> Callable[[], str]:
    """The cause of the previous start's end, for a start that died unrecorded:
    ``sacct`` where SLURM keeps accounting (NODE_FAIL, PREEMPTED), else ``requeued``."""

    def earlier() -> str:
        try:
            if scheduler.accounting(scheduler.config()):
                info = scheduler.sacct([job]).get(job)
                if info is not None and info.earlier:
                    return STATE_CAUSE.get(info.earlier[-1], "requeued")
        except ExecutorError:
            pass
        return "requeued"

    return earlier


def task_output(submission: Mapping[str, str], env: Mapping[str, str]) -> str | None:
    """The task's output file: the recorded one, or the recorded pattern with what
    only the task knows (``%j`` its job id, ``%N`` its node) filled in."""
    pattern = submission.get("output_pattern")
    if not pattern:
        return submission.get("output")
    raw = env.get("SLURM_JOB_ID", "")
    node = env.get("SLURMD_NODENAME", "")
    return expand_pattern(
        pattern, {"j": raw, "J": f"{raw}.batch", "N": node, "n": "0", "t": "0", "s": "batch"}
    )


def run_refs(
    ws: Workspace, refs: Sequence[str], env: Mapping[str, str] | None = None
) -> TaskResult:
    """`molexp run-task REF...`: the runs ``refs`` name, run in turn by the current task.

    After a signal no further run starts: those stay queued for the task, and
    SLURM's word about the job settles them (or a requeued start runs them).
    """
    env = os.environ if env is None else env
    job = task_job_id(env)
    runs: list[Run] = []
    for ref in refs:
        target = resolve(ws, ref)
        if target.kind != "run" or target.experiment is None or target.run_id is None:
            raise UsageError(f"run-task needs PROJECT/EXPERIMENT/RUN_ID, got {ref!r}")
        runs.append(Run.load(target.experiment, target.run_id))
    restart = int(env.get("SLURM_RESTART_COUNT") or 0)
    signals = SignalState()
    signals.install()
    outcomes: list[Outcome] = []
    try:
        for run in runs:
            if signals.received is not None:
                break
            outcomes.append(run_task(run, job, signals, restart, env))
    finally:
        signals.uninstall()
    return TaskResult(job, outcomes, signals.received)


def run_task(
    run: Run,
    job: str,
    signals: SignalState,
    restart: int = 0,
    env: Mapping[str, str] | None = None,
    patience: float | None = None,
) -> Outcome:
    """Run ``run`` for task ``job`` if it waits for it (see the module docstring).

    A lock holder (a listing recording another run, a `cancel`, the lock of a
    start that died on another node) is waited for up to ``patience`` seconds
    (default :func:`lock_patience`).
    """
    env = os.environ if env is None else env
    attempt = latest(run.record)
    sub = attempt.get("submission") or {}
    output = task_output(sub, env)
    options = RunOptions(
        argv=sub.get("argv") or None,
        command=sub.get("command"),
        cwd=Path(attempt.get("cwd") or os.getcwd()),
        executor="slurm",
        scheduler_job_id=job,
        task=TaskStart(
            job,
            restart,
            output,
            explainer(job, env.get("SLURM_JOB_ID", job), restart, output),
            earlier_cause(job),
        ),
    )
    deadline = time.monotonic() + (lock_patience() if patience is None else patience)
    while True:
        outcome = execute_run(run, options, signals)
        if outcome.action != "held" or time.monotonic() > deadline or signals.received:
            return outcome
        time.sleep(0.5)
        run.reload()
