"""The JSON the workspace, runs and experiment pages of the web view read, from the core's own functions.

Each ``*_view(ws, query)`` takes the parsed query string of a request and makes
the core call the matching command makes (`ls`, `show`, `compare --aggregate`,
`metrics`, `logs`, `assets show`), then shapes the answer for a page.  Nothing
here interprets a condition, sorts by a rule of its own, averages replicas or
writes a record: the query grammar, the aggregation and the writing of tags and
notes are the core's.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from molexp.core.records.workspace import Workspace
from molexp.errors import MolexpError, UsageError
from molexp.ui.query_string import Query, integer, many, need, one, problems

PAGE_SIZE = 100
MAX_PAGE = 100_000


# --- the workspace page ------------------------------------------------------------


def workspace_view(ws: Workspace, query: Query) -> dict[str, Any]:
    """Projects and their experiments, each with its runs counted by status."""
    from molexp.core.views import catalog
    from molexp.core.views.listing import select

    projects = catalog.projects(ws)
    experiments = catalog.experiments(ws)
    selection = select(ws)
    counts: dict[tuple[str, str], dict[str, int]] = {}
    totals: dict[str, int] = {}
    for row in selection.rows:
        by_status = counts.setdefault((row.project, row.experiment), {})
        by_status[row.status] = by_status.get(row.status, 0) + 1
        totals[row.status] = totals.get(row.status, 0) + 1
    out: list[dict[str, Any]] = []
    by_name: dict[str, dict[str, Any]] = {}
    for record in projects.rows:
        entry = {
            "name": record.get("name"),
            "description": record.get("description") or "",
            "tags": record.get("tags") or [],
            "experiments": [],
        }
        by_name[str(record.get("name"))] = entry
        out.append(entry)
    for record in experiments.rows:
        project = by_name.get(str(record.get("project")))
        if project is None:
            continue
        by_status = counts.get((str(record.get("project")), str(record.get("name"))), {})
        project["experiments"].append({
            "name": record.get("name"),
            "ref": f"{record.get('project')}/{record.get('name')}",
            "description": record.get("description") or "",
            "params": record.get("params") or {},
            "replicas": record.get("replicas"),
            "tags": record.get("tags") or [],
            "runs": sum(by_status.values()),
            "by_status": by_status,
        })  # fmt: skip
    return {
        "name": ws.name,
        "root": str(ws.root),
        "projects": out,
        "by_status": totals,
        "runs": len(selection.rows),
        "problems": problems([*projects.problems, *experiments.problems, *selection.problems]),
    }


# --- the runs table ------------------------------------------------------------------

ROW_FIELDS = ("id", "status", "replica", "seed", "profile", "created_at", "updated_at")


def _values(
    summary: dict[str, Any], flat_params: dict[int, tuple[Any, dict[str, Any]]] | None = None
) -> dict[str, Any]:
    """The cells of a run's params, results and last metrics, by dotted column name.
    ``flat_params`` keeps each params mapping flattened once (replicas share one)."""
    from molexp.core.views.compare import flatten

    out: dict[str, Any] = {}
    params = summary.get("params")
    if isinstance(params, dict):
        known = flat_params.get(id(params)) if flat_params is not None else None
        if known is None or known[0] is not params:
            known = (params, flatten(params, "params"))
            if flat_params is not None:
                flat_params[id(params)] = known
        out.update(known[1])
    results = summary.get("results")
    if isinstance(results, dict):
        out.update(flatten(results, "results"))
    metrics = summary.get("metrics")
    if isinstance(metrics, dict):  # metric names are flat (a name may hold a dot)
        out.update((f"metrics.{k}", v) for k, v in metrics.items())
    return out


def table_row(
    ref: str, summary: dict[str, Any], flat_params: dict[int, Any] | None = None
) -> dict[str, Any]:
    """One row of the runs table from a run's summary (see ``index_entry.summarise``)."""
    last = summary.get("last_attempt") or {}
    row: dict[str, Any] = {"ref": ref, "experiment": ref.rsplit("/", 1)[0]}
    row.update((k, summary.get(k)) for k in ROW_FIELDS)
    row.update({
        "values": _values(summary, flat_params),
        "tags": summary.get("tags") or [],
        "attempts": summary.get("attempt_count"),
        "duration": last.get("duration"),
        "exit_code": last.get("exit_code"),
        "host": last.get("host"),
        "executor": last.get("executor"),
    })  # fmt: skip
    if summary.get("status_reason"):
        row["status_reason"] = summary["status_reason"]
    return row


class _Columns:
    """The value columns of a selection, gathered one run at a time (100,000
    summaries are never held at once): params, then results, then metrics, each
    in first-seen order; and the params that are the same in every run (hidden).
    Replicas share one params mapping in the index, so each distinct mapping is
    looked at once."""

    def __init__(self) -> None:
        self.seen: dict[str, None] = {}
        self.first: dict[str, str] = {}
        self.sample: dict[str, Any] = {}
        self.varying: set[str] = set()
        self.count = 0
        self._params: dict[int, Any] = {}  # id -> the mapping (kept: ids stay unique)

    def add(self, summary: Any) -> None:
        """Count one run: a summary, or an index entry (whose ``get`` parses only
        the column asked for)."""
        self.count += 1
        params = summary.get("params")
        if self._params.get(id(params)) is not params:
            self._params[id(params)] = params
            self._add_params(params if isinstance(params, dict) else {})
        seen = self.seen
        for section in ("results", "metrics"):
            data = summary.get(section)
            if not isinstance(data, dict):
                continue
            for key, value in data.items():
                if section == "results" and type(value) is dict and value:
                    from molexp.core.views.compare import flatten

                    for flat in flatten(value, f"results.{key}"):
                        seen.setdefault(flat, None)
                else:
                    seen.setdefault(f"{section}.{key}", None)

    def _add_params(self, params: dict[str, Any]) -> None:
        from molexp.core.views.compare import _same_key, flatten

        values = flatten(params, "params")
        for key, value in values.items():
            self.seen.setdefault(key, None)
            if key in self.varying:
                continue
            text = _same_key(value)
            if key not in self.first:
                self.first[key], self.sample[key] = text, value
                if self.count > 1:
                    self.varying.add(key)  # missing from an earlier run
            elif self.first[key] != text:
                self.varying.add(key)
        for key in self.first:
            if key not in values:
                self.varying.add(key)

    def result(self) -> tuple[list[str], dict[str, Any]]:
        order = {"params": 0, "results": 1, "metrics": 2}
        columns = sorted(self.seen, key=lambda c: order.get(c.split(".", 1)[0], 3))
        constant = (
            {k: self.sample[k] for k in self.first if k not in self.varying}
            if self.count > 1 else {}
        )  # fmt: skip
        return [c for c in columns if c not in constant], constant


def runs_view(ws: Workspace, query: Query) -> dict[str, Any]:
    """The runs table of a workspace, project or experiment: ``ref``, ``status``
    (repeatable), ``tag`` (repeatable), ``where`` (repeatable: conditions of SPEC
    §15), ``sort`` (``KEY`` or ``-KEY``), ``offset``, ``limit``; filtered and sorted
    by the core as `molexp ls` does.  ``counts`` are by status before the status
    filter (what each status button would show)."""
    from molexp.core.records.index_entry import Entry
    from molexp.core.records.runs import STATUSES
    from molexp.core.views.listing import select_ref

    ref = one(query, "ref") or None
    statuses = many(query, "status")
    for status in statuses:
        if status not in STATUSES:
            raise UsageError(f"unknown status {status!r}; use one of: {', '.join(STATUSES)}")
    offset = integer(query, "offset", 0, 0, 10**9)
    limit = integer(query, "limit", PAGE_SIZE, 0, MAX_PAGE)
    sort = one(query, "sort") or ""
    attempt_key = _attempt_sort_key(sort)
    selection = select_ref(ws, ref, (), many(query, "where"),
                           [sort] if sort and attempt_key is None else [],
                           tags=many(query, "tag"))  # fmt: skip
    rows = selection.rows
    if attempt_key is not None:
        from molexp.core.views.query import sort_records

        rows = sort_records(rows, [attempt_key], _summary_or_empty)
    counts: dict[str, int] = {}
    for row in rows:
        counts[row.status] = counts.get(row.status, 0) + 1
    if statuses:
        rows = [r for r in rows if r.status in statuses]
    gathered = _Columns()
    page = []
    flat_params: dict[int, Any] = {}
    for i, row in enumerate(rows):
        try:
            if offset <= i < offset + limit:  # read once, for its columns and its row
                summary = row.summary()
                gathered.add(summary)
                page.append(table_row(row.ref, summary, flat_params))
            else:  # an index entry parses only the columns asked for
                gathered.add(row if isinstance(row, Entry) else row.summary())
        except MolexpError as exc:  # (a forged index) named, not fatal
            selection.problems.append(exc)
    columns, constant = gathered.result()
    from molexp.core.records.annotations import known_tags

    # The tag filter offers the tags in use in the workspace (a derived hint kept by
    # `molexp tag`) and those on this page: the runs' tags are not all read.
    tags = sorted(
        {*known_tags(ws.root), *many(query, "tag"), *(t for r in page for t in r["tags"])}
    )
    return {
        "ref": ref or ".",
        "total": len(rows),
        "counts": counts,
        "offset": offset,
        "limit": limit,
        "sort": sort,
        "columns": columns,
        "constant": constant,
        "tags": tags,
        "rows": page,
        "problems": problems(selection.problems),
    }


def _summaries(rows: Sequence[Any], problems: list[MolexpError]) -> list[dict[str, Any] | None]:
    out: list[dict[str, Any] | None] = []
    for row in rows:
        try:
            out.append(row.summary())
        except MolexpError as exc:
            problems.append(exc)
            out.append(None)
    return out


def _summary_or_empty(row: Any) -> dict[str, Any]:
    try:
        summary: dict[str, Any] = row.summary()
    except MolexpError:
        return {}  # reported when the page reads it
    return summary


# Columns of the table that are facts of the latest attempt, not keys of the query
# grammar (which names the record's own fields): sorted with the core's order.
_ATTEMPT_COLUMNS = ("duration", "exit_code", "executor")


def _attempt_sort_key(spec: str) -> Any:
    from molexp.core.views.query import MISSING, SortKey

    descending = spec.startswith("-")
    name = spec[1:] if descending else spec
    if name == "attempts":
        return SortKey(name, descending, lambda s: s.get("attempt_count", MISSING))
    if name not in _ATTEMPT_COLUMNS:
        return None
    return SortKey(name, descending, lambda s: (s.get("last_attempt") or {}).get(name, MISSING))


# --- the experiment page --------------------------------------------------------


def experiment_view(ws: Workspace, query: Query) -> dict[str, Any]:
    """An experiment's definition with its runs counted by status, its points with
    the replicas aggregated (as `compare --aggregate`), and each run's numbers for
    the plot.

    ``point_keys`` are the columns that tell points apart (the params, config
    keys and profile that vary); each point of ``aggregate.points`` has a ``key``,
    and each run names its point by ``point_key``."""
    from molexp.core.records.refs import resolve
    from molexp.core.views.aggregate import Stat, Varies, aggregate
    from molexp.core.views.compare import MISSING
    from molexp.core.views.listing import select

    text = need(query, "ref")
    target = resolve(ws, text)
    if target.kind != "experiment":
        raise UsageError(f"{text!r} is a {target.kind}, not an experiment")
    assert target.project is not None and target.experiment is not None
    definition = dict(target.experiment.definition())
    selection = select(ws, target.project.name, target.experiment.name)
    by_status: dict[str, int] = {}
    for listed in selection.rows:
        by_status[listed.status] = by_status.get(listed.status, 0) + 1
    definition["runs"] = {"total": len(selection.rows), "by_status": by_status}
    summaries = [s for s in _summaries(selection.rows, selection.problems) if s is not None]
    table = aggregate(summaries)
    measured = set(table.measured)
    point_keys = [
        c for c in table.columns if c not in ("n", "status", "runs") and c not in measured
    ]
    numeric: dict[str, None] = {}
    other: dict[str, None] = {}
    points = []
    point_of: dict[str, str] = {}
    for i, row in enumerate(table.rows):
        values: dict[str, Any] = {}
        for name in table.measured:
            value = row.get(name, MISSING)
            if isinstance(value, Stat):
                values[name] = value._asdict()
                numeric.setdefault(name, None)
            elif isinstance(value, Varies):
                values[name] = {"varies": True, "values": value.values}
                other.setdefault(name, None)
            elif value is not MISSING:
                values[name] = {"varies": False, "value": value}
                other.setdefault(name, None)
        points.append({
            "key": str(i),
            "point": {k: row[k] for k in point_keys if row.get(k, MISSING) is not MISSING},
            "n": row["n"],
            "values": values,
            "status": row["status"],
        })  # fmt: skip
        point_of.update((ref, str(i)) for ref in row["runs"])
    runs = []
    for summary in summaries:
        ref = f"{summary.get('project')}/{summary.get('experiment')}/{summary.get('id')}"
        runs.append({
            "ref": ref,
            "id": summary.get("id"),
            "status": summary.get("status"),
            "replica": summary.get("replica"),
            "point_key": point_of.get(ref),
            "y": _numbers(summary),
        })  # fmt: skip
    return {
        "ref": target.text,
        "definition": definition,
        "point_keys": point_keys,
        "constant": {k: v for k, v in table.constant.items() if v is not MISSING},
        "runs": runs,
        "aggregate": {"numeric": list(numeric), "other": list(other), "points": points},
        "problems": problems(selection.problems),
    }


def _numbers(summary: dict[str, Any]) -> dict[str, Any]:
    """A run's numeric results and last metrics, by dotted column name."""
    out: dict[str, Any] = {}
    for section in ("results", "metrics"):
        data = summary.get(section)
        if isinstance(data, dict):
            for key, value in data.items():
                if type(value) in (int, float):
                    out[f"{section}.{key}"] = value
                elif section == "results" and type(value) is dict:
                    from molexp.core.views.compare import flatten

                    out.update((k, v) for k, v in flatten(value, f"results.{key}").items()
                               if type(v) in (int, float))  # fmt: skip
    return out


def is_number(value: Any) -> bool:
    return type(value) in (int, float)


# --- the two writes -------------------------------------------------------------------


def tag_action(ws: Workspace, body: dict[str, Any]) -> dict[str, Any]:
    """``{"ref": REF, "ops": ["+TAG", "-TAG"]}``: as `molexp tag REF +TAG -TAG`."""
    from molexp.core.actions import curate

    ref, ops = body.get("ref"), body.get("ops")
    if not isinstance(ref, str) or not isinstance(ops, list) or not ops:
        raise UsageError('a tag request is {"ref": REF, "ops": ["+TAG", "-TAG", ...]}')
    if not all(isinstance(op, str) for op in ops):
        raise UsageError("each tag operation is a text: +TAG or -TAG")
    (done,) = curate.tag_ops(ws, [ref], ops)
    return done.to_json()


def note_action(ws: Workspace, body: dict[str, Any]) -> dict[str, Any]:
    """``{"ref": REF, "text": TEXT}``: as `molexp note REF TEXT`."""
    from molexp.core.actions import curate

    ref, text = body.get("ref"), body.get("text")
    if not isinstance(ref, str) or not isinstance(text, str):
        raise UsageError('a note request is {"ref": REF, "text": TEXT}')
    return curate.note(ws, ref, text).to_json()
