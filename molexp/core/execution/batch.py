"""Executing a batch of planned runs (`molexp run`): up to N at once, signals
forwarded, what a dry run would do and why, the strongest exit code.  Each run
goes through the lifecycle (:mod:`molexp.core.execution.lifecycle`), the one
writer of attempts.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from molexp.core.execution.lifecycle import (
    Outcome,
    RunOptions,
    command_warnings,
    execute,
    held_message,
    latest,
    next_number,
    placeholder_values,
    require_command,
)
from molexp.core.records.runs import ACTIVE, Run, observe
from molexp.errors import EXIT_SIGINT, EXIT_SIGTERM, MolexpError, WorkspaceError

if TYPE_CHECKING:
    from molexp.core.records.plan import RunSpec
    from molexp.core.records.workspace import Experiment


def refused(exp: Experiment, spec: RunSpec, error: MolexpError) -> Outcome:
    """The outcome of a run that could not be run because of ``error``."""
    from molexp.core.records.runs import record_for

    return Outcome(
        Run(exp, spec.run_id, record_for(exp, spec)),
        "refused",
        "unknown",
        message=error.message,
        error=error,
    )


def exit_code_for(outcomes: Sequence[Outcome], signal_received: int | None) -> int:
    """The strongest code wins: 130/143, then 3, then 2, then 1, then 0."""
    import signal as _signal

    if signal_received is not None:
        return EXIT_SIGINT if signal_received == _signal.SIGINT else EXIT_SIGTERM
    if any(o.action == "held" for o in outcomes):
        return 3
    refused = [o.error.exit_code for o in outcomes if o.error is not None]
    if refused:
        return 3 if 3 in refused else max(refused)
    if any(
        o.status in ("failed", "cancelled", "interrupted")
        for o in outcomes
        if o.action == "executed"
    ):
        return 1
    return 0


def summarise(outcomes: Sequence[Outcome]) -> Mapping[str, int]:
    counts: dict[str, int] = {}
    for o in outcomes:
        counts[o.action] = counts.get(o.action, 0) + 1
    return counts


def check_command(exp: Experiment, specs: Sequence[RunSpec], options: RunOptions) -> list[str]:
    """Fill in the command of every planned run before anything is written.

    A ``{config.KEY}`` the config lacks or a placeholder that cannot be quoted
    where it stands is refused here (exit 2); the returned warnings name the
    ``{identifiers}`` that named nothing.  An experiment without a command is
    left to :func:`require_command`.
    """
    from molexp.core.execution.placeholders import build_argv, values_for

    command = options.command or exp.definition().get("command")
    if not options.argv and not command:
        return []
    unknown: dict[str, None] = {}
    for spec in specs:
        values = values_for(
            spec.params,
            spec.config,
            replica=spec.replica,
            seed=spec.seed,
            run_id=spec.run_id,
            run_dir=str(exp.runs_dir / spec.run_id),
            profile=spec.profile,
            attempt=1,
        )
        unknown.update(dict.fromkeys(build_argv(command, options.argv, values)[1]))
    return command_warnings(list(unknown))


def preview(
    exp: Experiment,
    spec: RunSpec,
    options: RunOptions,
    siblings: Sequence[Mapping[str, Any]] = (),
) -> Outcome:
    """What `run` would do with ``spec``, and why; writes nothing (``--dry-run``).

    ``reason`` says why: ``new`` (no record yet), ``pending`` (never attempted),
    ``failed``/``cancelled``/``interrupted`` (its last attempt), ``forced``,
    ``up_to_date`` or ``held``.  For a new run, ``siblings`` (the summaries of the
    experiment's existing runs) tell what makes it new: a run with the same params
    and replica but another profile, config or seed is named with what differs.
    """
    from molexp.core.execution.placeholders import build_argv
    from molexp.core.records.runs import peek_run

    run, exists = peek_run(exp, spec)
    status, why = observe(run.record, run.dir)
    last = latest(run.record)
    differs: list[str] | None = None
    if status == "succeeded" and not options.force:
        reason, would = "up_to_date", "skip (up to date)"
    elif status in ACTIVE:
        reason, would = "held", f"hold ({why or held_message(run, status)})"
    elif status == "succeeded":
        reason, would = "forced", f"execute (--force: attempt {last.get('n')} succeeded)"
    elif not exists:
        reason = "new"
        would, differs = _why_new(spec, siblings)
    elif not run.record["attempts"]:
        reason, would = "pending", "execute (never attempted)"
    else:
        code = last.get("exit_code")
        how = f" with exit code {code}" if status == "failed" and code is not None else ""
        cause = last.get("cause") or (last.get("error") if status != "failed" else None)
        reason = status
        would = f"execute (attempt {last.get('n')} {status}{how}{f': {cause}' if cause else ''})"
    command = options.command or exp.definition().get("command")
    argv = None
    if options.argv or command:
        values = placeholder_values(run, next_number(run.record))
        argv = build_argv(None if options.argv else command, options.argv, values)[0]
    return Outcome(run, "planned", status, message=would, reason=reason, differs=differs, argv=argv)


def _why_new(spec: RunSpec, siblings: Sequence[Mapping[str, Any]]) -> tuple[str, list[str] | None]:
    """What makes ``spec`` a new run: a new point, a new replica, or, when a run
    with the same params and replica exists, how it differs from that one."""
    from molexp.core.model.identity import canonical_json

    params = canonical_json(spec.params)
    same = [s for s in siblings if canonical_json(s.get("params") or {}) == params]
    twin = next((s for s in same if s.get("replica") == spec.replica), None)
    if twin is None:
        what = f"new replica {spec.replica} of existing params" if same else "new point"
        return f"execute (new run): {what}", None
    differs: list[str] = []
    if twin.get("profile") != spec.profile:
        differs.append(f"profile {spec.profile or 'none'} (was {twin.get('profile') or 'none'})")
    if twin.get("config_hash") != spec.config_hash:
        mine, theirs = _flat(spec.config), _flat(twin.get("config") or {})
        for key in sorted(set(mine) | set(theirs)):
            a, b = mine.get(key, _GONE), theirs.get(key, _GONE)
            if canonical_json([a]) != canonical_json([b]):
                differs.append(f"config.{key} {_shown(a)} (was {_shown(b)})")
    if twin.get("seed") != spec.seed:
        differs.append(f"seed {spec.seed} (was {twin.get('seed')})")
    shown = ", ".join(differs[:4]) + (f" and {len(differs) - 4} more" if len(differs) > 4 else "")
    return f"execute (new run): like {twin.get('id')} but {shown or 'another config'}", differs


_GONE = "\0unset"


def _flat(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(_flat(value, name + "."))
        else:
            out[name] = value
    return out


def _shown(value: Any) -> str:
    if value == _GONE:
        return "unset"
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))


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
    (running ones finish).  One bad run never hides the others (SPEC §8): a run
    refused on its own account (a corrupt record, a run directory linked out of
    the workspace, a lock lost to another host) becomes a ``refused`` outcome
    naming why, and the others run; what refuses them all (the experiment has no
    command, a record above them is newer than this molexp) is raised before any
    starts.  ``on_start(spec)`` and ``on_done(outcome)`` report progress (from
    worker threads when ``jobs`` > 1).  Runs never started have no outcome.
    """
    from molexp.core.execution.execute import SignalState

    if specs:
        require_command(exp, options)
        exp.check_writable()

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
        except MolexpError as exc:
            outcome = refused(exp, specs[i], exc)
        except OSError as exc:
            if exc.filename is None:
                stop = True
                raise
            # The filesystem refused a record (full, read-only): what could be
            # recorded is; the run reads `interrupted` until it runs again.
            reason = WorkspaceError(f"{exc.filename}: {exc.strerror or exc}")
            outcome = refused(exp, specs[i], reason)
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
