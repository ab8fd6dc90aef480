"""Submitting runs to SLURM (SPEC §13): job arrays, a task per run (or per K runs).

The order of events makes the records and the queue agree at every moment:

1. A journal is opened (:mod:`molexp.core.slurm.journal`) naming the runs.
2. ``sbatch --hold --parsable`` for each array (no more than ``MaxArraySize``
   tasks each, read from ``scontrol show config``; indices from 0 in each, the
   script maps them to its runs), every id noted in the journal: nothing can
   start yet.  If sbatch fails nothing has been recorded; the arrays already
   accepted are cancelled (exit 3).
3. Under each run's lock, the lifecycle appends the attempt ``{status: queued,
   executor: slurm, scheduler_job_id: "<array>_<i>", ...}``
   (:func:`molexp.core.execution.lifecycle.enqueue`).  A run that someone else
   claimed in the meantime keeps its record; its task is cancelled.
4. The journal notes the release; one ``scontrol release`` for all arrays (and
   for the follow-up job of ``--retries``); the journal goes.

A submission that cannot complete, or is stopped (Ctrl-C, SIGTERM, the SIGHUP of
a dropped SSH session), cancels its arrays and has the lifecycle close the
attempts it queued.  One killed outright (SIGKILL, a lost login node) leaves
its journal, and the next molexp command that looks repairs it.
"""

from __future__ import annotations

import functools
import json
import math
import os
import signal
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from molexp.core.execution import lifecycle
from molexp.core.execution.lifecycle import Outcome, RunOptions
from molexp.core.records.runs import ACTIVE, Run, ensure_run, observe, peek_run
from molexp.core.slurm import journal as journals
from molexp.core.slurm import scheduler
from molexp.core.slurm.paths import SLURM_DIR
from molexp.core.slurm.reconcile import is_slurm_active, observe_many
from molexp.core.slurm.script import (
    batch_script,
    check_sbatch_args,
    defaults,
    escape,
    expand_pattern,
    no_patterns,
    option,
    output_pattern,
    pending_tokens,
)
from molexp.core.store import files as store
from molexp.errors import ExecutorError, MolexpError, UsageError

if TYPE_CHECKING:
    from molexp.core.records.plan import RunSpec
    from molexp.core.records.workspace import Experiment

RETRY_CAUSES = ("timeout", "preempted", "node_failure")
# Options a follow-up job of --retries keeps (where it may run), not what the runs need.
_FOLLOW_UP_KEEPS = ("partition", "account", "qos", "reservation", "clusters")


@dataclass(frozen=True)
class Settings:
    """How runs are laid out in SLURM: ``pack`` runs per task, at most ``throttle``
    tasks at once (``%N``), ``retries`` resubmissions after timeout/preemption/node failure."""

    pack: int = 1
    throttle: int | None = None
    retries: int = 0
    retry: int = 0  # this submission is the retry-th resubmission of its runs

    def check(self) -> None:
        if self.pack < 1:
            raise UsageError(f"--pack must be at least 1, got {self.pack}")
        if self.retries < 0:
            raise UsageError(f"--retries must be 0 or more, got {self.retries}")


@dataclass
class Array:
    """One job array of a submission: task ``i`` runs the runs of ``groups[i]``."""

    groups: list[list[int]]  # indices into Submission.pending
    script: str
    job_id: str | None = None
    script_path: Path | None = None


@dataclass
class Submission:
    """The result of :func:`submit` (or of :func:`prepare` for ``--dry-run``)."""

    outcomes: list[Outcome]  # one per spec, in order (``planned`` for runs to submit)
    arrays: list[Array] = field(default_factory=list)
    pending: list[tuple[int, Run]] = field(default_factory=list)  # (index, run) to submit
    sbatch_args: list[str] = field(default_factory=list)  # defaults, then --sbatch-arg
    array_limit: int = scheduler.DEFAULT_MAX_ARRAY_SIZE
    follow_up: str | None = None  # job id of the --retries follow-up job

    @property
    def script(self) -> str | None:
        """The scripts to submit, one after the other (None: nothing to submit)."""
        return "\n".join(a.script for a in self.arrays) if self.arrays else None

    @property
    def job_ids(self) -> list[str]:
        return [a.job_id for a in self.arrays if a.job_id]

    @property
    def job_id(self) -> str | None:
        return self.job_ids[0] if self.job_ids else None


def _limit(dry_run: bool) -> int:
    """The cluster's tasks per array; a dry run without SLURM assumes the default."""
    try:
        scheduler.require("sbatch")
        return scheduler.array_limit(scheduler.config())
    except ExecutorError:
        if dry_run:
            return scheduler.DEFAULT_MAX_ARRAY_SIZE
        raise


def layout(n: int, pack: int, limit: int) -> list[list[list[int]]]:
    """``n`` runs in tasks of ``pack``, the tasks in arrays of at most ``limit``:
    ``arrays[a][task] = [run index, ...]``."""
    tasks = [list(range(i, min(i + pack, n))) for i in range(0, n, pack)]
    return [tasks[i : i + limit] for i in range(0, len(tasks), limit)]


def _job_name(exp: Experiment) -> str:
    return f"molexp-{exp.project.name}-{exp.name}"


def prepare(
    exp: Experiment,
    specs: Sequence[RunSpec],
    options: RunOptions,
    sbatch_args: Sequence[str],
    fix: bool = False,
    settings: Settings | None = None,
    runs: Sequence[Run] | None = None,
) -> Submission:
    """Decide which runs need submitting and write the scripts (in memory).

    Succeeded runs are skipped (unless ``force``); queued or running ones are held.
    Writes nothing unless ``fix``: then runs whose SLURM job vanished are recorded
    so (:func:`observe_many`) before they are submitted again.  ``runs`` (the
    retry of a submission) replaces ``specs``.
    """
    settings = settings or Settings()
    settings.check()
    lifecycle.require_command(exp, options)
    args = [*defaults(exp).sbatch_args, *check_sbatch_args(sbatch_args, "--sbatch-arg")]
    found = [(r, True) for r in runs] if runs is not None else [peek_run(exp, s) for s in specs]
    slurm_active = [r for r, _ in found if is_slurm_active(r.record)]
    judged = {id(r): s for r, s in zip(slurm_active, observe_many(slurm_active, fix=fix))}
    outcomes: list[Outcome] = []
    pending: list[tuple[int, Run]] = []
    for i, (run, exists) in enumerate(found):
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
    sub = Submission(outcomes, pending=pending, sbatch_args=args)
    if pending:
        sub.array_limit = _limit(dry_run=not fix)
        for groups in layout(len(pending), settings.pack, sub.array_limit):
            array = Array(groups, "")
            _write_one(exp, sub, array, options, settings, None, None)
            sub.arrays.append(array)
    return sub


@contextmanager
def _stop_on_signals() -> Iterator[None]:
    """SIGTERM and SIGHUP (a dropped SSH session) stop a submission as Ctrl-C does:
    it is undone, never left half-done."""

    def stop(sig: int, frame: object) -> None:
        raise KeyboardInterrupt(f"stopped by signal {sig}")

    previous = {}
    try:
        for sig in (signal.SIGTERM, signal.SIGHUP):
            previous[sig] = signal.signal(sig, stop)
    except ValueError:  # not the main thread: nothing to install
        pass
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def submit(
    exp: Experiment,
    specs: Sequence[RunSpec],
    options: RunOptions,
    sbatch_args: Sequence[str],
    settings: Settings | None = None,
    runs: Sequence[Run] | None = None,
) -> Submission:
    """Submit the runs that need running as job arrays; see the module docstring."""
    settings = settings or Settings()
    ws = exp.workspace
    journals.repair(ws)
    sub = prepare(exp, specs, options, sbatch_args, fix=True, settings=settings, runs=runs)
    if not sub.arrays:
        return sub
    slurm_dir = ws.root / SLURM_DIR
    store.make_dirs(ws.root, slurm_dir)
    journal = journals.Journal.open(ws.root, [r.ref for _, r in sub.pending])
    queued: list[Run] = []
    try:
        with _stop_on_signals():
            _submit_arrays(exp, sub, options, settings, journal, slurm_dir)
            dropped: list[str] = []
            for array in sub.arrays:
                for t, group in enumerate(array.groups):
                    task = f"{array.job_id}_{t}"
                    kept = False
                    for i in group:
                        spec_index, run = sub.pending[i]
                        outcome = _enqueue(
                            exp,
                            specs,
                            run,
                            spec_index,
                            task,
                            options,
                            sub,
                            array,
                            t,
                            settings,
                            runs,
                        )
                        sub.outcomes[spec_index] = outcome
                        if outcome.action == "submitted":
                            queued.append(outcome.run)
                            kept = True
                    if not kept:
                        dropped.append(task)
            scheduler.scancel(dropped)
            if queued and settings.retries > 0:
                sub.follow_up = _follow_up(exp, sub, options, settings, journal, slurm_dir)
            journal.releasing()
            if queued:
                scheduler.release([*sub.job_ids, *([sub.follow_up] if sub.follow_up else [])])
            else:
                scheduler.scancel(sub.job_ids)
    except BaseException as exc:
        said = exc.message if isinstance(exc, MolexpError) else str(exc) or type(exc).__name__
        _abandon(journal, sub, queued, f"submission failed: {said}")
        raise
    journal.close()
    return sub


def _submit_arrays(
    exp: Experiment,
    sub: Submission,
    options: RunOptions,
    settings: Settings,
    journal: journals.Journal,
    slurm_dir: Path,
) -> None:
    """sbatch each array held, noting each id in the journal before anything else."""
    previous: str | None = None
    for array in sub.arrays:
        chain = f"afterany:{previous}" if settings.throttle and previous else None
        _write_one(exp, sub, array, options, settings, journal.comment, chain)
        job_id = scheduler.sbatch_held(array.script)
        journal.array(job_id)
        array.job_id = job_id
        array.script_path = slurm_dir / f"{job_id}.sh"
        store.atomic_write_bytes(
            array.script_path, array.script.encode(), durable=False, root=exp.workspace.root
        )
        previous = job_id


def _write_one(
    exp: Experiment,
    sub: Submission,
    array: Array,
    options: RunOptions,
    settings: Settings,
    comment: str | None,
    chain: str | None,
) -> None:
    """Write ``array``'s script; ``chain`` (``afterany:<previous array>``) makes a
    throttled submission's arrays run one after another, so the throttle holds."""
    user_dep = option(sub.sbatch_args, "dependency", "d")
    args = [a for a in sub.sbatch_args if not a.startswith(("--dependency=", "-d"))]
    deps = [d for d in (user_dep, chain) if d]
    array.script = batch_script(
        [[sub.pending[i][1].ref for i in group] for group in array.groups],
        exp.workspace.root,
        options.cwd,
        args,
        _job_name(exp),
        comment=comment,
        throttle=settings.throttle,
        dependency=",".join(deps) or None,
    )


def _enqueue(
    exp: Experiment,
    specs: Sequence[RunSpec],
    run: Run,
    spec_index: int,
    task: str,
    options: RunOptions,
    sub: Submission,
    array: Array,
    index: int,
    settings: Settings,
    runs: Sequence[Run] | None,
) -> Outcome:
    """Record one run queued for ``task`` (the lifecycle writes it)."""
    target = run if runs is not None else ensure_run(exp, specs[spec_index])
    pattern = output_pattern(exp.workspace.root)
    job_id = str(array.job_id)
    values = {"A": job_id, "a": str(index), "x": _job_name(exp), "u": _user()}
    partial = expand_pattern(pattern, values, final=False)
    output = {"output_pattern": partial} if pending_tokens(partial) else {}
    return lifecycle.enqueue(
        target,
        task,
        options,
        {
            "script": str(array.script_path),
            "output": expand_pattern(partial, {}),
            **output,
            "sbatch_args": sub.sbatch_args,
            "cluster": scheduler.cluster_name(),
            "uid": os.getuid(),
            "retry": settings.retry,
        },
    )


@functools.lru_cache(maxsize=1)
def _user() -> str:
    import pwd

    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        return str(os.getuid())


def _abandon(
    journal: journals.Journal, sub: Submission, queued: Sequence[Run], reason: str
) -> None:
    """Undo a submission that cannot complete: cancel its arrays, close its attempts."""
    arrays = [*sub.job_ids, *([sub.follow_up] if sub.follow_up else [])]
    try:
        found = set(arrays) | set(scheduler.jobs_with_comment(journal.comment))
    except MolexpError:
        found = set(arrays)
    try:
        scheduler.scancel(sorted(found))
    except MolexpError:
        return  # SLURM unreachable: the journal stays, the next command repairs it
    for run in queued:
        lifecycle.close_attempt(
            run, lifecycle.latest(run.record).get("n"), "cancelled", reason, "cancelled"
        )
    journal.close()


# -- --retries: a follow-up job in SLURM, no process on the login node ----------------


def parse_time(text: str) -> int | None:
    """Seconds of a SLURM time limit (``90``, ``1:30:00``, ``2-12``, ``1-0:30``); None
    for ``UNLIMITED``/``INFINITE`` or text SLURM would not read."""
    text = text.strip()
    days = 0
    if "-" in text:
        d, _, text = text.partition("-")
        if not d.isdigit():
            return None
        days = int(d)
        parts = text.split(":")
        if not all(p.isdigit() for p in parts) or len(parts) > 3:
            return None
        h, m, s = ([*map(int, parts)] + [0, 0, 0])[:3]
        return ((days * 24 + h) * 60 + m) * 60 + s
    parts = text.split(":")
    if not parts or not all(p.isdigit() for p in parts) or len(parts) > 3:
        return None
    nums = [int(p) for p in parts]
    if len(nums) == 1:
        return nums[0] * 60
    if len(nums) == 2:
        return nums[0] * 60 + nums[1]
    return (nums[0] * 60 + nums[1]) * 60 + nums[2]


def format_time(seconds: int) -> str:
    """A SLURM time limit: ``D-HH:MM:SS`` (whole minutes, rounded up)."""
    minutes = math.ceil(seconds / 60)
    d, rest = divmod(minutes, 24 * 60)
    return f"{d}-{rest // 60:02d}:{rest % 60:02d}:00"


def longer(args: Sequence[str], factor: float, current: str | None) -> list[str]:
    """``args`` with the time limit multiplied by ``factor`` (appended: sbatch uses the
    last); ``current`` is SLURM's limit for the job when ``args`` set none."""
    given = option(args, "time", "t") or current
    seconds = parse_time(given) if given else None
    if seconds is None:
        return list(args)
    return [*args, f"--time={format_time(int(seconds * factor))}"]


def _follow_up(
    exp: Experiment,
    sub: Submission,
    options: RunOptions,
    settings: Settings,
    journal: journals.Journal,
    slurm_dir: Path,
) -> str:
    """Submit (held) the job that runs ``molexp run-retry`` once the arrays have ended."""
    manifest = {
        "experiment": exp.ref,
        "refs": [r.ref for _, r in sub.pending],
        "arrays": sub.job_ids,
        "sbatch_args": sub.sbatch_args,
        "argv": list(options.argv) if options.argv else None,
        "command": options.command,
        "cwd": str(options.cwd),
        "pack": settings.pack,
        "throttle": settings.throttle,
        "retries": settings.retries,
        "retry": settings.retry,
    }
    path = slurm_dir / f"retry-{journal.token}.json"
    store.atomic_write_bytes(
        path, (json.dumps(manifest, indent=2) + "\n").encode(), root=exp.workspace.root
    )
    keep = [
        a
        for a in sub.sbatch_args
        if a.startswith(tuple(f"--{k}=" for k in _FOLLOW_UP_KEEPS))
        or a.startswith(("-p", "-A", "-q"))
    ]
    import shlex
    import sys

    lines = [
        "#!/bin/bash",
        f"# molexp: resubmits the runs of {', '.join(sub.job_ids)} that SLURM interrupted "
        f"(--retries, {settings.retries} left).",
        *(
            f"#SBATCH {escape(d)}"
            for d in (
                f"--job-name=molexp-retry-{exp.project.name}-{exp.name}",
                f"--output={no_patterns(str(slurm_dir))}/retry-%j.out",
                f"--chdir={options.cwd}",
                f"--comment={journal.comment}",
                "--dependency=afterany:" + ":".join(sub.job_ids),
                "--time=10",
                "--ntasks=1",
                *keep,
            )
        ),
        f"exec {shlex.quote(sys.executable)} -m molexp -w {shlex.quote(str(exp.workspace.root))} "
        f"run-retry {shlex.quote(str(path))}",
        "",
    ]
    job_id = scheduler.sbatch_held("\n".join(lines))
    journal.array(job_id)
    return job_id


MANIFEST_KEYS = ("experiment", "refs", "arrays", "sbatch_args", "cwd", "retries")


def read_manifest(path: Path) -> dict[str, Any]:
    """The retry manifest a submission with ``--retries`` wrote (a UsageError if not one)."""
    try:
        manifest = json.loads(path.read_bytes())
    except FileNotFoundError:
        raise UsageError(f"no retry manifest at {path}") from None
    except (OSError, ValueError) as exc:
        raise UsageError(f"{path} is not a retry manifest ({exc})") from None
    if not isinstance(manifest, dict) or any(k not in manifest for k in MANIFEST_KEYS):
        raise UsageError(f"{path} is not a retry manifest (written by `run --retries`)")
    return manifest


def retry(ws_root: Path, manifest_path: Path) -> list[Submission]:
    """`molexp run-retry MANIFEST` (the follow-up job): resubmit the runs of a
    submission that SLURM interrupted (timeout, preemption, node failure).

    The runs still recorded queued or running are settled on SLURM's word first.
    Runs that timed out get ``slurm.retry_time_factor`` times their time limit.
    Each resubmission carries one retry fewer; the manifest goes when done.
    """
    from molexp.core.records.refs import resolve
    from molexp.core.records.workspace import Workspace

    manifest = read_manifest(manifest_path)
    ws = Workspace(ws_root)
    target = resolve(ws, manifest["experiment"])
    assert target.experiment is not None
    exp = target.experiment
    arrays = set(manifest["arrays"])
    runs: list[Run] = []
    for ref in manifest["refs"]:
        try:
            runs.append(Run.load(exp, ref.rsplit("/", 1)[1]))
        except (FileNotFoundError, MolexpError):
            continue
    observe_many([r for r in runs if is_slurm_active(r.record)])
    by_cause: dict[str, list[Run]] = {}
    for run in runs:
        run.reload()
        last = lifecycle.latest(run.record)
        job = str(last.get("scheduler_job_id") or "")
        if scheduler.base_id(job) in arrays and last.get("cause") in RETRY_CAUSES:
            kind = "timeout" if last.get("cause") == "timeout" else "other"
            by_cause.setdefault(kind, []).append(run)
    options = RunOptions(
        argv=manifest.get("argv"), command=manifest.get("command"), cwd=Path(manifest["cwd"])
    )
    settings = Settings(
        pack=int(manifest.get("pack") or 1),
        throttle=manifest.get("throttle"),
        retries=int(manifest["retries"]) - 1,
        retry=int(manifest.get("retry") or 0) + 1,
    )
    done: list[Submission] = []
    for kind, group in sorted(by_cause.items()):
        args = list(manifest["sbatch_args"])
        factor = defaults(exp).retry_time_factor
        if kind == "timeout" and factor:
            job = str(lifecycle.latest(group[0].record).get("scheduler_job_id"))
            args = longer(args, factor, _time_limit(job))
        base = len(defaults(exp).sbatch_args)
        done.append(submit(exp, [], options, args[base:], settings, runs=group))
    manifest_path.unlink(missing_ok=True)
    return done


def _time_limit(job: str) -> str | None:
    """SLURM's time limit of ``job`` (when the submission set none itself)."""
    try:
        infos, _ = scheduler.show_job(job)
    except ExecutorError:
        return None
    return next((i.time_limit for i in infos if i.job == job and i.time_limit), None)
