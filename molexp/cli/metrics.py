"""molexp metrics: the values a run recorded over time (SPEC §14; docs/questions.md)."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import typer

from molexp.cli import complete, output, state

if TYPE_CHECKING:
    from molexp.core.records.metrics import Point
    from molexp.core.views.metrics import Series

FORMATS = ("table", "json", "csv")


def metrics(
    run: str = typer.Argument(
        ..., autocompletion=complete.ref, help="The run: PROJECT/EXPERIMENT/RUN_ID or an id prefix."
    ),
    attempt: int | None = typer.Option(
        None, "--attempt", "-a", help="Attempt N (default: the latest)."
    ),
    metric: list[str] | None = typer.Option(
        None, "--metric", "-m", help="Only this metric (repeatable; default: all)."
    ),
    follow: bool = typer.Option(
        False,
        "--follow",
        help="While the run is queued or running, print new points as they come; ends with the run.",
    ),
    fmt: str = typer.Option(
        "table",
        "--format",
        "-f",
        help="table, json or csv (json with --follow: one object a line).",
    ),
    plot: bool = typer.Option(
        False,
        "--plot",
        help="Draw the numeric metrics against the step, in the terminal (needs the plot extra: pip install 'molexp[plot]').",
    ),
) -> None:
    """Print the metrics a run recorded over time (MOLEXP_METRICS_FILE, ctx.log)."""
    from molexp.core.views.metrics import follow as follow_points
    from molexp.core.views.metrics import names_of, series
    from molexp.errors import UsageError

    if fmt not in FORMATS:
        raise UsageError(f"--format {fmt!r}: use one of {', '.join(FORMATS)}")
    if plot and follow:
        raise UsageError("--plot draws the series once; leave out --follow")
    ws = state.workspace()
    found = series(ws, run, attempt, metric or [])
    if plot:
        _plot(found)
    elif not follow:
        _print(found, fmt)
    else:
        printer = _Stream(fmt, list(found.names))
        printer.add(found.points)
        for batch in follow_points(ws, run, found, metric or [], attempt is not None):
            if not metric:
                names_of(batch, printer.names)
            printer.add(batch)
    _notes(found, follow)


def _row(point: Point, names: Sequence[str], human: bool) -> list[Any]:
    """Cells of a point: for people, times in UTC and numbers short; else exact."""
    cells = [point.step, point.time, *(point.values.get(n) for n in names)]
    if not human:
        return [repr(c) if type(c) is float else c for c in cells]
    if point.time is not None:
        from datetime import datetime, timezone

        when = datetime.fromtimestamp(point.time, timezone.utc)
        cells[1] = when.strftime("%Y-%m-%d %H:%M:%S.%f")[:23]
    return cells


def _object(point: Point) -> dict[str, Any]:
    return {"step": point.step, "time": point.time, **point.values}


def _print(found: Series, fmt: str) -> None:
    columns = ["step", "time", *found.names]
    if fmt == "json":
        output.print_json([_object(p) for p in found.points])
    elif fmt == "csv":
        output.print_csv(columns, [_row(p, found.names, False) for p in found.points])
    elif found.points:
        output.print_table(columns, [_row(p, found.names, True) for p in found.points])


class _Stream:
    """Points printed as they come: JSON lines, or table/CSV rows under a header
    that is printed again when a new metric appears."""

    def __init__(self, fmt: str, names: list[str]) -> None:
        self.fmt = fmt
        self.names = names
        self._header: list[str] | None = None

    def add(self, points: Sequence[Point]) -> None:
        if not points:
            return
        if self.fmt == "json":
            for point in points:
                output.print_json_line(_object(point))
            return
        if self._header != self.names:
            self._header = list(self.names)
            self._write(["step", "time", *self.names])
        for point in points:
            self._write(_row(point, self.names, self.fmt == "table"))
        sys.stdout.flush()

    def _write(self, cells: Sequence[Any]) -> None:
        if self.fmt == "csv":
            output.print_csv(cells, [])
        else:
            sys.stdout.write("  ".join(output.cell(c) for c in cells).rstrip() + "\n")


def _plot(found: Series) -> None:
    from molexp.cli import plot
    from molexp.errors import UsageError

    lines: dict[str, tuple[list[float], list[float]]] = {}
    for name in found.names:
        xs: list[float] = []
        ys: list[float] = []
        for point in found.points:
            value: Any = point.values.get(name)
            if plot.is_number(value) and plot.is_number(point.step):
                xs.append(point.step)
                ys.append(value)
        if ys:
            lines[name] = (xs, ys)
    if not lines:
        raise UsageError(f"run {found.ref} has no numeric metric to plot")
    plot.lines(lines, f"{found.ref} (attempt {found.attempt})", "step")


def _notes(found: Series, follow: bool) -> None:
    if found.attempt is None and not follow:
        output.say(f"run {found.ref} has not started: no metrics yet")
    elif not found.points and not follow:
        output.say(f"run {found.ref} recorded no metrics in attempt {found.attempt}")
    if found.ignored:
        output.say(f"{found.ignored} line(s) of {found.path} ignored: not JSON objects")
