"""molexp doctor: report (and safely fix) problems in the workspace."""

from __future__ import annotations

import typer

from molexp.cli import output, state


def doctor(
    fix: bool = typer.Option(
        False,
        "--fix",
        help="Remove stale locks and old temporary files, and record runs "
        "whose owner is gone as interrupted. Never deletes a record or rewrites one to repair it.",
    ),
    json_out: bool = typer.Option(False, "--json", help="Print the report as one JSON object."),
) -> None:
    """Check every record, definition and lock in the workspace; exit 3 while problems remain."""
    from molexp.core.views.doctor import check

    ws = state.workspace()
    report = check(ws, fix=fix)
    if json_out:
        output.print_json(report.to_json())
    else:
        for p in report.problems:
            done = "  [fixed]" if p.fixed else ("  [fixable: --fix]" if p.fixable else "")
            print(f"{p.kind:<13} {p.relpath(ws.root)}: {p.message}{done}")
            if not p.fixed and p.hint:
                print(f"{'':<13} {p.hint}")
    checked = ", ".join(
        f"{n} {word}{'' if n == 1 else 's'}"
        for n, word in (
            (report.projects, "project"),
            (report.experiments, "experiment"),
            (report.runs, "run"),
        )
    )
    if not report.problems:
        output.say(f"No problems in {ws.root} ({checked}).")
    else:
        output.say(
            f"{len(report.problems)} problem(s) in {ws.root} ({checked}): "
            f"{len(report.fixed)} fixed, {len(report.remaining)} remaining."
        )
    raise typer.Exit(3 if report.remaining else 0)
