"""The values an execution is described by: how to run (:class:`RunOptions`),
what happened (:class:`Outcome`), a scheduler task's start (:class:`TaskStart`),
and the causes an attempt can end with (SPEC §13).  Plain values: the record
changes they lead to are :mod:`molexp.core.execution.lifecycle`'s.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from molexp.errors import MolexpError

if TYPE_CHECKING:
    from molexp.core.provenance.gitinfo import GitInfo
    from molexp.core.records.runs import Run

# Why an attempt ended when neither its command's exit nor a signal to this process
# explains it (SPEC §13): `attempt.cause`, null for an attempt its command ended.
CAUSES = (
    "timeout",
    "preempted",
    "node_failure",
    "requeued",
    "launch_failed",
    "cancelled",
    "owner_lost",
)
# The status each cause leaves (``cancelled`` and ``owner_lost`` also end queued runs).
CAUSE_STATUS = {
    "timeout": "interrupted",
    "preempted": "interrupted",
    "node_failure": "interrupted",
    "requeued": "interrupted",
    "launch_failed": "failed",
    "cancelled": "cancelled",
    "owner_lost": "interrupted",
}


def latest(record: Mapping[str, Any]) -> dict[str, Any]:
    """The latest attempt of a record (``{}`` when it has none)."""
    attempts = record.get("attempts") or []
    last = attempts[-1] if attempts else {}
    return last if isinstance(last, dict) else {}


@dataclass
class TaskStart:
    """One start of a scheduler's task (a SLURM array task) that runs a queued run.

    ``restart`` counts the scheduler's earlier starts of the task (requeues).
    ``explain(signal)`` says, once a signal ended the command, why the scheduler
    sent it: ``(status, cause, error)``, or None for a plain cancel.  ``earlier()``
    is the cause of the previous start's end, asked when that start died without
    recording it.  ``output`` is where the scheduler writes the task's output.
    """

    job: str
    restart: int = 0
    output: str | None = None
    explain: Callable[[int], tuple[str, str, str] | None] | None = None
    earlier: Callable[[], str] | None = None


def task_verdict(record: Mapping[str, Any], task: TaskStart) -> str | None:
    """What a start of scheduler task ``task`` does with ``record``.

    ``continue``: the attempt queued for it becomes the running one.  ``requeue``:
    the scheduler started the task again (node failure, preemption, ``scontrol
    requeue``) after the attempt it ran: a new attempt of the same queue entry.
    None: the run is not waiting for this task (cancelled, submitted again,
    succeeded): nothing to do.
    """
    last = latest(record)
    if last.get("scheduler_job_id") != task.job or record.get("status") == "succeeded":
        return None
    if record.get("status") == "queued":
        return "continue"
    if record.get("status") == "running" or int(last.get("restart") or 0) < task.restart:
        return "requeue"
    return None


@dataclass
class RunOptions:
    """How to execute the selected runs (everything but the selection itself)."""

    argv: Sequence[str] | None = None  # command after `--` (no shell)
    force: bool = False
    wait: bool = False
    json_mode: bool = False  # the command's stdout goes to stderr
    cwd: Path = field(default_factory=Path.cwd)
    executor: str = "local"
    scheduler_job_id: str | None = None
    command: str | None = None  # the command recorded at submission (SLURM tasks)
    echo: bool = True
    git_cache: dict[str, GitInfo] = field(default_factory=dict)
    # Asked when a local `run` meets a run queued on a scheduler: is its queue entry
    # gone (then the run may start here)?  Unset, a queued run is held.
    queue_gone: Callable[[dict[str, Any]], bool] | None = None
    task: TaskStart | None = None  # set in a scheduler's task (`molexp run-task`)


@dataclass
class Outcome:
    """What happened to one selected run (the `run --json` line)."""

    run: Run
    action: str  # executed | skipped | submitted | planned | held | refused
    status: str
    exit_code: int | None = None
    attempt: int | None = None
    message: str = ""
    signal: int | None = None
    error: MolexpError | None = None  # why a `refused` run was not run
    reason: str | None = None  # why a planned run would (not) execute; see `preview`
    differs: list[str] | None = None  # what makes a new run differ from its twin
    warnings: list[str] = field(default_factory=list)  # for stderr: a result not stored, ...
    argv: list[str] | None = None  # what ran (or, planned, would run)

    def to_json(self) -> dict[str, Any]:
        rec = self.run.record
        return {
            "id": self.run.id,
            "project": rec["project"],
            "experiment": rec["experiment"],
            "replica": rec["replica"],
            "seed": rec.get("seed"),
            "params": rec.get("params"),
            "profile": rec.get("profile"),
            "config_hash": rec.get("config_hash"),
            "status": self.status,
            "action": self.action,
            "exit_code": self.exit_code,
            "attempt": self.attempt,
            "run_dir": str(self.run.dir),
            "message": self.message,
            "reason": self.reason,
            "differs": self.differs,
            "argv": self.argv,
            "warnings": self.warnings,
        }
