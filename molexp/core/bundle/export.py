"""``molexp export``: write projects, experiments and runs to a bundle (SPEC §10, §17).

What travels: the definitions of every project and experiment involved, each
selected run's directory (record, attempts, logs, artifacts), the package lists
(``environments/<hash>.txt``) its attempts refer to, the assets of each
exported scope, and the assets each run used as inputs, wherever they live,
with the definitions of their scopes (SPEC §17).  An input whose asset is gone
is named in the report's ``skipped`` (dangling lineage).  Locks and temporary
files never travel; a symlink that points outside its own run or asset
directory, or anything that is not a directory, regular file or symlink, is
left out and named in the report.  A corrupt run
record is left out too (the caller exits 3 after writing the rest, like
``ls``); a corrupt definition refuses the whole export.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from molexp._version import __version__
from molexp.core.assets.lineage import input_dir, inputs_of
from molexp.core.bundle.archive import open_writer
from molexp.core.bundle.manifest import (
    ASSET_FILE,
    ASSETS,
    ENVIRONMENTS,
    HEADER,
    MANIFEST,
    build_manifest,
    header,
    link_inside,
    skip_name,
)
from molexp.core.model.names import is_valid_name
from molexp.core.records import environments
from molexp.core.records.refs import Ref, resolve
from molexp.core.records.runs import RUN_FILE, load_record, missing_record
from molexp.core.records.workspace import Experiment, Project, Workspace
from molexp.core.store import files as store
from molexp.core.store.lock import hostname
from molexp.errors import MolexpError, UsageError


@dataclass
class ExportReport:
    """What ``export`` wrote: counts for the user, problems to name on stderr."""

    refs: list[str]
    runs: list[str] = field(default_factory=list)
    files: int = 0
    bytes: int = 0
    skipped: list[dict[str, str]] = field(default_factory=list)
    problems: list[MolexpError] = field(default_factory=list)
    output: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "bundle": self.output,
            "refs": self.refs,
            "runs": self.runs,
            "files": self.files,
            "bytes": self.bytes,
            "skipped": self.skipped,
            "problems": [str(p).splitlines()[0] for p in self.problems],
        }


# --- what to export -------------------------------------------------------------


@dataclass
class _Selection:
    """Workspace-relative paths to export, grouped by what they are."""

    definitions: set[str] = field(default_factory=set)  # project.yaml / experiment.yaml
    environments: set[str] = field(default_factory=set)  # environments/<hash>.txt
    trees: set[str] = field(default_factory=set)  # run and asset directories
    runs: list[str] = field(default_factory=list)


def _rel(ws: Workspace, path: Path) -> str:
    return path.relative_to(ws.root).as_posix()


def _select_experiment(
    ws: Workspace, exp: Experiment, sel: _Selection, report: ExportReport, run_ids: Iterable[str]
) -> None:
    exp.definition()  # a definition that breaks the rules is refused, naming the file
    sel.definitions.add(_rel(ws, exp.project.definition_path))
    sel.definitions.add(_rel(ws, exp.definition_path))
    for run_id in run_ids:
        run_dir = exp.runs_dir / run_id
        try:
            record = load_record(run_dir / RUN_FILE, exp.project.name, exp.name)
        except FileNotFoundError:
            problem = missing_record(run_dir)  # (None: being created, not a run yet)
            if problem is not None:
                report.problems.append(problem)
            continue
        except MolexpError as exc:
            report.problems.append(exc)
            continue
        sel.environments.update(
            f"{ENVIRONMENTS}/{digest}.txt" for digest in environments.referenced([record])
        )
        sel.trees.add(_rel(ws, run_dir))
        sel.runs.append(f"{exp.ref}/{run_id}")
        _select_inputs(ws, f"{exp.ref}/{run_id}", run_dir, record, sel, report)


def _select_inputs(
    ws: Workspace,
    run: str,
    run_dir: Path,
    record: dict[str, Any],
    sel: _Selection,
    report: ExportReport,
) -> None:
    """The assets a run used as inputs, wherever they live, with the definitions
    of their scopes, so the run can be understood elsewhere (SPEC §17).  An input
    whose asset is gone is named in the report (dangling lineage)."""
    for used in inputs_of(run_dir, record):
        folder = input_dir(ws, used)
        if folder is None or folder.is_symlink() or not (folder / ASSET_FILE).is_file():
            report.skipped.append(
                {
                    "path": f"{used.scope}:{used.name}",
                    "reason": f"an input of run {run}, missing from the workspace "
                    "(dangling lineage)",
                }
            )
            continue
        parts = _rel(ws, folder).split("/")
        if parts[0] == "projects":
            project = Project(ws, parts[1])
            project.definition()
            sel.definitions.add(_rel(ws, project.definition_path))
            if parts[2] == "experiments":
                owner = Experiment(project, parts[3])
                owner.definition()
                sel.definitions.add(_rel(ws, owner.definition_path))
        sel.trees.add(_rel(ws, folder))


def _select_assets(ws: Workspace, scope_dir: Path, sel: _Selection) -> None:
    try:
        entries = list(os.scandir(scope_dir / ASSETS))
    except (FileNotFoundError, NotADirectoryError):
        return
    for entry in entries:
        complete = os.path.isfile(os.path.join(entry.path, ASSET_FILE))
        if entry.is_dir(follow_symlinks=False) and is_valid_name(entry.name) and complete:
            sel.trees.add(_rel(ws, Path(entry.path)))


def _select(ws: Workspace, refs: Iterable[Ref], report: ExportReport) -> _Selection:
    sel = _Selection()
    for ref in refs:
        if ref.kind == "workspace":
            _select_assets(ws, ws.root, sel)
            projects = ws.projects()
        elif ref.kind == "project":
            assert ref.project is not None
            projects = [ref.project]
        else:
            projects = []
        for proj in projects:
            proj.definition()
            sel.definitions.add(_rel(ws, proj.definition_path))
            _select_assets(ws, proj.path, sel)
            for exp in proj.experiments():
                _select_experiment(ws, exp, sel, report, exp.run_ids())
                _select_assets(ws, exp.path, sel)
        if ref.kind == "experiment":
            assert ref.experiment is not None
            exp = ref.experiment
            exp.project.definition()
            _select_experiment(ws, exp, sel, report, exp.run_ids())
            _select_assets(ws, exp.path, sel)
        elif ref.kind == "run":
            assert ref.experiment is not None and ref.run_id is not None
            ref.experiment.project.definition()
            _select_experiment(ws, ref.experiment, sel, report, [ref.run_id])
    sel.runs = sorted(set(sel.runs))
    return sel


def _walk_tree(
    ws: Workspace, top: str, report: ExportReport
) -> Iterator[tuple[str, os.stat_result]]:
    """``(relative path, lstat)`` of every directory, file and inside-pointing
    symlink under ``top``; other entries are skipped and noted in the report."""
    root = ws.root / top
    stack = [root]
    while stack:
        directory = stack.pop()
        try:
            entries = sorted(os.scandir(directory), key=lambda e: e.name)
        except FileNotFoundError:
            continue
        for entry in entries:
            if skip_name(entry.name):
                continue
            rel = _rel(ws, Path(entry.path))
            st = entry.stat(follow_symlinks=False)
            if stat.S_ISDIR(st.st_mode):
                yield rel, st
                stack.append(Path(entry.path))
            elif stat.S_ISREG(st.st_mode):
                yield rel, st
            elif stat.S_ISLNK(st.st_mode):
                target = os.readlink(entry.path)
                if link_inside(rel, target, top):
                    yield rel, st
                else:
                    report.skipped.append(
                        {"path": rel, "reason": f"symlink to {target} (outside its directory)"}
                    )
            else:
                report.skipped.append({"path": rel, "reason": "not a regular file"})


# --- writing --------------------------------------------------------------------


def export_bundle(ws: Workspace, refs: list[Ref], out: IO[bytes]) -> ExportReport:
    """Write a bundle of ``refs`` to the binary stream ``out``.

    Corrupt run records are left out and returned as problems (the caller exits
    3 after writing the rest, like ``ls``); a corrupt definition refuses it all.
    """
    report = ExportReport(refs=[r.text for r in refs])
    sel = _select(ws, refs, report)
    with open_writer(out, ws.root) as writer:
        writer.add_json(HEADER, header(__version__))
        for rel in sorted(sel.definitions):
            writer.add_file(rel, os.stat(ws.root / rel))
        for rel in sorted(sel.environments):
            try:
                writer.add_file(rel, os.stat(ws.root / rel))
            except FileNotFoundError:
                report.skipped.append({"path": rel, "reason": "missing (a run refers to it)"})
        for top in sorted(sel.trees):
            writer.add_dir(top)
            for rel, st in _walk_tree(ws, top, report):
                writer.add(rel, st)
        report.runs = sel.runs
        report.files = len(writer.files)
        report.bytes = writer.bytes
        manifest = build_manifest(
            molexp_version=__version__,
            created_at=store.now_iso(),
            source={"workspace": ws.name, "root": str(ws.root), "host": hostname()},
            refs=report.refs,
            runs=sel.runs,
            dirs=writer.dirs,
            files=writer.files,
            links=writer.links,
            skipped=report.skipped,
        )
        writer.add_json(MANIFEST, manifest)
    return report


def export_to_file(ws: Workspace, refs: list[Ref], path: Path) -> ExportReport:
    """:func:`export_bundle` into ``path``, atomically (``.tmp-*`` then rename)."""
    path = Path(os.path.abspath(path))
    if not path.parent.is_dir():
        raise UsageError(f"cannot write {path}: {path.parent} is not a directory")
    fd, tmp = store._open_temp(path.parent, path.name)
    try:
        with os.fdopen(fd, "wb") as fh:
            report = export_bundle(ws, refs, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        if exc.filename is not None:
            raise
        # Writing the bundle failed (a full disk): say where, in one line.
        raise OSError(exc.errno, exc.strerror, str(path)) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    report.output = str(path)
    return report


def export_refs(ws: Workspace, refs: Sequence[str], out: Path | IO[bytes]) -> ExportReport:
    """``molexp export REF... -o OUT``: resolve each reference (unknown ones are
    refused before anything is written), then write the bundle to the file
    ``out`` atomically, or to the binary stream ``out`` as it is made."""
    targets = [resolve(ws, ref) for ref in refs]
    if isinstance(out, Path):
        return export_to_file(ws, targets, out)
    return export_bundle(ws, targets, out)
