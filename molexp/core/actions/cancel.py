"""Cancelling runs (SPEC §10 `molexp cancel`): scancel SLURM runs, signal local ones.

* A run **queued** under SLURM: under its lock, ``scancel <array>_<i>`` and the
  attempt is recorded ``cancelled`` (were the task started anyway, it finds the
  run no longer queued for it and does nothing).
* A run **running** under SLURM: ``scancel``; SLURM sends SIGTERM to the task,
  whose molexp records ``cancelled`` itself.  If the task dies without recording,
  the run is recorded ``cancelled`` here once SLURM says the job is over and the
  lock is free or stale.
* A **local** running run: SIGTERM to the molexp process that owns its lock (same
  host only; another host is refused).  That process records ``cancelled``; it
  stops every run it executes (``run --jobs N``), not just this one.
* A running run whose owner is already gone is recorded ``interrupted`` (it was
  not cancelled: it had died before).

This module asks SLURM and the owners; the records are changed by the lifecycle
(:func:`~molexp.core.execution.lifecycle.close_stale` under a lock held here,
:func:`~molexp.core.execution.lifecycle.close_attempt` otherwise).
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from molexp.core.execution.lifecycle import close_attempt, close_stale, latest
from molexp.core.records.refs import Ref
from molexp.core.records.runs import ACTIVE, Run, observe
from molexp.core.slurm import scheduler as slurm
from molexp.core.store import lock as locks
from molexp.errors import MolexpError, UsageError

DEFAULT_PATIENCE = 60.0
QUERY_EVERY = 1.0


@dataclass
class Cancelled:
    """What `cancel` did to one run."""

    run: Run
    action: str  # cancelled | nothing | failed
    status: str
    message: str = ""

    def to_json(self) -> dict[str, Any]:
        last = latest(self.run.record)
        return {
            "id": self.run.id,
            "project": self.run.record["project"],
            "experiment": self.run.record["experiment"],
            "status": self.status,
            "action": self.action,
            "executor": last.get("executor"),
            "scheduler_job_id": last.get("scheduler_job_id"),
            "message": self.message,
        }


@dataclass
class _Plan:
    done: dict[str, Cancelled]
    queued: list[tuple[Run, locks.RunLock]]
    waiting: list[tuple[Run, Any]]  # (run, attempt n) whose owner was told to stop
    jobs: list[str]


def select(ref: Ref, everything: bool = False) -> tuple[list[Run], list[MolexpError]]:
    """The queued or running runs REF names (a run, an experiment, or with
    ``everything`` a project or the workspace), and the records that could not be read."""
    from molexp.core.records.workspace import Experiment, Project
    from molexp.core.slurm import paths
    from molexp.core.views.listing import scan

    if paths.unfinished(ref.workspace.root):  # a SLURM submission whose submitter died
        from molexp.core.slurm.journal import repair

        repair(ref.workspace)
    if ref.kind == "run":
        assert ref.experiment is not None and ref.run_id is not None
        return [Run.load(ref.experiment, ref.run_id)], []
    if ref.kind in ("workspace", "project") and not everything:
        where = "the workspace" if ref.kind == "workspace" else f"project {ref.text}"
        raise UsageError(
            f"molexp cancel {ref.text} would cancel every active run of {where}",
            "Add --all to mean it, or name a run or PROJECT/EXPERIMENT.",
        )
    project = ref.project.name if ref.project else None
    experiment = ref.experiment.name if ref.experiment else None
    listing = scan(ref.workspace, project, experiment, statuses=ACTIVE)
    runs = [
        Run(Experiment(Project(ref.workspace, r["project"]), r["experiment"]), r["id"], r)
        for r in listing.records
    ]
    return runs, listing.problems


def cancel(runs: Sequence[Run], patience: float = DEFAULT_PATIENCE) -> list[Cancelled]:
    """Cancel the active runs among ``runs``; wait up to ``patience`` s for owners.

    SLURM jobs are cancelled with one ``scancel`` call; when SLURM cannot be
    reached, an :class:`ExecutorError` is raised before a SLURM record changes.
    """
    plan = _Plan({}, [], [], [])
    try:
        for run in runs:
            _classify(run, plan)
        slurm.scancel(plan.jobs)
        for run, _ in plan.queued:
            close_stale(run, "cancelled with `molexp cancel` before it started", "cancelled")
            plan.done[run.id] = Cancelled(run, "cancelled", "cancelled", _owner_text(run))
    finally:
        for _, held in plan.queued:
            held.release()
    _await(plan, patience)
    return [plan.done[r.id] for r in runs if r.id in plan.done]


def _owner_text(run: Run) -> str:
    last = latest(run.record)
    if last.get("executor") == "slurm":
        return f"SLURM job {last.get('scheduler_job_id')}"
    return f"pid {last.get('pid')} on {last.get('host')}"


def _classify(run: Run, plan: _Plan) -> None:
    """Lock queued SLURM runs, note jobs to scancel, signal local owners."""
    run.reload()
    status, reason = observe(run.record, run.dir)
    last = latest(run.record)
    if run.status not in ACTIVE:
        plan.done[run.id] = Cancelled(run, "nothing", status, f"{status}: nothing to cancel")
        return
    if last.get("executor") == "slurm":
        job = str(last.get("scheduler_job_id") or "")
        got = locks.try_acquire(run.dir, "cancel", root=run.experiment.workspace.root)
        if isinstance(got, locks.RunLock):
            run.reload()
            if run.status == "queued" and latest(run.record).get("n") == last.get("n"):
                plan.queued.append((run, got))
                plan.jobs.append(job)
                return
            got.release()
        if job:
            plan.jobs.append(job)
        plan.waiting.append((run, last.get("n")))
        return
    owner = locks.read_lock(run.dir)
    if owner is None or owner.is_stale():
        close_attempt(run, last.get("n"), None, reason or "its owner is gone")
        plan.done[run.id] = Cancelled(
            run, "nothing", run.status, f"its owner was already gone: {run.status}"
        )
        return
    if owner.owner.get("purpose", "run") != "run":
        plan.waiting.append((run, last.get("n")))  # a brief holder (a listing, a submission)
        return
    if owner.host != locks.hostname():
        plan.done[run.id] = Cancelled(
            run,
            "failed",
            status,
            f"running on host {owner.host} (pid {owner.pid}): run `molexp cancel` there",
        )
        return
    try:
        os.kill(owner.pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    except PermissionError:
        plan.done[run.id] = Cancelled(
            run, "failed", status, f"not allowed to signal pid {owner.pid}"
        )
        return
    plan.waiting.append((run, last.get("n")))


def _await(plan: _Plan, patience: float) -> None:
    """Wait until each told owner recorded its run finished (or close it ourselves)."""
    deadline = time.monotonic() + patience
    pending = list(plan.waiting)
    view = slurm.QueueView()
    asked = 0.0
    while pending:
        jobs = [str(latest(r.record).get("scheduler_job_id") or "") for r, _ in pending]
        if any(jobs) and time.monotonic() - asked >= QUERY_EVERY:
            view, asked = slurm.query(j for j in jobs if j), time.monotonic()
        still: list[tuple[Run, Any]] = []
        for (run, n), job in zip(pending, jobs):
            if _settled(run, n, job, view):
                last = latest(run.record)
                status = last.get("status") if last.get("n") == n else run.status
                plan.done[run.id] = Cancelled(run, "cancelled", str(status), _owner_text(run))
            else:
                still.append((run, n))
        pending = still
        if pending and time.monotonic() > deadline:
            for run, _ in pending:
                plan.done[run.id] = Cancelled(
                    run,
                    "failed",
                    run.status,
                    f"still {run.status} {patience:.0f}s after being told to stop "
                    f"({_owner_text(run)}); check with `molexp show {run.id}`",
                )
            return
        if pending:
            time.sleep(0.2)


def _settled(run: Run, n: Any, job: str, view: slurm.QueueView) -> bool:
    run.reload()
    if latest(run.record).get("n") != n or run.status not in ACTIVE:
        return True
    owner = locks.read_lock(run.dir)
    if owner is not None and not owner.is_stale():
        return False
    if job and not view.gone(job):
        return False
    # The owner died without recording the outcome: record what we asked for.
    close_attempt(run, n, "cancelled", "cancelled with `molexp cancel`")
    run.reload()
    return run.status not in ACTIVE
