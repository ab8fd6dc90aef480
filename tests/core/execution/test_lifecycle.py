"""The one writer of attempts (molexp/core/execution/lifecycle.py).

Opening, numbering and closing of every attempt, whoever asks: a local `run`,
a SLURM submission and its array task, the SLURM reconciliation, `cancel` and
`doctor`.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest

from molexp.core.execution import lifecycle
from molexp.core.execution.lifecycle import RunOptions, TaskStart
from molexp.core.records.runs import Run, create_run
from molexp.core.records.workspace import Experiment
from molexp.core.store import lock as locks
from molexp.errors import UsageError
from tests.conftest import ROOT

SUBMISSION = {"script": "/ws/.molexp/slurm/7.sh", "output": "/ws/.molexp/slurm/7_0.out",
              "sbatch_args": ["--time=5"]}  # fmt: skip


@pytest.fixture
def run(experiment: Experiment) -> Run:
    return create_run(experiment, params={"lr": 0.5})


def on_disk(run: Run) -> dict[str, Any]:
    record: dict[str, Any] = json.loads(run.path.read_bytes())
    return record


def close_here(run: Run, *args: Any) -> bool:
    """``close_stale`` under the run's lock, as its callers do."""
    with locks.acquire(run.dir, "doctor", root=run.experiment.workspace.root):
        return lifecycle.close_stale(run, *args)


def open_here(run: Run, **options: Any) -> dict[str, Any]:
    """Open an attempt under the run's lock, as `execute_run` does."""
    got = locks.acquire(run.dir, "run", root=run.experiment.workspace.root)
    try:
        run.reload()
        return lifecycle.open_attempt(run, RunOptions(cwd=run.dir.parent, **options))
    finally:
        got.release()  # the attempt stays open: its owner is now gone


def test_attempts_are_numbered_one_more_than_the_highest(run: Run) -> None:
    assert lifecycle.next_number({"attempts": []}) == 1
    assert lifecycle.next_number({"attempts": [{"n": 1}, {"n": 3}, {"n": 2}]}) == 4
    first = open_here(run)
    assert first["n"] == 1 and first["status"] == "running"
    assert close_here(run, "gone")
    second = open_here(run)
    assert second["n"] == 2
    assert [a["n"] for a in on_disk(run)["attempts"]] == [1, 2]
    assert json.loads((run.attempt_dir(2) / "params.json").read_text()) == {"lr": 0.5}


def test_an_open_attempt_holds_the_fields_of_spec_8(run: Run) -> None:
    attempt = open_here(run)
    record = on_disk(run)
    assert record["status"] == "running" and record["attempts"] == [attempt]
    assert list(attempt) == [
        "n", "status", "started_at", "finished_at", "exit_code", "duration", "host", "pid",
        "env", "executor", "scheduler_job_id", "argv", "cwd", "git", "error", "cause", "results", "warnings",
    ]  # fmt: skip
    assert attempt["host"] == locks.hostname() and attempt["pid"] == os.getpid()
    assert attempt["env"]["cpu_count"] == os.cpu_count()  # SPEC §16
    assert attempt["executor"] == "local" and attempt["scheduler_job_id"] is None
    assert attempt["argv"] == ["/bin/sh", "-c", "echo 0"]


def test_enqueue_records_a_queued_attempt(run: Run) -> None:
    options = RunOptions(cwd=run.dir.parent)
    outcome = lifecycle.enqueue(run, "7_0", options, SUBMISSION)
    assert (outcome.action, outcome.status, outcome.attempt) == ("submitted", "queued", 1)
    assert outcome.message == "queued as SLURM job 7_0"
    record = on_disk(run)
    (attempt,) = record["attempts"]
    assert record["status"] == "queued" and attempt["status"] == "queued"
    assert list(attempt)[:4] == ["n", "status", "submitted_at", "started_at"]
    assert attempt["started_at"] is None and attempt["host"] is None and attempt["pid"] is None
    assert attempt["executor"] == "slurm" and attempt["scheduler_job_id"] == "7_0"
    assert attempt["argv"] == ["/bin/sh", "-c", "echo 0"]
    assert attempt["submission"] == {
        "command": "echo {replica}",
        "argv": None,
        "host": locks.hostname(),
        **SUBMISSION,
    }
    assert not locks.read_lock(run.dir)  # the lock was only held while writing


def test_the_task_continues_the_queued_attempt(run: Run) -> None:
    lifecycle.enqueue(run, "7_0", RunOptions(cwd=run.dir.parent), SUBMISSION)
    queued = on_disk(run)["attempts"][0]
    attempt = open_here(run, task=TaskStart("7_0"), command="echo {seed}")
    (recorded,) = on_disk(run)["attempts"]
    assert recorded == attempt and attempt["n"] == 1 and attempt["status"] == "running"
    assert attempt["executor"] == "slurm" and attempt["scheduler_job_id"] == "7_0"
    assert attempt["submitted_at"] == queued["submitted_at"]
    assert attempt["submission"] == queued["submission"] and attempt["restart"] == 0
    assert attempt["host"] == locks.hostname() and attempt["started_at"] is not None
    assert attempt["argv"] == ["/bin/sh", "-c", f"echo {run.record['seed']}"]


def test_a_requeued_task_opens_the_next_attempt(run: Run) -> None:
    lifecycle.enqueue(run, "7_0", RunOptions(cwd=run.dir.parent), SUBMISSION)
    first = TaskStart("7_0")
    assert lifecycle.task_verdict(on_disk(run), first) == "continue"
    open_here(run, task=first)
    again = TaskStart("7_0", restart=1, output="/out/7_0.out")
    assert lifecycle.task_verdict(on_disk(run), again) == "requeue"  # its start died unrecorded
    assert close_here(run, "node lost", None, "node_failure")
    record = on_disk(run)
    assert (record["status"], record["attempts"][0]["cause"]) == ("interrupted", "node_failure")
    assert lifecycle.task_verdict(record, TaskStart("7_0")) is None  # the same start: no
    assert lifecycle.task_verdict(record, TaskStart("8_0", restart=3)) is None  # another job
    second = open_here(run, task=again)
    assert second["n"] == 2 and second["scheduler_job_id"] == "7_0" and second["restart"] == 1
    assert second["submitted_at"] == record["attempts"][0]["submitted_at"]
    assert second["submission"] == dict(record["attempts"][0]["submission"], output="/out/7_0.out")
    assert [a["status"] for a in on_disk(run)["attempts"]] == ["interrupted", "running"]
    lifecycle.close_attempt(run, 2, "succeeded")
    assert lifecycle.task_verdict(on_disk(run), TaskStart("7_0", restart=2)) is None


def test_causes_give_their_status(run: Run) -> None:
    lifecycle.enqueue(run, "7_0", RunOptions(cwd=run.dir.parent), SUBMISSION)
    assert lifecycle.close_attempt(run, 1, None, "launch failed", "launch_failed")
    attempt = on_disk(run)["attempts"][0]
    assert (attempt["status"], attempt["cause"], attempt["error"]) == (
        "failed",
        "launch_failed",
        "launch failed",
    )
    lifecycle.enqueue(run, "8_0", RunOptions(cwd=run.dir.parent), SUBMISSION)
    assert lifecycle.close_attempt(run, 2, "cancelled", "cancelled with `molexp cancel`")
    assert on_disk(run)["attempts"][1]["cause"] == "cancelled"
    open_here(run)
    assert close_here(run, "gone")
    assert on_disk(run)["attempts"][2]["cause"] == "owner_lost"
    assert set(lifecycle.CAUSE_STATUS) == set(lifecycle.CAUSES)


def test_enqueue_holds_active_runs_and_skips_succeeded_ones(run: Run) -> None:
    options = RunOptions(cwd=run.dir.parent)
    lifecycle.enqueue(run, "7_0", options, SUBMISSION)
    again = lifecycle.enqueue(run, "8_0", options, SUBMISSION)
    assert (again.action, again.message) == ("held", "already queued as SLURM job 7_0")
    assert len(on_disk(run)["attempts"]) == 1
    with _Held(run):
        busy = lifecycle.enqueue(run, "8_0", options, SUBMISSION)
    assert busy.action == "held" and busy.message.startswith("held by ")
    lifecycle.close_attempt(run, 1, "succeeded")
    done = lifecycle.enqueue(run, "8_0", options, SUBMISSION)
    assert (done.action, done.message) == ("skipped", "up to date")
    forced = lifecycle.enqueue(run, "8_0", RunOptions(cwd=run.dir.parent, force=True), SUBMISSION)
    assert (forced.action, forced.attempt) == ("submitted", 2)


class _Held:
    """The run's lock held by this process for the ``with`` block."""

    def __init__(self, run: Run) -> None:
        self.run = run

    def __enter__(self) -> locks.RunLock:
        self.got = locks.acquire(self.run.dir, "run", root=self.run.experiment.workspace.root)
        return self.got

    def __exit__(self, *exc: object) -> None:
        self.got.release()


def test_close_attempt_with_a_reason(run: Run) -> None:
    lifecycle.enqueue(run, "7_0", RunOptions(cwd=run.dir.parent), SUBMISSION)
    assert lifecycle.close_attempt(run, 1, "cancelled", "cancelled with `molexp cancel`")
    record = on_disk(run)
    (attempt,) = record["attempts"]
    assert record["status"] == "cancelled" == attempt["status"]
    assert attempt["error"] == "cancelled with `molexp cancel`"
    assert attempt["finished_at"] is not None
    before = run.path.read_bytes()
    assert lifecycle.close_attempt(run, 1, "cancelled", "again")  # settled: nothing to do
    assert run.path.read_bytes() == before


def test_close_attempt_leaves_a_newer_attempt_and_a_busy_lock_alone(run: Run) -> None:
    lifecycle.enqueue(run, "7_0", RunOptions(cwd=run.dir.parent), SUBMISSION)
    assert lifecycle.close_attempt(run, 2, None, "not this one")  # someone moved it on
    assert on_disk(run)["status"] == "queued"
    with _Held(run):
        assert not lifecycle.close_attempt(run, 1, None, "busy")
    assert on_disk(run)["status"] == "queued"
    assert lifecycle.close_attempt(run, 1, None, "gone")  # queued: cancelled by default
    assert on_disk(run)["attempts"][0]["status"] == "cancelled"


def test_close_stale_of_a_running_and_a_queued_attempt(experiment: Experiment) -> None:
    running = create_run(experiment)
    open_here(running)
    (running.dir / lifecycle.RESULTS_FILE).write_text('{"loss": 0.25}')
    assert close_here(running)
    record = on_disk(running)
    assert record["status"] == "interrupted"
    assert record["attempts"][0]["error"] == "its process ended without recording an outcome"
    assert record["results"] == {"loss": 0.25} == record["attempts"][0]["results"]

    queued = create_run(experiment)
    lifecycle.enqueue(queued, "9_0", RunOptions(cwd=queued.dir.parent), SUBMISSION)
    assert close_here(queued, "its SLURM job left the queue")
    attempt = on_disk(queued)["attempts"][0]
    assert attempt["status"] == "cancelled" and attempt["error"] == "its SLURM job left the queue"

    assert not close_here(queued, "twice")  # finished: nothing to close
    pending = create_run(experiment)
    assert not close_here(pending)


def test_require_command_is_the_one_check(run: Run, experiment: Experiment) -> None:
    assert lifecycle.require_command(experiment, RunOptions()) == "echo {replica}"
    assert lifecycle.require_command(experiment, RunOptions(argv=["true"])) is None
    assert lifecycle.require_command(experiment, RunOptions(command="echo x")) == "echo x"
    bare = experiment.project.experiment("bare")
    with pytest.raises(UsageError, match="experiment p/bare has no command") as caught:
        lifecycle.require_command(bare, RunOptions())
    assert "experiment.yaml" in str(caught.value.hint)
    assert lifecycle.require_command(bare, RunOptions(argv=["true"])) is None


def test_placeholder_values_of_a_run(run: Run) -> None:
    values = lifecycle.placeholder_values(run, 3)
    assert values == {
        "lr": 0.5,
        "replica": 0,
        "seed": run.record["seed"],
        "run_id": run.id,
        "run_dir": str(run.dir),
        "profile": "",
        "attempt": 3,
        "params": {"lr": 0.5},
        "config": run.record["config"],
    }


def test_held_message_names_the_slurm_job(run: Run) -> None:
    assert lifecycle.held_message(run, "running") == "already running elsewhere"
    lifecycle.enqueue(run, "7_3", RunOptions(cwd=run.dir.parent), SUBMISSION)
    run.reload()
    assert lifecycle.held_message(run, "queued") == "already queued as SLURM job 7_3"


# -- exactly one writer ------------------------------------------------------------

WRITER = ROOT / "molexp" / "core" / "execution" / "lifecycle.py"
CREATOR = ROOT / "molexp" / "core" / "records" / "runs.py"  # Run.save, fresh records
WRITES = [
    re.compile(r"\.save\("),
    re.compile(r"\brun\.create\("),  # a new run's record, created with its first attempt
    re.compile(r"""(rec|record)\s*\[\s*["']attempts["']\s*\]\s*(\+=|=(?!=)|\.(append|extend|insert|pop|remove|clear|sort)\()"""),
    re.compile(r"""(rec|record)\s*\[\s*["']attempts["']\s*\]\s*\[[^\]]*\](\s*\[[^\]]*\])?\s*(=(?!=)|\.(update|pop|setdefault)\()"""),
    re.compile(r"""setdefault\(\s*["']attempts["']"""),
    re.compile(r"""\battempt\s*\[\s*["']\w+["']\s*\]\s*(=(?!=)|\+=)"""),
    re.compile(r"""\battempt\.(update|pop|setdefault|clear)\("""),
]  # fmt: skip


def writes_in(path: Path) -> list[str]:
    lines = path.read_text().splitlines()
    return [
        f"{path.relative_to(ROOT)}:{i}: {line.strip()}"
        for i, line in enumerate(lines, 1)
        if any(p.search(line) for p in WRITES)
    ]


def test_the_patterns_find_the_writer() -> None:
    found = "\n".join(writes_in(WRITER))
    for needle in (
        "run.save()",
        "run.create(",
        'rec["attempts"].append(attempt)',
        "attempt.update(",
        'attempt["error"] =',
    ):
        assert needle in found


def test_only_the_lifecycle_writes_attempts() -> None:
    """No `.save()` of a run and no change to ``attempts`` outside lifecycle.py.

    records/runs.py defines ``Run.save`` and creates fresh records; everyone else
    (SLURM submission and reconciliation, cancel, doctor) calls the lifecycle.
    """
    elsewhere = [
        hit
        for path in sorted((ROOT / "molexp").rglob("*.py"))
        if path not in (WRITER, CREATOR)
        for hit in writes_in(path)
    ]
    assert elsewhere == []
    assert [h for h in writes_in(CREATOR) if ".save(" in h or "attempts" in h] == []


# -- a new run's record is created by its first attempt -------------------------


def spec_of(exp: Experiment, replica: int = 0) -> Any:
    from molexp.core.records.plan import make_spec
    from molexp.core.records.profiles import ResolvedConfig

    return make_spec(exp, {"lr": 0.5}, replica, ResolvedConfig(None, {}, None))


def execute_here(exp: Experiment, spec: Any) -> Any:
    from molexp.core.execution.execute import SignalState

    signals = SignalState()
    try:
        return lifecycle.execute(exp, spec, RunOptions(cwd=exp.path, echo=False), signals)
    finally:
        signals.uninstall()


def test_a_new_run_is_created_with_its_attempt_running_in_it(
    experiment: Experiment, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One record write before the command starts, never a record without the
    attempt, and the attempt's folder only once the record names it."""
    from molexp.core.execution import execute as execute_module

    spec = spec_of(experiment)
    run_dir = experiment.runs_dir / spec.run_id
    seen: dict[str, Any] = {}
    real = execute_module.run_command

    def look(*args: Any, **kwargs: Any) -> Any:  # what is on disk as the command starts
        seen["record"] = json.loads((run_dir / "run.json").read_bytes())
        seen["lock"] = locks.read_lock(run_dir)
        return real(*args, **kwargs)

    monkeypatch.setattr(execute_module, "run_command", look)
    writes: list[str] = []
    real_create, real_write = lifecycle.store.create_exclusive, lifecycle.store.atomic_write_bytes

    def create(path: Path, *args: Any, **kwargs: Any) -> bool:
        if path.name == "run.json":
            writes.append("create")
            assert not (run_dir / "attempts").exists()  # the record comes first
            assert locks.read_lock(run_dir) is not None  # under the run's lock
        return real_create(path, *args, **kwargs)

    def replace(path: Path, *args: Any, **kwargs: Any) -> None:
        if path.name == "run.json":
            writes.append("replace")
        real_write(path, *args, **kwargs)

    monkeypatch.setattr(lifecycle.store, "create_exclusive", create)
    monkeypatch.setattr(lifecycle.store, "atomic_write_bytes", replace)
    outcome = execute_here(experiment, spec)
    assert (outcome.action, outcome.status, outcome.attempt) == ("executed", "succeeded", 1)
    assert writes == ["create", "replace"]  # the running record, then the outcome
    assert seen["record"]["status"] == "running"
    assert [a["status"] for a in seen["record"]["attempts"]] == ["running"]
    assert seen["lock"] is not None and seen["lock"].pid == os.getpid()
    record = json.loads((run_dir / "run.json").read_bytes())
    assert record["status"] == "succeeded" and len(record["attempts"]) == 1
    assert (run_dir / "attempts" / "1" / "stdout.log").read_text() == "0\n"
    assert not (run_dir / locks.LOCK_NAME).exists()


def test_a_record_another_process_creates_meanwhile_is_run_not_replaced(
    experiment: Experiment, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another `run` (or `run_for`) creates the new run `pending`, without the lock,
    while this one captures the environment: this attempt becomes attempt 1 of
    that record, which keeps its own creation time."""
    from molexp.core.records.runs import ensure_run

    spec = spec_of(experiment)
    racer: dict[str, Any] = {}
    real = lifecycle._git_for

    def race(exp: Experiment, options: RunOptions) -> Any:
        if not racer:
            racer.update(ensure_run(exp, spec).record)  # writes run.json, `pending`
        return real(exp, options)

    monkeypatch.setattr(lifecycle, "_git_for", race)
    outcome = execute_here(experiment, spec)
    assert (outcome.action, outcome.status, outcome.attempt) == ("executed", "succeeded", 1)
    record = json.loads((experiment.runs_dir / spec.run_id / "run.json").read_bytes())
    assert record["created_at"] == racer["created_at"]
    assert [a["n"] for a in record["attempts"]] == [1]
    assert record["status"] == "succeeded"


def test_a_new_run_found_created_once_the_lock_is_taken_is_read_first(
    experiment: Experiment, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The record appears between planning and the lock (another process made it
    and ran it): it is read under the lock and the run is up to date."""
    from molexp.core.records.runs import ensure_run

    spec = spec_of(experiment)
    real = locks.acquire

    def after_another_run(run_dir: Path, *args: Any, **kwargs: Any) -> Any:
        monkeypatch.setattr(locks, "acquire", real)
        if not (run_dir / "run.json").exists():
            assert execute_here(experiment, spec).status == "succeeded"  # the other one
        return real(run_dir, *args, **kwargs)

    monkeypatch.setattr(locks, "acquire", after_another_run)
    run = ensure_run(experiment, spec, durable_entry=False, write=False)
    assert not run.stored and not run.path.exists()
    from molexp.core.execution.execute import SignalState

    signals = SignalState()
    try:
        outcome = lifecycle.execute_run(run, RunOptions(cwd=experiment.path, echo=False), signals)
    finally:
        signals.uninstall()
    assert (outcome.action, outcome.status) == ("skipped", "succeeded")
    assert len(json.loads(run.path.read_bytes())["attempts"]) == 1
