"""SLURM integration (SPEC §13): asking the scheduler about queued runs."""

from __future__ import annotations

import shutil
import subprocess
from typing import Any


def queue_entry_gone(attempt: dict[str, Any]) -> bool:
    """Whether the SLURM job of a queued attempt has left the queue.

    Unknown (no ``squeue``, controller unreachable) counts as not gone, so a
    queued run is never started twice.
    """
    job = attempt.get("scheduler_job_id")
    if not job:
        return True
    if shutil.which("squeue") is None:
        return False
    try:
        proc = subprocess.run(
            ["squeue", "-h", "-j", str(job), "-o", "%T"],
            capture_output=True, text=True, timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    if proc.returncode == 0:
        return not proc.stdout.strip()
    return "Invalid job id" in proc.stderr
