"""molexp ls: list runs."""

from __future__ import annotations

from typing import Any

import typer

from molexp.cli import output, state

FORMATS = ("table", "json", "csv", "ids")


def _duration(record: dict[str, Any]) -> Any:
    attempts = record.get("attempts") or []
    duration = attempts[-1].get("duration") if attempts else None
    return f"{duration:.2f}s" if isinstance(duration, (int, float)) else None


def _when(stamp: Any) -> Any:
    """``2026-11-25T16:03:17.123456+00:00`` -> ``2026-11-25 16:03:17`` (UTC)."""
    return stamp[:19].replace("T", " ") if isinstance(stamp, str) else stamp


def ls(
    ref: str | None = typer.Argument(None, help="PROJECT or PROJECT/EXPERIMENT (default: all)."),
    status: list[str] | None = typer.Option(None, "--status", "-s", help="Only runs with this status (repeatable)."),
    where: list[str] | None = typer.Option(None, "--where", help="KEY=VALUE on params, config or results (repeatable)."),
    fmt: str = typer.Option("table", "--format", "-f", help="table, json, csv or ids."),
) -> None:
    """List runs with their status; unreadable records are named on stderr (exit 3)."""
    from molexp.core.listing import parse_where, scan
    from molexp.errors import UsageError

    if fmt not in FORMATS:
        raise UsageError(f"--format {fmt!r}: use one of {', '.join(FORMATS)}")
    ws = state.workspace()
    project = experiment = None
    if ref:
        from molexp.core.refs import resolve

        target = resolve(ws, ref)
        if target.kind not in ("workspace", "project", "experiment"):
            raise UsageError(f"molexp ls takes PROJECT or PROJECT/EXPERIMENT; use `molexp show {ref}`")
        project = target.project.name if target.project else None
        experiment = target.experiment.name if target.experiment else None
    listing = scan(ws, project, experiment, status or [], parse_where(where or []))
    render(listing.records, fmt)
    for problem in listing.problems:
        output.error(str(problem).splitlines()[0])
    if listing.problems:
        output.say(f"{len(listing.problems)} record(s) could not be read; `molexp doctor` lists them all.")
        raise typer.Exit(3)


def render(records: list[dict[str, Any]], fmt: str) -> None:
    if fmt == "json":
        output.print_json(records)
        return
    if fmt == "ids":
        for r in records:
            print(f"{r['project']}/{r['experiment']}/{r['id']}")
        return
    columns = ["run", "status", "replica", "profile", "params", "attempts", "duration", "updated (UTC)"]
    rows = [
        [f"{r['project']}/{r['experiment']}/{r['id']}", r["status"], r["replica"], r.get("profile"),
         r.get("params"), len(r.get("attempts") or []), _duration(r), _when(r.get("updated_at"))]
        for r in records
    ]
    if fmt == "csv":
        output.print_csv(columns, rows)
    else:
        output.print_table(columns, rows)
