"""What `show` reports about a reference: plain records, no rendering."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from molexp.core.records.annotations import with_pending
from molexp.core.records.metrics import live as live_metrics
from molexp.core.records.refs import Ref, resolve
from molexp.core.records.runs import ACTIVE, RUN_FILE, Run, load_record, missing_record, observe
from molexp.core.records.workspace import Workspace
from molexp.errors import MolexpError, NotFoundError

ENDED_BADLY = ("failed", "interrupted", "cancelled")


def run_record(ref: Ref) -> dict[str, Any]:
    assert ref.experiment is not None and ref.run_id is not None
    run_dir = ref.experiment.runs_dir / ref.run_id
    try:
        record = load_record(run_dir / RUN_FILE, ref.experiment.project.name, ref.experiment.name)
    except FileNotFoundError:
        problem = missing_record(run_dir)
        if problem is not None:
            raise problem from None
        raise NotFoundError(
            f"run {ref.run_id} is being created: its first attempt writes its record now",
            "Try again in a moment.",
        ) from None
    with_pending(record, run_dir)  # tags and notes queued while an attempt holds it
    status, reason = observe(record, run_dir)
    if (
        record["status"] in ACTIVE
        and (record.get("attempts") or [{}])[-1].get("executor") == "slurm"
    ):
        from molexp.core.slurm import reconcile as slurm

        (seen,) = slurm.observe_many([Run(ref.experiment, ref.run_id, record)])
        record = slurm.annotate(seen)
    elif status != record["status"]:
        record["recorded_status"] = record["status"]
        record["status"] = status
        record["status_reason"] = reason
    live_metrics(record, run_dir)  # a running attempt's metrics, from its file
    record["run_dir"] = str(run_dir)
    return record


def describe(ref: Ref) -> dict[str, Any]:
    """The record of what ``ref`` names, as `show --json` prints it (for a failed,
    interrupted or cancelled run, with ``stderr_tail``: the last lines of its stderr)."""
    from molexp.core.slurm import paths

    if paths.unfinished(ref.workspace.root):  # a SLURM submission whose submitter died
        from molexp.core.slurm.journal import repair

        repair(ref.workspace)
    if ref.kind == "run":
        record = run_record(ref)
        attempts = record.get("attempts") or []
        if record.get("status") in ENDED_BADLY and attempts:
            from molexp.core.views.logs import tail_lines

            n = attempts[-1].get("n")
            record["stderr_tail"] = tail_lines(
                Path(record["run_dir"]) / "attempts" / str(n) / "stderr.log"
            )
        return record
    if ref.kind == "experiment":
        assert ref.experiment is not None
        record = dict(ref.experiment.definition())
        by_status: dict[str, int] = {}
        ids = ref.experiment.run_ids()
        slurm_runs: list[Run] = []
        unreadable: list[str] = []
        for run_id in ids:
            try:
                run = Run.load(ref.experiment, run_id)
                status = observe(run.record, run.dir)[0]
            except FileNotFoundError:
                if missing_record(ref.experiment.runs_dir / run_id) is None:
                    continue  # being created: not a run yet
                status = "unreadable"
                unreadable.append(f"{ref.experiment.runs_dir / run_id / RUN_FILE}: is missing")
            except MolexpError as exc:  # counted and named, not fatal
                status = "unreadable"
                unreadable.append(str(exc).splitlines()[0])
            else:
                if (
                    run.status in ACTIVE
                    and run.attempts
                    and run.attempts[-1].get("executor") == "slurm"
                ):
                    slurm_runs.append(run)  # asked about below, all at once
                    continue
            by_status[status] = by_status.get(status, 0) + 1
        if slurm_runs:
            from molexp.core.slurm import reconcile as slurm

            for seen in slurm.observe_many(slurm_runs):
                by_status[seen.status] = by_status.get(seen.status, 0) + 1
        record["runs"] = {"total": len(ids), "by_status": by_status, "unreadable": unreadable}
        record["path"] = str(ref.experiment.path)
        return record
    if ref.kind == "project":
        assert ref.project is not None
        record = dict(ref.project.definition())
        record["experiments"] = ref.project.experiment_names()
        record["path"] = str(ref.project.path)
        return record
    record = dict(ref.workspace.definition())
    record["projects"] = ref.workspace.project_names()
    record["root"] = str(ref.workspace.root)
    return record


def describe_ref(ws: Workspace, text: str) -> tuple[str, dict[str, Any]]:
    """``(kind, record)`` of what the reference ``text`` names: a workspace, project,
    experiment, run, or (``SCOPE:NAME``, SPEC §11) an asset."""
    if ":" in text:
        from molexp.core import assets

        return "asset", assets.describe(assets.asset_by_ref(ws, text))
    target = resolve(ws, text)
    return target.kind, describe(target)
