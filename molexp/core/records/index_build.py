"""Building missing run indexes side by side (:mod:`molexp.core.records.index`)."""

from __future__ import annotations

import os
from collections.abc import Collection
from pathlib import Path

from molexp.core.records.index import _header, enabled, index_path, scan_experiment


def _unbuilt(ws_root: Path, project: str, experiment: str) -> bool:
    """Whether an experiment has no index of this molexp's format (a quick look at
    its first line only; :func:`_load` checks the whole file)."""
    path = index_path(ws_root, project, experiment)
    if path is None:
        return False
    try:
        with open(path, "rb") as fh:
            head = fh.readline(200)
    except OSError:
        return True
    return not head.startswith(_header("").rstrip(b"\n"))


def _build(job: tuple[Path, str, str]) -> None:
    scan_experiment(*job)


def prebuild(ws_root: Path, experiments: Collection[tuple[str, str]]) -> None:
    """Build, side by side in a few processes, the indexes missing from a workspace
    (a first listing, or one after ``.molexp/`` was deleted: every record is read
    and validated, ~100 µs each, which is CPU work that spreads over cores).

    Only the index files are written: the listing itself then scans as always (and
    checks every entry), so what it shows does not depend on this having run."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    if not enabled() or (cores or 1) < 2 or len(experiments) < 2:
        return
    jobs = [(ws_root, p, e) for p, e in experiments if _unbuilt(ws_root, p, e)]
    if len(jobs) < 2:
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    try:
        context = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(min(cores or 1, 4, len(jobs)), mp_context=context) as pool:
            for _ in pool.map(_build, jobs, chunksize=max(1, len(jobs) // 16)):
                pass
    except Exception:  # noqa: BLE001 - best effort: the scan that follows reads what is missing
        return
