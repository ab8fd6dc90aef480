"""`molexp compare REF --aggregate`: replicas folded into one row per point (SPEC §15).

A *point* is what runs share when they differ only in replica and seed: the
experiment, the profile, the params and the config.  Each point's row has ``n``
(its runs), and for every result and last metric:

- numbers (in every run that has the key): a :class:`Stat` -- mean, sample standard
  deviation (n - 1; None for a single value), min, max and how many runs had one;
- anything else: the value when all the point's runs agree (a run without the key
  disagrees), else :class:`Varies` with the distinct values.

The identity columns are chosen as in :func:`molexp.core.views.compare.compare`:
params and config keys (and experiment, profile) only when they vary between
points.  Runs are read from the index summaries (no ``run.json`` is opened for a
listing that the index knows), so 10,000 runs aggregate in well under a second.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

from molexp.core.records.index_entry import Entry
from molexp.core.views.compare import MISSING, _same_key, flatten, sort_rows
from molexp.core.views.query import Condition, Readable, matches, needs_record, order_key
from molexp.errors import MolexpError, UsageError

if TYPE_CHECKING:
    from molexp.core.records.workspace import Workspace

__all__ = ["Aggregation", "Stat", "Varies", "aggregate", "aggregate_refs", "plot_series"]

IDENTITY = ("experiment", "profile")
SECTIONS = ("params", "config")
MEASURED = ("results", "metrics")
STAT_FIELDS = ("mean", "std", "min", "max", "n")


class Stat(NamedTuple):
    """Numbers of one column over a point's runs."""

    mean: float
    std: float | None  # sample standard deviation; None for one value
    min: float
    max: float
    n: int  # how many runs had a number


class Varies(NamedTuple):
    """A non-numeric column whose runs disagree: the distinct values, sorted
    (numbers, texts, lists...; null last)."""

    values: list[Any]


@dataclass
class Aggregation:
    """One row per point: ``columns`` name the row keys in order.

    Identity columns hold plain values, ``n`` an int, measured columns
    (``results.X``, ``metrics.X``) a :class:`Stat`, :class:`Varies` or the agreed
    value, ``status`` a ``{status: count}`` mapping, ``runs`` the run references.
    ``measured`` lists the measured columns; ``constant`` the hidden identity
    columns that are the same at every point.
    """

    columns: list[str]
    rows: list[dict[str, Any]]
    measured: list[str] = field(default_factory=list)
    constant: dict[str, Any] = field(default_factory=dict)


def _number(value: Any) -> bool:
    return type(value) in (int, float)


def _stat(values: list[float]) -> Stat:
    k = len(values)
    mean = math.fsum(values) / k
    std = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (k - 1)) if k > 1 else None
    return Stat(mean, std, min(values), max(values), k)


def _fold(values: list[Any]) -> Any:
    """A :class:`Stat` when every run that has the key has a number; else the value
    all runs agree on (a run without the key disagrees), else :class:`Varies`."""
    present = [v for v in values if v is not MISSING]
    if present and all(_number(v) for v in present):
        return _stat(present)
    distinct: dict[str, Any] = {}
    for value in values:
        distinct.setdefault(_same_key(value), value)
    if len(distinct) == 1:
        return values[0]
    return Varies(sorted((None if v is MISSING else v for v in distinct.values()), key=_order))


def _flat(record: Readable) -> dict[str, Any]:
    row: dict[str, Any] = {
        "experiment": f"{record.get('project')}/{record.get('experiment')}",
        "profile": record.get("profile"),
    }
    for section in SECTIONS:
        for key, value in flatten(record.get(section) or {}).items():
            row[f"{section}.{key}"] = value
    return row


def _measured(record: Readable) -> dict[str, Any]:
    out: dict[str, Any] = {}
    results = record.get("results")
    if type(results) is dict:
        for key, value in results.items():
            if type(value) is dict and value:
                out.update(flatten(value, f"results.{key}"))
            else:
                out[f"results.{key}"] = value
    metrics = record.get("metrics")
    if type(metrics) is dict:
        for key, value in metrics.items():
            out[f"metrics.{key}"] = value
    return out


def aggregate(
    records: Iterable[Readable],
    show_all: bool = False,
    sort: Sequence[str] = (),
    where: Sequence[Condition] = (),
    limit: int | None = None,
) -> Aggregation:
    """The points of ``records`` (runs or index summaries) that meet ``where``.

    Rows are sorted by ``sort`` (a measured column sorts by its mean: ``-energy``
    is ``-results.energy.mean``), then by the shown identity columns; ``limit``
    keeps the first rows.
    """
    groups: dict[tuple[Any, ...], list[Readable]] = {}
    # Summaries from one index share their params and config objects: each distinct
    # object is keyed once (the records keep them alive, so ids are not reused).
    keyed: dict[int, str] = {}

    def key_of(value: Any) -> str:
        found = keyed.get(id(value))
        if found is None:
            found = keyed[id(value)] = _same_key({} if value is None else value)
        return found

    for record in records:
        if where and not matches(record, where):
            continue
        profile = record.get("profile")
        point = (record.get("project"), record.get("experiment"),
                 profile if profile is None or type(profile) is str else _same_key(profile),
                 key_of(record.get("params")), key_of(record.get("config")))  # fmt: skip
        groups.setdefault(point, []).append(record)
    points = [_flat(members[0]) for members in groups.values()]
    measured_of = [[_measured(r) for r in members] for members in groups.values()]
    identity: dict[str, None] = {}
    measured: dict[str, None] = {}
    for ident in points:
        identity.update(dict.fromkeys(ident))
    for values_list in measured_of:
        for values in values_list:
            measured.update(dict.fromkeys(values))
    shown, constant = [], {}
    for column in identity:
        varies = len({_same_key(p.get(column, MISSING)) for p in points}) > 1
        if show_all or varies:
            shown.append(column)
        elif points and column not in IDENTITY:
            constant[column] = points[0].get(column, MISSING)
    names = list(measured)
    rows = []
    for ident, members, values_list in zip(points, groups.values(), measured_of):
        row: dict[str, Any] = {c: ident.get(c, MISSING) for c in shown}
        row["n"] = len(members)
        for name in names:
            row[name] = _fold([values.get(name, MISSING) for values in values_list])
        counts: dict[str, int] = {}
        for record in members:
            status = str(record.get("status"))
            counts[status] = counts.get(status, 0) + 1
        row["status"] = counts
        row["runs"] = [f"{r.get('project')}/{r.get('experiment')}/{r.get('id')}" for r in members]
        rows.append(row)
    columns = [*shown, "n", *names, "status", "runs"]
    keyed_rows = [_sortable(row, names) for row in rows]
    if keyed_rows:
        resolved = [_resolve(spec, columns, names) for spec in sort]
        keyed_rows = sort_rows(
            keyed_rows, [*resolved, *shown], [*columns, *(f"{n}.mean" for n in names)]
        )
    out_rows = [k["\0row"] for k in keyed_rows]
    if limit is not None:
        out_rows = out_rows[:limit]
    return Aggregation(columns, out_rows, names, constant)


def _sortable(row: dict[str, Any], names: Sequence[str]) -> dict[str, Any]:
    """A row as :func:`sort_rows` sees it: a measured column by its mean."""
    keyed = {k: v for k, v in row.items() if k not in names}
    for name in names:
        value = row[name]
        keyed[f"{name}.mean"] = value.mean if isinstance(value, Stat) else MISSING
        keyed[name] = MISSING if isinstance(value, (Stat, Varies)) else value
    keyed["\0row"] = row
    return keyed


def _resolve(spec: str, columns: Sequence[str], names: Sequence[str]) -> str:
    descending = spec.startswith("-")
    name = spec[1:] if descending else spec
    if not name:
        raise UsageError("--sort '-': give a column name after '-'")
    for candidate in (name, *(f"{s}.{name}" for s in (*SECTIONS, *MEASURED))):
        if candidate in names:
            return ("-" if descending else "") + candidate + ".mean"
        if candidate in columns:
            return ("-" if descending else "") + candidate
    raise UsageError(
        f"--sort {name!r}: no such column",
        f"Columns: {', '.join(c for c in columns if c != 'runs')}"
        if columns
        else "The selection has no runs.",
    )


# --- reading the selection ----------------------------------------------------


def gather_summaries(
    ws: Workspace, refs: Sequence[str], full: bool = False
) -> tuple[list[Readable], list[MolexpError]]:
    """What ``refs`` name, once each: the index entries of the runs of experiments
    and projects (read key by key; full records with ``full``), the records of runs
    named one by one."""
    from molexp.core.records.refs import resolve
    from molexp.core.views.listing import select
    from molexp.core.views.summary import run_record

    out: list[Readable] = []
    problems: list[MolexpError] = []
    seen: set[str] = set()
    for text in refs or ["."]:
        target = resolve(ws, text)
        found: list[Readable]
        if target.kind == "run":
            found = [run_record(target)]
        else:
            selection = select(
                ws,
                target.project.name if target.project else None,
                target.experiment.name if target.experiment else None,
            )
            # index entries read only the keys asked for; rows read in full, their record
            found = list(selection.records()) if full else [
                row if isinstance(row, Entry) else row.record() for row in selection.rows
            ]  # fmt: skip
            problems.extend(selection.problems)
        for record in found:
            key = f"{record.get('project')}/{record.get('experiment')}/{record.get('id')}"
            if key not in seen:
                seen.add(key)
                out.append(record)
    return out, problems


def aggregate_refs(
    ws: Workspace,
    refs: Sequence[str],
    show_all: bool = False,
    sort: Sequence[str] = (),
    where: Sequence[str] = (),
    limit: int | None = None,
) -> tuple[Aggregation, list[MolexpError]]:
    """`molexp compare REF... --aggregate`: the points, and the records it could not read."""
    from molexp.core.views.query import parse_limit, parse_where

    conditions = parse_where(where)
    parse_limit(limit)
    records, problems = gather_summaries(ws, refs, needs_record(c.key for c in conditions))
    return aggregate(records, show_all, sort, conditions, limit), problems


# --- plotting -----------------------------------------------------------------


class PlotSeries(NamedTuple):
    label: str  # the other varying columns, "model=gcn", or ""
    xs: list[Any]
    means: list[float]
    stds: list[float]


def _column(name: str, columns: Sequence[str], sections: Sequence[str], what: str) -> str:
    for candidate in (name, *(f"{s}.{name}" for s in sections)):
        if candidate in columns:
            return candidate
    raise UsageError(
        f"{what} {name!r}: no such column",
        f"Columns: {', '.join(c for c in columns if c not in ('n', 'status', 'runs'))}",
    )


def plot_series(
    table: Aggregation, result: str, x: str | None
) -> tuple[str, str, list[PlotSeries]]:
    """``(y column, x column, series)`` to draw ``result``'s mean ± std against the
    param ``x`` (default: the only varying param); one series per combination of
    the other varying columns."""
    y = _column(result, table.measured, MEASURED, "--plot")
    identity = [c for c in table.columns if c not in ("n", "status", "runs", *table.measured)]
    if x is None:
        params = [c for c in identity if c.startswith("params.")]
        if len(params) != 1:
            raise UsageError(
                "--plot: say which param goes on the x axis with --x",
                f"Varying: {', '.join(params) if params else 'none'}",
            )
        x = params[0]
    xcol = _column(x, identity, SECTIONS, "--x")
    others = [c for c in identity if c != xcol]
    series: dict[str, PlotSeries] = {}
    for row in sorted(table.rows, key=lambda r: _order(r.get(xcol))):
        value = row.get(y)
        if not isinstance(value, Stat):
            continue
        label = ", ".join(f"{c.split('.', 1)[-1]}={_text(row.get(c))}" for c in others)
        found = series.setdefault(label, PlotSeries(label, [], [], []))
        found.xs.append(row.get(xcol))
        found.means.append(value.mean)
        found.stds.append(value.std or 0.0)
    if not series:
        raise UsageError(f"--plot {result!r}: no point has a number for {y}")
    return y, xcol, list(series.values())


def _order(value: Any) -> Any:
    return (1, "") if value is None else (0, order_key(value))


def _text(value: Any) -> str:
    import json

    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
