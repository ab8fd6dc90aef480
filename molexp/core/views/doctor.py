"""`molexp doctor`: every problem in a workspace, and the few safe fixes.

:func:`check` walks the whole workspace and reads everything: the workspace,
project and experiment definitions, every run directory and its ``run.json``
(unreadable, malformed, newer schema, id that does not match its directory or
its parameters, missing), run locks whose owner is gone, abandoned
``.lock.break`` guards, runs recorded ``running``/``queued`` whose owner is gone,
symlinks that lead out of the workspace, temporary files (``.tmp-*``) left
by a writer that crashed, and recorded run inputs whose asset is missing
(dangling lineage).

Without ``fix`` it writes nothing.  With ``fix`` it only does what is safe:
it removes stale locks and guards and old temporary files, and marks runs whose
owner is gone ``interrupted`` (under the run's lock, through
:func:`molexp.core.execution.lifecycle.close_stale`, exactly as the next ``molexp run``
would).  It never deletes a record, and never rewrites one to "repair" it.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from molexp.core.execution.lifecycle import close_stale
from molexp.core.records.runs import (
    ACTIVE,
    RUN_FILE,
    Run,
    missing_record,
    observe,
    validate_record,
)
from molexp.core.records.workspace import (
    EXPERIMENT_FILE,
    PROJECT_FILE,
    Experiment,
    Project,
    Workspace,
)
from molexp.core.slurm import scheduler as slurm
from molexp.core.store import files as store
from molexp.core.store import lock as locks
from molexp.errors import MolexpError, SchemaVersionError

TEMP_AGE = 60.0  # seconds: a younger temporary file may belong to a live writer
BREAK_AGE = 30.0  # seconds: lock.py treats an older .lock.break as abandoned

# Problem kinds (stable: they appear in `doctor --json`).
UNREADABLE = "unreadable"  # a record or definition that cannot be used
NEWER_SCHEMA = "newer-schema"  # written by a newer molexp
MISSING = "missing"  # a run directory without run.json, a folder without its definition
OUTSIDE = "outside"  # a symlink leading out of the workspace
STALE_LOCK = "stale-lock"  # a run lock whose owner is gone
STALE_BREAK = "stale-break"  # an abandoned .lock.break guard
INTERRUPTED = "interrupted"  # recorded running/queued, owner gone
TEMP_FILE = "temp-file"  # a .tmp-* file left by a crashed writer
DANGLING = "dangling-input"  # a run's recorded input whose asset is missing (SPEC §17)


@dataclass
class Problem:
    """One thing wrong in the workspace."""

    kind: str
    path: Path
    message: str
    hint: str = ""
    fixable: bool = False
    fixed: bool = False

    def relpath(self, root: Path) -> str:
        """The path relative to the workspace ``root`` (as shown to people)."""
        try:
            return str(self.path.relative_to(root))
        except ValueError:
            return str(self.path)

    def to_json(self, root: Path) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "path": str(self.path),
            "relpath": self.relpath(root),
            "message": self.message,
            "hint": self.hint,
            "fixable": self.fixable,
            "fixed": self.fixed,
        }


@dataclass
class Report:
    """What :func:`check` found (and fixed)."""

    root: Path
    problems: list[Problem] = field(default_factory=list)
    projects: int = 0
    experiments: int = 0
    runs: int = 0

    @property
    def remaining(self) -> list[Problem]:
        return [p for p in self.problems if not p.fixed]

    @property
    def fixed(self) -> list[Problem]:
        return [p for p in self.problems if p.fixed]

    def to_json(self) -> dict[str, Any]:
        return {
            "workspace": str(self.root),
            "checked": {
                "projects": self.projects,
                "experiments": self.experiments,
                "runs": self.runs,
            },
            "problems": [p.to_json(self.root) for p in self.problems],
            "fixed": len(self.fixed),
            "remaining": len(self.remaining),
        }


def _record_problem(exc: MolexpError, path: Path) -> Problem:
    kind = NEWER_SCHEMA if isinstance(exc, SchemaVersionError) else UNREADABLE
    message = getattr(exc, "problem", None) or exc.message
    hint = exc.hint or "Inspect or restore the file."
    if kind == UNREADABLE and hint.endswith("`molexp doctor` lists every problem."):
        hint = "Inspect the file and restore it from a backup (molexp never rewrites it)."
    return Problem(kind, Path(getattr(exc, "path", path)), str(message), hint)


def _subdirs(directory: Path) -> list[Path]:
    """Directories in ``directory`` (hidden ones excluded), sorted; none if missing."""
    try:
        entries = list(os.scandir(directory))
    except (FileNotFoundError, NotADirectoryError):
        return []
    return sorted(Path(e.path) for e in entries if not e.name.startswith(".") and e.is_dir())


@dataclass
class _Walk:
    """The state of one `doctor` pass: what it may do and what it found."""

    ws: Workspace
    fix: bool
    now: float
    report: Report
    real_root: Path

    def add(self, problem: Problem) -> Problem:
        self.report.problems.append(problem)
        return problem


# -- one check per kind of problem ----------------------------------------------
# Each looks at one thing, adds what it finds to the report, and fixes only what
# is safe (when asked).  The walk below calls them in order.


def check_outside(w: _Walk, path: Path) -> bool:
    """OUTSIDE: whether ``path`` stays in the workspace (a symlink out is reported)."""
    if not path.is_symlink():
        return True
    real = path.resolve()
    if real == w.real_root or w.real_root in real.parents:
        return True
    w.add(
        Problem(
            OUTSIDE,
            path,
            f"is a symlink leading out of the workspace (to {real})",
            "molexp refuses to write through it: replace the link by a folder, "
            "or move the whole workspace.",
        )
    )
    return False


def check_definition_file(w: _Walk, folder: Path, name: str, kind: str) -> bool:
    """MISSING: whether ``folder`` has its definition file ``name``."""
    if (folder / name).is_file():
        return True
    if kind == "project":
        hint = (
            f"Restore it, create the project (`molexp project create {folder.name}`), "
            "or move the folder out of projects/."
        )
    else:
        hint = "Restore it from a backup, or move the folder out of experiments/."
    w.add(
        Problem(
            MISSING,
            folder / name,
            f"is missing: the folder is not a molexp {kind} and is ignored",
            hint,
        )
    )
    return False


def check_definition(w: _Walk, read: Callable[[], object], path: Path) -> None:
    """UNREADABLE / NEWER_SCHEMA: a definition that cannot be used."""
    try:
        read()
    except MolexpError as exc:
        w.add(_record_problem(exc, path))


def check_record(w: _Walk, exp: Experiment, run_dir: Path) -> dict[str, Any] | None:
    """MISSING / UNREADABLE / NEWER_SCHEMA: the run's record, if it can be used."""
    path = run_dir / RUN_FILE
    try:
        record = store.read_json_record(path, "run")
        validate_record(record, path, exp.project.name, exp.name)
        return record
    except FileNotFoundError:
        if missing_record(run_dir) is None:
            return None  # being created by its first attempt (or created since)
        if (run_dir / "attempts").exists():
            hint = (
                "Restore run.json from a backup, or move the run directory away "
                "(molexp will not start over on top of its logs)."
            )
        else:
            hint = (
                "Left by a crash before the record was written: `molexp run` "
                "creates it again, or remove the empty directory."
            )
        w.add(Problem(MISSING, path, "is missing (a run directory without a record)", hint))
    except MolexpError as exc:
        w.add(_record_problem(exc, path))
    return None


def check_inputs(w: _Walk, exp: Experiment, run_dir: Path, record: dict[str, Any]) -> None:
    """DANGLING: an asset the run recorded as an input that is not in the workspace."""
    from molexp.core.assets.lineage import missing_inputs

    for lost in missing_inputs(w.ws, f"{exp.ref}/{run_dir.name}", run_dir, record):
        digest = f", {lost.used.content_hash}" if lost.used.content_hash else ""
        w.add(
            Problem(
                DANGLING,
                run_dir / RUN_FILE,
                f"records input asset {lost.used.label}{digest}, which is missing "
                "(dangling lineage)",
                "Restore it: import the bundle it came with, or `molexp assets add "
                f"{lost.used.scope} {lost.used.name} PATH` with the same data.",
            )
        )


def check_break_guard(w: _Walk, run_dir: Path) -> None:
    """STALE_BREAK: an abandoned ``.lock.break`` guard (removed with ``fix``)."""
    guard = run_dir / locks.BREAK_NAME
    try:
        age = w.now - guard.lstat().st_mtime
    except FileNotFoundError:
        return
    if age <= BREAK_AGE:
        return
    problem = w.add(
        Problem(
            STALE_BREAK,
            guard,
            f"was left by a process that crashed while breaking a lock ({age:.0f}s ago)",
            "`molexp doctor --fix` removes it.",
            fixable=True,
        )
    )
    if w.fix:
        guard.unlink(missing_ok=True)
        problem.fixed = True


def check_stale_lock(w: _Walk, run_dir: Path) -> Problem | None:
    """STALE_LOCK: a run lock whose owner is gone (broken by :func:`repair_run`)."""
    state = locks.read_lock(run_dir)
    if state is None or not state.is_stale(w.now):
        return None
    return w.add(
        Problem(
            STALE_LOCK,
            state.path,
            f"is held by {state.describe()}, which is gone",
            "`molexp doctor --fix` (or the next `molexp run`) removes it.",
            fixable=True,
        )
    )


def check_owner_gone(w: _Walk, record: dict[str, Any], run_dir: Path) -> tuple[Problem, str] | None:
    """INTERRUPTED: a run recorded running/queued whose owner is gone."""
    status = str(record.get("status"))
    if status not in ACTIVE:
        return None
    reason: str | None
    if status == "running":
        seen, reason = observe(record, run_dir)
        if seen == status:
            return None
    else:  # queued on a scheduler: ask it (unknown counts as still queued)
        attempts = record.get("attempts") or []
        if not attempts or not slurm.queue_entry_gone(attempts[-1]):
            return None
        reason = "its scheduler job is no longer queued"
    reason = reason or "its owner is gone"
    problem = w.add(
        Problem(
            INTERRUPTED,
            run_dir / RUN_FILE,
            f"is recorded {status} but {reason}",
            "`molexp doctor --fix` (or the next `molexp run`) records how it ended.",
            fixable=True,
        )
    )
    return problem, reason


def repair_run(
    exp: Experiment,
    run_dir: Path,
    lock_problem: Problem | None,
    gone: tuple[Problem, str] | None,
) -> None:
    """Break a stale lock and close a run whose owner is gone, under the lock."""
    got = locks.try_acquire(run_dir, "doctor", root=exp.workspace.root)
    if not isinstance(got, locks.RunLock):
        return  # a live owner holds the run now: nothing is stale any more
    try:
        if lock_problem is not None:
            lock_problem.fixed = True
        if gone is not None:
            problem, reason = gone
            run = Run.load(exp, run_dir.name)
            if run.status in ACTIVE:
                close_stale(run, reason)
            problem.fixed = True
    finally:
        got.release()


def check_temp_files(w: _Walk) -> None:
    """TEMP_FILE: ``.tmp-*`` files and staging folders left by a crashed writer."""
    for path in _walk_temp(w.ws.root):
        try:
            age = w.now - _newest_mtime(path)
        except FileNotFoundError:
            continue  # its writer just finished
        if age <= TEMP_AGE:
            continue
        is_dir = path.is_dir() and not path.is_symlink()
        what = "folder (a staged asset or import)" if is_dir else "file"
        problem = w.add(
            Problem(
                TEMP_FILE,
                path,
                f"is a temporary {what} left by a writer that stopped ({age:.0f}s ago)",
                "`molexp doctor --fix` removes it (what it was replacing is intact).",
                fixable=True,
            )
        )
        if w.fix:
            if is_dir:
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
            problem.fixed = True


# -- the walk -------------------------------------------------------------------


def _through(w: _Walk, path: Path) -> _Walk:
    """The walk to continue below ``path``: the same one, or, past a symlink that
    leads out of the workspace (reported), one that reads on — so doctor counts
    what `ls` lists — but fixes nothing (molexp writes only inside)."""
    return w if check_outside(w, path) else replace(w, fix=False)


def _walk_projects(w: _Walk) -> None:
    check_definition(w, w.ws.definition, w.ws.definition_path)
    w = _through(w, w.ws.projects_dir)
    for proj_dir in _subdirs(w.ws.projects_dir):
        wp = _through(w, proj_dir)
        if not check_definition_file(wp, proj_dir, PROJECT_FILE, "project"):
            continue
        wp.report.projects += 1
        project = Project(wp.ws, proj_dir.name)
        check_definition(wp, project.definition, project.definition_path)
        exps_dir = proj_dir / "experiments"
        we = _through(wp, exps_dir)
        for exp_dir in _subdirs(exps_dir):
            _walk_experiment(we, project, exp_dir)


def _walk_experiment(w: _Walk, project: Project, exp_dir: Path) -> None:
    w = _through(w, exp_dir)
    if not check_definition_file(w, exp_dir, EXPERIMENT_FILE, "experiment"):
        return
    w.report.experiments += 1
    exp = Experiment(project, exp_dir.name)
    check_definition(w, exp.definition, exp.definition_path)
    w = _through(w, exp.runs_dir)
    for run_dir in _subdirs(exp.runs_dir):
        wr = _through(w, run_dir)
        wr.report.runs += 1
        record = check_record(wr, exp, run_dir)
        if record is not None:
            check_inputs(wr, exp, run_dir, record)
        check_break_guard(wr, run_dir)
        lock_problem = check_stale_lock(wr, run_dir)
        gone = check_owner_gone(wr, record, run_dir) if record is not None else None
        if wr.fix and (gone is not None or lock_problem is not None):
            repair_run(exp, run_dir, lock_problem, gone)


def _newest_mtime(path: Path) -> float:
    """The latest modification under ``path`` (a staging folder being filled is young)."""
    newest = path.lstat().st_mtime
    if path.is_dir() and not path.is_symlink():
        for directory, _, files in os.walk(path):
            for name in files:
                try:
                    newest = max(newest, os.lstat(os.path.join(directory, name)).st_mtime)
                except FileNotFoundError:
                    pass
    return newest


def _walk_temp(root: Path) -> Iterator[Path]:
    """``.tmp-*`` files and staging folders under ``root`` (symlinks not followed)."""
    for directory, dirs, files in os.walk(root):
        staged = sorted(d for d in dirs if d.startswith(store.TMP_PREFIX))
        dirs[:] = sorted(d for d in dirs if d != ".git" and not d.startswith(store.TMP_PREFIX))
        for name in staged:
            yield Path(directory) / name
        for name in sorted(files):
            if name.startswith(store.TMP_PREFIX):
                yield Path(directory) / name


def check(ws: Workspace, fix: bool = False, now: float | None = None) -> Report:
    """Every problem in ``ws``; with ``fix``, the safe ones are fixed (see module)."""
    w = _Walk(ws, fix, time.time() if now is None else now, Report(ws.root), ws.root.resolve())
    _walk_projects(w)
    check_temp_files(w)
    report = w.report
    report.problems.sort(key=lambda p: (str(p.path), p.kind))
    return report
