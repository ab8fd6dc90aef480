"""SLURM in the CLI: `run --executor slurm` rendering and the hidden `run-task`."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from molexp.cli import output, state

if TYPE_CHECKING:
    from molexp.core.actions import run as action
    from molexp.core.execution.lifecycle import Outcome
    from molexp.core.records.workspace import Experiment


def _line(o: Outcome) -> str:
    rec = o.run.record
    profile = f", profile {rec.get('profile')}" if rec.get("profile") else ""
    label = f"{o.run.ref} (replica {rec['replica']}{profile})"
    return f"{label}: {o.message or o.status}"


def _json(o: Outcome) -> dict[str, object]:
    data = o.to_json()
    attempts = o.run.record.get("attempts") or []
    data["scheduler_job_id"] = attempts[-1].get("scheduler_job_id") if attempts else None
    return data


def _summary(exp: Experiment, outcomes: Sequence[Outcome]) -> str:
    names = {"skipped": "up to date", "held": "already queued or running", "planned": "to submit"}
    counts: dict[str, int] = {}
    for o in outcomes:
        counts[names.get(o.action, o.action)] = counts.get(names.get(o.action, o.action), 0) + 1
    return f"{len(outcomes)} run(s) of {exp.ref}: " + ", ".join(
        f"{n} {k}" for k, n in sorted(counts.items())
    )


def render_submission(plan: action.Plan) -> int:
    """`molexp run --executor slurm`: submit (or print) the job array; the exit code."""
    from molexp.core.actions import run as action

    sub = action.submit(plan)
    exp, json_out = plan.experiment, plan.request.json_mode
    for o in sub.outcomes:
        output.say(_line(o))
        if json_out:
            output.print_json_line(_json(o))
    if plan.request.dry_run:
        output.say(_summary(exp, sub.outcomes) + (" (dry run: nothing submitted)"))
        if sub.script is not None and not json_out:
            sys.stdout.write(sub.script)
        return 0
    output.say(_summary(exp, sub.outcomes))
    if sub.job_id is None:
        output.say("nothing submitted")
    for array in sub.arrays:
        if array.job_id:
            output.say(f"SLURM job array {array.job_id} (script: {array.script_path})")
    if len(sub.job_ids) > 1:
        output.say(
            f"{len(sub.job_ids)} arrays: this cluster allows {sub.array_limit} tasks per array"
        )
    if sub.follow_up:
        output.say(f"SLURM job {sub.follow_up} resubmits what SLURM interrupts (--retries)")
    return action.exit_code(sub.outcomes)


def run_task(
    refs: list[str] = typer.Argument(
        ..., help="PROJECT/EXPERIMENT/RUN_ID(s) queued for this array task, run in turn."
    ),
) -> None:
    """Run the runs queued for this SLURM array task (written into batch scripts)."""
    from molexp.core.slurm import task

    done = task.run_refs(state.workspace(), refs)
    for o in done.outcomes:
        output.say(
            f"molexp run-task {o.run.ref} (SLURM job {done.job}): {o.action}, {o.status}"
            + (f" ({o.message})" if o.message else "")
        )
        for warning in o.warnings:
            output.say(f"warning: {o.run.ref}: {warning}")
    raise typer.Exit(done.exit_code)


def run_retry(
    manifest: Path = typer.Argument(
        ..., help="The submission's retry manifest (.molexp/slurm/retry-*.json)."
    ),
) -> None:
    """Resubmit the runs SLURM interrupted (the follow-up job of `run --retries`)."""
    from molexp.core.slurm import submit

    for sub in submit.retry(state.workspace().root, manifest):
        for o in sub.outcomes:
            output.say(_line(o))
        for array in sub.arrays:
            output.say(f"SLURM job array {array.job_id} (script: {array.script_path})")
    output.say("run-retry: done")
