"""Scopes (SPEC §11): where an asset library lives.

The workspace root, ``projects/<p>`` or ``projects/<p>/experiments/<e>``, each
with its library in an ``assets/`` folder.  A lookup starts at one scope and
climbs its :meth:`Scope.chain`: experiment → project → workspace.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from molexp.core.execution.runenv import RunEnv
from molexp.core.model.names import validate_name
from molexp.core.records.workspace import Experiment, Project, Workspace
from molexp.core.store import files as store
from molexp.errors import UsageError

ASSETS_DIR = "assets"


@dataclass(frozen=True)
class Scope:
    """Where an asset library lives: the workspace, a project or an experiment."""

    workspace: Workspace
    project: str | None = None
    experiment: str | None = None

    @property
    def text(self) -> str:
        """``.``, ``PROJECT`` or ``PROJECT/EXPERIMENT`` (as recorded and typed)."""
        if self.project is None:
            return "."
        if self.experiment is None:
            return self.project
        return f"{self.project}/{self.experiment}"

    @property
    def label(self) -> str:
        return "the workspace" if self.project is None else self.text

    @property
    def path(self) -> Path:
        if self.project is None:
            return self.workspace.root
        base = self.workspace.projects_dir / self.project
        return base if self.experiment is None else base / "experiments" / self.experiment

    @property
    def assets_dir(self) -> Path:
        return self.path / ASSETS_DIR

    def check_writable(self) -> Path:
        """Refuse (exit 3) to write into this library when it leads outside the
        workspace (an ``assets`` folder linked elsewhere) or lies under a record
        this molexp does not understand (a newer ``schema_version``); return the
        library's resolved path."""
        if self.project is None:
            self.workspace.check_writable()
        elif self.experiment is None:
            Project(self.workspace, self.project).check_writable()
        else:
            Experiment(Project(self.workspace, self.project), self.experiment).check_writable()
        return store.ensure_inside(self.workspace.root, self.assets_dir)

    def chain(self) -> list[Scope]:
        """This scope, then the scopes it inherits from (experiment → project → workspace)."""
        out = [self]
        if self.experiment is not None:
            out.append(Scope(self.workspace, self.project))
        if self.project is not None:
            out.append(Scope(self.workspace))
        return out


def parse_scope(ws: Workspace, text: str, must_exist: bool = True) -> Scope:
    """``.`` (workspace), ``PROJECT`` or ``PROJECT/EXPERIMENT``; names are checked first."""
    cleaned = text.strip()
    if cleaned in ("", ".", "/", "./"):
        return Scope(ws)
    parts = cleaned.rstrip("/").split("/")
    kinds = ("project", "experiment")
    for part, kind in zip(parts, kinds):
        validate_name(part, kind)
    if len(parts) > 2:
        raise UsageError(
            f"invalid asset scope {text!r}: use '.' (the workspace), PROJECT or PROJECT/EXPERIMENT"
        )
    if must_exist:
        project = ws.get_project(parts[0])
        if len(parts) == 2:
            project.get_experiment(parts[1])
    return Scope(ws, parts[0], parts[1] if len(parts) == 2 else None)


def scope_of_ref(ws: Workspace, text: str) -> Scope:
    """The scope a reference starts a lookup from (a run starts at its experiment)."""
    from molexp.core.records.refs import resolve

    ref = resolve(ws, text)
    if ref.experiment is not None:
        return Scope(ws, ref.experiment.project.name, ref.experiment.name)
    if ref.project is not None:
        return Scope(ws, ref.project.name)
    return Scope(ws)


def all_scopes(ws: Workspace) -> list[Scope]:
    """The workspace, every project and every experiment, in a stable order."""
    out = [Scope(ws)]
    for proj in ws.project_names():
        out.append(Scope(ws, proj))
        out.extend(Scope(ws, proj, exp) for exp in Project(ws, proj).experiment_names())
    return out


def run_scope(ctx: RunEnv, ws: Workspace) -> Scope:
    """The scope a run's lookups start from: its experiment."""
    if not ctx.project or not ctx.experiment:
        return Scope(ws)
    return Scope(
        ws, validate_name(ctx.project, "project"), validate_name(ctx.experiment, "experiment")
    )
