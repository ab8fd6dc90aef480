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
from functools import cached_property
from pathlib import Path
from typing import Any

from molexp.errors import UsageError

RESULTS_LOCK = ".results.lock"


class RunContext:
    """The run this process was launched for, read from ``MOLEXP_*`` variables."""

    def __init__(self, env: dict[str, str] | None = None) -> None:
        env = dict(os.environ if env is None else env)
        missing = [k for k in ("MOLEXP_RUN_ID", "MOLEXP_RUN_DIR", "MOLEXP_WORKSPACE") if not env.get(k)]
        if missing:
            raise UsageError(
                "not inside a run launched by `molexp run` "
                f"({', '.join(missing)} not set)"
            )
        self.env = env
        self.run_id = env["MOLEXP_RUN_ID"]
        self.run_dir = Path(env["MOLEXP_RUN_DIR"])
        self.workspace_root = Path(env["MOLEXP_WORKSPACE"])
        self.project = env.get("MOLEXP_PROJECT", "")
        self.experiment = env.get("MOLEXP_EXPERIMENT", "")
        self.replica = int(env.get("MOLEXP_REPLICA", "0"))
        self.seed = int(env.get("MOLEXP_SEED", "0"))
        self.profile = env.get("MOLEXP_PROFILE") or None
        self.attempt = int(env.get("MOLEXP_ATTEMPT", "1"))
        self.results_file = Path(env.get("MOLEXP_RESULTS_FILE", self.run_dir / "results.json"))

    def __repr__(self) -> str:
        return f"RunContext({self.project}/{self.experiment}/{self.run_id})"

    @staticmethod
    def _read_json(path: str | None) -> dict[str, Any]:
        if not path:
            return {}
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
        return data if isinstance(data, dict) else {}

    @cached_property
    def params(self) -> dict[str, Any]:
        return self._read_json(self.env.get("MOLEXP_PARAMS_FILE"))

    @cached_property
    def config(self) -> dict[str, Any]:
        return self._read_json(self.env.get("MOLEXP_CONFIG_FILE"))

    @property
    def attempt_dir(self) -> Path:
        return Path(self.env.get("MOLEXP_ATTEMPT_DIR", self.run_dir / "attempts" / str(self.attempt)))

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
        from molexp.core.identity import normalise
        from molexp.core.store import write_json

        clean = normalise(values, "results")
        # Several processes of one run may set results at once: read-merge-write
        # under an exclusive lock on a sidecar file, so no key is ever lost.
        with _locked(self.results_file.parent / RESULTS_LOCK):
            merged = self.results()
            merged.update(clean)
            write_json(self.results_file, merged)

    def artifact_path(self, name: str) -> Path:
        """A path under the run's ``artifacts/`` (parent folders are created)."""
        path = (self.run_dir / "artifacts" / name).resolve()
        base = (self.run_dir / "artifacts").resolve()
        if base not in path.parents:
            raise UsageError(f"artifact path {name!r} leaves the run's artifacts folder")
        path.parent.mkdir(parents=True, exist_ok=True)
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
        from molexp.core.workspace import Workspace

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
