"""Global CLI state (the options given before the command)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from molexp.core.workspace import Workspace


@dataclass
class State:
    workspace: Path | None = None
    debug: bool = False


STATE = State()


def workspace() -> Workspace:
    """The workspace for this command (``-w``, ``$MOLEXP_WORKSPACE`` or walking up)."""
    from molexp.core.workspace import Workspace

    return Workspace.find(STATE.workspace)
