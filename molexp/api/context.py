"""Inside a command launched by `molexp run`: :func:`current_run` (SPEC §12).

The command never writes ``run.json`` (its parent holds it): results go to
``results.json`` and asset lookups to ``attempts/<n>/inputs.jsonl``; molexp
merges both into the record when the attempt ends.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from molexp.core.execution.runenv import RunEnv
from molexp.errors import UsageError

RESULTS_LOCK = ".results.lock"


class RunContext(RunEnv):
    """The run this process was launched for (SPEC §12), with the calls a command makes."""

    def results(self) -> dict[str, Any]:
        try:
            data = json.loads(self.results_file.read_bytes())
        except (FileNotFoundError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def set_result(self, key: str, value: Any) -> None:
        """Record one result (merged into ``run.json`` when the attempt ends)."""
        self.set_results({key: value})

    def set_results(self, values: dict[str, Any]) -> None:
        from molexp.core.model.identity import normalise
        from molexp.core.store.files import ensure_inside, write_json

        clean = normalise(values, "results")
        # Several processes of one run may set results at once: read-merge-write
        # under an exclusive lock on a sidecar file, so no key is ever lost.
        sidecar = self.results_file.parent / RESULTS_LOCK
        ensure_inside(self.workspace_root, sidecar)
        with _locked(sidecar):
            merged = self.results()
            merged.update(clean)
            write_json(self.results_file, merged, root=self.workspace_root)

    def artifact_path(self, name: str) -> Path:
        """A path under the run's ``artifacts/`` (parent folders are created)."""
        from molexp.core.store.files import make_dirs

        path = (self.run_dir / "artifacts" / name).resolve()
        base = (self.run_dir / "artifacts").resolve()
        if base not in path.parents:
            raise UsageError(f"artifact path {name!r} leaves the run's artifacts folder")
        make_dirs(self.workspace_root, path.parent)
        return path

    def find_asset(self, name: str, scope: str | None = None) -> Path:
        """The path of asset ``name`` (experiment → project → workspace, or from
        ``scope``), recorded as an input of this run (SPEC §11)."""
        from molexp.core.assets import find_for_run

        return find_for_run(self, name, scope).path

    def register_asset(
        self,
        name: str,
        path: str | os.PathLike[str],
        mode: str = "copy",
        replace: bool = False,
        description: str | None = None,
        tags: list[str] | None = None,
    ) -> Path:
        """Add ``path`` as asset ``name`` of this run's experiment (producer: this run).

        ``mode`` is ``copy``, ``move``, ``link`` or ``ref``; returns the asset's path.
        """
        from molexp.core.assets import add_asset, run_scope
        from molexp.core.records.workspace import Workspace

        scope = run_scope(self, Workspace(self.workspace_root))
        result = add_asset(scope, name, path, mode, replace, description, tags, self.run_id)
        return result.asset.path


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (created with the user's umask)."""
    import fcntl

    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def current_run() -> RunContext:
    """The run this process belongs to (raises ``UsageError`` outside `molexp run`)."""
    return RunContext()
