"""SLURM integration (SPEC §13): submit job arrays, ask the scheduler, run a task.

One submission is one job array with a task per run.  The order of events makes
the records and the queue agree at every moment:

1. ``sbatch --hold --parsable --array=0-K`` (the script on stdin): nothing can
   start yet.  If sbatch fails (not installed, controller down) nothing has been
   written and the error is an :class:`ExecutorError` (exit 3).
2. Under each run's lock, the lifecycle appends the attempt ``{status: queued, executor: slurm,
   scheduler_job_id: "<array>_<i>", ...}`` and set the run ``queued``.  A run
   that someone else claimed in the meantime keeps its record; its task is
   cancelled (``scancel <array>_<i>``).
3. ``scontrol release <array>``.  Each task runs ``molexp -w WS run-task REF``,
   which continues the queued attempt only if it is still queued for *its* job
   id (:func:`run_task`).

Listing asks SLURM about records that are queued or running under SLURM, with
one ``squeue`` call for all of them (:func:`observe_many`); a job that left the
queue without the run finishing is recorded ``cancelled`` (never started) or
``interrupted`` (started, then died), under the run's lock.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from molexp.core.execution.lifecycle import latest
from molexp.core.records.runs import ACTIVE, Run, observe
from molexp.core.store import files as store
from molexp.core.store import lock as locks
from molexp.errors import ExecutorError, MolexpError, UsageError

if TYPE_CHECKING:
    from molexp.core.execution.lifecycle import Outcome, RunOptions
    from molexp.core.records.plan import RunSpec
    from molexp.core.records.workspace import Experiment

SLURM_DIR = ".molexp/slurm"
DEFAULT_TIMEOUT = 30.0
TASK_LOCK_PATIENCE = 60.0
# States after which a job runs no more (squeue -t all keeps them for MinJobAge).
FINISHED_STATES = frozenset(
    {
        "BOOT_FAIL",
        "CANCELLED",
        "COMPLETED",
        "DEADLINE",
        "FAILED",
        "NODE_FAIL",
        "OUT_OF_MEMORY",
        "PREEMPTED",
        "REVOKED",
        "TIMEOUT",
    }
)
# Options molexp sets itself; passing them would break the task <-> run mapping.
RESERVED_ARGS = ("--array", "-a", "--wrap", "--hold", "-H", "--parsable")
_PER_JOB_ERRORS = ("Invalid job id", "already completing or completed", "Job has already finished")


def timeout() -> float:
    """Seconds to wait for one SLURM command ($MOLEXP_SLURM_TIMEOUT, default 30)."""
    try:
        return float(os.environ.get("MOLEXP_SLURM_TIMEOUT", DEFAULT_TIMEOUT))
    except ValueError:
        return DEFAULT_TIMEOUT


# -- talking to SLURM ---------------------------------------------------------------


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise ExecutorError(
            f"{name} not found: SLURM is not installed here (or not on PATH)",
            "Submit from a node of the cluster (a login node), or use --executor local.",
        )
    return path


def _call(argv: Sequence[str], stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run a SLURM client command; a missing binary or a hang is an ExecutorError."""
    exe = _tool(argv[0])
    try:
        return subprocess.run(
            [exe, *argv[1:]],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout(),
            stdin=None if stdin is not None else subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as exc:
        raise ExecutorError(
            f"{argv[0]} did not answer within {timeout():.0f}s: is the SLURM controller up?",
            "Check with `scontrol ping`; raise MOLEXP_SLURM_TIMEOUT on a slow cluster.",
        ) from exc
    except OSError as exc:
        raise ExecutorError(f"cannot run {exe}: {exc.strerror or exc}") from exc


def _message(proc: subprocess.CompletedProcess[str]) -> str:
    """SLURM's own words, on one line, without the ``sbatch: error:`` prefixes."""
    text = " ".join((proc.stderr or proc.stdout or "").split())
    for tool in ("sbatch", "squeue", "scancel", "scontrol"):
        text = text.replace(f"{tool}: error: ", "")
    return text or f"exit status {proc.returncode}"


def base_id(job: str) -> str:
    return job.split("_", 1)[0]


@dataclass
class QueueView:
    """What SLURM said about some jobs: ``{"<array>_<i>": STATE}``.

    A job that is absent is no longer known to SLURM.  ``unreachable`` holds the
    reason when SLURM could not be asked; then nothing can be concluded.
    """

    states: dict[str, str] = field(default_factory=dict)
    unreachable: str | None = None

    def state(self, job: str) -> str | None:
        return self.states.get(job)

    def gone(self, job: str) -> bool:
        """True when the job certainly runs no more (finished or forgotten)."""
        if self.unreachable is not None:
            return False
        state = self.states.get(job)
        return state is None or state.split()[0] in FINISHED_STATES


def query(jobs: Iterable[str]) -> QueueView:
    """One ``squeue`` call (per 500 arrays) for the state of every task in ``jobs``."""
    bases = sorted({base_id(j) for j in jobs if j})
    view = QueueView()
    if not bases:
        return view
    try:
        for start in range(0, len(bases), 500):
            chunk = bases[start : start + 500]
            proc = _call(["squeue", "-h", "-r", "-t", "all", "-o", "%i %T", "-j", ",".join(chunk)])
            if proc.returncode != 0:
                if "Invalid job id" in proc.stderr:
                    continue  # asked about one array only, and SLURM forgot it
                view.unreachable = f"squeue failed: {_message(proc)}"
                return view
            view.states.update(parse_squeue(proc.stdout))
    except ExecutorError as exc:
        view.unreachable = exc.message
    return view


def parse_squeue(text: str) -> dict[str, str]:
    """``{job: STATE}`` from ``squeue -h -r -o '%i %T'`` lines."""
    states: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 2 and "[" not in parts[0]:
            states[parts[0]] = parts[1]
    return states


def queue_entry_gone(attempt: dict[str, Any]) -> bool:
    """Whether the SLURM job of a queued attempt has left the queue.

    Unknown (no ``squeue``, controller unreachable) counts as not gone, so a
    queued run is never started twice.
    """
    job = attempt.get("scheduler_job_id")
    if not job:
        return True
    return query([str(job)]).gone(str(job))


def scancel(jobs: Sequence[str]) -> None:
    """Cancel ``jobs`` (one call); jobs that already ended are not an error."""
    if not jobs:
        return
    proc = _call(["scancel", *jobs])
    if proc.returncode == 0:
        return
    errors = [line for line in proc.stderr.splitlines() if line.strip()]
    if errors and all(any(e in line for e in _PER_JOB_ERRORS) for line in errors):
        return
    raise ExecutorError(
        f"scancel failed: {_message(proc)}", "Is the SLURM controller up? Try `scontrol ping`."
    )


# -- reconciliation -----------------------------------------------------------------


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
    from molexp.core.execution.lifecycle import close_attempt

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


# -- the batch script ---------------------------------------------------------------


def check_sbatch_args(args: Sequence[Any], where: str) -> list[str]:
    """Validate sbatch options (``--partition=gpu``, ``--time=1:00:00`` ...)."""
    out: list[str] = []
    for arg in args:
        if not isinstance(arg, str) or not arg.startswith("-") or not arg.strip("-"):
            raise UsageError(
                f"{where}: sbatch option {arg!r} must look like --name=value",
                "Write one option per entry, e.g. --sbatch-arg=--partition=gpu.",
            )
        if any(c in arg for c in "\n\r\0"):
            raise UsageError(f"{where}: sbatch option {arg!r} holds a line break")
        name = arg.split("=", 1)[0]
        if name in RESERVED_ARGS or (name.startswith("-a") and not name.startswith("--")):
            raise UsageError(
                f"{where}: molexp sets {name} itself (one array task per run)",
                "Leave it out; select runs with --replica, --grid or --profile.",
            )
        out.append(arg)
    return out


def _slurm_block(definition: Mapping[str, Any], path: Path) -> list[str]:
    block = definition.get("slurm")
    if block is None:
        return []
    if not isinstance(block, dict) or not isinstance(block.get("sbatch_args", []), list):
        raise UsageError(
            f"{path}: `slurm:` must be a mapping like {{sbatch_args: [--partition=gpu]}}"
        )
    unknown = sorted(set(block) - {"sbatch_args"})
    if unknown:
        raise UsageError(f"{path}: unknown key(s) under `slurm:`: {', '.join(unknown)}")
    return check_sbatch_args(block.get("sbatch_args") or [], str(path))


def default_sbatch_args(exp: Experiment) -> list[str]:
    """``slurm: {sbatch_args: [...]}`` of workspace.yaml, then of experiment.yaml."""
    ws = exp.workspace
    return [
        *_slurm_block(ws.definition(), ws.definition_path),
        *_slurm_block(exp.definition(), exp.definition_path),
    ]


def _directive(arg: str) -> str:
    """One ``#SBATCH`` line; values with spaces are double-quoted (sbatch reads quotes)."""
    if " " in arg or "\t" in arg:
        name, eq, value = arg.partition("=")
        if eq and '"' not in value:
            return f'#SBATCH {name}="{value}"'
    return f"#SBATCH {arg}"


def batch_script(
    refs: Sequence[str],
    workspace_root: Path,
    cwd: Path,
    sbatch_args: Sequence[str],
    job_name: str,
    python: str | None = None,
) -> str:
    """The job-array script: task ``i`` runs ``refs[i]`` with ``molexp run-task``."""
    out = workspace_root / SLURM_DIR / "%A_%a.out"
    lines = [
        "#!/bin/bash",
        f"# molexp: {len(refs)} run(s), one array task each; written by `molexp run --executor slurm`.",
        f"#SBATCH --job-name={job_name}",
        f"#SBATCH --array=0-{len(refs) - 1}",
        _directive(f"--output={out}"),
        _directive(f"--chdir={cwd}"),
        *(_directive(a) for a in sbatch_args),
        "",
        "# task index -> run (PROJECT/EXPERIMENT/RUN_ID)",
        "RUNS=(",
        *(f"  {ref}" for ref in refs),
        ")",
        f"exec {shlex.quote(python or sys.executable)} -m molexp -w {shlex.quote(str(workspace_root))} "
        'run-task "${RUNS[$SLURM_ARRAY_TASK_ID]}"',
        "",
    ]
    return "\n".join(lines)


# -- submission ---------------------------------------------------------------------


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
    from molexp.core.execution.lifecycle import Outcome, held_message, require_command
    from molexp.core.records.runs import peek_run

    require_command(exp, options)
    args = [*default_sbatch_args(exp), *check_sbatch_args(sbatch_args, "--sbatch-arg")]
    runs: list[tuple[Run, bool]] = []
    for spec in specs:
        runs.append(peek_run(exp, spec))
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
            outcomes.append(Outcome(run, "held", status, message=held_message(run, status)))
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
    from molexp.core.execution.lifecycle import enqueue
    from molexp.core.records.runs import ensure_run

    sub = prepare(exp, specs, options, sbatch_args, fix=True)
    if sub.script is None:
        return sub
    proc = _call(["sbatch", "--parsable", "--hold"], stdin=sub.script)
    job_id = proc.stdout.strip().split(";", 1)[0]
    if proc.returncode != 0 or not job_id.isdigit():
        raise ExecutorError(
            f"sbatch refused the job array: {_message(proc)}",
            "Nothing was queued. Check the #SBATCH options (`--dry-run` prints the script) "
            "and that the controller answers (`scontrol ping`).",
        )
    sub.job_id = job_id
    slurm_dir = exp.workspace.root / SLURM_DIR
    queued: list[Run] = []
    dropped: list[str] = []
    try:
        slurm_dir.mkdir(parents=True, exist_ok=True)
        sub.script_path = slurm_dir / f"{job_id}.sh"
        store.atomic_write_bytes(sub.script_path, sub.script.encode())
        for task_index, (i, _) in enumerate(sub.pending):
            task = f"{job_id}_{task_index}"
            outcome = enqueue(
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
        scancel(dropped)
        if queued:
            release = _call(["scontrol", "release", job_id])
            if release.returncode != 0:
                raise ExecutorError(
                    f"scontrol release {job_id} failed: {_message(release)}",
                    "The array was cancelled and its runs recorded cancelled; submit again.",
                )
        else:
            scancel([job_id])
    except BaseException as exc:
        said = exc.message if isinstance(exc, MolexpError) else str(exc) or type(exc).__name__
        _abandon(job_id, queued, f"submission failed: {said}")
        raise
    return sub


def _abandon(job_id: str, queued: Sequence[Run], reason: str) -> None:
    """Undo a submission that cannot complete: cancel the array, close its attempts."""
    from molexp.core.execution.lifecycle import close_attempt

    try:
        scancel([job_id])
    except MolexpError:
        pass
    for run in queued:
        close_attempt(run, latest(run.record).get("n"), "cancelled", reason)


# -- the task -----------------------------------------------------------------------


def task_job_id(env: Mapping[str, str] | None = None) -> str:
    """``<array>_<index>`` of the current SLURM array task, from its environment."""
    env = os.environ if env is None else env
    array, index = env.get("SLURM_ARRAY_JOB_ID"), env.get("SLURM_ARRAY_TASK_ID")
    if not array or index is None:
        raise UsageError(
            "run-task runs inside a SLURM array task (SLURM_ARRAY_JOB_ID is not set)",
            "Use `molexp run --executor slurm` to submit runs.",
        )
    return f"{array}_{index}"


def run_task(
    run: Run, job: str, patience: float = TASK_LOCK_PATIENCE
) -> tuple[Outcome, int | None]:
    """Continue the attempt queued for ``job``; do nothing if it is not queued for it.

    A short-lived lock holder (a listing recording another run, a `cancel`) is
    waited for up to ``patience`` seconds.  Returns the outcome and any signal.
    """
    from molexp.core.execution.execute import SignalState
    from molexp.core.execution.lifecycle import Outcome, RunOptions, execute_run

    attempt = latest(run.record)
    if run.status not in ACTIVE or attempt.get("scheduler_job_id") != job:
        return Outcome(
            run,
            "skipped",
            run.status,
            message=f"not queued for SLURM job {job} (status {run.status}); nothing to do",
        ), None
    sub = attempt.get("submission") or {}
    options = RunOptions(
        argv=sub.get("argv") or None,
        command=sub.get("command"),
        cwd=Path(attempt.get("cwd") or os.getcwd()),
        executor="slurm-task",
        scheduler_job_id=job,
    )
    signals = SignalState()
    signals.install()
    try:
        deadline = time.monotonic() + patience
        while True:
            outcome = execute_run(run, options, signals)
            if outcome.action != "held" or time.monotonic() > deadline or signals.received:
                return outcome, signals.received
            time.sleep(0.5)
            run.reload()
    finally:
        signals.uninstall()
