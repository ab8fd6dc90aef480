"""Listing definitions: the projects of a workspace and their experiments.

One bad definition never hides the others: each that cannot be read is kept as
a problem beside the rows that can.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from molexp.core.records.workspace import Workspace
from molexp.errors import MolexpError


@dataclass
class Catalog:
    rows: list[dict[str, Any]] = field(default_factory=list)
    problems: list[MolexpError] = field(default_factory=list)


def projects(ws: Workspace) -> Catalog:
    """Each project's definition with its number of ``experiments``."""
    out = Catalog()
    for proj in ws.projects():
        try:
            record = dict(proj.definition())
        except MolexpError as exc:
            out.problems.append(exc)
            continue
        record["experiments"] = len(proj.experiment_names())
        out.rows.append(record)
    return out


def experiments(ws: Workspace, project: str | None = None) -> Catalog:
    """Each experiment's definition (of ``project``, or all) with its number of ``runs``."""
    out = Catalog()
    for proj in [ws.get_project(project)] if project else ws.projects():
        for exp in proj.experiments():
            try:
                record = dict(exp.definition())
            except MolexpError as exc:
                out.problems.append(exc)
                continue
            record["runs"] = len(exp.run_ids())
            out.rows.append(record)
    return out
