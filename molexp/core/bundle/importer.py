"""``molexp import``: add a bundle's records to a workspace (SPEC §10, §17).

Importing never trusts the archive.  Its members are written by molexp itself
into a staging directory (``.tmp-import-*`` inside the workspace, or a
temporary directory for ``--dry-run``) by :func:`archive.extract`, checked
against the manifest, and every record is read back through the same
validating readers as ``ls`` (schema version, id matches directory, derived id
matches parameters).  Only then is anything placed, each run (or asset)
directory by an atomic rename.  What already exists is never replaced: an
identical copy is skipped, a different one is reported as a conflict and kept
as it is.
"""

from __future__ import annotations

import json
import os
import shutil
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from molexp.core.assets import Scope, load_asset
from molexp.core.bundle import archive
from molexp.core.bundle.manifest import (
    ASSET_FILE,
    ASSETS,
    NotABundle,
    Refused,
    check_manifest,
    skip_name,
    unit_of,
)
from molexp.core.model.identity import normalise
from molexp.core.records import environments
from molexp.core.records.runs import RUN_FILE, load_record
from molexp.core.records.workspace import (
    EXPERIMENT_FILE,
    PROJECT_FILE,
    Experiment,
    Project,
    Workspace,
)
from molexp.core.store import files as store
from molexp.errors import CorruptRecordError, MolexpError, UsageError, WorkspaceError


@dataclass
class Item:
    """One thing an import placed, found already there, or refused."""

    kind: str  # project | experiment | run | asset | file
    ref: str
    path: str
    reason: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "ref": self.ref, "path": self.path}
        if self.reason is not None:
            out["reason"] = self.reason
        return out


@dataclass
class ImportReport:
    bundle: str
    refs: list[str] = field(default_factory=list)
    source: dict[str, Any] = field(default_factory=dict)
    imported: list[Item] = field(default_factory=list)
    unchanged: list[Item] = field(default_factory=list)
    conflicts: list[Item] = field(default_factory=list)
    dry_run: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "bundle": self.bundle,
            "refs": self.refs,
            "source": self.source,
            "dry_run": self.dry_run,
            "imported": [i.to_json() for i in self.imported],
            "unchanged": [i.to_json() for i in self.unchanged],
            "conflicts": [i.to_json() for i in self.conflicts],
        }


# --- checking what was staged ---------------------------------------------------


def _units(staged: archive.Staged) -> dict[str, set[str]]:
    """Every staged path grouped by the unit (definition, run or asset
    directory) it belongs to."""
    units: dict[str, set[str]] = {
        k: set() for k in ("dir", "project", "experiment", "environment", "run", "asset")
    }
    for path in (*staged.files, *staged.links, *staged.dirs):
        kind, unit = unit_of(path)
        units[kind].add(unit)
    return units


def _validate_staged(staged_ws: Workspace, units: dict[str, set[str]]) -> None:
    """Read every staged record through the validating readers."""
    for unit in sorted(units["project"]):
        Project(staged_ws, unit.split("/")[1]).definition()
    for unit in sorted(units["experiment"]):
        parts = unit.split("/")
        if f"projects/{parts[1]}/{PROJECT_FILE}" not in units["project"]:
            raise Refused(f"{unit} comes without its project's {PROJECT_FILE}")
        Experiment(Project(staged_ws, parts[1]), parts[3]).definition()
    for unit in sorted(units["run"]):
        parts = unit.split("/")
        exp_def = f"projects/{parts[1]}/experiments/{parts[3]}/{EXPERIMENT_FILE}"
        if exp_def not in units["experiment"]:
            raise Refused(f"{unit} comes without its experiment's {EXPERIMENT_FILE}")
        path = staged_ws.root / unit / RUN_FILE
        if not path.is_file() or path.is_symlink():
            raise Refused(f"{unit} has no {RUN_FILE}")
        load_record(path, parts[1], parts[3])
    for unit in sorted(units["environment"]):
        import xxhash

        path = staged_ws.root / unit
        if path.is_symlink() or not path.is_file():
            raise Refused(f"{unit} is not a regular file")
        if xxhash.xxh3_128_hexdigest(path.read_bytes()) + ".txt" != path.name:
            raise Refused(f"{unit}: its content does not have the hash it is named by")
    for unit in sorted(units["asset"]):
        parts = unit.split("/")
        if parts[0] == ASSETS:
            scope = Scope(staged_ws)
        elif parts[2] == ASSETS:
            scope = Scope(staged_ws, parts[1])
        else:
            scope = Scope(staged_ws, parts[1], parts[3])
        if not (staged_ws.root / unit / ASSET_FILE).is_file():
            raise Refused(f"{unit} has no {ASSET_FILE}")
        load_asset(scope, parts[-1])


# --- comparing and placing ------------------------------------------------------


def _ref_of(kind: str, unit: str) -> str:
    parts = unit.split("/")
    if kind == "project":
        return parts[1]
    if kind == "experiment":
        return f"{parts[1]}/{parts[3]}"
    if kind == "run":
        return f"{parts[1]}/{parts[3]}/{parts[5]}"
    if kind == "environment":
        return parts[1].removesuffix(".txt")
    # an asset: SCOPE:NAME, SCOPE as `molexp assets` spells it
    if parts[0] == ASSETS:
        scope = "."
    elif parts[2] == ASSETS:
        scope = parts[1]
    else:
        scope = f"{parts[1]}/{parts[3]}"
    return f"{scope}:{parts[-1]}"


def _definition_for_compare(record: dict[str, Any]) -> dict[str, Any]:
    """A definition without what legitimately differs between two copies."""
    return {
        k: normalise(v)
        for k, v in record.items()
        if k not in ("created_at", "git", "schema_version", "tags", "notes")
    }


def _same_file(a: Path, b: Path) -> bool:
    try:
        if a.is_symlink() or b.is_symlink():
            return a.is_symlink() and b.is_symlink() and os.readlink(a) == os.readlink(b)
        if a.stat().st_size != b.stat().st_size:
            return False
        with open(a, "rb") as fa, open(b, "rb") as fb:
            while True:
                ca, cb = fa.read(archive.CHUNK), fb.read(archive.CHUNK)
                if ca != cb:
                    return False
                if not ca:
                    return True
    except OSError:
        return False


def _tree_files(top: Path) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for dirpath, dirnames, filenames in os.walk(top):
        base = Path(dirpath)
        for name in [*filenames, *(d for d in dirnames if (base / d).is_symlink())]:
            if not skip_name(name):
                out[(base / name).relative_to(top).as_posix()] = base / name
    return out


def _place_file(root: Path, src: Path, dest: Path) -> bool:
    """Link ``src`` to ``dest`` (inside ``root``) unless ``dest`` exists; return
    whether it was placed."""
    store.make_dirs(root, dest.parent, durable=True)
    store.ensure_inside(root, dest)
    try:
        if src.is_symlink():
            os.symlink(os.readlink(src), dest)
        else:
            os.link(src, dest)
    except FileExistsError:
        return False
    return True


def _run_difference(mine: dict[str, Any], theirs: dict[str, Any]) -> str:
    a, b = len(mine.get("attempts") or []), len(theirs.get("attempts") or [])
    return (
        f"its record differs from the workspace's (here: {mine.get('status')}, {a} attempt(s); "
        f"bundle: {theirs.get('status')}, {b} attempt(s)); kept the workspace's"
    )


class _Importer:
    def __init__(self, ws: Workspace, staging: Path, report: ImportReport) -> None:
        self.ws = ws
        self.staging = staging
        self.report = report
        self.dry_run = report.dry_run
        self.staged_ws = Workspace(staging)

    def _conflict(self, kind: str, unit: str, reason: str) -> None:
        self.report.conflicts.append(Item(kind, _ref_of(kind, unit), unit, reason))

    def definition(self, kind: str, unit: str) -> bool:
        """Place or compare a project/experiment definition; False on conflict."""
        parts = unit.split("/")
        ws_proj, st_proj = Project(self.ws, parts[1]), Project(self.staged_ws, parts[1])
        if kind == "project":
            ours, theirs = ws_proj, st_proj
        else:
            ours, theirs = Experiment(ws_proj, parts[3]), Experiment(st_proj, parts[3])  # type: ignore[assignment]
        item = Item(kind, _ref_of(kind, unit), unit)
        dest, src = self.ws.root / unit, self.staging / unit
        if not dest.exists():
            if self.dry_run:
                self.report.imported.append(item)
                return True
            if _place_file(self.ws.root, src, dest):
                store.fsync_dir(dest.parent)
                self.report.imported.append(item)
                return True
        mine = _definition_for_compare(ours.definition())
        other = _definition_for_compare(theirs.definition())
        if mine == other:
            self.report.unchanged.append(item)
            return True
        keys = sorted(k for k in set(mine) | set(other) if mine.get(k) != other.get(k))
        self._conflict(
            kind,
            unit,
            f"{dest.name} differs from the workspace's ({', '.join(keys)}); kept the workspace's",
        )
        return False

    def environment(self, unit: str) -> None:
        """Place a package list (content-addressed: one already there is the same)."""
        src, dest = self.staging / unit, self.ws.root / unit
        item = Item("environment", _ref_of("environment", unit), unit)
        if dest.exists():
            if _same_file(src, dest):
                self.report.unchanged.append(item)
            else:
                self._conflict("environment", unit, f"{dest} differs from the bundle's copy")
            return
        if not self.dry_run:
            _place_file(self.ws.root, src, dest)
        self.report.imported.append(item)

    def tree(self, kind: str, unit: str) -> None:
        """Place a run or asset directory, or compare it with the existing one."""
        src, dest = self.staging / unit, self.ws.root / unit
        item = Item(kind, _ref_of(kind, unit), unit)
        if not dest.exists():
            if self.dry_run:
                self.report.imported.append(item)
                return
            store.make_dirs(self.ws.root, dest.parent, durable=True)
            store.ensure_inside(self.ws.root, dest)
            try:
                os.rename(src, dest)
            except OSError:
                pass  # created meanwhile: compare below
            else:
                store.fsync_dir(dest.parent)
                self.report.imported.append(item)
                return
        if kind == "run":
            theirs = json.loads((src / RUN_FILE).read_bytes())
            try:
                mine = store.read_json_record(dest / RUN_FILE, "run")
            except FileNotFoundError:
                self._conflict(kind, unit, "the run directory exists without a run.json")
                return
            except MolexpError as exc:
                self._conflict(kind, unit, f"the workspace's record cannot be read: {exc.message}")
                return
            if mine != theirs:
                self._conflict(kind, unit, _run_difference(mine, theirs))
                return
        if kind == "asset":
            self._same_asset(unit, src, dest, item)
            return
        ours, others = _tree_files(dest), _tree_files(src)
        differ = sorted(p for p in others if p in ours and not _same_file(ours[p], others[p]))
        if kind == "asset" and set(ours) != set(others):
            differ = differ or sorted(set(ours) ^ set(others))
        if differ:
            self._conflict(kind, unit, f"{differ[0]} differs from the workspace's copy")
            return
        missing = [p for p in others if p not in ours]
        if missing and not self.dry_run:
            for rel in missing:
                _place_file(self.ws.root, others[rel], dest / rel)
        (self.report.imported if missing else self.report.unchanged).append(item)

    def _same_asset(self, unit: str, src: Path, dest: Path, item: Item) -> None:
        """An asset already in the workspace: kept when it holds the same content
        (same ``content_hash``, whatever its description or date), a conflict
        (exit 3) when it holds other content (SPEC §17)."""
        try:
            mine = store.read_yaml_record(dest / ASSET_FILE, "asset").get("content_hash")
        except FileNotFoundError:
            self._conflict("asset", unit, f"the asset folder exists without its {ASSET_FILE}")
            return
        except MolexpError as exc:
            self._conflict("asset", unit, f"the workspace's record cannot be read: {exc.message}")
            return
        theirs = store.read_yaml_record(src / ASSET_FILE, "asset").get("content_hash")
        if mine != theirs:
            self._conflict(
                "asset",
                unit,
                f"the workspace holds other content under this name (here: {mine}; "
                f"bundle: {theirs}); kept the workspace's",
            )
            return
        self.report.unchanged.append(item)


def _check_destinations(ws: Workspace, units: dict[str, set[str]]) -> None:
    """Before anything is placed: every destination stays inside the workspace (no
    ``projects``, ``runs`` or ``assets`` folder linked out of it), and no record it
    lands under is one this molexp cannot read (a newer ``schema_version``)."""
    ws.check_writable()
    for kind in ("project", "experiment", "run", "asset"):
        for unit in sorted(units[kind]):
            store.ensure_inside(ws.root, ws.root / unit)
            parts = unit.split("/")
            if parts[0] != "projects":
                continue
            project = Project(ws, parts[1])
            if project.exists():
                project.check_writable()
            if len(parts) > 4 and parts[2] == "experiments":
                experiment = Experiment(project, parts[3])
                if experiment.exists():
                    experiment.check_writable()


def _place(ws: Workspace, staging: Path, units: dict[str, set[str]], report: ImportReport) -> None:
    if not report.dry_run:
        _check_destinations(ws, units)
    imp = _Importer(ws, staging, report)
    # A project whose definition differs still takes experiments (it only groups
    # them); an experiment whose definition differs takes none of its runs.
    for unit in sorted(units["project"]):
        imp.definition("project", unit)
    refused_experiments: set[str] = set()
    for unit in sorted(units["experiment"]):
        parts = unit.split("/")
        if not imp.definition("experiment", unit):
            refused_experiments.add(f"{parts[1]}/{parts[3]}")
    for kind in ("asset", "run"):
        for unit in sorted(units[kind]):
            parts = unit.split("/")
            if (
                len(parts) > 4
                and parts[2] == "experiments"
                and (f"{parts[1]}/{parts[3]}" in refused_experiments)
            ):
                report.conflicts.append(
                    Item(
                        kind,
                        _ref_of(kind, unit),
                        unit,
                        f"not imported: experiment {parts[1]}/{parts[3]} conflicts",
                    )
                )
                continue
            imp.tree(kind, unit)
    # The package lists of the runs that are here now (imported or already present).
    kept = {i.path for i in (*report.imported, *report.unchanged) if i.kind == "run"}
    wanted: set[str] = set()
    for unit in kept:
        staged = staging / unit / RUN_FILE  # (moved into the workspace when imported)
        try:
            record = json.loads(
                (staged if staged.exists() else ws.root / unit / RUN_FILE).read_bytes()
            )
        except (OSError, ValueError):
            continue
        wanted.update(f"environments/{d}.txt" for d in environments.referenced([record]))
    for unit in sorted(units["environment"] & wanted):
        imp.environment(unit)


# --- the whole import -----------------------------------------------------------


def import_bundle(
    ws: Workspace, stream: IO[bytes], name: str, dry_run: bool = False
) -> ImportReport:
    """Import the bundle read from ``stream`` (``name`` is for messages).

    Raises :class:`UsageError` (exit 2) for a file that is not a bundle and
    :class:`CorruptRecordError` (exit 3) for a bundle that is unsafe, damaged or
    holds an invalid record, before anything is placed.  Conflicts are in the
    report (the CLI exits 3).
    """
    report = ImportReport(bundle=name, dry_run=dry_run)
    if dry_run:
        holder = tempfile.TemporaryDirectory(prefix="molexp-import-")
        staging = Path(holder.name)
    else:
        ws.check_writable()
        staging = ws.root / f"{store.TMP_PREFIX}import-{os.urandom(6).hex()}"
        store.ensure_inside(ws.root, staging)
        staging.mkdir()
    try:
        try:
            staged = archive.extract(stream, staging, name)
            manifest = check_manifest(staged.manifest, staged.files, staged.links)
        except NotABundle as exc:
            raise UsageError(
                f"{name} is not a molexp bundle ({exc})",
                "Make one with `molexp export REF -o FILE.tar.gz`.",
            ) from None
        except Refused as exc:
            raise CorruptRecordError(
                name,
                f"refused: {exc}",
                "Nothing was imported; the bundle is damaged or was not made by `molexp export`.",
            ) from None
        except archive.WriteFailed as exc:
            raise WorkspaceError(
                f"cannot import {name}: {exc.strerror} (writing into {ws.root})",
                "Nothing was imported; free space on the workspace's filesystem "
                "(or fix its permissions) and retry.",
            ) from None
        except (tarfile.TarError, EOFError, OSError) as exc:
            if isinstance(exc, OSError) and exc.filename is not None:
                raise
            raise UsageError(
                f"{name} is not a readable molexp bundle ({exc})",
                "Make one with `molexp export REF -o FILE.tar.gz`.",
            ) from None
        report.refs = [str(r) for r in manifest.get("refs") or []]
        source = manifest.get("source")
        report.source = source if isinstance(source, dict) else {}
        report.source["molexp_version"] = manifest.get("molexp_version")
        units = _units(staged)
        staged_ws = Workspace(staging)
        try:
            _validate_staged(staged_ws, units)
        except Refused as exc:
            raise CorruptRecordError(name, f"refused: {exc}", "Nothing was imported.") from None
        except CorruptRecordError as exc:
            where = exc.path.replace(str(staging) + os.sep, "")
            raise CorruptRecordError(
                f"{name}:{where}", f"{exc.problem}; refused", "Nothing was imported."
            ) from None
        _place(ws, staging, units, report)
    finally:
        if dry_run:
            holder.cleanup()
        else:
            shutil.rmtree(staging, ignore_errors=True)
    return report
