"""The run lifecycle (SPEC §8): claim, open an attempt, execute, close it.

Every change to a ``run.json`` after its creation happens here, under the run's
lock, so two processes never both write one record.  This is the one writer of
attempts, whoever asks: a local ``run``, a SLURM submission (:func:`enqueue`) and
its array task (:func:`open_attempt` continues the queued attempt), the SLURM
reconciliation, ``cancel`` and ``doctor`` (:func:`close_attempt`, :func:`close_stale`).
Attempts are numbered here (:func:`next_number`) and get their outcome and reason;
the command's own files (results, inputs, metrics) are merged in when it ends.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from molexp.core.execution.options import CAUSE_STATUS as CAUSE_STATUS
from molexp.core.execution.options import CAUSES as CAUSES
from molexp.core.execution.options import Outcome as Outcome
from molexp.core.execution.options import RunOptions as RunOptions
from molexp.core.execution.options import TaskStart as TaskStart
from molexp.core.execution.options import held_message as held_message
from molexp.core.execution.options import latest as latest
from molexp.core.execution.options import queue_entry_gone
from molexp.core.execution.options import require_command as require_command
from molexp.core.execution.options import task_verdict as task_verdict
from molexp.core.execution.runenv import RESULTS_FILE as RESULTS_FILE
from molexp.core.execution.runenv import WARNINGS_FILE, read_warnings
from molexp.core.execution.runenv import build_env as build_env
from molexp.core.execution.runenv import command_warnings as command_warnings
from molexp.core.execution.runenv import git_for as _git_for
from molexp.core.execution.runenv import placeholder_values as placeholder_values
from molexp.core.records.runs import ACTIVE, Run, ensure_run, observe
from molexp.core.store import files as store
from molexp.errors import MolexpError, RunLockedError, WorkspaceError

if TYPE_CHECKING:
    # What an attempt needs (process handling, placeholders, the lock, annotations,
    # metrics, the trash) is imported when one runs, not for a no-op `run`.
    from molexp.core.execution.execute import SignalState
    from molexp.core.records.annotations import Change
    from molexp.core.records.plan import RunSpec
    from molexp.core.records.workspace import Experiment

INPUTS_FILE = "inputs.jsonl"
ARTIFACTS_DIR = "artifacts"


def now() -> str:
    return store.now_iso()


def next_number(record: Mapping[str, Any]) -> int:
    """The number of a new attempt: one more than the highest so far (1 for the first)."""
    return max([int(a.get("n", 0)) for a in record["attempts"]], default=0) + 1


def _fields(
    status: str,
    *,
    started_at: str | None,
    host: str | None,
    pid: int | None,
    executor: str,
    scheduler_job_id: str | None,
    argv: list[str],
    cwd: Path,
    git: dict[str, Any] | None,
    env: dict[str, Any] | None = None,
    warnings: Sequence[str] = (),
) -> dict[str, Any]:
    """The fields of an attempt that has not ended yet (SPEC §8), in record order."""
    return {
        "status": status,
        "started_at": started_at,
        "finished_at": None,
        "exit_code": None,
        "duration": None,
        "host": host,
        "pid": pid,
        "env": env,
        "executor": executor,
        "scheduler_job_id": scheduler_job_id,
        "argv": argv,
        "cwd": str(cwd),
        "git": git,
        "error": None,
        "cause": None,
        "results": None,
        "warnings": list(warnings),
    }


def _close(run: Run, attempt: dict[str, Any], status: str, **fields: Any) -> list[str]:
    """End ``attempt`` (the run's latest) with ``status``; fold in its files; save.
    Returns the warnings folding in the files gave (a result not stored, ...)."""
    attempt["status"] = status
    attempt.update(fields)
    run.record["status"] = status
    added = _merge_attempt_files(run, attempt)
    run.save()
    return added


def close_stale(
    run: Run, reason: str | None = None, status: str | None = None, cause: str | None = None
) -> bool:
    """Mark the active attempt of a run whose owner is gone as finished.

    ``status`` defaults to the one ``cause`` leaves (:data:`CAUSE_STATUS`), else
    ``interrupted`` for a running attempt and ``cancelled`` for a queued one;
    ``cause`` (:data:`CAUSES`) to ``owner_lost`` for an interrupted attempt and
    ``cancelled`` for a cancelled one.  ``reason`` goes to the attempt's ``error``
    (unless it already holds one).  The caller holds the run's lock.  Returns
    whether the record changed.
    """
    rec = run.record
    if rec["status"] not in ACTIVE or not rec["attempts"]:
        return False
    attempt = rec["attempts"][-1]
    final = (
        status
        or CAUSE_STATUS.get(cause or "")
        or ("interrupted" if rec["status"] == "running" else "cancelled")
    )
    _close(
        run,
        attempt,
        final,
        finished_at=attempt.get("finished_at") or now(),
        error=attempt.get("error") or reason or "its process ended without recording an outcome",
        cause=attempt.get("cause")
        or cause
        or {"interrupted": "owner_lost", "cancelled": "cancelled"}.get(final),
    )
    return True


def close_attempt(
    run: Run,
    n: int | None,
    status: str | None = None,
    reason: str | None = None,
    cause: str | None = None,
) -> bool:
    """Record attempt ``n`` (whose owner is gone) finished, taking the run's lock.

    ``status``, ``reason`` and ``cause`` are as for :func:`close_stale`.  Returns
    False when the lock is busy or cannot be written; True when the record is
    now settled (by us, or by someone before us: then the fresh record says so).
    """
    from molexp.core.store import lock as locks

    try:
        got = locks.try_acquire(run.dir, "reconcile", root=run.experiment.workspace.root)
        if not isinstance(got, locks.RunLock):
            return False
        try:
            run.reload()
            if run.status not in ACTIVE or latest(run.record).get("n") != n:
                return True  # someone else moved it on
            close_stale(run, reason, status, cause)
            return True
        finally:
            got.release()
    except (OSError, MolexpError):
        return False


def enqueue(run: Run, job_id: str, options: RunOptions, submission: Mapping[str, Any]) -> Outcome:
    """Record ``run`` as queued for scheduler job ``job_id``, under its lock (or say why not).

    The new attempt is ``queued`` with ``executor: slurm``; ``submission`` (the
    script, its output, the sbatch options) is kept with it, beside the command
    and the submitting host, for the task that continues it (:func:`open_attempt`).
    """
    from molexp.core.execution.placeholders import build_argv
    from molexp.core.store import lock as locks

    got = locks.try_acquire(run.dir, "submit", root=run.experiment.workspace.root)
    if not isinstance(got, locks.RunLock):
        return Outcome(run, "held", run.status, message=f"held by {got.describe()}")
    try:
        run.reload()
        status, reason = observe(run.record, run.dir)
        if status in ACTIVE:
            return Outcome(run, "held", status, message=held_message(run, status))
        if run.status in ACTIVE:
            close_stale(run, reason or "its owner is gone")
        if run.status == "succeeded" and not options.force:
            return Outcome(run, "skipped", "succeeded", message="up to date")
        rec = run.record
        n = next_number(rec)
        command = require_command(run.experiment, options)
        argv, unknown = build_argv(command, options.argv, placeholder_values(run, n))
        attempt = {
            "n": n,
            "status": "queued",
            "submitted_at": now(),
            **_fields(
                "queued",
                started_at=None,
                host=None,
                pid=None,
                executor="slurm",
                scheduler_job_id=job_id,
                argv=argv,
                cwd=options.cwd,
                git=None,
                warnings=command_warnings(unknown),
            ),
            "submission": {
                "command": command,
                "argv": list(options.argv) if options.argv else None,
                "host": locks.hostname(),
                **submission,
            },
        }
        rec["attempts"].append(attempt)
        rec["status"] = "queued"
        run.save()
        return Outcome(
            run, "submitted", "queued", attempt=n, message=f"queued as SLURM job {job_id}"
        )
    finally:
        got.release()


def open_attempt(run: Run, options: RunOptions) -> dict[str, Any]:
    """Start an attempt of ``run`` in this process and record it ``running``.

    The attempt is a new one (:func:`next_number`), or, for a SLURM array task,
    the queued attempt it continues; a task SLURM started again opens a new
    attempt of the same queue entry (its ``submission`` kept, ``restart`` counted).
    Writes the attempt's folder (params, config, git patch), then the record.
    The caller holds the run's lock.
    """
    from molexp.core.execution.execute import write_json_file
    from molexp.core.execution.placeholders import build_argv
    from molexp.core.provenance.gitinfo import patch_bytes
    from molexp.core.store import lock as locks

    exp = run.experiment
    ws_root = exp.workspace.root
    rec = run.record
    attempt: dict[str, Any]
    task = options.task
    previous = latest(rec)
    if task is not None and rec["status"] == "queued":
        attempt = rec["attempts"][-1]
        n = int(attempt["n"])
    else:
        n = next_number(rec)
        attempt = {"n": n}
        if task is not None:  # started again by the scheduler: the same queue entry
            attempt.update(status="running", submitted_at=previous.get("submitted_at"))
        rec["attempts"].append(attempt)
    attempt_dir = run.attempt_dir(n)
    argv, unknown = build_argv(
        require_command(exp, options), options.argv, placeholder_values(run, n)
    )
    for log in ("stdout.log", "stderr.log"):
        store.ensure_inside(ws_root, attempt_dir / log)
    new = not run.stored
    if not new:
        store.make_dirs(ws_root, attempt_dir)
    git = _git_for(exp, options)
    from molexp.core.records import environments  # (only when an attempt runs)

    env = environments.capture(ws_root, argv, options.cwd, os.environ, exp.workspace.use_cache)
    attempt.update(
        _fields(
            "running",
            started_at=now(),
            host=locks.hostname(),
            pid=os.getpid(),
            executor="slurm" if task is not None else options.executor,
            scheduler_job_id=task.job if task is not None else options.scheduler_job_id,
            argv=argv,
            cwd=options.cwd,
            git=git.summary(),
            env=env,
            warnings=command_warnings(unknown),
        )
    )
    if task is not None:
        submission = dict(attempt.get("submission") or previous.get("submission") or {})
        if task.output:
            submission["output"] = task.output
        attempt["submission"] = submission
        attempt["restart"] = task.restart
    rec["status"] = "running"
    if new:
        # A new run: its record is created with this attempt already running in
        # it, whole (data fsynced, as for the `running` save below), and before the
        # attempt's folder, so nobody meets attempts without a record.
        if not run.create(durable_entry=False):
            run.reload()  # another process created it `pending` meanwhile
            return open_attempt(run, options)
        store.make_dirs(ws_root, attempt_dir)
    _keep_earlier_artifacts(run, n)
    (run.dir / RESULTS_FILE).unlink(missing_ok=True)
    write_json_file(attempt_dir / "params.json", rec.get("params") or {}, ws_root)
    write_json_file(attempt_dir / "config.json", rec.get("config") or {}, ws_root)
    if git.patch:
        store.atomic_write_bytes(attempt_dir / "git.patch", patch_bytes(git.patch), root=ws_root)
    store.make_dirs(ws_root, run.dir / ARTIFACTS_DIR)
    if not new:
        # Data fsynced (never an empty run.json), the directory entry not: a crash
        # of the machine may lose this `running` step with the attempt in progress;
        # the outcome's save (durable) keeps everything before it (docs/reliability.md).
        run.save(durable_entry=False)
    return attempt


def _keep_earlier_artifacts(run: Run, n: int) -> None:
    """Before attempt ``n`` runs, move a non-empty ``artifacts/`` to the folder of the
    attempt that made it, ``attempts/<k>/artifacts/`` (SPEC §9), and say so in that
    attempt's record (``artifacts``).  ``k`` is the latest earlier attempt that
    started; files there before any attempt started stay where they are."""
    current = run.dir / ARTIFACTS_DIR
    try:
        with os.scandir(current) as entries:
            if next(entries, None) is None:
                return
    except (FileNotFoundError, NotADirectoryError):
        return
    earlier = [a for a in run.record["attempts"] if int(a.get("n", 0)) < n and a.get("started_at")]
    if not earlier:
        return
    made_by = max(earlier, key=lambda a: int(a["n"]))
    target = run.attempt_dir(int(made_by["n"])) / ARTIFACTS_DIR
    store.ensure_inside(run.experiment.workspace.root, target)
    store.make_dirs(run.experiment.workspace.root, target.parent)
    if not os.path.lexists(target):
        os.rename(current, target)
    else:  # a folder someone made there: add to it, never overwrite
        for entry in os.listdir(current):
            if not os.path.lexists(target / entry):
                os.rename(current / entry, target / entry)
    made_by["artifacts"] = str(target.relative_to(run.dir))


def _merge_attempt_files(run: Run, attempt: dict[str, Any]) -> list[str]:
    """Fold ``results.json``, ``inputs.jsonl``, the warnings ``ctx.set_result`` left
    and the last value of each metric of ``metrics.jsonl`` (SPEC §14) of an attempt
    into the record; return the warnings this added (SPEC §8)."""
    from molexp.core.model.identity import normalise
    from molexp.core.model.results import normalise_results
    from molexp.core.records import metrics
    from molexp.core.records.metrics import METRICS_FILE

    added: list[str] = []
    results_path = run.dir / RESULTS_FILE
    if results_path.exists() and attempt.get("results") is None:
        try:
            data = json.loads(results_path.read_bytes())  # NaN and Infinity read as floats
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            data, why = None, f"not valid JSON ({exc})"
        else:
            why = "" if isinstance(data, dict) else "not a JSON object"
        if why:
            attempt["results"] = {}
            added.append(f"{RESULTS_FILE} ignored: {why}")
        else:
            attempt["results"], dropped = normalise_results(data)
            added.extend(dropped)
    if attempt.get("results") is not None:
        run.record["results"] = attempt["results"]
    attempt_dir = run.attempt_dir(int(attempt["n"]))
    summary = metrics.fold(attempt_dir / METRICS_FILE)
    if summary:  # (like results: the record keeps the latest attempt's that has some)
        attempt["metrics"] = summary
        run.record["metrics"] = metrics.last_values(summary)
    inputs_path = attempt_dir / INPUTS_FILE
    if inputs_path.exists():
        inputs = run.record.setdefault("inputs", [])
        seen = {json.dumps(i, sort_keys=True) for i in inputs}
        for line in inputs_path.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                item = normalise(json.loads(line), "inputs")  # (NaN cannot be stored)
            except (ValueError, RecursionError):
                continue  # a line torn by a crash of the command
            key = json.dumps(item, sort_keys=True)
            if isinstance(item, dict) and key not in seen:
                seen.add(key)
                inputs.append(item)
    added.extend(read_warnings(attempt_dir / WARNINGS_FILE))
    known = attempt.setdefault("warnings", [])
    added = [w for w in dict.fromkeys(added) if w not in known]
    known.extend(added)
    return added


def execute(exp: Experiment, spec: RunSpec, options: RunOptions, signals: SignalState) -> Outcome:
    """Run one derived run: skip it, report it held, or execute a new attempt."""
    # The run's folder is checked against links out of the workspace once, not
    # before each of the ~10 files an attempt writes there.
    with store.checked_dir(exp.workspace.root, exp.runs_dir / spec.run_id):
        # A new run's record is written by its attempt, with the attempt in it
        # (a SLURM task continues a record that exists); its outcome's save makes
        # its entry durable.
        run = ensure_run(exp, spec, durable_entry=False, write=options.task is not None)
        return execute_run(run, options, signals)


def execute_run(run: Run, options: RunOptions, signals: SignalState) -> Outcome:
    require_command(run.experiment, options)
    if run.status == "succeeded" and not options.force:
        return Outcome(run, "skipped", "succeeded", message="up to date")
    from molexp.core.records import trash
    from molexp.core.store import lock as locks

    try:
        held = locks.acquire(
            run.dir,
            "run",
            wait=options.wait,
            give_up=lambda: signals.received is not None,
            root=run.experiment.workspace.root,
        )
    except RunLockedError as exc:
        said = f"{exc.message}; `--wait` waits for it, `molexp cancel` stops it"
        return Outcome(run, "held", run.status, message=said)
    except FileNotFoundError:  # its directory went to the trash since it was read
        return Outcome(run, "held", run.status, message=f"run {run.id} was removed (molexp rm)")
    try:
        if trash.being_removed(run.experiment.path):
            return Outcome(
                run,
                "held",
                run.status,
                message=f"{run.experiment.ref} is being removed (molexp rm)",
            )
        if run.stored or os.path.lexists(run.path):  # (made by another process meanwhile?)
            run.reload()
        status, reason = observe(run.record, run.dir)
        task = options.task
        if task is not None:
            verdict = task_verdict(run.record, task)
            if verdict is None:
                return Outcome(
                    run,
                    "skipped",
                    run.status,
                    message=f"not queued for SLURM job {task.job} (status {run.status}); "
                    "nothing to do",
                )
            if verdict == "requeue" and run.status == "running":  # its start died unrecorded
                close_stale(
                    run,
                    f"SLURM started job {task.job} again: this start ended without recording",
                    cause=task.earlier() if task.earlier is not None else "requeued",
                )
        elif run.status in ACTIVE:
            if run.status == "queued" and not queue_entry_gone(run, options):
                return Outcome(
                    run,
                    "held",
                    "queued",
                    message=f"run {run.id} is queued as SLURM job "
                    f"{run.record['attempts'][-1].get('scheduler_job_id')}",
                )
            elif run.status == "queued":
                close_stale(run, "its SLURM job left the queue before the run started")
            else:
                close_stale(run, reason or "its owner is gone")
        if run.status == "succeeded" and not options.force:
            return Outcome(run, "skipped", "succeeded", message="up to date")
        if signals.heartbeat_kept is None:  # one heartbeat thread for the whole batch
            signals.heartbeat_kept = locks.keep_heartbeat()
        held.start_heartbeat()
        return _attempt(run, options, signals)
    finally:
        held.release()
        _fold_annotations(run)


def annotate(run: Run, change: Change, patience: float = 10.0) -> bool:
    """Tags and notes for ``run`` (never its attempts), saved under the run's lock.

    The change is queued first (:mod:`molexp.core.records.annotations`), then the
    lock is taken and the record saved, which folds the queue in.  A short-lived
    holder (another annotation, `cancel`, `doctor`) is waited for up to
    ``patience`` seconds; an attempt holding the run folds the change in when it
    saves the record, at the latest when it ends.  Returns whether the change is
    in ``run.json`` now (False: queued for the attempt that holds the run).
    """
    import time

    from molexp.core.records import annotations as annotation
    from molexp.core.store import lock as locks

    root = run.experiment.workspace.root
    run.experiment.check_writable()
    annotation.queue(run.dir, change, root)
    deadline = time.monotonic() + patience
    while True:
        got = locks.try_acquire(run.dir, "annotate", root=root)
        if isinstance(got, locks.RunLock):
            try:
                run.reload()
                run.save()
            finally:
                got.release()
            return True
        if got.owner.get("purpose") == "run" or time.monotonic() > deadline:
            return False
        time.sleep(0.05)


def _fold_annotations(run: Run) -> None:
    """After an attempt lets go of the run: fold in what was queued too late for
    its last save (the annotating command found the run held)."""
    from molexp.core.records import annotations as annotation
    from molexp.core.store import lock as locks

    if not annotation.pending(run.dir):
        return
    got = locks.try_acquire(run.dir, "annotate", root=run.experiment.workspace.root)
    if isinstance(got, locks.RunLock):  # else the new holder folds it in
        try:
            run.reload()
            run.save()
        except (FileNotFoundError, MolexpError):
            pass  # removed or damaged meanwhile: the queue stays for the next writer
        finally:
            got.release()


def _attempt(run: Run, options: RunOptions, signals: SignalState) -> Outcome:
    from molexp.core.execution.execute import run_command

    signals.supervisors.prepare()  # (a new one starts up while the attempt opens)
    attempt = open_attempt(run, options)
    n = int(attempt["n"])
    attempt_dir = run.attempt_dir(n)
    env = build_env(run, run.experiment.workspace.root, attempt_dir, n)
    out: IO[bytes] | None = None
    err: IO[bytes] | None = None
    if options.echo:
        out = sys.stderr.buffer if options.json_mode else sys.stdout.buffer
        err = sys.stderr.buffer
    try:
        result = run_command(
            attempt["argv"],
            env,
            options.cwd,
            attempt_dir / "stdout.log",
            attempt_dir / "stderr.log",
            signals,
            out,
            err,
        )
    except OSError as exc:
        _close(run, attempt, "failed", finished_at=now(), exit_code=127, error=str(exc))
        return Outcome(run, "executed", "failed", 127, n, str(exc))
    code = result.exit_code if result.exit_code >= 0 else 128 - result.exit_code
    cause = None
    if result.signal is not None:
        status, cause, error = "cancelled", "cancelled", f"cancelled by signal {result.signal}"
        explain = options.task.explain if options.task is not None else None
        status, cause, error = (explain(result.signal) if explain else None) or (
            status,
            cause,
            error,
        )
        attempt["error"] = error
    else:
        status = "succeeded" if code == 0 else "failed"
    problems = list(result.log_errors)  # a full disk: the command ran to its end, its log not
    if problems:
        attempt["error"] = attempt.get("error") or "; ".join(problems)
    added: list[str] = []
    try:
        added = _close(
            run, attempt, status, finished_at=now(), exit_code=code,
            duration=round(result.duration, 6), cause=cause,
        )  # fmt: skip
    except OSError as exc:
        if exc.filename is None:
            raise
        problems.append(
            f"{exc.filename}: {exc.strerror or exc}; the attempt's outcome was not recorded "
            "(the run reads interrupted)"
        )
    argv = attempt["argv"]
    if not problems:
        return Outcome(
            run, "executed", status, code, n, signal=result.signal, warnings=added, argv=argv
        )
    lost = WorkspaceError("; ".join(problems), "Free space on the workspace's filesystem.")
    return Outcome(run, "executed", status, code, n, lost.message, result.signal, lost,
                   warnings=added, argv=argv)  # fmt: skip
