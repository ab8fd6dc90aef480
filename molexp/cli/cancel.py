"""molexp cancel: stop queued or running runs (scancel under SLURM, SIGTERM locally)."""

from __future__ import annotations

import typer

from molexp.cli import output, state


def cancel(
    ref: str | None = typer.Argument(
        None, help="A run, PROJECT/EXPERIMENT, or with --all a PROJECT (default: the workspace)."
    ),
    everything: bool = typer.Option(
        False, "--all", help="Cancel every queued or running run of a project or the workspace."
    ),
    timeout: float = typer.Option(
        60.0, "--timeout", help="Seconds to wait for running runs to record that they stopped."
    ),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object per run on stdout."),
) -> None:
    """Cancel queued or running runs: `scancel` for SLURM runs, SIGTERM to local owners."""
    from molexp.core.actions import cancel as core
    from molexp.core.records.refs import resolve
    from molexp.errors import UsageError

    if ref is None and not everything:
        raise UsageError("molexp cancel needs a run, PROJECT/EXPERIMENT, or --all")
    target = resolve(state.workspace(), ref or ".")
    runs, problems = core.select(target, everything)
    results = core.cancel(runs, patience=timeout)
    for r in results:
        output.say(
            f"{r.run.ref}: {r.action if r.action != 'nothing' else 'not active'} ({r.message})"
        )
        if json_out:
            output.print_json_line(r.to_json())
    for problem in problems:
        output.error(str(problem).splitlines()[0])
    if not results:
        where = "the workspace" if target.kind == "workspace" else target.text
        output.say(f"nothing to cancel in {where}: no run is queued or running")
    raise typer.Exit(3 if problems or any(r.action == "failed" for r in results) else 0)
