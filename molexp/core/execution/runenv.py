"""The run a process was launched for, as ``molexp run`` describes it (SPEC §9).

:func:`build_env` writes the ``MOLEXP_*``
variables; :class:`RunEnv` reads them back.  It only reads: the command never
writes the record its parent holds.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Mapping, Sequence
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from molexp.errors import UsageError

if TYPE_CHECKING:
    from molexp.core.execution.options import RunOptions
    from molexp.core.provenance.gitinfo import GitInfo
    from molexp.core.records.runs import Run
    from molexp.core.records.workspace import Experiment

REQUIRED = ("MOLEXP_RUN_ID", "MOLEXP_RUN_DIR", "MOLEXP_WORKSPACE")
RESULTS_FILE = "results.json"
WARNINGS_FILE = "warnings.jsonl"
"""In the attempt's folder: warnings the command's ``ctx.set_result`` left, one JSON
string a line; the lifecycle moves them into the attempt's ``warnings``."""


def inside_a_run(env: Mapping[str, str] | None = None) -> bool:
    return bool((os.environ if env is None else env).get("MOLEXP_RUN_ID"))


class RunEnv:
    """The run this process was launched for, read from ``MOLEXP_*`` variables."""

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        env = dict(os.environ if env is None else env)
        missing = [k for k in REQUIRED if not env.get(k)]
        if missing:
            raise UsageError(
                f"not inside a run launched by `molexp run` ({', '.join(missing)} not set)"
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
        return f"{type(self).__name__}({self.project}/{self.experiment}/{self.run_id})"

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
        return Path(
            self.env.get("MOLEXP_ATTEMPT_DIR", self.run_dir / "attempts" / str(self.attempt))
        )

    @property
    def metrics_file(self) -> Path:
        """``attempts/<n>/metrics.jsonl``: metrics over time (SPEC §14), appended to."""
        found = self.env.get("MOLEXP_METRICS_FILE")
        return Path(found) if found else self.attempt_dir / "metrics.jsonl"


def placeholder_values(run: Run, attempt: int) -> dict[str, Any]:
    """The values of the ``{placeholders}`` of a run's command in attempt ``attempt``."""
    from molexp.core.execution.placeholders import values_for

    rec = run.record
    return values_for(
        rec.get("params") or {},
        rec.get("config") or {},
        replica=rec["replica"],
        seed=rec["seed"],
        run_id=run.id,
        run_dir=str(run.dir),
        profile=rec.get("profile"),
        attempt=attempt,
    )


def command_warnings(unknown: Sequence[str]) -> list[str]:
    """The attempt's warnings about its command: the ``{identifiers}`` that named nothing."""
    from molexp.core.execution.placeholders import unknown_warning

    return [unknown_warning(unknown)] if unknown else []


def build_env(run: Run, workspace_root: Path, attempt_dir: Path, n: int) -> dict[str, str]:
    from molexp.core.records.metrics import METRICS_FILE

    rec = run.record
    env = dict(os.environ)
    env.update(
        MOLEXP_WORKSPACE=str(workspace_root),
        MOLEXP_PROJECT=rec["project"],
        MOLEXP_EXPERIMENT=rec["experiment"],
        MOLEXP_RUN_ID=run.id,
        MOLEXP_RUN_DIR=str(run.dir),
        MOLEXP_REPLICA=str(rec["replica"]),
        MOLEXP_SEED=str(rec["seed"]),
        MOLEXP_PROFILE=rec.get("profile") or "",
        MOLEXP_PARAMS_FILE=str(attempt_dir / "params.json"),
        MOLEXP_CONFIG_FILE=str(attempt_dir / "config.json"),
        MOLEXP_RESULTS_FILE=str(run.dir / RESULTS_FILE),
        MOLEXP_ATTEMPT=str(n),
        MOLEXP_ATTEMPT_DIR=str(attempt_dir),
        MOLEXP_METRICS_FILE=str(attempt_dir / METRICS_FILE),
    )
    return env


def read_warnings(path: Path) -> list[str]:
    """The warnings the command's ``ctx.set_result`` left (one JSON string a line)."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    out = []
    for line in text.splitlines():
        try:
            item = json.loads(line)
        except ValueError:
            continue  # torn by a crash
        if isinstance(item, str):
            out.append(item)
    return out


_GIT_LOCK = threading.Lock()  # with --jobs, one thread captures; the others wait for it


def git_for(exp: Experiment, options: RunOptions) -> GitInfo:
    """The git provenance of ``exp``'s source (its ``workflow_source``, else the
    working directory), captured once per path and batch (``options.git_cache``)."""
    from molexp.core.provenance.gitinfo import capture  # only when an attempt runs

    source = exp.definition().get("workflow_source")
    path = options.cwd / source if source else options.cwd
    key = str(path)
    with _GIT_LOCK:
        if key not in options.git_cache:
            options.git_cache[key] = capture(path)
        return options.git_cache[key]
