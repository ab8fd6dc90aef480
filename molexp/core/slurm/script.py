"""The batch script of a submission and the sbatch options it carries (SPEC §13).

One submission is one job array; task ``i`` runs ``refs[i]`` with the hidden
``molexp run-task``.  Options come from ``slurm: {sbatch_args: [...]}`` of
workspace.yaml, then experiment.yaml, then ``--sbatch-arg``; the options molexp
sets itself (:data:`RESERVED_ARGS`) are refused, and every value is quoted so
sbatch reads it whole.
"""

from __future__ import annotations

import shlex
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from molexp.errors import UsageError

if TYPE_CHECKING:
    from molexp.core.records.workspace import Experiment

SLURM_DIR = ".molexp/slurm"  # under the workspace: scripts and task output
# Options molexp sets itself; passing them would break the task <-> run mapping.
RESERVED_ARGS = ("--array", "-a", "--wrap", "--hold", "-H", "--parsable")


def check_sbatch_args(args: Sequence[Any], where: str) -> list[str]:
    """Validate sbatch options (``--partition=gpu``, ``--time=1:00:00`` ...)."""
    out: list[str] = []
    for arg in args:
        if not isinstance(arg, str) or not arg.startswith("-") or not arg.strip("-"):
            raise UsageError(
                f"{where}: sbatch option {arg!r} must look like --name=value",
                "Write one option per entry, e.g. --sbatch-arg=--partition=gpu.",
            )
        if any(c in arg for c in "\n\r\0"):
            raise UsageError(f"{where}: sbatch option {arg!r} holds a line break")
        name = arg.split("=", 1)[0]
        if name in RESERVED_ARGS or (name.startswith("-a") and not name.startswith("--")):
            raise UsageError(
                f"{where}: molexp sets {name} itself (one array task per run)",
                "Leave it out; select runs with --replica, --grid or --profile.",
            )
        out.append(arg)
    return out


def _slurm_block(definition: Mapping[str, Any], path: Path) -> list[str]:
    block = definition.get("slurm")
    if block is None:
        return []
    if not isinstance(block, dict) or not isinstance(block.get("sbatch_args", []), list):
        raise UsageError(
            f"{path}: `slurm:` must be a mapping like {{sbatch_args: [--partition=gpu]}}"
        )
    unknown = sorted(set(block) - {"sbatch_args"})
    if unknown:
        raise UsageError(f"{path}: unknown key(s) under `slurm:`: {', '.join(unknown)}")
    return check_sbatch_args(block.get("sbatch_args") or [], str(path))


def default_sbatch_args(exp: Experiment) -> list[str]:
    """``slurm: {sbatch_args: [...]}`` of workspace.yaml, then of experiment.yaml."""
    ws = exp.workspace
    return [
        *_slurm_block(ws.definition(), ws.definition_path),
        *_slurm_block(exp.definition(), exp.definition_path),
    ]


def _directive(arg: str) -> str:
    """One ``#SBATCH`` line; values with spaces are double-quoted (sbatch reads quotes)."""
    if " " in arg or "\t" in arg:
        name, eq, value = arg.partition("=")
        if eq and '"' not in value:
            return f'#SBATCH {name}="{value}"'
    return f"#SBATCH {arg}"


def batch_script(
    refs: Sequence[str],
    workspace_root: Path,
    cwd: Path,
    sbatch_args: Sequence[str],
    job_name: str,
    python: str | None = None,
) -> str:
    """The job-array script: task ``i`` runs ``refs[i]`` with ``molexp run-task``."""
    out = workspace_root / SLURM_DIR / "%A_%a.out"
    lines = [
        "#!/bin/bash",
        f"# molexp: {len(refs)} run(s), one array task each; written by `molexp run --executor slurm`.",
        f"#SBATCH --job-name={job_name}",
        f"#SBATCH --array=0-{len(refs) - 1}",
        _directive(f"--output={out}"),
        _directive(f"--chdir={cwd}"),
        *(_directive(a) for a in sbatch_args),
        "",
        "# task index -> run (PROJECT/EXPERIMENT/RUN_ID)",
        "RUNS=(",
        *(f"  {ref}" for ref in refs),
        ")",
        f"exec {shlex.quote(python or sys.executable)} -m molexp -w {shlex.quote(str(workspace_root))} "
        'run-task "${RUNS[$SLURM_ARRAY_TASK_ID]}"',
        "",
    ]
    return "\n".join(lines)
