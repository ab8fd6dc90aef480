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
    from molexp.core.context import RunContext, current_run
    from molexp.core.runs import Run
    from molexp.core.workspace import Experiment, Project, Workspace

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
    "Workspace": "molexp.core.workspace",
    "Project": "molexp.core.workspace",
    "Experiment": "molexp.core.workspace",
    "Run": "molexp.core.runs",
    "RunContext": "molexp.core.context",
    "current_run": "molexp.core.context",
}


def __getattr__(name: str) -> Any:
    """Import the API lazily so `molexp --version` stays fast."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'molexp' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
