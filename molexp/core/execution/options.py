"""The values an execution is described by: how to run (:class:`RunOptions`),
what happened (:class:`Outcome`), a scheduler task's start (:class:`TaskStart`),
and the causes an attempt can end with (SPEC §13).  Plain values: the record
changes they lead to are :mod:`molexp.core.execution.lifecycle`'s.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from molexp.errors import MolexpError, UsageError

if TYPE_CHECKING:
    from molexp.core.provenance.gitinfo import GitInfo
    from molexp.core.records.runs import Run
    from molexp.core.records.workspace import Experiment

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


class TaskStart:
    """One start of a scheduler's task (a SLURM array task) that runs a queued run.

    ``restart`` counts the scheduler's earlier starts of the task (requeues).
    ``explain(signal)`` says, once a signal ended the command, why the scheduler
    sent it: ``(status, cause, error)``, or None for a plain cancel.  ``earlier()``
    is the cause of the previous start's end, asked when that start died without
    recording it.  ``output`` is where the scheduler writes the task's output.
    """

    # Plain classes with slots, not dataclasses: defining a dataclass costs ~1 ms
    # of every start of molexp, and these are defined on the path of `molexp run`.
    __slots__ = ("job", "restart", "output", "explain", "earlier")

    def __init__(
        self,
        job: str,
        restart: int = 0,
        output: str | None = None,
        explain: Callable[[int], tuple[str, str, str] | None] | None = None,
        earlier: Callable[[], str] | None = None,
    ) -> None:
        self.job = job
        self.restart = restart
        self.output = output
        self.explain = explain
        self.earlier = earlier

    def __repr__(self) -> str:
        return f"TaskStart(job={self.job!r}, restart={self.restart!r}, output={self.output!r})"


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


class RunOptions:
    """How to execute the selected runs (everything but the selection itself).

    ``argv``: the command after `--` (no shell); ``json_mode``: the command's
    stdout goes to stderr; ``cwd``: where commands run (default: the current
    directory); ``command``: the command recorded at submission (SLURM tasks);
    ``queue_gone``: asked when a local `run` meets a run queued on a scheduler,
    is its queue entry gone (then the run may start here)? Unset, a queued run
    is held.  ``task``: set in a scheduler's task (`molexp run-task`).
    """

    __slots__ = (
        "argv", "force", "wait", "json_mode", "cwd", "executor", "scheduler_job_id",
        "command", "echo", "git_cache", "queue_gone", "task",
    )  # fmt: skip

    def __init__(
        self,
        argv: Sequence[str] | None = None,
        force: bool = False,
        wait: bool = False,
        json_mode: bool = False,
        cwd: Path | None = None,
        executor: str = "local",
        scheduler_job_id: str | None = None,
        command: str | None = None,
        echo: bool = True,
        git_cache: dict[str, GitInfo] | None = None,
        queue_gone: Callable[[dict[str, Any]], bool] | None = None,
        task: TaskStart | None = None,
    ) -> None:
        self.argv = argv
        self.force = force
        self.wait = wait
        self.json_mode = json_mode
        self.cwd: Path = Path.cwd() if cwd is None else cwd
        self.executor = executor
        self.scheduler_job_id = scheduler_job_id
        self.command = command
        self.echo = echo
        self.git_cache: dict[str, GitInfo] = {} if git_cache is None else git_cache
        self.queue_gone = queue_gone
        self.task = task

    def __repr__(self) -> str:
        shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__slots__)
        return f"RunOptions({shown})"


class Outcome:
    """What happened to one selected run (the `run --json` line).

    ``action``: executed | skipped | submitted | planned | held | refused;
    ``error``: why a `refused` run was not run; ``reason``: why a planned run
    would (not) execute (see `preview`); ``differs``: what makes a new run
    differ from its twin; ``warnings``: for stderr (a result not stored, ...);
    ``argv``: what ran (or, planned, would run).
    """

    __slots__ = (
        "run", "action", "status", "exit_code", "attempt", "message", "signal", "error",
        "reason", "differs", "warnings", "argv",
    )  # fmt: skip

    def __init__(
        self,
        run: Run,
        action: str,
        status: str,
        exit_code: int | None = None,
        attempt: int | None = None,
        message: str = "",
        signal: int | None = None,
        error: MolexpError | None = None,
        reason: str | None = None,
        differs: list[str] | None = None,
        warnings: list[str] | None = None,
        argv: list[str] | None = None,
    ) -> None:
        self.run = run
        self.action = action
        self.status = status
        self.exit_code = exit_code
        self.attempt = attempt
        self.message = message
        self.signal = signal
        self.error = error
        self.reason = reason
        self.differs = differs
        self.warnings: list[str] = [] if warnings is None else warnings
        self.argv = argv

    def __repr__(self) -> str:
        return (
            f"Outcome(run={self.run.id!r}, action={self.action!r}, status={self.status!r}, "
            f"exit_code={self.exit_code!r}, attempt={self.attempt!r}, message={self.message!r})"
        )

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


def require_command(exp: Experiment, options: RunOptions) -> str | None:
    """The shell command the runs of ``exp`` execute, or None when ``argv`` is given.

    An experiment without a ``command:`` and without a command after ``--`` is
    refused (exit 2) before anything is written.
    """
    command = options.command or exp.definition().get("command")
    if not options.argv and not command:
        raise UsageError(
            f"experiment {exp.ref} has no command",
            f"Give one after `--` (molexp run {exp.ref} -- CMD ...) or set `command:` in "
            f"{exp.definition_path}.",
        )
    return None if options.argv else str(command)


def held_message(run: Run, status: str) -> str:
    """Why an active ``run`` is not started or submitted again."""
    last = latest(run.record)
    job = last.get("scheduler_job_id")
    if last.get("executor") == "slurm" and job:
        return f"already {status} as SLURM job {job}"
    return f"already {status} elsewhere"


def queue_entry_gone(run: Run, options: RunOptions) -> bool:
    """Whether a queued ``run``'s scheduler entry is gone (``options.queue_gone``)."""
    gone = options.queue_gone
    return gone is not None and gone(run.record["attempts"][-1])
