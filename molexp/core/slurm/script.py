"""The batch scripts of a submission and the sbatch options they carry (SPEC §13).

A submission is one or more job arrays (no more than the cluster's
``MaxArraySize`` tasks each); task ``i`` of an array runs the runs of
``groups[i]`` (one run each, or ``--pack K``) with the hidden ``molexp
run-task``.  Every array lists only its own runs, so its indices start at 0
whatever its place in the submission (the limit is on the index).

Options come from ``slurm: {sbatch_args: [...]}`` of workspace.yaml, then
experiment.yaml, then ``--sbatch-arg``.  The options molexp sets itself
(:data:`RESERVED`) are refused, with every abbreviation sbatch would accept;
each ``#SBATCH`` value is quoted so sbatch reads it whole (sbatch splits on
blanks, reads quotes and backslashes inside them, and ends a line at an
unquoted ``#``),
and ``%`` in molexp's own paths is doubled (sbatch expands ``%j``, ``%A`` ...).
"""

from __future__ import annotations

import re
import shlex
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from molexp.core.slurm.paths import SLURM_DIR
from molexp.errors import UsageError

if TYPE_CHECKING:
    from molexp.core.records.workspace import Experiment

# Long options molexp sets itself (or, like --error, that would split the output it
# reads a task's ending from), and the short ones among them.
RESERVED = (
    "array", "output", "error", "open-mode", "chdir", "wrap", "hold", "parsable", "comment",
)  # fmt: skip
RESERVED_SHORT = {"a": "array", "o": "output", "e": "error", "D": "chdir", "H": "hold"}
# sbatch's short options that take a value: the letters after one are that value.
_SHORT_WITH_VALUE = set("aAbBcCdDeFGiJLmMnNopqStwx")
SLURM_KEYS = ("sbatch_args", "retry_time_factor")
_PATTERN = re.compile(r"%(\d*)([%AajJNnstux])")


def _refuse(where: str, arg: str, name: str) -> UsageError:
    flag = arg.split("=", 1)[0]
    said = "" if flag == f"--{name}" else f" ({flag} is how sbatch reads --{name})"
    if name in ("output", "error", "open-mode"):
        hint = (
            "Leave it out: each task's output goes to .molexp/slurm/<job>_<index>.out, "
            "kept across requeues, named in the attempt (molexp show)."
        )
    elif name == "chdir":
        hint = "Leave it out: tasks run in the experiment's workdir (experiment create --workdir)."
    else:
        hint = (
            "Leave it out; select runs with --replica, --grid or --profile "
            "(--jobs N throttles, --pack K groups runs per task)."
        )
    return UsageError(f"{where}: molexp sets --{name} itself{said}", hint)


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
        if arg.startswith("--"):
            name = arg[2:].split("=", 1)[0]
            for reserved in RESERVED:
                if reserved.startswith(name):  # getopt_long takes any unambiguous prefix
                    raise _refuse(where, arg, reserved)
        else:
            for letter in arg[1:]:
                if letter in RESERVED_SHORT:
                    raise _refuse(where, arg, RESERVED_SHORT[letter])
                if letter in _SHORT_WITH_VALUE or not letter.isalpha():
                    break
        out.append(arg)
    return out


@dataclass(frozen=True)
class Defaults:
    """The ``slurm:`` settings of workspace.yaml and experiment.yaml, merged."""

    sbatch_args: tuple[str, ...] = ()
    retry_time_factor: float | None = None


def _slurm_block(definition: Mapping[str, Any], path: Path) -> tuple[list[str], float | None]:
    block = definition.get("slurm")
    if block is None:
        return [], None
    if not isinstance(block, dict) or not isinstance(block.get("sbatch_args", []), list):
        raise UsageError(
            f"{path}: `slurm:` must be a mapping like {{sbatch_args: [--partition=gpu]}}"
        )
    unknown = sorted(set(block) - set(SLURM_KEYS))
    if unknown:
        raise UsageError(
            f"{path}: unknown key(s) under `slurm:`: {', '.join(unknown)}",
            f"Known: {', '.join(SLURM_KEYS)}.",
        )
    factor = block.get("retry_time_factor")
    if factor is not None and (
        isinstance(factor, bool) or not isinstance(factor, int | float) or not 1 <= factor <= 100
    ):
        raise UsageError(
            f"{path}: slurm.retry_time_factor must be a number from 1 to 100, got {factor!r}"
        )
    return check_sbatch_args(block.get("sbatch_args") or [], str(path)), factor


def defaults(exp: Experiment) -> Defaults:
    """``slurm:`` of workspace.yaml, then of experiment.yaml (the experiment's factor wins)."""
    ws = exp.workspace
    ws_args, ws_factor = _slurm_block(ws.definition(), ws.definition_path)
    exp_args, exp_factor = _slurm_block(exp.definition(), exp.definition_path)
    factor = exp_factor if exp_factor is not None else ws_factor
    return Defaults((*ws_args, *exp_args), None if factor is None else float(factor))


def default_sbatch_args(exp: Experiment) -> list[str]:
    """``slurm: {sbatch_args: [...]}`` of workspace.yaml, then of experiment.yaml."""
    return list(defaults(exp).sbatch_args)


def escape(arg: str) -> str:
    """``arg`` as one ``#SBATCH`` argument: a value holding blanks, quotes,
    backslashes or ``#`` is double-quoted, with ``\\`` and ``"`` escaped inside
    (sbatch's reader undoes both; unquoted, it splits at a blank and stops at ``#``)."""
    name, eq, value = arg.partition("=")
    if not any(c in arg for c in " \t\"'\\#"):
        return arg
    quoted = '"' + (value if eq else name).replace("\\", "\\\\").replace('"', '\\"') + '"'
    return f"{name}={quoted}" if eq else quoted


def no_patterns(path: str) -> str:
    """A literal path for ``--output``: each ``%`` doubled (sbatch reads ``%%`` as ``%``)."""
    return path.replace("%", "%%")


def option(args: Sequence[str], long: str, short: str | None = None) -> str | None:
    """The value of the last ``--long=value`` (or ``-sVALUE``) in ``args``: the one sbatch uses."""
    found = None
    for arg in args:
        if arg.startswith(f"--{long}="):
            found = arg.split("=", 1)[1]
        elif short and arg.startswith(f"-{short}") and not arg.startswith("--") and len(arg) > 2:
            found = arg[2:].lstrip("=")
    return found


def expand_pattern(pattern: str, values: Mapping[str, str], final: bool = True) -> str:
    """A SLURM file name pattern with the ``%x`` tokens of ``values`` filled in
    (``%3a`` zero-pads); tokens not in ``values`` are kept.  ``final`` turns ``%%``
    into ``%``; otherwise it stays, so the result is still a pattern."""

    def sub(match: re.Match[str]) -> str:
        width, token = match.group(1), match.group(2)
        if token == "%":
            return "%" if final else "%%"
        if token not in values:
            return match.group(0)
        value = values[token]
        return value.zfill(int(width)) if width and value.isdigit() else value

    return _PATTERN.sub(sub, pattern)


def pending_tokens(pattern: str) -> bool:
    """Whether ``pattern`` still holds a token other than ``%%``."""
    return any(m.group(2) != "%" for m in _PATTERN.finditer(pattern))


def output_pattern(workspace_root: Path) -> str:
    """Where SLURM writes a task's output: ``.molexp/slurm/%A_%a.out`` under the
    workspace (``--output`` is molexp's, SPEC §13)."""
    return no_patterns(str(workspace_root / SLURM_DIR)) + "/%A_%a.out"


def batch_script(
    groups: Sequence[Sequence[str]],
    workspace_root: Path,
    cwd: Path,
    sbatch_args: Sequence[str],
    job_name: str,
    python: str | None = None,
    *,
    comment: str | None = None,
    throttle: int | None = None,
    dependency: str | None = None,
) -> str:
    """The script of one job array: task ``i`` runs the runs of ``groups[i]``, in turn.

    ``throttle`` is SLURM's ``%N`` (at most N tasks at once), ``comment`` the
    submission's mark (``molexp:<token>``) by which a submission interrupted
    before it could note its job id finds it again.
    """
    runs = sum(len(g) for g in groups)
    per = (
        f"{runs} run(s) in {len(groups)} task(s)"
        if runs != len(groups)
        else f"{runs} run(s), one array task each"
    )
    directives = [
        f"--job-name={job_name}",
        f"--array=0-{len(groups) - 1}" + (f"%{throttle}" if throttle else ""),
        f"--output={output_pattern(workspace_root)}",
        "--open-mode=append",  # a requeued task adds to its output, never overwrites it
        f"--chdir={cwd}",
        *([f"--comment={comment}"] if comment else []),
        *([f"--dependency={dependency}"] if dependency else []),
        *sbatch_args,
    ]
    lines = [
        "#!/bin/bash",
        f"# molexp: {per}; written by `molexp run --executor slurm`.",
        *(f"#SBATCH {escape(d)}" for d in directives),
        "",
        "# task index -> run(s) (PROJECT/EXPERIMENT/RUN_ID ...)",
        "RUNS=(",
        *(f"  {shlex.quote(' '.join(g))}" for g in groups),
        ")",
        f"exec {shlex.quote(python or sys.executable)} -m molexp -w {shlex.quote(str(workspace_root))} "
        "run-task ${RUNS[$SLURM_ARRAY_TASK_ID]}",
        "",
    ]
    return "\n".join(lines)
