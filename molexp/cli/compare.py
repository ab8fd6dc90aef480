"""molexp compare / molexp diff: runs side by side (see docs/sweeps.md)."""

from __future__ import annotations

from typing import Any

import typer

from molexp.cli import complete, output, state

FORMATS = ("table", "json", "csv", "md")


def compare(
    refs: list[str] = typer.Argument(
        ...,
        autocompletion=complete.ref,
        help="Experiment, project, run refs (several allowed) or `.` for all.",
    ),
    show_all: bool = typer.Option(
        False,
        "--all",
        "-a",
        help="Also show params and config keys that are the same in every run.",
    ),
    sort: list[str] | None = typer.Option(
        None,
        "--sort",
        "-s",
        help="Sort by a column, e.g. lr or -results.loss (- for descending; repeatable).",
    ),
    where: list[str] | None = typer.Option(
        None,
        "--where",
        help="A condition, e.g. 'results.energy<-1.3' or 'replica=0' (= != < <= > >= ~; "
        "repeatable, all must hold; see docs/questions.md).",
    ),
    limit: int | None = typer.Option(None, "--limit", "-n", help="At most N rows (after sorting)."),
    fmt: str = typer.Option("table", "--format", "-f", help="table, json, csv or md."),
    aggregate: bool = typer.Option(
        False,
        "--aggregate",
        help="One row per point (runs that differ only in replica and seed): n, and "
        "mean ± std of each result and last metric.",
    ),
    plot: str | None = typer.Option(
        None,
        "--plot",
        metavar="RESULT",
        help="With --aggregate: draw RESULT's mean ± std against --x in the terminal "
        "(needs the plot extra: pip install 'molexp[plot]').",
    ),
    x: str | None = typer.Option(
        None,
        "--x",
        metavar="PARAM",
        help="The param on the x axis of --plot (default: the one that varies).",
    ),
) -> None:
    """One row per run: the params and config that vary, results, status, duration."""
    from molexp.errors import UsageError

    if fmt not in FORMATS:
        raise UsageError(f"--format {fmt!r}: use one of {', '.join(FORMATS)}")
    if (plot or x) and not aggregate:
        raise UsageError("--plot and --x draw the points of --aggregate; add --aggregate")
    if aggregate:
        from molexp.cli import aggregate as render_points
        from molexp.core.views.aggregate import aggregate_refs

        points, problems = aggregate_refs(
            state.workspace(), refs, show_all, sort or [], where or [], limit
        )
        render_points.show(points, fmt, plot, x)
        _report_problems(problems)
        return
    from molexp.core.views.compare import compare_refs

    table, problems = compare_refs(
        state.workspace(), refs, show_all, sort or [], where or [], limit
    )
    _render(table.columns, table.rows, fmt)
    if not table.rows:
        output.say("no runs match")
    elif table.constant and fmt in ("table", "md"):
        output.say_constant(table.constant)
    _report_problems(problems)


def _render(columns: list[str], rows: list[dict[str, Any]], fmt: str) -> None:
    from molexp.core.views.compare import MISSING

    if fmt == "json":
        output.print_json([{c: (None if r[c] is MISSING else r[c]) for c in columns} for r in rows])
        return
    human = fmt in ("table", "md")
    if human and not rows:
        return  # "no runs match" goes to stderr
    cells = [[_cell(c, r[c], human) for c in columns] for r in rows]
    if fmt == "csv":
        output.print_csv(columns, cells)
    elif fmt == "md":
        output.print_markdown(columns, cells)
    else:
        output.print_table(columns, cells)


def _cell(column: str, value: Any, human: bool) -> Any:
    from molexp.core.views.compare import MISSING

    if value is MISSING:
        return None
    if human and column == "duration" and isinstance(value, (int, float)):
        return output.seconds(value)
    if column == "tags" and isinstance(value, list):
        return " ".join(map(str, value))
    return value


def _report_problems(problems: list[Any]) -> None:
    for problem in problems:
        output.error(str(problem).splitlines()[0])
    if problems:
        output.say(f"{len(problems)} record(s) could not be read; `molexp doctor` lists them all.")
        raise typer.Exit(3)


def diff(
    run_a: str = typer.Argument(
        ...,
        autocompletion=complete.ref,
        help="First run (PROJECT/EXPERIMENT/RUN_ID or an id prefix).",
    ),
    run_b: str = typer.Argument(..., autocompletion=complete.ref, help="Second run."),
    json_out: bool = typer.Option(False, "--json", help="Print the differences as JSON."),
) -> None:
    """What differs between two runs: params, config, results, git and attempts."""
    from molexp.core.views.compare import MISSING, diff_runs

    ref_a, rec_a, ref_b, rec_b, sections = diff_runs(state.workspace(), run_a, run_b)
    if json_out:
        output.print_json({
            "a": ref_a,
            "b": ref_b,
            **{
                name: {
                    key: {side: v for side, v in (("a", a), ("b", b)) if v is not MISSING}
                    for key, (a, b) in items.items()
                }
                for name, items in sections.items()
            },
        })  # fmt: skip
        return
    rows = [
        [f"{name}.{key}", *("(missing)" if v is MISSING else v for v in pair)]
        for name, items in sections.items()
        for key, pair in items.items()
    ]
    if not rows:
        output.say(f"{ref_a} and {ref_b} do not differ")
        return
    output.print_table(["key", f"a: {rec_a['id']}", f"b: {rec_b['id']}"], rows)
    output.say(f"a = {ref_a}\nb = {ref_b}")
