"""molexp init."""

from __future__ import annotations

from pathlib import Path

import typer

from molexp.cli import output


def init(
    path: Path = typer.Argument(Path("."), help="Directory of the new workspace."),
    name: str = typer.Option(None, "--name", help="Workspace name (default: the directory's)."),
) -> None:
    """Create a workspace (workspace.yaml) in PATH; does nothing if one is there."""
    from molexp.core.actions.define import init_workspace

    ws, created = init_workspace(path, name)
    if created:
        output.say(f"Created workspace {ws.name!r} in {ws.root}")
    else:
        output.say(f"Workspace {ws.name!r} already exists in {ws.root}")
