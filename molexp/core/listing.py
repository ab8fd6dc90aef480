"""Listing runs across a workspace without letting one bad record hide the rest."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from molexp.core import store
from molexp.core.runs import RUN_FILE, STATUSES, observe, validate_record
from molexp.core.workspace import Project, Workspace
from molexp.errors import CorruptRecordError, MolexpError, UsageError

_MISSING = object()


@dataclass
class Listing:
    records: list[dict[str, Any]] = field(default_factory=list)
    problems: list[MolexpError] = field(default_factory=list)


def iter_run_paths(
    ws: Workspace, project: str | None = None, experiment: str | None = None
) -> Iterator[tuple[str, str, Path]]:
    projects = [project] if project else ws.project_names()
    for proj in projects:
        exps = [experiment] if experiment else Project(ws, proj).experiment_names()
        for exp in exps:
            runs = ws.projects_dir / proj / "experiments" / exp / "runs"
            try:
                names = sorted(e.name for e in os.scandir(runs) if e.is_dir())
            except FileNotFoundError:
                continue
            for name in names:
                if not name.startswith("."):
                    yield proj, exp, runs / name


def lookup(record: dict[str, Any], key: str) -> Any:
    """A value of a run for ``--where``: params, then config, results, then the record."""
    for section in ("params", "config", "results", None):
        node: Any = record.get(section) if section else record
        for part in key.split("."):
            if isinstance(node, dict) and part in node:
                node = node[part]
            else:
                node = _MISSING
                break
        if node is not _MISSING:
            return node
    return _MISSING


def parse_where(items: Sequence[str]) -> list[tuple[str, Any]]:
    from molexp.core.identity import normalise
    from molexp.core.values import parse_assignment

    return [(k, normalise(v)) for k, v in (parse_assignment(i, "--where") for i in items)]


def matches(record: dict[str, Any], where: Sequence[tuple[str, Any]]) -> bool:
    from molexp.core.identity import normalise

    for key, value in where:
        found = lookup(record, key)
        if found is _MISSING:
            return False
        try:
            if normalise(found) != value:
                return False
        except UsageError:
            return False
    return True


def scan(
    ws: Workspace,
    project: str | None = None,
    experiment: str | None = None,
    statuses: Sequence[str] = (),
    where: Sequence[tuple[str, Any]] = (),
) -> Listing:
    """Every readable run record (status as observed now) plus the problems met."""
    for status in statuses:
        if status not in STATUSES:
            raise UsageError(f"unknown status {status!r}; use one of: {', '.join(STATUSES)}")
    out = Listing()
    for proj, exp, run_dir in iter_run_paths(ws, project, experiment):
        path = run_dir / RUN_FILE
        try:
            record = store.read_json_record(path, "run")
            validate_record(record, path, proj, exp)
        except FileNotFoundError:
            out.problems.append(CorruptRecordError(path, "is missing (run directory without a record)"))
            continue
        except MolexpError as exc:
            out.problems.append(exc)
            continue
        status, reason = observe(record, run_dir)
        if status != record["status"]:
            record["recorded_status"] = record["status"]
            record["status"] = status
            record["status_reason"] = reason
        if statuses and status not in statuses:
            continue
        if where and not matches(record, where):
            continue
        out.records.append(record)
    # Oldest first within each experiment (ids are hashes: their order means nothing).
    out.records.sort(key=lambda r: (r["project"], r["experiment"], str(r.get("created_at")), r["id"]))
    return out
