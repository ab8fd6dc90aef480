"""Defining the record: `init`, `project create`, `experiment create` as one call each.

The CLI passes the text it was given; parsing (a ``--params`` file, ``--seeds``),
validation and the "created or unchanged" answer happen here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from molexp.core.model.names import validate_name
from molexp.core.model.values import parse_assignment, parse_value, set_dotted, split_top_level
from molexp.core.model.yaml12 import load_yaml
from molexp.core.records.workspace import (
    EXPERIMENT_FILE,
    PROJECT_FILE,
    Experiment,
    Project,
    Workspace,
)
from molexp.errors import UsageError


def init_workspace(path: Path, name: str | None = None) -> tuple[Workspace, bool]:
    """Create a workspace in ``path``; whether it was created (False: it existed)."""
    ws = Workspace(path)
    return ws, ws.init(name)


def create_project(
    ws: Workspace, name: str, description: str = "", tags: Sequence[str] = ()
) -> tuple[Project, bool]:
    """Create project ``name`` (nothing if it exists); whether it was created."""
    validate_name(name, "project")
    existed = (ws.projects_dir / name / PROJECT_FILE).exists()
    return ws.project(name, description=description, tags=list(tags)), not existed


def split_ref(text: str) -> tuple[str, str]:
    parts = text.split("/")
    if len(parts) != 2:
        raise UsageError(f"expected PROJECT/EXPERIMENT, got {text!r}")
    return validate_name(parts[0], "project"), validate_name(parts[1], "experiment")


def read_params(params_file: Path | None, assignments: Sequence[str]) -> dict[str, Any]:
    """Parameters from a YAML/JSON file, then ``KEY=VALUE`` assignments over them."""
    params: dict[str, Any] = {}
    if params_file is not None:
        try:
            raw = params_file.read_bytes()
        except OSError as exc:
            raise UsageError(f"cannot read --params file {params_file}: {exc.strerror}") from exc
        loaded = load_yaml(raw, str(params_file))
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise UsageError(f"{params_file}: expected a mapping of parameters")
        params.update(loaded)
    for text in assignments:
        key, value = parse_assignment(text, "--param")
        set_dotted(params, key, value, what="--param")
    return params


def parse_seeds(text: str | None) -> list[int] | None:
    """``11,22,33`` or ``[11, 22, 33]`` as a list of ints (None: not given)."""
    if text is None:
        return None
    value = parse_value(text)
    items = value if isinstance(value, list) else [parse_value(s) for s in split_top_level(text)]
    if not items or not all(isinstance(s, int) and not isinstance(s, bool) for s in items):
        raise UsageError(f"--seeds {text!r}: expected integers like 11,22,33")
    return items


@dataclass
class ExperimentRequest:
    """What `molexp experiment create` was given, as text."""

    ref: str
    params: Sequence[str] = ()
    params_file: Path | None = None
    replicas: int | None = None
    seeds: str | None = None
    command: str | None = None
    workflow: str | None = None
    description: str = ""
    cwd: Path = field(default_factory=Path.cwd)
    workdir: Path | None = None  # None: ``cwd``; relative paths are relative to ``cwd``


def create_experiment(ws: Workspace, request: ExperimentRequest) -> tuple[Experiment, bool]:
    """Define an experiment: identical definitions do nothing (False), different ones
    are refused (exit 3)."""
    project, name = split_ref(request.ref)
    params = read_params(request.params_file, request.params)
    seeds = parse_seeds(request.seeds)
    proj = ws.get_project(project)
    existed = (proj.path / "experiments" / name / EXPERIMENT_FILE).exists()
    replicas = request.replicas if request.replicas is not None or seeds else 1
    exp = proj.experiment(
        name, params=params, replicas=replicas, seeds=seeds, command=request.command,
        workflow_source=request.workflow, description=request.description,
        git_cwd=request.cwd, strict=True, workdir=request.workdir,
    )  # fmt: skip
    return exp, not existed
