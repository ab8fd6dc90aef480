"""Where SLURM's files live in a workspace, and the cheap check the listings make."""

from __future__ import annotations

from pathlib import Path

SLURM_DIR = ".molexp/slurm"  # under the workspace: scripts, journals and task output
JOURNAL_DIR = f"{SLURM_DIR}/journal"  # unfinished submissions


def unfinished(ws_root: Path) -> bool:
    """Whether a submission left a journal (one directory listing): then the caller
    has :func:`molexp.core.slurm.journal.repair` settle it before it looks."""
    try:
        return any((ws_root / JOURNAL_DIR).iterdir())
    except OSError:
        return False
