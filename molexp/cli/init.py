"""molexp init."""

from __future__ import annotations

from pathlib import Path

import typer

from molexp.cli import output
from molexp.core.records.workspace import Workspace


def init(
    path: Path = typer.Argument(Path("."), help="Directory of the new workspace."),
    name: str = typer.Option(None, "--name", help="Workspace name (default: the directory's)."),
) -> None:
    """Create a workspace (workspace.yaml) in PATH; does nothing if one is there."""
    ws = Workspace(path)
    if ws.init(name):
        output.say(f"Created workspace {ws.name!r} in {ws.root}")
    else:
        output.say(f"Workspace {ws.name!r} already exists in {ws.root}")
