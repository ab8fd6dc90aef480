"""What SLURM says about runs recorded under it, and what that makes of them (SPEC §13).

Listing asks SLURM about records that are queued or running under SLURM, with
one ``squeue`` call for all of them (:func:`observe_many`).  Only SLURM's word
counts: a job that left the queue without the run finishing makes the run
``cancelled`` (it never started) or ``interrupted`` (it started, then died),
recorded by the lifecycle under the run's lock; SLURM unreachable changes
nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from molexp.core.execution.lifecycle import close_attempt, latest
from molexp.core.records.runs import ACTIVE, Run, observe
from molexp.core.slurm.scheduler import QueueView, query
from molexp.core.store import lock as locks
from molexp.errors import MolexpError


def is_slurm_active(record: Mapping[str, Any]) -> bool:
    """Queued or running under SLURM: the records that make a listing ask SLURM."""
    return record.get("status") in ACTIVE and latest(record).get("executor") == "slurm"


@dataclass
class Seen:
    """A record as it stands after asking SLURM: status now, and why it changed."""

    record: dict[str, Any]
    status: str
    reason: str | None = None
    scheduler_state: str | None = None


def verdict(record: dict[str, Any], run_dir: Path, view: QueueView) -> tuple[str, str | None]:
    """``(status, reason)`` of a SLURM-active record given what SLURM said.

    The task's molexp *is* the batch script (``exec``), so once SLURM says the job
    ended, that process is gone: a record still ``queued`` never started
    (``cancelled``), one still ``running`` died without recording (``interrupted``).
    """
    status, reason = observe(record, run_dir)
    job = str(latest(record).get("scheduler_job_id") or "")
    if not view.gone(job):
        return status, reason
    state = view.state(job)
    detail = f"job state {state.split()[0]}" if state else "SLURM no longer knows the job"
    if record["status"] == "queued":
        return (
            "cancelled",
            f"SLURM job {job or '?'} left the queue before the run started ({detail})",
        )
    held = locks.read_lock(run_dir)
    if held is not None and held.host == locks.hostname() and not held.is_stale():
        return status, reason  # its owner is alive here, finishing the record
    return "interrupted", f"SLURM job {job} ended while the run was running ({detail})"


def observe_many(runs: Sequence[Run], fix: bool = True) -> list[Seen]:
    """Ask SLURM once about ``runs`` (records queued/running under SLURM); judge each.

    A record whose job is gone is re-read first (the task may have just finished).
    With ``fix``, a run whose job SLURM says is over is recorded ``cancelled`` /
    ``interrupted`` under its lock (skipped silently when the lock is live or the
    workspace read-only: the listing still reports it).
    """
    if not runs:
        return []
    view = query(str(latest(r.record).get("scheduler_job_id") or "") for r in runs)
    seen: list[Seen] = []
    for run in runs:
        job = str(latest(run.record).get("scheduler_job_id") or "")
        n = latest(run.record).get("n")
        if view.gone(job):
            try:
                run.reload()
            except (FileNotFoundError, MolexpError):
                pass
            if latest(run.record).get("n") != n:  # a new attempt since: not what we asked about
                seen.append(Seen(run.record, *observe(run.record, run.dir)))
                continue
        status, reason = verdict(run.record, run.dir, view)
        state = view.state(job) or ("unknown" if view.unreachable else "gone")
        if view.unreachable is not None and status in ACTIVE:
            reason = f"SLURM could not be asked ({view.unreachable}); status as last recorded"
        if (
            fix
            and view.gone(job)
            and status != run.record["status"]
            and run.record["status"] in ACTIVE
        ):
            if close_attempt(run, n, None, reason):
                status, reason = run.status, None
        seen.append(Seen(run.record, status, reason, state))
    return seen


def annotate(seen: Seen) -> dict[str, Any]:
    """The record as a listing shows it (observed status, reason, SLURM state)."""
    record = seen.record
    if seen.status != record["status"]:
        record = dict(record)
        record["recorded_status"] = record["status"]
        record["status"] = seen.status
        record["status_reason"] = seen.reason
    elif seen.reason:
        record = dict(record, status_reason=seen.reason)
    if seen.scheduler_state and seen.status in ACTIVE:
        record = dict(record, scheduler_state=seen.scheduler_state)
    return record
