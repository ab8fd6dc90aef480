"""Global CLI state (the options given before the command)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from molexp.core.records.workspace import Workspace


class State:
    """The global options (a plain class: dataclasses cost ~1 ms each at start-up)."""

    def __init__(self) -> None:
        self.workspace: Path | None = None
        self.debug = False


STATE = State()


def workspace() -> Workspace:
    """The workspace for this command (``-w``, ``$MOLEXP_WORKSPACE`` or walking up)."""
    from molexp.core.records.workspace import Workspace

    return Workspace.find(STATE.workspace)
