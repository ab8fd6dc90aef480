"""The submission journal (SPEC §13 "No orphans"): what a submission did so far.

Each submission keeps ``<workspace>/.molexp/slurm/journal/<token>/`` while it
runs: ``log.jsonl`` (appended and fsynced: the runs it means to queue, each
array sbatch accepted, the release) and the submitter's ``.lock`` (host, pid,
heartbeat: the run lock's primitive).  Every array is submitted held with
``--comment=molexp:<token>``, so even an array whose id the submitter died
before writing down is found again.  A finished submission removes its folder.

A folder whose submitter is gone (killed by SIGKILL, its machine lost) is
repaired by the next molexp command that looks (``ls``, ``show``, ``run
--executor slurm``, ``cancel``): a submission that had not released its
arrays is undone (arrays cancelled, the attempts it queued recorded
``cancelled``); one that had, is released again.  Either way no run stays
``queued`` behind a held or unknown job.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from molexp.core.execution import lifecycle
from molexp.core.records.runs import Run
from molexp.core.slurm import scheduler
from molexp.core.slurm.paths import JOURNAL_DIR
from molexp.core.store import files as store
from molexp.core.store import lock as locks
from molexp.errors import MolexpError

if TYPE_CHECKING:
    from molexp.core.records.workspace import Workspace

LOG = "log.jsonl"


def comment_for(token: str) -> str:
    return f"molexp:{token}"


@dataclass
class Journal:
    """One submission's journal, as its submitter writes it."""

    path: Path
    token: str
    lock: locks.RunLock | None = None
    arrays: list[str] = field(default_factory=list)

    @classmethod
    def open(cls, ws_root: Path, refs: Sequence[str]) -> Journal:
        """Start a journal for a submission of the runs ``refs`` (and hold its lock)."""
        token = f"{time.strftime('%Y%m%dT%H%M%S')}-{secrets.token_hex(4)}"
        path = ws_root / JOURNAL_DIR / token
        store.make_dirs(ws_root, path)
        got = locks.try_acquire(path, "submit", root=ws_root)
        assert isinstance(got, locks.RunLock)  # a fresh folder: nobody else holds it
        got.start_heartbeat()
        journal = cls(path, token, got)
        journal._append({"refs": list(refs), "comment": comment_for(token)})
        return journal

    @property
    def comment(self) -> str:
        return comment_for(self.token)

    def _append(self, entry: dict[str, Any]) -> None:
        with open(self.path / LOG, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(entry) + "\n")
            fh.flush()
            os.fsync(fh.fileno())

    def array(self, job_id: str) -> None:
        """sbatch accepted array ``job_id`` (held)."""
        self.arrays.append(job_id)
        self._append({"array": job_id})

    def releasing(self) -> None:
        """Every run is recorded: the arrays are about to be released."""
        self._append({"release": self.arrays})

    def close(self) -> None:
        """The submission is complete (or undone): the journal goes, its log first
        (a journal without a log is one being born or dying: :func:`repair` leaves it)."""
        (self.path / LOG).unlink(missing_ok=True)
        shutil.rmtree(self.path, ignore_errors=True)
        if self.lock is not None:
            self.lock.release()


def read(path: Path) -> tuple[list[str], str, list[str], bool]:
    """``(refs, comment, arrays, released)`` from a journal's log (a torn last line ignored)."""
    refs: list[str] = []
    comment = ""
    arrays: list[str] = []
    released = False
    try:
        text = (path / LOG).read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        text = ""
    for line in text.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if not isinstance(entry, dict):
            continue
        refs = entry.get("refs", refs)
        comment = entry.get("comment", comment)
        if "array" in entry:
            arrays.append(str(entry["array"]))
        if "release" in entry:
            released = True
    return refs, comment, arrays, released


def undo(
    ws: Workspace, refs: Iterable[str], comment: str, arrays: Sequence[str], reason: str
) -> None:
    """Cancel a submission's arrays (those noted and those its comment finds) and
    record the attempts it queued ``cancelled``."""
    found = set(arrays)
    try:
        found.update(scheduler.jobs_with_comment(comment))
    except MolexpError:
        pass
    scheduler.scancel(sorted(found))
    close_queued(ws, refs, found, reason)


def close_queued(ws: Workspace, refs: Iterable[str], arrays: set[str], reason: str) -> None:
    """Record ``cancelled`` each run of ``refs`` still queued for a task of ``arrays``."""
    from molexp.core.records.refs import resolve

    for ref in refs:
        try:
            target = resolve(ws, ref)
            if target.experiment is None or target.run_id is None:
                continue
            run = Run.load(target.experiment, target.run_id)
        except (FileNotFoundError, MolexpError):
            continue
        last = lifecycle.latest(run.record)
        job = str(last.get("scheduler_job_id") or "")
        if run.status == "queued" and scheduler.base_id(job) in arrays:
            lifecycle.close_attempt(run, last.get("n"), "cancelled", reason, "cancelled")


def repair(ws: Workspace) -> int:
    """Settle the journals whose submitter is gone; how many were settled.

    Cheap when there is nothing to do (one directory listing).  A journal whose
    submitter is alive, or that another process is repairing, is left alone; a
    workspace that cannot be written is left as it is (the next writer repairs).
    """
    root = ws.root / JOURNAL_DIR
    try:
        entries = sorted(root.iterdir())
    except OSError:
        return 0
    settled = 0
    for path in entries:
        owner = locks.read_lock(path)
        if owner is not None and not owner.is_stale():
            continue
        try:
            got = locks.try_acquire(path, "repair", root=ws.root)
        except OSError:
            continue
        if not isinstance(got, locks.RunLock):
            continue
        try:
            refs, comment, arrays, released = read(path)
            if not comment:  # being created or removed right now, or long dead
                if time.time() - path.stat().st_mtime > locks.heartbeat_timeout():
                    shutil.rmtree(path, ignore_errors=True)
                continue
            who = f"{owner.describe()}" if owner is not None else "its submitter"
            if released:
                try:
                    scheduler.release(arrays)
                except MolexpError:
                    pass  # released already (the usual case), or gone
            else:
                undo(
                    ws,
                    refs,
                    comment,
                    arrays,
                    f"its submission was interrupted before SLURM could start it ({who} is gone)",
                )
            shutil.rmtree(path, ignore_errors=True)
            settled += 1
        except (OSError, MolexpError):
            continue  # SLURM unreachable, the workspace read-only: try again next time
        finally:
            got.release()
    return settled
