"""Listing runs across a workspace without letting one bad record hide the rest."""

from __future__ import annotations

import json
import operator
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from molexp.core.records.annotations import with_pending
from molexp.core.records.index import scan_all
from molexp.core.records.index_build import prebuild
from molexp.core.records.index_entry import LAST_ATTEMPT_KEYS, Entry, Rest, summarise
from molexp.core.records.metrics import live as live_metrics
from molexp.core.records.runs import (
    ACTIVE,
    RUN_FILE,
    STATUSES,
    Run,
    load_record,
    missing_record,
    observe,
)
from molexp.core.records.workspace import Experiment, Project, Workspace
from molexp.core.views.query import (
    Condition,
    SortKey,
    matches,
    needs_record,
    sort_records,
)  # fmt: skip
from molexp.errors import MolexpError, UsageError


@dataclass
class Listing:
    records: list[dict[str, Any]] = field(default_factory=list)
    problems: list[MolexpError] = field(default_factory=list)


def _under_slurm(record: dict[str, Any]) -> bool:
    attempts = record.get("attempts") or []
    last = attempts[-1] if attempts else None
    return isinstance(last, dict) and last.get("executor") == "slurm"


class Row:
    """A listed run whose record was read in full (queued and running runs, whose
    status is judged afresh; runs filtered on keys a summary lacks)."""

    __slots__ = ("project", "experiment", "id", "status", "created_at", "_ws", "_record",
                 "_summary")  # fmt: skip

    def __init__(self, ws: Workspace, record: dict[str, Any]) -> None:
        self._ws = ws
        self._record = record
        self.project: str = record["project"]
        self.experiment: str = record["experiment"]
        self.id: str = record["id"]
        self.status: str = record["status"]
        self.created_at: Any = record.get("created_at")
        self._summary: dict[str, Any] | None = None

    @property
    def ref(self) -> str:
        return f"{self.project}/{self.experiment}/{self.id}"

    @property
    def run_dir(self) -> Path:
        return self._ws.projects_dir / self.project / "experiments" / self.experiment / "runs" / self.id  # fmt: skip

    def summary(self) -> dict[str, Any]:
        """:func:`molexp.core.records.index_entry.summarise` of the record (what a table shows)."""
        return summarise(self._record)

    def get(self, key: str, default: Any = None) -> Any:
        """``summary().get(key, default)``, as an index entry answers it (what
        ``--sort`` reads of a row)."""
        if self._summary is None:
            self._summary = self.summary()
        return self._summary.get(key, default)

    def record(self) -> dict[str, Any]:
        return self._record


# A listed run: from the index (summary parsed, record read on demand) or read in full.
Listed = Entry | Row


@dataclass
class Selection:
    """The runs a listing selected, in order, and the problems met on the way.

    Each row has ``project``, ``experiment``, ``id``, ``ref``, ``status`` (as
    observed), ``created_at``, ``run_dir``, ``summary()`` (the record without its
    long lists, see :func:`molexp.core.records.index_entry.summarise`) and ``record()``.
    """

    rows: list[Listed] = field(default_factory=list)
    problems: list[MolexpError] = field(default_factory=list)
    statuses: Sequence[str] = ()
    where: Sequence[Condition] = ()
    sort: Sequence[SortKey] = ()

    def records(self) -> Iterator[dict[str, Any]]:
        """The full record of each row, read one at a time.  A record that can no
        longer be read joins :attr:`problems`; one that changed since it was
        selected is judged again (observed status, filters)."""
        for row in self.rows:
            yield from self._one(row)

    def records_json(self) -> Iterator[bytes | dict[str, Any]]:
        """:meth:`records`, where a record unchanged since the index validated it
        comes as the bytes of its ``run.json`` (neither parsed nor re-encoded:
        `ls --format json` of 100,000 runs reads files and writes them)."""
        for row in self.rows:
            raw = None if isinstance(row, Row) or self.where else row.raw_json()
            if raw is not None:
                yield raw
                continue
            yield from self._one(row)

    def brief(self, release: bool = False) -> Iterator[tuple[Listed, Brief]]:
        """Each row with what a table shows of it (:data:`BRIEF`), as its
        ``summary()`` gives it, a batch at a time (no results or metrics decoded,
        each distinct text once).  ``release``: the rows are handed over and
        :attr:`rows` is empty afterwards, each batch let go once taken (a table of
        100,000 runs never holds all its entries and all its cells at once).

        The cyclic garbage collector is paused until the last batch is taken (as in
        :func:`select`): a table keeps a tuple of cells per run, none in a cycle,
        and collecting would walk them all again and again."""
        import gc

        paused = gc.isenabled()
        gc.disable()
        try:
            yield from self._brief(release)
        finally:
            if paused:
                gc.enable()

    def _brief(self, release: bool) -> Iterator[tuple[Listed, Brief]]:
        rows = self.rows
        if release:
            self.rows = []
            while rows:
                chunk = rows[:_BATCH]
                del rows[:_BATCH]
                yield from zip(chunk, _briefs(chunk))
                del chunk
            return
        for start in range(0, len(rows), _BATCH):
            chunk = rows[start : start + _BATCH]
            yield from zip(chunk, _briefs(chunk))

    def _one(self, row: Listed) -> Iterator[dict[str, Any]]:
        if isinstance(row, Row):
            yield row.record()
            return
        try:
            record = row.record()
        except FileNotFoundError:
            _missing(self.problems, row.run_dir)
            return
        except MolexpError as exc:
            self.problems.append(exc)
            return
        if record["status"] != row.status:  # changed since the scan
            _observe_into(record, row.run_dir)
            if self.statuses and record["status"] not in self.statuses:
                return
        if self.where and not matches(record, self.where):
            return
        yield record


# What a table shows of a run beyond its ref (Selection.brief), in this order: the
# summary's keys, the latest attempt's duration for "duration".
BRIEF = (
    "status",
    "replica",
    "profile",
    "params",
    "attempt_count",
    "duration",
    "updated_at",
    "tags",
)
Brief = tuple[Any, Any, Any, Any, Any, Any, Any, Any]
_BATCH = 2000
_ACTIVE = frozenset(ACTIVE)
_status = operator.attrgetter("status")
_DURATION = LAST_ATTEMPT_KEYS.index("duration")


def _brief_of(row: Listed) -> Brief:
    s = row.summary()
    last = s.get("last_attempt")
    return (row.status, s.get("replica"), s.get("profile"), s.get("params"),
            s.get("attempt_count"), (last or {}).get("duration"), s.get("updated_at"),
            s.get("tags"))  # fmt: skip


def _briefs(rows: Sequence[Listed]) -> list[Brief]:
    """:func:`_brief_of` of each row.  The index entries of one experiment that come
    one after the other are decoded together (:func:`_columns`); anything unexpected
    (a forged index) takes the summary's path, row by row."""
    out: list[Brief] = []
    i, n = 0, len(rows)
    while i < n:
        row = rows[i]
        if type(row) is not Entry:
            out.append(_brief_of(row))
            i += 1
            continue
        exp, j = row._exp, i + 1
        while j < n and type(rows[j]) is Entry and rows[j]._exp is exp:  # type: ignore[union-attr]
            j += 1
        group: list[Entry] = rows[i:j]  # type: ignore[assignment]
        got = _columns(group)
        out += got if got is not None else _one_by_one(group)
        i = j
    return out


_TAIL = operator.itemgetter(4)  # of an Entry
_COLUMNS = 4 + len(Rest._fields)  # of a tail: PARAMS_REF, CONFIG_REF, RESULTS, METRICS, Rest's
_REPLICA, _PROFILE, _UPDATED, _OTHER, _COUNT, _LAST = (4 + Rest._fields.index(k) for k in (
    "replica", "profile", "updated_at", "other", "attempt_count", "last_attempt"))  # fmt: skip


def _columns(group: list[Entry]) -> list[Brief] | None:
    """:func:`_briefs` of entries of one experiment, each column of the index decoded
    at once for all of them (the JSON texts of one column, joined by commas, are a
    JSON array: one ``json.loads`` instead of one per run and column); None when
    the columns are not as the index writes them."""
    k = len(group)
    cols = "\t".join(map(_TAIL, group)).split("\t")
    if len(cols) != k * _COLUMNS:
        return None
    loads = json.loads

    def column(c: int) -> list[Any]:
        found = loads("[" + ",".join(cols[c::_COLUMNS]) + "]")
        if len(found) != k:
            raise ValueError(c)
        return found  # type: ignore[no-any-return]

    try:
        params = list(map(group[0]._values.__getitem__, map(int, cols[0::_COLUMNS])))
        last = column(_LAST)
        durations = [None if v is None else v[_DURATION] for v in last]
        tags = [None if v is None else v.get("tags") for v in column(_OTHER)]
        return list(zip(map(_status, group), column(_REPLICA), column(_PROFILE), params,
                        column(_COUNT), durations, column(_UPDATED), tags))  # fmt: skip
    except (ValueError, IndexError, KeyError, TypeError, AttributeError):
        return None


def _one_by_one(rows: Sequence[Entry]) -> list[Brief]:
    """:func:`_brief_of` of each entry, from its own columns: each distinct text
    decoded once (the same value object for equal texts)."""
    seen: dict[str, Any] = {}  # JSON text -> value, within this batch
    loads = json.loads

    def value(text: str) -> Any:
        found = seen.get(text, seen)
        if found is seen:
            found = seen[text] = loads(text)
        return found

    out: list[Brief] = []
    for row in rows:
        try:
            params, replica, profile, updated, other, count, last = row.brief_texts()
            # (integers and time stamps differ from row to row: read without json)
            last_v = value(last)
            other_v = value(other)
            out.append((row.status, int(replica) if replica.isdigit() else loads(replica),
                        value(profile), params, int(count) if count.isdigit() else loads(count),
                        None if last_v is None else last_v[_DURATION],
                        updated[1:-1] if updated[0] == '"' and "\\" not in updated else loads(updated),
                        None if other_v is None else other_v.get("tags")))  # fmt: skip
        except (ValueError, IndexError, KeyError, TypeError, AttributeError, MolexpError):
            out.append(_brief_of(row))
    return out


def _missing(problems: list[MolexpError], run_dir: Path) -> None:
    """A run directory found without its record: a problem, unless its run is
    being created (:func:`missing_record`)."""
    problem = missing_record(run_dir)
    if problem is not None:
        problems.append(problem)


def _observe_into(record: dict[str, Any], run_dir: Path) -> str:
    status, reason = observe(record, run_dir)
    if status != record["status"]:
        record["recorded_status"] = record["status"]
        record["status"] = status
        record["status_reason"] = reason
    live_metrics(record, run_dir)  # a running attempt's metrics, from its file
    return status


def iter_experiments(
    ws: Workspace, project: str | None = None, experiment: str | None = None
) -> Iterator[tuple[str, str]]:
    for proj in [project] if project else ws.project_names():
        for exp in [experiment] if experiment else Project(ws, proj).experiment_names():
            yield proj, exp


def select(
    ws: Workspace,
    project: str | None = None,
    experiment: str | None = None,
    statuses: Sequence[str] = (),
    where: Sequence[Condition] = (),
    sort: Sequence[SortKey] = (),
    limit: int | None = None,
) -> Selection:
    """The runs matching ``statuses`` (as observed now) and ``where``
    (:mod:`molexp.core.views.query`), oldest first within each experiment or in the
    order of ``sort``, at most ``limit`` of them, without reading more records than
    needed: conditions and sort keys are judged on index summaries unless a key
    needs the full record.

    Each experiment is scanned through its index (:mod:`molexp.core.records.index`): every
    ``run.json`` is ``stat``-ed, and only new or changed ones are read.  Queued and
    running records are always read afresh: their status can change without their
    record changing (an owner that died, a SLURM job that left the queue).

    The cyclic garbage collector is paused meanwhile: a listing makes one object
    per run (100,000 of them), none in a cycle, and collecting would walk them all
    again and again (~15% of the time of `ls --where` over 100,000 runs).
    """
    import gc

    paused = gc.isenabled()
    gc.disable()
    try:
        return _select(ws, project, experiment, statuses, where, sort, limit)
    finally:
        if paused:
            gc.enable()


def _select(
    ws: Workspace,
    project: str | None,
    experiment: str | None,
    statuses: Sequence[str],
    where: Sequence[Condition],
    sort: Sequence[SortKey],
    limit: int | None,
) -> Selection:
    for status in statuses:
        if status not in STATUSES:
            raise UsageError(f"unknown status {status!r}; use one of: {', '.join(STATUSES)}")
    from molexp.core.slurm import paths

    if paths.unfinished(ws.root):  # a SLURM submission whose submitter died: settled first
        from molexp.core.slurm.journal import repair

        repair(ws)
    out = Selection(statuses=statuses, where=where, sort=sort)
    full_where = needs_record(c.key for c in where)
    judge = where[0].test if len(where) == 1 else lambda row: matches(row, where)
    slurm_runs: list[Run] = []
    wanted = frozenset((*statuses, *ACTIVE)) if statuses else None
    experiments = list(iter_experiments(ws, project, experiment))
    prebuild(ws.root, experiments)  # missing indexes, in parallel (a speed-up only)
    for proj, exp, scanned in scan_all(ws.root, experiments, wanted):
        out.problems.extend(scanned.problems)
        if not where and _ACTIVE.isdisjoint(map(_status, scanned.entries)):
            out.rows += scanned.entries  # (oldest first, as scanned; ``wanted`` only)
            continue
        rows: list[Listed] = []  # oldest first, as scanned
        read = False  # whether some rows were read in full (their created_at may differ)
        for entry in scanned.entries:
            if entry.status not in ACTIVE:
                if statuses and entry.status not in statuses:
                    continue
                if where:
                    try:
                        if full_where:
                            record = entry.record()
                            if matches(record, where):
                                rows.append(Row(ws, record))
                                read = True
                            continue
                        if not judge(entry):  # (an entry parses what it needs)
                            continue
                    except FileNotFoundError:
                        continue  # gone since the scan
                    except MolexpError as exc:  # unreadable now, or a forged index
                        out.problems.append(exc)
                        continue
                rows.append(entry)
                continue
            run_dir = ws.projects_dir / proj / "experiments" / exp / "runs" / entry.id
            path = run_dir / RUN_FILE
            try:
                record = load_record(path, proj, exp)
            except FileNotFoundError:
                _missing(out.problems, run_dir)
                continue
            except MolexpError as exc:
                out.problems.append(exc)
                continue
            with_pending(record, run_dir)  # tags and notes queued while it runs
            if record["status"] in ACTIVE and _under_slurm(record):
                slurm_runs.append(Run(Experiment(Project(ws, proj), exp), entry.id, record))
                continue  # judged below, with one question to SLURM for all of them
            status = _observe_into(record, run_dir)
            if statuses and status not in statuses:
                continue
            if where and not matches(record, where):
                continue
            rows.append(Row(ws, record))
            read = True
        # Oldest first within each experiment, then by id (ids are hashes: their
        # order means nothing): as scanned, unless a record read now says otherwise.
        if read:
            rows.sort(key=_by_age)
        out.rows.extend(rows)
    if slurm_runs:
        from molexp.core.slurm import reconcile as slurm

        for seen in slurm.observe_many(slurm_runs):
            record = slurm.annotate(seen)
            live_metrics(record, Row(ws, record).run_dir)
            if (not statuses or seen.status in statuses) and (not where or matches(record, where)):
                out.rows.append(Row(ws, record))
        out.rows.sort(key=lambda r: (r.project, r.experiment, _created(r), r.id))
    if sort:
        full = needs_record(k.key for k in sort)
        out.rows = sort_records(out.rows, sort, _record_of if full else None, limit)
    if limit is not None:
        del out.rows[limit:]
    return out


def _record_of(row: Listed) -> dict[str, Any]:
    try:
        return row.record()
    except (FileNotFoundError, MolexpError):
        return {}  # gone or broken since the scan: sorts last, reported when listed


def _by_age(row: Listed) -> tuple[str, str]:
    return _created(row), row.id


def _created(row: Listed) -> str:
    created = row.created_at
    return created if type(created) is str else str(created)


def scan(
    ws: Workspace,
    project: str | None = None,
    experiment: str | None = None,
    statuses: Sequence[str] = (),
    where: Sequence[Condition] = (),
) -> Listing:
    """Every readable run record (status as observed now) plus the problems met."""
    selection = select(ws, project, experiment, statuses, where)
    records = list(selection.records())
    return Listing(records, selection.problems)


def select_ref(
    ws: Workspace,
    ref: str | None,
    statuses: Sequence[str] = (),
    where: Sequence[str] = (),
    sort: Sequence[str] = (),
    limit: int | None = None,
    tags: Sequence[str] = (),
) -> Selection:
    """`molexp ls [REF]`: :func:`select` over what REF names (a project or an
    experiment; none: the workspace), with ``where`` conditions and ``sort`` keys as
    given as text (the grammar of :mod:`molexp.core.views.query`), and only the runs
    carrying every tag of ``tags``."""
    from molexp.core.views.query import parse_limit, parse_sort, parse_where

    conditions = parse_where(where)
    if tags:
        from molexp.core.model.names import validate_name

        conditions += parse_where(f"tags='{validate_name(t, 'tag')}'" for t in tags)
    keys = parse_sort(sort)
    parse_limit(limit)
    project = experiment = None
    if ref:
        from molexp.core.records.refs import resolve

        target = resolve(ws, ref)
        if target.kind not in ("workspace", "project", "experiment"):
            raise UsageError(
                f"molexp ls takes PROJECT or PROJECT/EXPERIMENT; use `molexp show {ref}`"
            )
        project = target.project.name if target.project else None
        experiment = target.experiment.name if target.experiment else None
    return select(ws, project, experiment, statuses, conditions, keys, limit)
