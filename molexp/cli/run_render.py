"""Rendering of `molexp run`: progress lines on stderr, JSON lines on stdout."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from molexp.cli import output
from molexp.core.lifecycle import Outcome, RunOptions, run_many
from molexp.core.plan import RunSpec
from molexp.core.workspace import Experiment


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
    att = outcome.run.record["attempts"][-1] if outcome.run.record["attempts"] else {}
    took = f" in {att['duration']:.2f}s" if att.get("duration") is not None else ""
    if outcome.status == "succeeded":
        return f"{_label(outcome)}: succeeded{took} (attempt {outcome.attempt})"
    logs = outcome.run.attempt_dir(outcome.attempt or 0) / "stderr.log"
    return (
        f"{_label(outcome)}: {outcome.status} with exit code {outcome.exit_code}{took} "
        f"(attempt {outcome.attempt}); stderr: {logs}"
    )


def report(
    exp: Experiment, specs: Sequence[RunSpec], options: RunOptions, jobs: int, json_out: bool
) -> tuple[list[Outcome], int | None]:
    lock = threading.Lock()

    def on_start(spec: RunSpec) -> None:
        pass

    def on_done(outcome: Outcome) -> None:
        with lock:
            output.say(describe(outcome))
            if json_out:
                output.print_json_line(outcome.to_json())

    outcomes, signal = run_many(exp, specs, options, jobs, on_start, on_done)
    if len(specs) > 1:
        counts: dict[str, int] = {}
        for o in outcomes:
            key = o.status if o.action == "executed" else ("up to date" if o.action == "skipped" else o.action)
            counts[key] = counts.get(key, 0) + 1
        parts = ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))
        output.say(f"{len(specs)} runs of {exp.ref}: {parts}")
    return outcomes, signal


def report_plan(outcomes: Sequence[Outcome], json_out: bool) -> None:
    if json_out:
        for o in outcomes:
            output.print_json_line(o.to_json())
        return
    output.print_table(
        ["run", "replica", "profile", "params", "status", "would"],
        [
            [f"{o.run.record['project']}/{o.run.record['experiment']}/{o.run.id}",
             o.run.record["replica"], o.run.record.get("profile"), o.run.record.get("params"),
             o.status, o.message]
            for o in outcomes
        ],
    )
