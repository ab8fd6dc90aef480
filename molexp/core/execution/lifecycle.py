"""The run lifecycle (SPEC §8): claim, open an attempt, execute, close it.

Every change to a ``run.json`` happens here, under the run's lock, so two
processes never both write one record.  The command's own contributions
(``results.json``, ``attempts/<n>/inputs.jsonl``) are files it writes itself and
that are merged into the record when the attempt ends.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from molexp.core.records.plan import RunSpec
from molexp.core.records.runs import ACTIVE, Run, ensure_run, observe
from molexp.core.records.workspace import Experiment
from molexp.core.store import files as store
from molexp.core.store import lock as locks
from molexp.errors import EXIT_SIGINT, EXIT_SIGTERM, RunLockedError, UsageError

if TYPE_CHECKING:
    # Process handling is imported when an attempt runs, not for a no-op `run`.
    from molexp.core.execution.execute import SignalState
    from molexp.core.provenance.gitinfo import GitInfo

RESULTS_FILE = "results.json"
INPUTS_FILE = "inputs.jsonl"


@dataclass
class RunOptions:
    """How to execute the selected runs (everything but the selection itself)."""

    argv: Sequence[str] | None = None  # command after `--` (no shell)
    force: bool = False
    wait: bool = False
    json_mode: bool = False  # the command's stdout goes to stderr
    cwd: Path = field(default_factory=Path.cwd)
    executor: str = "local"
    scheduler_job_id: str | None = None
    command: str | None = None  # the command recorded at submission (SLURM tasks)
    echo: bool = True
    git_cache: dict[str, GitInfo] = field(default_factory=dict)
    # Asked when a local `run` meets a run queued on a scheduler: is its queue entry
    # gone (then the run may start here)?  Unset, a queued run is held.
    queue_gone: Callable[[dict[str, Any]], bool] | None = None


@dataclass
class Outcome:
    """What happened to one selected run (the `run --json` line)."""

    run: Run
    action: str  # executed | skipped | submitted | planned | held
    status: str
    exit_code: int | None = None
    attempt: int | None = None
    message: str = ""
    signal: int | None = None

    def to_json(self) -> dict[str, Any]:
        rec = self.run.record
        return {
            "id": self.run.id,
            "project": rec["project"],
            "experiment": rec["experiment"],
            "replica": rec["replica"],
            "seed": rec.get("seed"),
            "params": rec.get("params"),
            "profile": rec.get("profile"),
            "config_hash": rec.get("config_hash"),
            "status": self.status,
            "action": self.action,
            "exit_code": self.exit_code,
            "attempt": self.attempt,
            "run_dir": str(self.run.dir),
            "message": self.message,
        }


def now() -> str:
    return store.now_iso()


def close_stale(run: Run, reason: str | None = None, status: str | None = None) -> bool:
    """Mark the active attempt of a run whose owner is gone as ``interrupted``.

    The caller holds the run's lock.  Returns whether the record changed.
    """
    rec = run.record
    if rec["status"] not in ACTIVE or not rec["attempts"]:
        return False
    attempt = rec["attempts"][-1]
    new_status = status or ("interrupted" if rec["status"] == "running" else "cancelled")
    attempt["status"] = new_status
    attempt["finished_at"] = attempt.get("finished_at") or now()
    attempt["error"] = attempt.get("error") or reason or "its process ended without recording an outcome"
    rec["status"] = new_status
    _merge_attempt_files(run, attempt)
    run.save()
    return True


def _merge_attempt_files(run: Run, attempt: dict[str, Any]) -> None:
    """Fold ``results.json`` and ``inputs.jsonl`` of an attempt into the record."""
    from molexp.core.model.identity import normalise

    results_path = run.dir / RESULTS_FILE
    if results_path.exists() and attempt.get("results") is None:
        try:
            results = json.loads(results_path.read_bytes())
            if not isinstance(results, dict):
                raise ValueError("not a JSON object")
            attempt["results"] = normalise(results, "results")  # NaN cannot be stored
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            attempt["results"] = {}
            attempt["error"] = attempt.get("error") or f"results.json ignored: {exc}"
    if attempt.get("results") is not None:
        run.record["results"] = attempt["results"]
    inputs_path = run.attempt_dir(int(attempt["n"])) / INPUTS_FILE
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


def placeholder_values(run: Run, workspace_root: Path) -> dict[str, Any]:
    rec = run.record
    values: dict[str, Any] = dict(rec.get("params") or {})
    values.update(
        replica=rec["replica"],
        seed=rec["seed"],
        run_id=run.id,
        run_dir=str(run.dir),
        profile=rec.get("profile") or "",
    )
    return values


def build_env(run: Run, workspace_root: Path, attempt_dir: Path, n: int) -> dict[str, str]:
    rec = run.record
    env = dict(os.environ)
    env.update(
        MOLEXP_WORKSPACE=str(workspace_root),
        MOLEXP_PROJECT=rec["project"],
        MOLEXP_EXPERIMENT=rec["experiment"],
        MOLEXP_RUN_ID=run.id,
        MOLEXP_RUN_DIR=str(run.dir),
        MOLEXP_REPLICA=str(rec["replica"]),
        MOLEXP_SEED=str(rec["seed"]),
        MOLEXP_PROFILE=rec.get("profile") or "",
        MOLEXP_PARAMS_FILE=str(attempt_dir / "params.json"),
        MOLEXP_CONFIG_FILE=str(attempt_dir / "config.json"),
        MOLEXP_RESULTS_FILE=str(run.dir / RESULTS_FILE),
        MOLEXP_ATTEMPT=str(n),
        MOLEXP_ATTEMPT_DIR=str(attempt_dir),
    )
    return env


_GIT_LOCK = threading.Lock()  # with --jobs, one thread captures; the others wait for it


def _git_for(exp: Experiment, options: RunOptions) -> GitInfo:
    from molexp.core.provenance.gitinfo import capture  # GitPython only when an attempt runs

    source = exp.definition().get("workflow_source")
    path = options.cwd / source if source else options.cwd
    key = str(path)
    with _GIT_LOCK:
        if key not in options.git_cache:
            options.git_cache[key] = capture(path)
        return options.git_cache[key]


def execute(
    exp: Experiment, spec: RunSpec, options: RunOptions, signals: SignalState
) -> Outcome:
    """Run one derived run: skip it, report it held, or execute a new attempt."""
    run = ensure_run(exp, spec)
    return execute_run(run, options, signals)


def execute_run(run: Run, options: RunOptions, signals: SignalState) -> Outcome:
    exp = run.experiment
    definition = exp.definition()
    if not options.argv and not (options.command or definition.get("command")):
        raise UsageError(
            f"experiment {exp.ref} has no command",
            f"Give one after `--` (molexp run {exp.ref} -- CMD ...) or set `command:` in "
            f"{exp.definition_path}.",
        )
    if run.status == "succeeded" and not options.force:
        return Outcome(run, "skipped", "succeeded", message="up to date")
    try:
        held = locks.acquire(
            run.dir, "run", wait=options.wait, give_up=lambda: signals.received is not None
        )
    except RunLockedError as exc:
        return Outcome(run, "held", run.status, message=exc.message)
    try:
        run.reload()
        status, reason = observe(run.record, run.dir)
        if options.executor == "slurm-task" and not _queued_for(run, options.scheduler_job_id):
            return Outcome(
                run, "skipped", run.status,
                message=f"not queued for SLURM job {options.scheduler_job_id}; nothing to do",
            )
        if run.status in ACTIVE:
            if run.status == "queued" and options.executor == "slurm-task":
                pass  # this task is what the queue entry was waiting for
            elif run.status == "queued" and not _queue_entry_gone(run, options):
                return Outcome(
                    run, "held", "queued",
                    message=f"run {run.id} is queued as SLURM job "
                    f"{run.record['attempts'][-1].get('scheduler_job_id')}",
                )
            elif run.status == "queued":
                close_stale(run, "its SLURM job left the queue before the run started")
            else:
                close_stale(run, reason or "its owner is gone")
        if run.status == "succeeded" and not options.force:
            return Outcome(run, "skipped", "succeeded", message="up to date")
        held.start_heartbeat()
        return _attempt(run, options, signals)
    finally:
        held.release()


def _queued_for(run: Run, job: str | None) -> bool:
    """Whether ``run`` waits for (or, requeued, was started by) SLURM task ``job``."""
    attempts = run.record["attempts"]
    return run.status in ACTIVE and bool(attempts) and attempts[-1].get("scheduler_job_id") == job


def _queue_entry_gone(run: Run, options: RunOptions) -> bool:
    gone = options.queue_gone
    return gone is not None and gone(run.record["attempts"][-1])


def _attempt(run: Run, options: RunOptions, signals: SignalState) -> Outcome:
    from molexp.core.execution.execute import build_argv, run_command, write_json_file

    exp = run.experiment
    ws_root = exp.workspace.root
    rec = run.record
    queued = rec["status"] == "queued" and options.executor == "slurm-task"
    if queued:
        attempt = rec["attempts"][-1]
        n = int(attempt["n"])
    else:
        n = max([int(a.get("n", 0)) for a in rec["attempts"]], default=0) + 1
        attempt = {"n": n}
        rec["attempts"].append(attempt)
    attempt_dir = run.attempt_dir(n)
    values = placeholder_values(run, ws_root)
    argv = build_argv(options.command or exp.definition().get("command"), options.argv, values)
    for log in ("stdout.log", "stderr.log"):
        store.ensure_inside(ws_root, attempt_dir / log)
    attempt_dir.mkdir(parents=True, exist_ok=True)
    git = _git_for(exp, options)
    attempt.update(
        status="running",
        started_at=now(),
        finished_at=None,
        exit_code=None,
        duration=None,
        host=locks.hostname(),
        pid=os.getpid(),
        executor="slurm" if options.executor == "slurm-task" else options.executor,
        scheduler_job_id=attempt.get("scheduler_job_id", options.scheduler_job_id),
        argv=argv,
        cwd=str(options.cwd),
        git=git.summary(),
        error=None,
        results=None,
    )
    rec["status"] = "running"
    (run.dir / RESULTS_FILE).unlink(missing_ok=True)
    write_json_file(attempt_dir / "params.json", rec.get("params") or {})
    write_json_file(attempt_dir / "config.json", rec.get("config") or {})
    if git.patch:
        store.atomic_write_bytes(attempt_dir / "git.patch", git.patch.encode())
    (run.dir / "artifacts").mkdir(exist_ok=True)
    run.save()
    env = build_env(run, ws_root, attempt_dir, n)
    out: IO[bytes] | None = None
    err: IO[bytes] | None = None
    if options.echo:
        out = sys.stderr.buffer if options.json_mode else sys.stdout.buffer
        err = sys.stderr.buffer
    try:
        result = run_command(
            argv, env, options.cwd, attempt_dir / "stdout.log", attempt_dir / "stderr.log",
            signals, out, err,
        )
    except OSError as exc:
        attempt.update(status="failed", finished_at=now(), exit_code=127, error=str(exc))
        rec["status"] = "failed"
        run.save()
        return Outcome(run, "executed", "failed", 127, n, str(exc))
    code = result.exit_code if result.exit_code >= 0 else 128 - result.exit_code
    if result.signal is not None:
        status = "cancelled"
        attempt["error"] = f"cancelled by signal {result.signal}"
    else:
        status = "succeeded" if code == 0 else "failed"
    attempt.update(
        status=status,
        finished_at=now(),
        exit_code=code,
        duration=round(result.duration, 6),
    )
    rec["status"] = status
    _merge_attempt_files(run, attempt)
    run.save()
    return Outcome(run, "executed", status, code, n, signal=result.signal)


def exit_code_for(outcomes: Sequence[Outcome], signal_received: int | None) -> int:
    """The strongest code wins: 130/143, then 3, then 1, then 0."""
    import signal as _signal

    if signal_received is not None:
        return EXIT_SIGINT if signal_received == _signal.SIGINT else EXIT_SIGTERM
    if any(o.action == "held" for o in outcomes):
        return 3
    if any(o.status in ("failed", "cancelled", "interrupted") for o in outcomes if o.action == "executed"):
        return 1
    return 0


def summarise(outcomes: Sequence[Outcome]) -> Mapping[str, int]:
    counts: dict[str, int] = {}
    for o in outcomes:
        counts[o.action] = counts.get(o.action, 0) + 1
    return counts


def preview(exp: Experiment, spec: RunSpec, options: RunOptions) -> Outcome:
    """What `run` would do with ``spec``; writes nothing (``--dry-run``)."""
    from molexp.core.records.runs import peek_run

    run, exists = peek_run(exp, spec)
    status, _ = observe(run.record, run.dir)
    if status == "succeeded" and not options.force:
        would = "skip (up to date)"
    elif status in ACTIVE:
        would = "hold (running or queued elsewhere)"
    else:
        would = "execute" + ("" if exists else " (new run)")
    return Outcome(run, "planned", status, message=would)


def run_many(
    exp: Experiment,
    specs: Sequence[RunSpec],
    options: RunOptions,
    jobs: int = 1,
    on_start: Callable[[RunSpec], object] | None = None,
    on_done: Callable[[Outcome], object] | None = None,
    fail_fast: bool = False,
) -> tuple[list[Outcome], int | None]:
    """Execute ``specs`` (up to ``jobs`` at once); return outcomes and any signal.

    SIGINT/SIGTERM are forwarded to every running command; runs not yet started
    are not started.  With ``fail_fast`` no run starts after the first failure
    (running ones finish).  An error raised for one run (a corrupt record, say)
    also stops new starts; it is re-raised once the running ones have finished.
    ``on_start(spec)`` and ``on_done(outcome)`` report progress (from worker
    threads when ``jobs`` > 1).  Runs never started have no outcome.
    """
    from molexp.core.execution.execute import SignalState

    signals = SignalState()
    signals.install()
    outcomes: list[Outcome | None] = [None] * len(specs)
    stop = False

    def one(i: int) -> None:
        nonlocal stop
        if signals.received is not None or stop:
            return
        if on_start is not None:
            on_start(specs[i])
        try:
            outcome = execute(exp, specs[i], options, signals)
        except BaseException:
            stop = True
            raise
        outcomes[i] = outcome
        if fail_fast and outcome.status == "failed" and outcome.action == "executed":
            stop = True
        if on_done is not None:
            on_done(outcome)

    try:
        if jobs <= 1 or len(specs) <= 1:
            for i in range(len(specs)):
                one(i)
        else:
            from concurrent.futures import ThreadPoolExecutor
            from concurrent.futures import TimeoutError as FutureTimeout

            with ThreadPoolExecutor(max_workers=jobs) as pool:
                futures = [pool.submit(one, i) for i in range(len(specs))]
                for fut in futures:
                    while True:
                        try:
                            fut.result(timeout=0.2)  # wake up for signals
                            break
                        except FutureTimeout:
                            continue
    finally:
        signals.uninstall()
    return [o for o in outcomes if o is not None], signals.received
