"""References to things in a workspace (SPEC §3).

``PROJECT``, ``PROJECT/EXPERIMENT``, ``PROJECT/EXPERIMENT/RUN_ID`` or a unique
run-id prefix (at least 4 characters) anywhere in the workspace.  A reference
without ``/`` names a project if one exists, else a run-id prefix.
"""

from __future__ import annotations

import os
from difflib import get_close_matches
from typing import NamedTuple

from molexp.core.model.names import is_valid_name
from molexp.core.records.workspace import Experiment, Project, Workspace
from molexp.errors import NotFoundError

MIN_PREFIX = 4
_HEX = set("0123456789abcdef")


class Ref(NamedTuple):
    kind: str  # workspace | project | experiment | run
    workspace: Workspace
    project: Project | None = None
    experiment: Experiment | None = None
    run_id: str | None = None

    @property
    def text(self) -> str:
        if self.experiment is not None and self.run_id is not None:
            return f"{self.experiment.ref}/{self.run_id}"
        if self.experiment is not None:
            return self.experiment.ref
        if self.project is not None:
            return self.project.name
        return "."


def _runs_matching(ws: Workspace, prefix: str) -> list[tuple[str, str, str]]:
    out = []
    for proj in ws.project_names():
        exps_dir = ws.projects_dir / proj / "experiments"
        for exp in Project(ws, proj).experiment_names():
            try:
                entries = os.scandir(exps_dir / exp / "runs")
            except FileNotFoundError:
                continue
            with entries:
                for entry in entries:
                    if entry.name.startswith(prefix) and entry.is_dir():
                        out.append((proj, exp, entry.name))
    return sorted(out)


def _all_run_refs(ws: Workspace) -> list[str]:
    return [f"{p}/{e}/{r.name}" for p, e, r in ws.iter_run_dirs()]


def find_run(ws: Workspace, prefix: str, within: Experiment | None = None) -> Ref:
    """The run whose id starts with ``prefix`` (in ``within`` or anywhere)."""
    if len(prefix) < MIN_PREFIX or not set(prefix) <= _HEX:
        if within is None:
            raise NotFoundError(
                f"no project or run named {prefix!r}",
                f"A run-id prefix needs at least {MIN_PREFIX} hex characters; "
                "`molexp ls` lists runs.",
            )
    if within is not None:
        ids = [i for i in within.run_ids() if i.startswith(prefix)]
        matches = [(within.project.name, within.name, i) for i in ids]
    else:
        matches = _runs_matching(ws, prefix)
    if len(matches) == 1:
        proj, exp, run_id = matches[0]
        project = Project(ws, proj)
        return Ref("run", ws, project, Experiment(project, exp), run_id)
    where = within.ref + "/" if within is not None else ""
    if not matches:
        pool = (
            [f"{within.ref}/{i}" for i in within.run_ids()]
            if within is not None
            else _all_run_refs(ws)
        )
        close = (
            get_close_matches(where + prefix, pool, n=3, cutoff=0.5)
            or [
                p
                for p in pool
                if p.rsplit("/", 1)[-1].startswith(prefix[: max(MIN_PREFIX, len(prefix) // 2)])
            ][:3]
        )
        hint = f"Did you mean: {', '.join(close)}?" if close else "`molexp ls` lists runs."
        raise NotFoundError(f"no run matches {where}{prefix}", hint)
    shown = ", ".join("/".join(m) for m in matches[:10])
    more = f" and {len(matches) - 10} more" if len(matches) > 10 else ""
    raise NotFoundError(
        f"run prefix {prefix!r} is ambiguous: {shown}{more}",
        "Give more characters of the id.",
    )


def resolve(ws: Workspace, text: str) -> Ref:
    """Resolve a reference; unknown names raise :class:`NotFoundError` (exit 2)."""
    text = text.strip()
    if text in ("", ".", "/"):
        return Ref("workspace", ws)
    parts = text.strip("/").split("/")
    if len(parts) > 3 or any(not p for p in parts):
        raise NotFoundError(
            f"cannot read reference {text!r}",
            "Use PROJECT, PROJECT/EXPERIMENT, PROJECT/EXPERIMENT/RUN_ID or a run-id prefix.",
        )
    if len(parts) == 1:
        name = parts[0]
        if is_valid_name(name) and Project(ws, name).exists():
            return Ref("project", ws, Project(ws, name))
        if len(name) >= MIN_PREFIX and set(name) <= _HEX:
            return find_run(ws, name)
        close = get_close_matches(name, ws.project_names(), n=3)
        if close:
            hint = f"Did you mean: {', '.join(close)}?"
        elif set(name) <= _HEX:
            hint = (
                f"A run-id prefix needs at least {MIN_PREFIX} hex characters ({name!r} has "
                f"{len(name)}); `molexp ls` lists runs."
            )
        else:
            hint = "`molexp project ls` lists projects; `molexp ls --format ids` lists runs."
        raise NotFoundError(f"no project or run named {name!r}", hint)
    project = ws.get_project(parts[0])
    experiment = project.get_experiment(parts[1])
    if len(parts) == 2:
        return Ref("experiment", ws, project, experiment)
    return find_run(ws, parts[2], within=experiment)
