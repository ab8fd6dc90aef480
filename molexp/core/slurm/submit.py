"""Submitting runs to SLURM (SPEC §13): one job array, a task per run.

The order of events makes the records and the queue agree at every moment:

1. ``sbatch --hold --parsable --array=0-K`` (the script on stdin): nothing can
   start yet.  If sbatch fails (not installed, controller down) nothing has been
   written and the error is an :class:`ExecutorError` (exit 3).
2. Under each run's lock, the lifecycle appends the attempt ``{status: queued,
   executor: slurm, scheduler_job_id: "<array>_<i>", ...}`` and sets the run
   ``queued`` (:func:`molexp.core.execution.lifecycle.enqueue`).  A run that
   someone else claimed in the meantime keeps its record; its task is cancelled
   (``scancel <array>_<i>``).
3. ``scontrol release <array>``.  Each task runs ``molexp -w WS run-task REF``,
   which continues the queued attempt only if it is still queued for *its* job
   id (:mod:`molexp.core.slurm.task`).

A submission that cannot complete cancels its array and has the lifecycle close
the attempts it queued.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from molexp.core.execution import lifecycle
from molexp.core.execution.lifecycle import Outcome, RunOptions
from molexp.core.records.runs import ACTIVE, Run, ensure_run, observe, peek_run
from molexp.core.slurm import scheduler
from molexp.core.slurm.reconcile import is_slurm_active, observe_many
from molexp.core.slurm.script import SLURM_DIR, batch_script, check_sbatch_args, default_sbatch_args
from molexp.core.store import files as store
from molexp.errors import MolexpError

if TYPE_CHECKING:
    from molexp.core.records.plan import RunSpec
    from molexp.core.records.workspace import Experiment


@dataclass
class Submission:
    """The result of :func:`submit` (or of :func:`prepare` for ``--dry-run``)."""

    outcomes: list[Outcome]  # one per spec, in order (``planned`` for runs to submit)
    script: str | None = None  # None: nothing to submit
    job_id: str | None = None
    script_path: Path | None = None
    pending: list[tuple[int, Run]] = field(default_factory=list)  # (index, run) to submit
    sbatch_args: list[str] = field(default_factory=list)  # defaults, then --sbatch-arg


def prepare(
    exp: Experiment,
    specs: Sequence[RunSpec],
    options: RunOptions,
    sbatch_args: Sequence[str],
    fix: bool = False,
) -> Submission:
    """Decide which runs need submitting and write the script (in memory).

    Succeeded runs are skipped (unless ``force``); queued or running ones are held.
    Writes nothing unless ``fix``: then runs whose SLURM job vanished are recorded
    so (:func:`observe_many`) before they are submitted again.
    """
    lifecycle.require_command(exp, options)
    args = [*default_sbatch_args(exp), *check_sbatch_args(sbatch_args, "--sbatch-arg")]
    runs = [peek_run(exp, spec) for spec in specs]
    slurm_active = [r for r, _ in runs if is_slurm_active(r.record)]
    judged = {id(r): s for r, s in zip(slurm_active, observe_many(slurm_active, fix=fix))}
    outcomes: list[Outcome] = []
    pending: list[tuple[int, Run]] = []
    for i, (run, exists) in enumerate(runs):
        s = judged.get(id(run))
        status = s.status if s else observe(run.record, run.dir)[0]
        if status == "succeeded" and not options.force:
            outcomes.append(Outcome(run, "skipped", status, message="up to date"))
        elif status in ACTIVE:
            outcomes.append(
                Outcome(run, "held", status, message=lifecycle.held_message(run, status))
            )
        else:
            pending.append((i, run))
            would = "submit to SLURM" + ("" if exists else " (new run)")
            outcomes.append(Outcome(run, "planned", status, message=would))
    script = None
    if pending:
        script = batch_script(
            [r.ref for _, r in pending],
            exp.workspace.root,
            options.cwd,
            args,
            f"molexp-{exp.project.name}-{exp.name}",
        )
    return Submission(outcomes, script, pending=pending, sbatch_args=args)


def submit(
    exp: Experiment, specs: Sequence[RunSpec], options: RunOptions, sbatch_args: Sequence[str]
) -> Submission:
    """Submit the runs that need running as one job array; see the module docstring."""
    sub = prepare(exp, specs, options, sbatch_args, fix=True)
    if sub.script is None:
        return sub
    job_id = scheduler.sbatch_held(sub.script)
    sub.job_id = job_id
    slurm_dir = exp.workspace.root / SLURM_DIR
    queued: list[Run] = []
    dropped: list[str] = []
    try:
        store.make_dirs(exp.workspace.root, slurm_dir)
        sub.script_path = slurm_dir / f"{job_id}.sh"
        store.atomic_write_bytes(sub.script_path, sub.script.encode(), root=exp.workspace.root)
        for task_index, (i, _) in enumerate(sub.pending):
            task = f"{job_id}_{task_index}"
            outcome = lifecycle.enqueue(
                ensure_run(exp, specs[i]),
                task,
                options,
                {
                    "script": str(sub.script_path),
                    "output": str(slurm_dir / f"{task}.out"),
                    "sbatch_args": sub.sbatch_args,
                },
            )
            sub.outcomes[i] = outcome
            if outcome.action == "submitted":
                queued.append(outcome.run)
            else:
                dropped.append(task)
        scheduler.scancel(dropped)
        if queued:
            scheduler.release(job_id)
        else:
            scheduler.scancel([job_id])
    except BaseException as exc:
        said = exc.message if isinstance(exc, MolexpError) else str(exc) or type(exc).__name__
        _abandon(job_id, queued, f"submission failed: {said}")
        raise
    return sub


def _abandon(job_id: str, queued: Sequence[Run], reason: str) -> None:
    """Undo a submission that cannot complete: cancel the array, close its attempts."""
    try:
        scheduler.scancel([job_id])
    except MolexpError:
        pass
    for run in queued:
        lifecycle.close_attempt(run, lifecycle.latest(run.record).get("n"), "cancelled", reason)
