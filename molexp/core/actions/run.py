"""`molexp run` as one call: parse the selection, plan the runs, execute or submit them.

The CLI builds a :class:`RunRequest` from its options and renders what
:func:`start` returns; every decision (which runs, which executor, dry run or
not) is made here, on plain values.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from molexp.core.execution import batch
from molexp.core.execution.lifecycle import Outcome, RunOptions
from molexp.core.model import values
from molexp.core.records import plan, profiles
from molexp.core.records.plan import RunSpec
from molexp.core.records.refs import resolve
from molexp.core.records.workspace import Experiment, Workspace
from molexp.errors import UsageError

if TYPE_CHECKING:
    from molexp.core.slurm.submit import Submission

EXECUTORS = ("local", "slurm")


# NamedTuples, not dataclasses: defining a dataclass costs ~1 ms of every start.
class RunRequest(NamedTuple):
    """What the user asked `molexp run` for, as text, before any parsing."""

    ref: str
    argv: Sequence[str] | None = None
    replicas: Sequence[int] = ()
    profile: str | None = None
    config: Path | None = None
    overrides: Sequence[str] = ()
    params: Sequence[str] = ()
    grids: Sequence[str] = ()
    grid_file: Path | None = None
    jobs: int | None = None  # local: runs at once (default 1); slurm: the %N throttle
    fail_fast: bool = False
    force: bool = False
    wait: bool = False
    dry_run: bool = False
    json_mode: bool = False
    executor: str = "local"
    sbatch_args: Sequence[str] = ()
    cwd: Path | None = None  # where molexp was started (None: the current directory)
    pack: int = 1  # slurm: runs per array task
    retries: int = 0  # slurm: resubmissions after timeout, preemption, node failure
    new_param: bool = False  # allow --param/--grid keys the experiment lacks


class Plan(NamedTuple):
    """The runs a request selects, and how to execute them."""

    request: RunRequest
    experiment: Experiment
    specs: list[RunSpec]
    options: RunOptions
    warnings: tuple[str, ...] = ()  # for stderr before anything runs


def plan_request(ws: Workspace, request: RunRequest) -> Plan:
    """Check the request and plan its runs; writes nothing."""
    if request.jobs is not None and request.jobs < 1:
        raise UsageError(f"--jobs must be at least 1, got {request.jobs}")
    slurm_only = request.sbatch_args or request.pack != 1 or request.retries
    if request.executor not in EXECUTORS or (slurm_only and request.executor != "slurm"):
        raise UsageError(
            f"--executor {request.executor!r}: use local or slurm "
            "(--sbatch-arg, --pack and --retries need slurm)"
        )
    overrides = [values.parse_assignment(o, "--override") for o in request.overrides]
    params = [values.parse_assignment(p, "--param") for p in request.params]
    grids = [values.parse_grid(g) for g in request.grids]
    sweep = plan.read_grid_file(request.grid_file) if request.grid_file else plan.GridFile([], [])
    ws.use_cache = not request.dry_run
    target = resolve(ws, request.ref)
    if target.kind != "experiment" or target.experiment is None:
        raise UsageError(
            f"molexp run needs PROJECT/EXPERIMENT, got {request.ref!r} ({target.kind})"
        )
    exp = target.experiment
    started_in = request.cwd or Path.cwd()
    cwd = exp.workdir or started_in  # SPEC §4: the same config, ids and place from anywhere
    config = started_in / request.config if request.config is not None else None
    resolved = profiles.resolve_config(
        config, cwd, request.profile, overrides, cache_dir=ws.cache_dir
    )
    specs = plan.plan(
        exp, resolved, request.replicas, params, [*sweep.grid, *grids], sweep.points,
        new_param=request.new_param,
    )  # fmt: skip
    options = RunOptions(
        argv=list(request.argv) if request.argv else None,
        force=request.force,
        wait=request.wait,
        json_mode=request.json_mode,
        cwd=cwd,
        queue_gone=_queue_gone,
    )
    warnings = batch.check_command(exp, specs, options)
    return Plan(request, exp, specs, options, tuple(warnings))


def _queue_gone(attempt: dict[str, Any]) -> bool:
    """Whether SLURM says the queued attempt's job is gone (asked only when a local
    `run` meets a queued run; imported then, not on every start)."""
    from molexp.core.slurm import scheduler

    return scheduler.queue_entry_gone(attempt)


def preview(p: Plan) -> list[Outcome]:
    """What a local `run` would do with each planned run, and why (``--dry-run``)."""
    exp = p.experiment
    new = [s for s in p.specs if not (exp.runs_dir / s.run_id / "run.json").exists()]
    siblings: list[dict[str, object]] = []
    if new:  # only then: what makes them new (the experiment's other runs, not written)
        from molexp.core.records.index import scan_experiment

        scanned = scan_experiment(exp.workspace.root, exp.project.name, exp.name, refresh=False)
        siblings = [e.summary() for e in scanned.entries]
    return [batch.preview(exp, s, p.options, siblings) for s in p.specs]


def execute(
    p: Plan,
    on_start: Callable[[RunSpec], object] | None = None,
    on_done: Callable[[Outcome], object] | None = None,
) -> tuple[list[Outcome], int | None]:
    """Execute the planned runs here (``--executor local``)."""
    jobs = p.request.jobs or 1
    if jobs > 1 and len(p.specs) > 1:
        p.options.echo = False  # the logs keep every run's output
    return batch.run_many(
        p.experiment, p.specs, p.options, jobs, on_start, on_done, p.request.fail_fast
    )


def submit(p: Plan) -> Submission:
    """Submit the planned runs to SLURM (or, in a dry run, only prepare the script)."""
    from molexp.core.slurm import submit as submission

    args = list(p.request.sbatch_args)
    settings = submission.Settings(p.request.pack, p.request.jobs, p.request.retries)
    if p.request.dry_run:
        return submission.prepare(p.experiment, p.specs, p.options, args, settings=settings)
    return submission.submit(p.experiment, p.specs, p.options, args, settings)


def exit_code(outcomes: Sequence[Outcome], signal: int | None = None) -> int:
    return batch.exit_code_for(outcomes, signal)
