"""molexp: an honest, on-disk record of parameterised runs.

import molexp as mx
ws = mx.Workspace("./lab")
exp = ws.project("qm9").experiment("baseline", params={"lr": 1e-3}, replicas=3)
run = exp.run_for(replica=0, profile="smoke")
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from molexp._version import __version__

if TYPE_CHECKING:
    from molexp.api.context import RunContext, current_run
    from molexp.api.workspace import Experiment, Project, Workspace
    from molexp.core.records.runs import Run

__all__ = [
    "__version__",
    "Workspace",
    "Project",
    "Experiment",
    "Run",
    "RunContext",
    "current_run",
]

_LAZY = {
    "Workspace": "molexp.api.workspace",
    "Project": "molexp.api.workspace",
    "Experiment": "molexp.api.workspace",
    "Run": "molexp.core.records.runs",
    "RunContext": "molexp.api.context",
    "current_run": "molexp.api.context",
}


def __getattr__(name: str) -> Any:
    """Import the API lazily so `molexp --version` stays fast."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'molexp' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
