"""What SLURM says about runs recorded under it, and what that makes of them (SPEC §13).

Listing asks SLURM about records that are queued or running under SLURM, with
one ``squeue`` call for all of them (:func:`observe_many`).  Only SLURM's word
counts: a job ``squeue`` leaves out is asked with ``scontrol``/``sacct``
(:func:`~molexp.core.slurm.scheduler.query`), and a job submitted on another
cluster is not asked here at all.  A job that ended without the run finishing
gives the attempt a cause (:func:`judge`), recorded by the lifecycle under the
run's lock; SLURM unreachable changes nothing.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from molexp.core.execution.lifecycle import CAUSE_STATUS, close_attempt, latest
from molexp.core.records.runs import ACTIVE, Run, observe
from molexp.core.slurm import scheduler
from molexp.core.slurm.scheduler import QueueView, query
from molexp.core.store import lock as locks
from molexp.errors import MolexpError

# A job state that ended a start, and the cause it gives the attempt.
STATE_CAUSE = {
    "TIMEOUT": "timeout",
    "DEADLINE": "timeout",
    "PREEMPTED": "preempted",
    "NODE_FAIL": "node_failure",
    "BOOT_FAIL": "node_failure",
    "CANCELLED": "cancelled",
    "REVOKED": "cancelled",
    "REQUEUED": "requeued",
}
# States of a job waiting to start (again): a record `running` under one has lost its start.
WAITING_STATES = frozenset({"PENDING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "SUSPENDED"})
# What slurmstepd writes into the task's output when it ends the job ("*** JOB 7 ON n1
# CANCELLED AT ... DUE TO TIME LIMIT ***"), and the cause each one gives.
STEPD_CAUSE = {
    "DUE TO TIME LIMIT": "timeout",
    "DUE TO PREEMPTION": "preempted",
    "DUE TO NODE FAILURE": "node_failure",
    "DUE TO JOB REQUEUE": "requeued",
}
CAUSE_WORDS = {
    "timeout": "reached its time limit (walltime)",
    "preempted": "was preempted by a job of higher priority",
    "node_failure": "lost its node",
    "requeued": "was requeued by SLURM",
    "launch_failed": "could not be launched",
    "cancelled": "was cancelled",
    "owner_lost": "ended without recording an outcome",
}


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
    cause: str | None = None


def cause_of_end(state: str | None, started: bool) -> str:
    """The cause of an attempt whose SLURM job ended in ``state`` (None: SLURM forgot it)."""
    word = (state or "").split()[0] if state else ""
    if word in STATE_CAUSE:
        return STATE_CAUSE[word]
    if not started:
        return "launch_failed" if word else "cancelled"
    return "owner_lost"


def describe(cause: str, job: str, detail: str) -> str:
    """The attempt's ``error`` for a scheduler ending, in words."""
    return f"SLURM job {job} {CAUSE_WORDS.get(cause, cause)} ({detail})"


def judge(
    record: dict[str, Any], run_dir: Path, view: QueueView
) -> tuple[str, str | None, str | None]:
    """``(status, reason, cause)`` of a SLURM-active record given what SLURM said.

    The task's molexp *is* the batch script (``exec``), so once SLURM says the job
    ended, or waits to start it again, that process is gone: a record still
    ``queued`` never started, one still ``running`` lost its start.
    """
    status, reason = observe(record, run_dir)
    job = str(latest(record).get("scheduler_job_id") or "")
    state = view.state(job)
    word = state.split()[0] if state else None
    started = record["status"] == "running"
    requeued = started and word in WAITING_STATES
    if not view.gone(job) and not requeued:
        return status, reason, None
    if started:
        held = locks.read_lock(run_dir)
        if held is not None and held.host == locks.hostname() and not held.is_stale():
            return status, reason, None  # its owner is alive here, finishing the record
    info = view.info.get(job)
    if requeued:
        earlier = info.earlier[-1] if info is not None and info.earlier else ""
        cause = STATE_CAUSE.get(earlier, "requeued")
        detail = f"job state {word}: SLURM will start it again"
    else:
        cause = cause_of_end(word, started)
        code = f", exit code {info.exit_code}" if info is not None and info.exit_code else ""
        detail = f"job state {word}{code}" if word else "SLURM no longer knows the job"
    if cause == "cancelled" and not started:
        return (
            "cancelled",
            f"SLURM job {job} left the queue before the run started ({detail})",
            cause,
        )
    return CAUSE_STATUS[cause], describe(cause, job, detail), cause


def verdict(record: dict[str, Any], run_dir: Path, view: QueueView) -> tuple[str, str | None]:
    """``(status, reason)`` of :func:`judge`."""
    status, reason, _ = judge(record, run_dir, view)
    return status, reason


def _askable(record: Mapping[str, Any], here: str | None) -> str | None:
    """Why SLURM here cannot speak for the record's job (None: it can)."""
    sub = latest(record).get("submission") or {}
    cluster = sub.get("cluster")
    if cluster and here and cluster != here:
        return f"submitted on SLURM cluster {cluster}, this is {here}: ask from there"
    return None


def _blind(record: Mapping[str, Any], view: QueueView) -> bool:
    """A job SLURM calls unknown that may only be hidden from us (another user's job
    under ``PrivateData=jobs``): not a word about it."""
    job = str(latest(record).get("scheduler_job_id") or "")
    user = (latest(record).get("submission") or {}).get("uid")
    return view.state(job) is None and user is not None and user != os.getuid()


def observe_many(runs: Sequence[Run], fix: bool = True) -> list[Seen]:
    """Ask SLURM once about ``runs`` (records queued/running under SLURM); judge each.

    A record whose job is over is re-read first (the task may have just finished).
    With ``fix``, a run whose job SLURM says is over is recorded (with its cause)
    under its lock (skipped silently when the lock is live or the workspace
    read-only: the listing still reports it).
    """
    if not runs:
        return []
    here = (
        scheduler.cluster_name()
        if any((latest(r.record).get("submission") or {}).get("cluster") for r in runs)
        else None
    )
    foreign = {id(r): why for r in runs if (why := _askable(r.record, here))}
    asked = [r for r in runs if id(r) not in foreign]
    view = query(str(latest(r.record).get("scheduler_job_id") or "") for r in asked)
    seen: list[Seen] = []
    for run in runs:
        if id(run) in foreign:
            seen.append(Seen(run.record, run.status, foreign[id(run)], "unknown"))
            continue
        seen.append(_one(run, view, fix))
    return seen


def _one(run: Run, view: QueueView, fix: bool) -> Seen:
    job = str(latest(run.record).get("scheduler_job_id") or "")
    n = latest(run.record).get("n")
    status, reason, cause = judge(run.record, run.dir, view)
    if cause is not None:
        try:
            run.reload()
        except (FileNotFoundError, MolexpError):
            pass
        if latest(run.record).get("n") != n or run.status not in ACTIVE:
            return Seen(run.record, *observe(run.record, run.dir))  # it moved on meanwhile
        status, reason, cause = judge(run.record, run.dir, view)
    if cause is not None and _blind(run.record, view):
        status, reason, cause = run.status, f"SLURM does not show job {job} to this user", None
    state = view.state(job) or ("gone" if job in view.unknown else "unknown")
    if view.unreachable is not None and status in ACTIVE:
        reason = f"SLURM could not be asked ({view.unreachable}); status as last recorded"
    if fix and cause is not None and status != run.record["status"]:
        if close_attempt(run, n, status, reason, cause):
            status, reason = run.status, None
    return Seen(run.record, status, reason, state, cause)


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
