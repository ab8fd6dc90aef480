"""Talking to SLURM (SPEC §13): its client commands, their answers, their timeouts.

Every call to ``sbatch``, ``squeue``, ``scontrol`` and ``scancel`` is made here,
and nothing here reads or writes a record: the callers decide what the answers
mean for a run (:mod:`molexp.core.slurm.reconcile`) and have the lifecycle
record it.  A missing binary, a controller that does not answer within
:func:`timeout` and a refusal are :class:`ExecutorError` (exit 3), in SLURM's
own words.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from molexp.errors import ExecutorError

DEFAULT_TIMEOUT = 30.0
# States after which a job runs no more (squeue -t all keeps them for MinJobAge).
FINISHED_STATES = frozenset(
    {
        "BOOT_FAIL",
        "CANCELLED",
        "COMPLETED",
        "DEADLINE",
        "FAILED",
        "NODE_FAIL",
        "OUT_OF_MEMORY",
        "PREEMPTED",
        "REVOKED",
        "TIMEOUT",
    }
)
_PER_JOB_ERRORS = ("Invalid job id", "already completing or completed", "Job has already finished")


def timeout() -> float:
    """Seconds to wait for one SLURM command ($MOLEXP_SLURM_TIMEOUT, default 30)."""
    try:
        return float(os.environ.get("MOLEXP_SLURM_TIMEOUT", DEFAULT_TIMEOUT))
    except ValueError:
        return DEFAULT_TIMEOUT


# -- talking to SLURM ---------------------------------------------------------------


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise ExecutorError(
            f"{name} not found: SLURM is not installed here (or not on PATH)",
            "Submit from a node of the cluster (a login node), or use --executor local.",
        )
    return path


def _call(argv: Sequence[str], stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run a SLURM client command; a missing binary or a hang is an ExecutorError."""
    exe = _tool(argv[0])
    try:
        return subprocess.run(
            [exe, *argv[1:]],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout(),
            stdin=None if stdin is not None else subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as exc:
        raise ExecutorError(
            f"{argv[0]} did not answer within {timeout():.0f}s: is the SLURM controller up?",
            "Check with `scontrol ping`; raise MOLEXP_SLURM_TIMEOUT on a slow cluster.",
        ) from exc
    except OSError as exc:
        raise ExecutorError(f"cannot run {exe}: {exc.strerror or exc}") from exc


def _message(proc: subprocess.CompletedProcess[str]) -> str:
    """SLURM's own words, on one line, without the ``sbatch: error:`` prefixes."""
    text = " ".join((proc.stderr or proc.stdout or "").split())
    for tool in ("sbatch", "squeue", "scancel", "scontrol"):
        text = text.replace(f"{tool}: error: ", "")
    return text or f"exit status {proc.returncode}"


def base_id(job: str) -> str:
    return job.split("_", 1)[0]


@dataclass
class QueueView:
    """What SLURM said about some jobs: ``{"<array>_<i>": STATE}``.

    A job that is absent is no longer known to SLURM.  ``unreachable`` holds the
    reason when SLURM could not be asked; then nothing can be concluded.
    """

    states: dict[str, str] = field(default_factory=dict)
    unreachable: str | None = None

    def state(self, job: str) -> str | None:
        return self.states.get(job)

    def gone(self, job: str) -> bool:
        """True when the job certainly runs no more (finished or forgotten)."""
        if self.unreachable is not None:
            return False
        state = self.states.get(job)
        return state is None or state.split()[0] in FINISHED_STATES


def query(jobs: Iterable[str]) -> QueueView:
    """One ``squeue`` call (per 500 arrays) for the state of every task in ``jobs``."""
    bases = sorted({base_id(j) for j in jobs if j})
    view = QueueView()
    if not bases:
        return view
    try:
        for start in range(0, len(bases), 500):
            chunk = bases[start : start + 500]
            proc = _call(["squeue", "-h", "-r", "-t", "all", "-o", "%i %T", "-j", ",".join(chunk)])
            if proc.returncode != 0:
                if "Invalid job id" in proc.stderr:
                    continue  # asked about one array only, and SLURM forgot it
                view.unreachable = f"squeue failed: {_message(proc)}"
                return view
            view.states.update(parse_squeue(proc.stdout))
    except ExecutorError as exc:
        view.unreachable = exc.message
    return view


def parse_squeue(text: str) -> dict[str, str]:
    """``{job: STATE}`` from ``squeue -h -r -o '%i %T'`` lines."""
    states: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 2 and "[" not in parts[0]:
            states[parts[0]] = parts[1]
    return states


def queue_entry_gone(attempt: dict[str, Any]) -> bool:
    """Whether the SLURM job of a queued attempt has left the queue.

    Unknown (no ``squeue``, controller unreachable) counts as not gone, so a
    queued run is never started twice.
    """
    job = attempt.get("scheduler_job_id")
    if not job:
        return True
    return query([str(job)]).gone(str(job))


def scancel(jobs: Sequence[str]) -> None:
    """Cancel ``jobs`` (one call); jobs that already ended are not an error."""
    if not jobs:
        return
    proc = _call(["scancel", *jobs])
    if proc.returncode == 0:
        return
    errors = [line for line in proc.stderr.splitlines() if line.strip()]
    if errors and all(any(e in line for e in _PER_JOB_ERRORS) for line in errors):
        return
    raise ExecutorError(
        f"scancel failed: {_message(proc)}", "Is the SLURM controller up? Try `scontrol ping`."
    )


def sbatch_held(script: str) -> str:
    """Submit ``script`` (on stdin) held; the job id SLURM gave it."""
    proc = _call(["sbatch", "--parsable", "--hold"], stdin=script)
    job_id = proc.stdout.strip().split(";", 1)[0]
    if proc.returncode != 0 or not job_id.isdigit():
        raise ExecutorError(
            f"sbatch refused the job array: {_message(proc)}",
            "Nothing was queued. Check the #SBATCH options (`--dry-run` prints the script) "
            "and that the controller answers (`scontrol ping`).",
        )
    return job_id


def release(job_id: str) -> None:
    """``scontrol release`` a held job (array): its tasks may start."""
    proc = _call(["scontrol", "release", job_id])
    if proc.returncode != 0:
        raise ExecutorError(
            f"scontrol release {job_id} failed: {_message(proc)}",
            "The array was cancelled and its runs recorded cancelled; submit again.",
        )
