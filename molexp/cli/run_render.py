"""Rendering of `molexp run`: progress on stderr, JSON lines on stdout.

One run at a time (``--jobs 1``), the command's output streams to the terminal and
one line per run follows it.  Several at once, command output goes only to the
logs (interleaved output of concurrent commands is unreadable); stderr shows a
live progress display on a terminal (runs done / failed / running, elapsed time,
a line per finished run above it) and plain ``[k/N] ...`` lines when piped.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Sequence
from typing import Any

from molexp.cli import output
from molexp.core.actions import run as action
from molexp.core.execution.lifecycle import Outcome


def _label(spec_or_run: Any) -> str:
    rec = spec_or_run.run.record if isinstance(spec_or_run, Outcome) else None
    if rec is not None:
        ref = f"{rec['project']}/{rec['experiment']}/{spec_or_run.run.id}"
        replica, profile = rec["replica"], rec.get("profile")
    else:
        ref, replica, profile = spec_or_run.ref, spec_or_run.replica, spec_or_run.profile
    extra = f", profile {profile}" if profile else ""
    return f"{ref} (replica {replica}{extra})"


def describe(outcome: Outcome) -> str:
    if outcome.action == "skipped":
        return f"{_label(outcome)}: up to date"
    if outcome.action == "held":
        return f"{_label(outcome)}: {outcome.message}"
    if outcome.action == "refused":
        return f"{_label(outcome)}: not run: {outcome.message}"
    att = outcome.run.record["attempts"][-1] if outcome.run.record["attempts"] else {}
    shown = output.seconds(att.get("duration"))
    took = f" in {shown}" if shown is not None else ""
    if outcome.error is not None:  # ran, but not everything could be saved
        return (
            f"{_label(outcome)}: {outcome.status}{took} (attempt {outcome.attempt}), "
            f"but {outcome.message}"
        )
    if outcome.status in ("succeeded", "cancelled"):
        return f"{_label(outcome)}: {outcome.status}{took} (attempt {outcome.attempt})"
    logs = outcome.run.attempt_dir(outcome.attempt or 0) / "stderr.log"
    line = (
        f"{_label(outcome)}: {outcome.status} with exit code {outcome.exit_code}{took} "
        f"(attempt {outcome.attempt}); stderr: {logs}"
    )
    return line + _stderr_tail(logs)


def _stderr_tail(path: Any) -> str:
    """The last lines of a failed run's stderr, indented under its line."""
    from molexp.core.views.logs import TAIL_LINES, tail_lines

    lines = tail_lines(path, TAIL_LINES)
    if not lines:
        return ""
    return f"\n  stderr, last {len(lines)} line(s):\n" + "\n".join(f"  | {x}" for x in lines)


def _category(outcome: Outcome) -> str:
    if outcome.action == "skipped":
        return "up to date"
    if outcome.action == "executed":
        return outcome.status
    return outcome.action


def _is_failure(outcome: Outcome) -> bool:
    return outcome.action == "executed" and outcome.status in ("failed", "interrupted")


class _Display:
    """Progress of a batch of runs; thread-safe (callbacks come from workers)."""

    def __init__(self, total: int, title: str, live: bool, prefix: bool) -> None:
        self.total = total
        self.prefix = prefix
        self.done = 0
        self.running = 0
        self.failed = 0
        self.cancelled = 0
        self.up_to_date = 0
        self.lock = threading.Lock()
        self.progress: Any = None
        self.task: Any = None
        if live:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                SpinnerColumn,
                TextColumn,
                TimeElapsedColumn,
            )

            self.progress = Progress(
                SpinnerColumn(),
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[counts]}"),
                TimeElapsedColumn(),
                console=output.console(stderr=True),
                transient=False,
                redirect_stdout=False,
                redirect_stderr=False,
            )
            self.task = self.progress.add_task(title, total=total, counts=self._counts())

    def _counts(self) -> str:
        parts = [f"{self.running} running", f"{self.failed} failed"]
        if self.cancelled:
            parts.append(f"{self.cancelled} cancelled")
        if self.up_to_date:
            parts.append(f"{self.up_to_date} up to date")
        return ", ".join(parts)

    def __enter__(self) -> _Display:
        if self.progress is not None:
            self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.stop()

    def started(self) -> None:
        with self.lock:
            self.running += 1
            self._refresh()

    def finished(self, outcome: Outcome) -> None:
        with self.lock:
            self.running = max(self.running - 1, 0)
            self.done += 1
            self.failed += _is_failure(outcome)
            self.cancelled += outcome.action == "executed" and outcome.status == "cancelled"
            self.up_to_date += outcome.action == "skipped"
            line = describe(outcome)
            if self.prefix:
                line = f"[{self.done}/{self.total}] {line}"
            self._refresh()
            self.say(line)

    def say(self, line: str) -> None:
        if self.progress is not None:
            self.progress.console.print(line, markup=False, highlight=False, soft_wrap=True)
        else:
            output.say(line)

    def _refresh(self) -> None:
        if self.progress is not None:
            # refresh now: a line printed above the display redraws its last rendering
            self.progress.update(self.task, completed=self.done, counts=self._counts())
            self.progress.refresh()


def render(plan: action.Plan) -> int:
    """Carry out a planned `molexp run`, showing it; return the exit code."""
    request = plan.request
    for warning in plan.warnings:
        output.say(f"warning: {warning}")
    if request.executor == "slurm":
        from molexp.cli.slurm import render_submission

        return render_submission(plan)
    if request.dry_run:
        report_plan(action.preview(plan), request.json_mode)
        return 0
    outcomes, signal = report(plan)
    return action.exit_code(outcomes, signal)


def report(plan: action.Plan) -> tuple[list[Outcome], int | None]:
    """Execute the plan with progress on stderr; return the outcomes and any signal."""
    specs, json_out, ref = plan.specs, plan.request.json_mode, plan.experiment.ref
    fail_fast = plan.request.fail_fast
    concurrent = (plan.request.jobs or 1) > 1 and len(specs) > 1
    live = concurrent and output.is_tty(sys.stderr)
    # JSON lines would tear a live display drawn on the same terminal: hold them.
    hold_json = live and output.is_tty(sys.stdout)
    held_json: list[dict[str, Any]] = []
    stopping = threading.Event()
    started = time.monotonic()
    display = _Display(len(specs), ref, live=live, prefix=concurrent)

    def on_done(outcome: Outcome) -> None:
        display.finished(outcome)
        for warning in outcome.warnings:
            with display.lock:
                display.say(f"warning: {outcome.run.ref}: {warning}")
        if json_out:
            with display.lock:
                if hold_json:
                    held_json.append(outcome.to_json())
                else:
                    output.print_json_line(outcome.to_json())
        if fail_fast and _is_failure(outcome) and not stopping.is_set():
            stopping.set()
            with display.lock:
                display.say("--fail-fast: a run failed; no new runs start (running ones finish)")

    with display:
        outcomes, signal = action.execute(plan, lambda _spec: display.started(), on_done)
    for line in held_json:
        output.print_json_line(line)
    if len(specs) > 1:
        output.say(summary_line(ref, len(specs), outcomes, time.monotonic() - started))
    refused = sum(o.action == "refused" for o in outcomes)
    if refused:
        output.say(
            f"{refused} run(s) could not be run (named above); `molexp doctor` lists every problem."
        )
    return outcomes, signal


def summary_line(ref: str, total: int, outcomes: Sequence[Outcome], elapsed: float) -> str:
    counts: dict[str, int] = {}
    for o in outcomes:
        counts[_category(o)] = counts.get(_category(o), 0) + 1
    parts = [f"{n} {k}" for k, n in sorted(counts.items())]
    if len(outcomes) < total:
        parts.append(f"{total - len(outcomes)} not started")
    return f"{total} runs of {ref}: {', '.join(parts)} ({elapsed:.1f}s)"


def _command(argv: list[str] | None) -> str:
    """The command a planned run would execute, as the user wrote it (filled in)."""
    if not argv:
        return ""
    if argv[:2] == ["/bin/sh", "-c"] and len(argv) == 3:
        return argv[2]
    import shlex

    return shlex.join(argv)


def report_plan(outcomes: Sequence[Outcome], json_out: bool) -> None:
    if json_out:
        for o in outcomes:
            output.print_json_line(o.to_json())
    else:
        output.print_table(
            ["run", "replica", "profile", "params", "status", "would", "command"],
            [
                [f"{o.run.record['project']}/{o.run.record['experiment']}/{o.run.id}",
                 o.run.record["replica"], o.run.record.get("profile"),
                 o.run.record.get("params"), o.status, o.message, _command(o.argv)]
                for o in outcomes
            ],
        )  # fmt: skip
    if len(outcomes) > 1:
        counts: dict[str, int] = {}
        for o in outcomes:
            would = o.message.split(" (")[0]
            key = {"skip": "up to date", "hold": "held elsewhere"}.get(would, "would execute")
            counts[key] = counts.get(key, 0) + 1
        order = ("would execute", "up to date", "held elsewhere")
        parts = ", ".join(f"{counts[k]} {k}" for k in order if k in counts)
        output.say(f"{len(outcomes)} runs planned: {parts} (dry run: nothing was written)")
