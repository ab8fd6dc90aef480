"""Rendering `compare --aggregate`: points as a table, Markdown, CSV, JSON or a plot.

Table and Markdown cells read ``-1.316 ± 0.004``; JSON and CSV carry the numbers
in columns of their own, ``results.energy.mean``, ``.std``, ``.min``, ``.max`` and
``.n`` (runs that had a number), for every column that holds numbers at some point
(docs/json.md).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from molexp.cli import output

if TYPE_CHECKING:
    from molexp.core.views.aggregate import Aggregation

_SHOWN_VALUES = 3


def plus_minus(mean: float, std: float | None) -> str:
    """``-1.316 ± 0.004``: the deviation to one significant digit (two when it
    starts with 1), the mean to the same decimal place."""
    if std is None or not math.isfinite(std):
        return output.cell(mean)
    if std == 0:
        return f"{output.cell(mean)} ± 0"
    exponent = math.floor(math.log10(std))
    digits = 2 if f"{std:e}"[0] == "1" else 1
    decimals = min(12, digits - 1 - exponent)
    if decimals < 0:  # a deviation of tens or more: both rounded to its first digits
        return f"{round(mean, decimals):.0f} ± {round(std, decimals):.0f}"
    return f"{mean:.{decimals}f} ± {std:.{decimals}f}"


def _statuses(counts: dict[str, int]) -> str:
    return ", ".join(f"{n} {status}" for status, n in counts.items())


def _human(value: Any, n: int) -> Any:
    from molexp.core.views.aggregate import Stat, Varies
    from molexp.core.views.compare import MISSING

    if isinstance(value, Stat):
        text = plus_minus(value.mean, value.std)
        return text if value.n == n else f"{text} (n={value.n})"
    if isinstance(value, Varies):
        shown = ", ".join(output.cell(v) for v in value.values[:_SHOWN_VALUES])
        more = ", ..." if len(value.values) > _SHOWN_VALUES else ""
        return f"(varies: {shown}{more})"
    return None if value is MISSING else value


def _json_columns(table: Aggregation) -> list[str]:
    from molexp.core.views.aggregate import STAT_FIELDS, Stat

    out = []
    for column in table.columns:
        if column not in table.measured:
            out.append(column)
            continue
        values = [row[column] for row in table.rows]
        if any(isinstance(v, Stat) for v in values):
            out += [f"{column}.{f}" for f in STAT_FIELDS]
        if not all(isinstance(v, Stat) for v in values):
            out.append(column)
    return out


def _json_row(table: Aggregation, row: dict[str, Any], columns: list[str]) -> dict[str, Any]:
    from molexp.core.views.aggregate import Stat, Varies
    from molexp.core.views.compare import MISSING

    out: dict[str, Any] = {}
    for column in columns:
        if column in row:
            value = row[column]
            if isinstance(value, Varies):
                value = {"varies": value.values}
            elif isinstance(value, Stat) or value is MISSING:
                value = None
            out[column] = value
        else:  # results.X.mean ...
            base, _, part = column.rpartition(".")
            stat = row.get(base)
            out[column] = getattr(stat, part) if isinstance(stat, Stat) else None
    return out


def show(table: Aggregation, fmt: str, plot: str | None, x: str | None) -> None:
    """Print the points (or draw ``plot`` against ``x``); names hidden constants."""
    if plot:
        _plot(table, plot, x)
        return
    if fmt in ("json", "csv"):
        columns = _json_columns(table)
        rows = [_json_row(table, row, columns) for row in table.rows]
        if fmt == "json":
            output.print_json(rows)
        else:
            shown = [c for c in columns if c != "runs"]
            cells = [[_csv(c, r[c]) for c in shown] for r in rows]
            output.print_csv(shown, cells)
    elif table.rows:
        columns = [c for c in table.columns if c != "runs"]
        cells = [[_statuses(r["status"]) if c == "status" else _human(r[c], r["n"]) for c in columns]
                 for r in table.rows]  # fmt: skip
        (output.print_markdown if fmt == "md" else output.print_table)(columns, cells)
    if not table.rows:
        output.say("no runs match")
    elif table.constant and fmt in ("table", "md"):
        output.say_constant(table.constant)


def _csv(column: str, value: Any) -> Any:
    if column == "status" and isinstance(value, dict):
        return _statuses(value)
    if isinstance(value, dict) and "varies" in value:
        return "(varies: " + ", ".join(output.cell(v) for v in value["varies"]) + ")"
    return repr(value) if type(value) is float else value


def _plot(table: Aggregation, result: str, x: str | None) -> None:
    from molexp.cli import plot
    from molexp.core.views.aggregate import plot_series

    y, xcol, series = plot_series(table, result, x)
    if len(series) == 1:
        (one,) = series
        plot.error_bars(one.xs, one.means, one.stds, f"{y}: mean ± std", xcol, y)
        return
    for one in series:
        plot.error_bars(one.xs, one.means, one.stds, f"{y}: mean ± std ({one.label})", xcol, y)
