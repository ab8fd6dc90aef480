"""Side-by-side comparison of runs (`molexp compare`, `molexp diff`).

:func:`compare` and :func:`diff` are pure: run records in, columns and rows out.
:func:`gather` reads the records a list of references names (without writing).

A column is named by where its value lives: ``params.lr``, ``config.optimizer.lr``
(nested mappings flattened to dotted keys), ``results.loss``, plus ``run``,
``experiment``, ``replica``, ``seed``, ``profile``, ``status`` and ``duration``.
Parameters, config keys and the identity columns are shown only when their value
**varies** across the selection (a key missing from some runs varies); results,
status and duration are always shown.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

from molexp.core.views.listing import Listing
from molexp.core.views.query import Condition, matches, order_key
from molexp.errors import MolexpError, UsageError

if TYPE_CHECKING:
    from molexp.core.records.workspace import Workspace

__all__ = ["MISSING", "Comparison", "compare", "diff", "flatten", "gather", "sort_rows"]


class _Missing:
    """A key the run does not have (unlike ``None``, a value it has)."""

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()

SECTIONS = ("params", "config", "results", "metrics")
MEASURED = ("results.", "metrics.")  # always shown
IDENTITY = ("experiment", "profile", "replica", "seed")
ALWAYS = ("status", "duration")


@dataclass
class Comparison:
    """The table `compare` prints: ``rows`` map each of ``columns`` to a value.

    ``constant`` holds the params and config columns hidden because every run has
    the same value (with that value); it is empty with ``show_all``.
    """

    columns: list[str]
    rows: list[dict[str, Any]]
    constant: dict[str, Any] = field(default_factory=dict)


def flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    """Nested mappings -> ``{"a.b": leaf}``; lists and empty mappings are leaves."""
    if not isinstance(data, dict) or (not data and prefix):
        return {prefix: data} if prefix else {}
    out: dict[str, Any] = {}
    for key, value in data.items():
        out.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return out


def _same_key(value: Any) -> str:
    """A text equal for equal values (``10`` and ``10.0`` alike, key order ignored)."""
    if value is MISSING:
        return "\0missing"

    def norm(v: Any) -> Any:
        if isinstance(v, float) and v.is_integer() and abs(v) < 2**53:
            return int(v)
        if isinstance(v, dict):
            return {str(k): norm(i) for k, i in v.items()}
        if isinstance(v, (list, tuple)):
            return [norm(i) for i in v]
        return v

    return json.dumps(norm(value), sort_keys=True, default=repr)


def _duration(record: dict[str, Any]) -> Any:
    attempts = record.get("attempts") or []
    return attempts[-1].get("duration") if attempts else None


def _row(record: dict[str, Any]) -> dict[str, Any]:
    row: dict[str, Any] = {
        "run": f"{record.get('project')}/{record.get('experiment')}/{record.get('id')}",
        "experiment": f"{record.get('project')}/{record.get('experiment')}",
        "profile": record.get("profile"),
        "replica": record.get("replica"),
        "seed": record.get("seed"),
    }
    for section in SECTIONS:
        values = record.get(section) or {}
        flat = values if section == "metrics" else flatten(values)  # (metric names are flat)
        for key, value in flat.items():
            row[f"{section}.{key}"] = value
    row["status"] = record.get("status")
    row["duration"] = _duration(record)
    if record.get("tags"):
        row["tags"] = record["tags"]
    return row


def _seed_is_replica(rows: Sequence[dict[str, Any]]) -> bool:
    """Seeds are the default (the replica index): the seed column says nothing new."""
    return all(r.get("seed") == r.get("replica") for r in rows)


def _varies(rows: Sequence[dict[str, Any]], column: str) -> bool:
    return len({_same_key(r.get(column, MISSING)) for r in rows}) > 1


def compare(
    records: Iterable[dict[str, Any]],
    show_all: bool = False,
    sort: Sequence[str] = (),
    where: Sequence[Condition] = (),
    limit: int | None = None,
) -> Comparison:
    """The comparison table of ``records`` (filtered by ``where``, conditions of
    :mod:`molexp.core.views.query`), at most ``limit`` rows.

    Rows are sorted by ``sort`` (column names, ``-`` prefix for descending; a bare
    key like ``lr`` finds ``params.lr``, else ``config.lr``, else ``results.lr``),
    then (ties, or no ``sort``) by the shown experiment, profile, params and config
    columns, replica, and run, so the order is always the same.  Missing values
    sort last either way.
    """
    selected = [r for r in records if not where or matches(r, where)]
    rows = [_row(r) for r in selected]
    seen: dict[str, None] = {}
    for section in SECTIONS:
        for row in rows:
            for key in row:
                if key.startswith(section + "."):
                    seen.setdefault(key, None)
    candidates = [*IDENTITY, *(k for k in seen if not k.startswith(MEASURED))]
    results = [k for k in seen if k.startswith(MEASURED)]
    shown: list[str] = []
    constant: dict[str, Any] = {}
    for column in candidates:
        varies = _varies(rows, column)
        if show_all or (varies and not (column == "seed" and _seed_is_replica(rows))):
            shown.append(column)
        elif not varies and rows and column not in IDENTITY:
            constant[column] = rows[0][column]
    tags = ["tags"] if any("tags" in r for r in rows) else []  # once some run has tags
    columns = ["run", *shown, *results, *ALWAYS, *tags]
    all_columns = ["run", *candidates, *results, *ALWAYS, *tags]
    grid_order = [
        *(c for c in shown if c not in ("replica", "seed")),
        *(c for c in ("replica", "seed") if c in shown),
        "run",
    ]
    out_rows = sort_rows(rows, [*sort, *grid_order], all_columns) if rows else rows
    if limit is not None:
        out_rows = out_rows[:limit]
    return Comparison(
        columns=columns,
        rows=[{c: r.get(c, MISSING) for c in columns} for r in out_rows],
        constant=constant,
    )


def _resolve_column(name: str, columns: Sequence[str]) -> str:
    if name in columns:
        return name
    for section in SECTIONS:
        if f"{section}.{name}" in columns:
            return f"{section}.{name}"
    raise UsageError(
        f"--sort {name!r}: no such column",
        f"Columns: {', '.join(columns)}" if columns else "The selection has no runs.",
    )


def sort_rows(
    rows: Sequence[dict[str, Any]], keys: Sequence[str], columns: Sequence[str]
) -> list[dict[str, Any]]:
    """``rows`` sorted by ``keys`` (``-`` prefix: descending); missing/null last."""
    out = list(rows)
    for spec in reversed(keys):
        descending = spec.startswith("-")
        name = spec[1:] if descending else spec
        if not name:
            raise UsageError("--sort '-': give a column name after '-'")
        column = _resolve_column(name, columns) if columns else name
        present = [r for r in out if r.get(column, MISSING) not in (MISSING, None)]
        absent = [r for r in out if r.get(column, MISSING) in (MISSING, None)]
        present.sort(key=lambda r: order_key(r[column]), reverse=descending)
        out = present + absent
    return out


# --- diff ----------------------------------------------------------------------

DIFF_SECTIONS = ("run", "params", "config", "results", "metrics", "git", "env", "attempts")
# Not started_at/finished_at/pid/duration: they differ between any two attempts.
_ATTEMPT_KEYS = ("status", "exit_code", "host", "executor", "argv", "cwd", "error")


def _env_view(env: Any, packages: dict[str, str] | None) -> dict[str, Any]:
    """The environment of an attempt as diff keys: ``python.version``, ``platform``,
    ``conda.env``, ``modules.gcc`` (its version), ``packages.numpy``...; not the
    SLURM job id or node list, which differ between any two jobs."""
    if not isinstance(env, dict):
        return {}
    view: dict[str, Any] = {}
    python = env.get("python")
    if isinstance(python, dict):
        view.update({f"python.{k}": v for k, v in python.items()})
    for key in ("platform", "cpu_count"):
        if env.get(key) is not None:
            view[key] = env[key]
    for key in ("conda", "container"):
        if isinstance(env.get(key), dict):
            view.update({f"{key}.{k}": v for k, v in env[key].items() if v is not None})
    slurm = env.get("slurm")
    if isinstance(slurm, dict):
        view.update({f"slurm.{k}": slurm.get(k) for k in ("partition", "cpus_per_task", "cluster")})
    for module in env.get("modules") or []:
        name, _, version = str(module).partition("/")
        view[f"modules.{name}"] = version or "loaded"
    if packages is not None:
        view.update({f"packages.{name}": version for name, version in packages.items()})
    elif env.get("packages"):
        view["packages"] = env["packages"]  # its list is not here: compare the hashes
    return view


def _diff_view(
    record: dict[str, Any], packages: dict[str, str] | None = None
) -> dict[str, dict[str, Any]]:
    attempts = record.get("attempts") or []
    view: dict[str, dict[str, Any]] = {
        "run": {
            "experiment": f"{record.get('project')}/{record.get('experiment')}",
            "replica": record.get("replica"),
            "seed": record.get("seed"),
            "profile": record.get("profile"),
            "status": record.get("status"),
            "identity": record.get("identity"),
        },
        "params": flatten(record.get("params") or {}),
        "config": flatten(record.get("config") or {}),
        "results": flatten(record.get("results") or {}),
        "metrics": dict(record.get("metrics") or {}),
        "git": flatten((attempts[-1].get("git") if attempts else None) or {}),
        "env": _env_view(attempts[-1].get("env") if attempts else None, packages),
        "attempts": {"count": len(attempts)},
    }
    for attempt in attempts:
        for key in _ATTEMPT_KEYS:
            if key in attempt:
                view["attempts"][f"{attempt.get('n')}.{key}"] = attempt[key]
    return view


def diff(
    a: dict[str, Any],
    b: dict[str, Any],
    packages: tuple[dict[str, str] | None, dict[str, str] | None] = (None, None),
) -> dict[str, dict[str, tuple[Any, Any]]]:
    """What differs between two run records, by section (``run``, ``params``,
    ``config``, ``results``, ``metrics`` (last values), ``git`` and ``env`` of the
    latest attempt, ``attempts``).  ``packages`` are the two latest attempts'
    package lists (``{name: version}``), when known: ``env.packages.NAME`` then
    says which packages changed.

    Each section maps a dotted key to ``(value_a, value_b)``; a side the run lacks
    is :data:`MISSING`.  Keys whose values are equal are left out.
    """
    view_a, view_b = _diff_view(a, packages[0]), _diff_view(b, packages[1])
    out: dict[str, dict[str, tuple[Any, Any]]] = {}
    for section in DIFF_SECTIONS:
        left, right = view_a[section], view_b[section]
        keys = [*left, *(k for k in right if k not in left)]
        out[section] = {
            k: (left.get(k, MISSING), right.get(k, MISSING))
            for k in keys
            if _same_key(left.get(k, MISSING)) != _same_key(right.get(k, MISSING))
        }
    return out


# --- reading the selection ----------------------------------------------------


def gather(ws: Workspace, refs: Sequence[str]) -> Listing:
    """The run records ``refs`` name (workspace, projects, experiments, runs), once
    each, in order; unreadable records of a listing are collected in ``problems``.
    Reads only: a run whose owner is gone is reported, not rewritten (SPEC §8).
    """
    from molexp.core.records.refs import resolve
    from molexp.core.views.listing import scan
    from molexp.core.views.summary import run_record

    out = Listing()
    seen: set[str] = set()
    for text in refs or ["."]:
        target = resolve(ws, text)
        if target.kind == "run":
            found = Listing(records=[run_record(target)])
        else:
            found = scan(
                ws,
                target.project.name if target.project else None,
                target.experiment.name if target.experiment else None,
            )
        out.problems.extend(found.problems)
        for record in found.records:
            key = f"{record.get('project')}/{record.get('experiment')}/{record.get('id')}"
            if key not in seen:
                seen.add(key)
                out.records.append(record)
    return out


def compare_refs(
    ws: Workspace,
    refs: Sequence[str],
    show_all: bool = False,
    sort: Sequence[str] = (),
    where: Sequence[str] = (),
    limit: int | None = None,
) -> tuple[Comparison, list[MolexpError]]:
    """`molexp compare REF...`: the comparison table, and the records it could not read."""
    from molexp.core.views.query import parse_limit, parse_where

    conditions = parse_where(where)
    parse_limit(limit)
    listing = gather(ws, refs)
    return compare(listing.records, show_all, sort, conditions, limit), listing.problems


class RunDiff(NamedTuple):
    ref_a: str
    record_a: dict[str, Any]
    ref_b: str
    record_b: dict[str, Any]
    sections: dict[str, dict[str, tuple[Any, Any]]]


def diff_runs(ws: Workspace, a: str, b: str) -> RunDiff:
    """`molexp diff RUN_A RUN_B`: what differs between two runs."""
    from molexp.core.records.refs import resolve
    from molexp.core.views.summary import run_record

    found = []
    for text in (a, b):
        target = resolve(ws, text)
        if target.kind != "run":
            raise UsageError(
                f"molexp diff compares two runs; {text!r} is a {target.kind}",
                f"To compare every run of it, use `molexp compare {text}`.",
            )
        found.append((target.text, run_record(target)))
    (ref_a, rec_a), (ref_b, rec_b) = found
    from molexp.core.records.environments import read_packages

    def listed(record: dict[str, Any]) -> dict[str, str] | None:
        attempts = record.get("attempts") or []
        env = attempts[-1].get("env") if attempts else None
        return read_packages(ws.root, env.get("packages")) if isinstance(env, dict) else None

    lists = (listed(rec_a), listed(rec_b))
    return RunDiff(ref_a, rec_a, ref_b, rec_b, diff(rec_a, rec_b, lists))
