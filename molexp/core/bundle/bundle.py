"""Bundles: move projects, experiments and runs between workspaces (SPEC §10).

A bundle is a ``.tar.gz`` whose members are workspace-relative paths
(``projects/<p>/experiments/<e>/runs/<id>/run.json``, ...) followed by
``manifest.json``: the molexp version, the references exported, the runs, and
every file with its size and ``xxh3_128`` hash.  The manifest comes last so that
each hash is of exactly the bytes that went into the archive, even for the log
of a run that is still being written.

Importing never trusts the archive.  Every member name is checked against the
workspace layout (no absolute paths, no ``..``, no device files, symlinks only
to places inside their own run or asset directory), files are written by molexp
itself into a staging directory ``.tmp-import-*`` inside the workspace, checked
against the manifest, and every record is read back through the same validating
readers as ``ls`` (schema version, id matches directory, derived id matches
parameters).  Only then is anything placed, each run (or asset) directory by an
atomic rename.  What already exists is never replaced: an identical copy is
skipped, a different one is reported as a conflict and kept as it is.
"""

from __future__ import annotations

import io
import json
import os
import posixpath
import shutil
import socket
import stat
import tarfile
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from molexp.core.model.identity import is_run_id
from molexp.core.model.names import is_valid_name
from molexp.core.records.refs import Ref
from molexp.core.records.runs import RUN_FILE, load_record
from molexp.core.records.workspace import (
    EXPERIMENT_FILE,
    PROJECT_FILE,
    Experiment,
    Project,
    Workspace,
)
from molexp.core.store import files as store
from molexp.errors import (
    CorruptRecordError,
    MolexpError,
    SchemaVersionError,
    UsageError,
)

FORMAT = "molexp.bundle"
BUNDLE_VERSION = 1
HEADER = "bundle.json"
MANIFEST = "manifest.json"
ASSETS = "assets"
ASSET_FILE = "asset.yaml"
HASH_PREFIX = "xxh3_128:"
_SKIPPED_NAMES = (".lock", ".lock.break")
_MAX_MANIFEST = 256 * 1024 * 1024
_CHUNK = 1024 * 1024


# --- paths and hashes ---------------------------------------------------------


def _skip_name(name: str) -> bool:
    """Files that never travel: locks and temporary files."""
    return name in _SKIPPED_NAMES or name.startswith(store.TMP_PREFIX)


class _Hasher:
    def __init__(self) -> None:
        import xxhash

        self._h = xxhash.xxh3_128()
        self.size = 0

    def update(self, data: bytes) -> None:
        self._h.update(data)
        self.size += len(data)

    @property
    def digest(self) -> str:
        return HASH_PREFIX + str(self._h.hexdigest())


class _HashingReader(io.RawIOBase):
    """A file object that hashes what is read from it (for ``tarfile.addfile``)."""

    def __init__(self, fh: IO[bytes]) -> None:
        self.fh = fh
        self.hasher = _Hasher()

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        data = self.fh.read(size)
        self.hasher.update(data)
        return data


# --- export -------------------------------------------------------------------


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


@dataclass
class _Selection:
    """Workspace-relative paths to export, grouped by what they are."""

    definitions: set[str] = field(default_factory=set)  # project.yaml / experiment.yaml
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
            load_record(run_dir / RUN_FILE, exp.project.name, exp.name)
        except FileNotFoundError:
            report.problems.append(
                CorruptRecordError(
                    run_dir / RUN_FILE, "is missing (run directory without a record)"
                )
            )
            continue
        except MolexpError as exc:
            report.problems.append(exc)
            continue
        sel.trees.add(_rel(ws, run_dir))
        sel.runs.append(f"{exp.ref}/{run_id}")


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
            if _skip_name(entry.name):
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
                if _link_inside(rel, target, top):
                    yield rel, st
                else:
                    report.skipped.append(
                        {"path": rel, "reason": f"symlink to {target} (outside its directory)"}
                    )
            else:
                report.skipped.append({"path": rel, "reason": "not a regular file"})


def _link_inside(rel: str, target: str, top: str) -> bool:
    """Whether a symlink at ``rel`` pointing at ``target`` stays inside ``top``
    (judged on the text alone: relative, no ``..`` leaving ``top``)."""
    if not target or target.startswith("/") or "\0" in target:
        return False
    resolved = posixpath.normpath(posixpath.join(posixpath.dirname(rel), target))
    return resolved == top or resolved.startswith(top + "/")


def _tarinfo(name: str, st: os.stat_result, kind: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.mtime = int(st.st_mtime)
    info.uname = info.gname = ""
    info.uid = info.gid = 0
    if kind == "dir":
        info.type = tarfile.DIRTYPE
        info.mode = 0o755
    else:
        info.mode = 0o755 if st.st_mode & 0o111 else 0o644
    return info


def export_bundle(ws: Workspace, refs: list[Ref], out: IO[bytes]) -> ExportReport:
    """Write a bundle of ``refs`` to the binary stream ``out``.

    Corrupt run records are left out and returned as problems (the caller exits
    3 after writing the rest, like ``ls``); a corrupt definition refuses it all.
    """
    from molexp._version import __version__

    report = ExportReport(refs=[r.text for r in refs])
    sel = _select(ws, refs, report)
    files: list[dict[str, Any]] = []
    links: list[dict[str, str]] = []
    dirs: list[str] = []
    with tarfile.open(fileobj=out, mode="w|gz", format=tarfile.PAX_FORMAT) as tar:
        _add_json(tar, HEADER, _header(__version__))
        added_dirs: set[str] = set()

        def add_parents(rel: str) -> None:
            parts = rel.split("/")[:-1]
            for i in range(1, len(parts) + 1):
                parent = "/".join(parts[:i])
                if parent not in added_dirs:
                    added_dirs.add(parent)
                    dirs.append(parent)
                    tar.addfile(_tarinfo(parent, os.stat(ws.root / parent), "dir"))

        def add_file(rel: str, st: os.stat_result) -> None:
            add_parents(rel)
            info = _tarinfo(rel, st, "file")
            with open(ws.root / rel, "rb") as fh:
                info.size = os.fstat(fh.fileno()).st_size
                reader = _HashingReader(fh)
                tar.addfile(info, reader)
            files.append({"path": rel, "size": info.size, "hash": reader.hasher.digest})
            report.bytes += info.size

        for rel in sorted(sel.definitions):
            add_file(rel, os.stat(ws.root / rel))
        for top in sorted(sel.trees):
            add_parents(top + "/x")
            for rel, st in _walk_tree(ws, top, report):
                if stat.S_ISDIR(st.st_mode):
                    add_parents(rel + "/x")
                elif stat.S_ISLNK(st.st_mode):
                    add_parents(rel)
                    info = _tarinfo(rel, st, "link")
                    info.type = tarfile.SYMTYPE
                    info.linkname = os.readlink(ws.root / rel)
                    tar.addfile(info)
                    links.append({"path": rel, "target": info.linkname})
                else:
                    add_file(rel, st)
        report.runs = sel.runs
        report.files = len(files)
        manifest = {
            "format": FORMAT,
            "bundle_version": BUNDLE_VERSION,
            "molexp_version": __version__,
            "created_at": store.now_iso(),
            "source": {"workspace": ws.name, "root": str(ws.root), "host": socket.gethostname()},
            "refs": report.refs,
            "runs": sel.runs,
            "dirs": dirs,
            "files": files,
            "links": links,
            "skipped": report.skipped,
        }
        _add_json(tar, MANIFEST, manifest)
    return report


def _header(version: str) -> dict[str, Any]:
    """The first member: says what the archive is before anything is unpacked."""
    return {"format": FORMAT, "bundle_version": BUNDLE_VERSION, "molexp_version": version}


def _add_json(tar: tarfile.TarFile, name: str, value: Any) -> None:
    data = json.dumps(value, indent=2, ensure_ascii=False).encode("utf-8") + b"\n"
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    info.mtime = int(time.time())
    tar.addfile(info, io.BytesIO(data))


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
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    report.output = str(path)
    return report


# --- import: reading and checking the archive ---------------------------------


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


class _Refused(Exception):
    """A bundle member that cannot be accepted (turned into CorruptRecordError)."""


def _check_part(part: str) -> None:
    if part in ("", ".", "..") or "\0" in part or len(part.encode()) > 255:
        raise _Refused(f"unsafe path component {part!r}")
    if _skip_name(part):
        raise _Refused(f"{part!r} never belongs in a bundle")


def unit_of(name: str) -> tuple[str, str]:
    """``(kind, unit path)`` of a workspace-relative member name, checked against
    the layout; raises ``_Refused`` for anything else.

    Kinds: ``dir`` (a directory of the layout itself), ``project``, ``experiment``
    (their definition files), ``run`` and ``asset`` (a path inside such a
    directory; the unit is the directory).
    """
    if name.startswith("/"):
        raise _Refused("absolute path")
    parts = name.split("/")
    for part in parts:
        _check_part(part)
    n = len(parts)

    def asset(i: int) -> tuple[str, str]:
        # parts[i] == "assets"
        if n == i + 1:
            return "dir", name
        if not is_valid_name(parts[i + 1]):
            raise _Refused(f"invalid asset name {parts[i + 1]!r}")
        return "asset", "/".join(parts[: i + 2])

    if parts[0] == ASSETS:
        return asset(0)
    if parts[0] != "projects":
        raise _Refused("not part of a workspace's projects or assets")
    if n == 1:
        return "dir", name
    if not is_valid_name(parts[1]):
        raise _Refused(f"invalid project name {parts[1]!r}")
    if n == 2:
        return "dir", name
    if parts[2] == PROJECT_FILE and n == 3:
        return "project", name
    if parts[2] == ASSETS:
        return asset(2)
    if parts[2] != "experiments":
        raise _Refused("not part of a project's layout")
    if n == 3:
        return "dir", name
    if not is_valid_name(parts[3]):
        raise _Refused(f"invalid experiment name {parts[3]!r}")
    if n == 4:
        return "dir", name
    if parts[4] == EXPERIMENT_FILE and n == 5:
        return "experiment", name
    if parts[4] == ASSETS:
        return asset(4)
    if parts[4] != "runs":
        raise _Refused("not part of an experiment's layout")
    if n == 5:
        return "dir", name
    if not is_run_id(parts[5]):
        raise _Refused(f"invalid run id {parts[5]!r}")
    return "run", "/".join(parts[:6])


@dataclass
class _Staged:
    files: dict[str, tuple[int, str]] = field(default_factory=dict)  # path -> (size, hash)
    links: dict[str, str] = field(default_factory=dict)
    dirs: set[str] = field(default_factory=set)
    manifest: dict[str, Any] | None = None


def _write_member(tar: tarfile.TarFile, member: tarfile.TarInfo, dest: Path) -> tuple[int, str]:
    src = tar.extractfile(member)
    if src is None:  # pragma: no cover - regular members always have data
        raise _Refused("has no data")
    mode = 0o777 if member.mode & 0o111 else 0o666
    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    hasher = _Hasher()
    with os.fdopen(fd, "wb") as fh, src:
        while chunk := src.read(_CHUNK):
            hasher.update(chunk)
            fh.write(chunk)
    os.utime(dest, (member.mtime, member.mtime))
    return hasher.size, hasher.digest


def _no_link_above(rel: str, links: dict[str, str]) -> None:
    parts = rel.split("/")
    for i in range(1, len(parts)):
        if "/".join(parts[:i]) in links:
            raise _Refused("lies below a symlink")


class _NotABundle(Exception):
    """The archive does not start with a molexp bundle header."""


def _read_json_member(tar: tarfile.TarFile, member: tarfile.TarInfo) -> dict[str, Any]:
    if not member.isreg() or member.size > _MAX_MANIFEST:
        raise _Refused("is not a regular file of reasonable size")
    src = tar.extractfile(member)
    raw = src.read() if src is not None else b""
    try:
        value = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _Refused(f"is not valid JSON ({exc})") from None
    if not isinstance(value, dict):
        raise _Refused("is not a JSON object")
    return value


def _check_header(tar: tarfile.TarFile, member: tarfile.TarInfo | None, bundle: str) -> None:
    if member is None or member.name != HEADER:
        raise _NotABundle(f"it does not start with {HEADER}")
    try:
        header = _read_json_member(tar, member)
    except _Refused as exc:
        raise _NotABundle(f"{HEADER} {exc}") from None
    if header.get("format") != FORMAT:
        raise _NotABundle(f"{HEADER} names format {header.get('format')!r}")
    version = header.get("bundle_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise _NotABundle(f"{HEADER} has an invalid bundle_version {version!r}")
    if version > BUNDLE_VERSION:
        raise SchemaVersionError(
            bundle,
            f"bundle_version {version} (molexp {header.get('molexp_version')}) is newer than "
            f"this molexp understands ({BUNDLE_VERSION})",
            "Upgrade molexp to import this bundle; nothing was imported.",
        )


def _extract(tar: tarfile.TarFile, staging: Path, bundle: str) -> _Staged:
    """Write every member into ``staging`` ourselves (never ``tar.extract``)."""
    staged = _Staged()
    seen_header = False
    for member in tar:
        if not seen_header:
            _check_header(tar, member, bundle)
            seen_header = True
            continue
        name = member.name
        try:
            if name == MANIFEST:
                if staged.manifest is not None:
                    raise _Refused("appears twice")
                staged.manifest = _read_json_member(tar, member)
                continue
            if staged.manifest is not None:
                raise _Refused(f"follows {MANIFEST}, which must come last")
            name = name.rstrip("/") if member.isdir() else name
            kind, top = unit_of(name)
            if (kind == "dir") != member.isdir() and kind not in ("run", "asset"):
                raise _Refused("has the wrong type for its place in the layout")
            if (
                name in staged.files
                or name in staged.links
                or (name in staged.dirs and not member.isdir())
            ):
                raise _Refused("appears twice")
            _no_link_above(name, staged.links)
            dest = staging / name
            if member.isdir():
                dest.mkdir(parents=True, exist_ok=True)
                staged.dirs.add(name)
            elif member.isreg():
                dest.parent.mkdir(parents=True, exist_ok=True)
                staged.files[name] = _write_member(tar, member, dest)
            elif member.issym():
                if kind not in ("run", "asset") or not _link_inside(name, member.linkname, top):
                    raise _Refused(f"symlink to {member.linkname!r} points outside its directory")
                staged.links[name] = member.linkname
            else:
                raise _Refused("is a hard link, device, FIFO or other special file")
        except _Refused as exc:
            raise _Refused(f"member {name!r}: {exc}") from None
        except (FileExistsError, NotADirectoryError, IsADirectoryError):
            raise _Refused(f"member {name!r}: clashes with another member") from None
    if not seen_header:
        _check_header(tar, None, bundle)
    # Symlinks last, so no file was ever written through one.
    for name, target in staged.links.items():
        if name in staged.files or name in staged.dirs:
            raise _Refused(f"member {name!r}: appears twice")
        link = staging / name
        try:
            link.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(target, link)
        except (FileExistsError, NotADirectoryError):
            raise _Refused(f"member {name!r}: clashes with another member") from None
    # Judged once every link exists: one link may lead through another.
    for name in staged.links:
        top = os.path.realpath(staging / unit_of(name)[1])
        real = os.path.realpath(staging / name)
        if not (real == top or real.startswith(top + os.sep)):
            raise _Refused(f"member {name!r}: symlink resolves outside its directory")
    return staged


def _check_manifest(staged: _Staged) -> dict[str, Any]:
    manifest = staged.manifest
    if manifest is None:
        raise _Refused("no manifest.json (not a molexp bundle, or truncated)")
    if manifest.get("format") != FORMAT or manifest.get("bundle_version") != BUNDLE_VERSION:
        raise _Refused(f"{MANIFEST} does not match {HEADER}")
    files = manifest.get("files")
    links = manifest.get("links", [])
    if not isinstance(files, list) or not isinstance(links, list):
        raise _Refused("manifest.json: files and links must be lists")
    listed: dict[str, tuple[int, str]] = {}
    for entry in files:
        if not isinstance(entry, dict) or not isinstance(entry.get("path"), str):
            raise _Refused("manifest.json: a files entry without a path")
        listed[entry["path"]] = (entry.get("size"), entry.get("hash"))  # type: ignore[assignment]
    if set(listed) != set(staged.files):
        extra = sorted(set(staged.files) - set(listed))
        missing = sorted(set(listed) - set(staged.files))
        what = (
            f"not in the manifest: {extra[0]}"
            if extra
            else f"missing from the archive: {missing[0]}"
        )
        raise _Refused(f"files do not match manifest.json ({what})")
    for path, got in staged.files.items():
        if listed[path] != got:
            raise _Refused(f"{path}: size or hash differs from manifest.json (damaged bundle?)")
    link_map = {e.get("path"): e.get("target") for e in links if isinstance(e, dict)}
    if link_map != staged.links:
        raise _Refused("symlinks do not match manifest.json")
    return manifest


# --- import: comparing and placing --------------------------------------------


def _ref_of(kind: str, unit: str) -> str:
    parts = unit.split("/")
    if kind == "project":
        return parts[1]
    if kind == "experiment":
        return f"{parts[1]}/{parts[3]}"
    if kind == "run":
        return f"{parts[1]}/{parts[3]}/{parts[5]}"
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
    from molexp.core.model.identity import normalise

    return {
        k: normalise(v)
        for k, v in record.items()
        if k not in ("created_at", "git", "schema_version")
    }


def _same_file(a: Path, b: Path) -> bool:
    try:
        if a.is_symlink() or b.is_symlink():
            return a.is_symlink() and b.is_symlink() and os.readlink(a) == os.readlink(b)
        if a.stat().st_size != b.stat().st_size:
            return False
        with open(a, "rb") as fa, open(b, "rb") as fb:
            while True:
                ca, cb = fa.read(_CHUNK), fb.read(_CHUNK)
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
            if not _skip_name(name):
                out[(base / name).relative_to(top).as_posix()] = base / name
    return out


def _place_file(src: Path, dest: Path) -> bool:
    """Link ``src`` to ``dest`` unless ``dest`` exists; return whether it was placed."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        if src.is_symlink():
            os.symlink(os.readlink(src), dest)
        else:
            os.link(src, dest)
    except FileExistsError:
        return False
    return True


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
            if _place_file(src, dest):
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

    def tree(self, kind: str, unit: str) -> None:
        """Place a run or asset directory, or compare it with the existing one."""
        src, dest = self.staging / unit, self.ws.root / unit
        item = Item(kind, _ref_of(kind, unit), unit)
        if not dest.exists():
            if self.dry_run:
                self.report.imported.append(item)
                return
            dest.parent.mkdir(parents=True, exist_ok=True)
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
                _place_file(others[rel], dest / rel)
        (self.report.imported if missing else self.report.unchanged).append(item)


def _run_difference(mine: dict[str, Any], theirs: dict[str, Any]) -> str:
    a, b = len(mine.get("attempts") or []), len(theirs.get("attempts") or [])
    return (
        f"its record differs from the workspace's (here: {mine.get('status')}, {a} attempt(s); "
        f"bundle: {theirs.get('status')}, {b} attempt(s)); kept the workspace's"
    )


def _validate_staged(staged_ws: Workspace, units: dict[str, set[str]]) -> None:
    """Read every staged record through the validating readers."""
    for unit in sorted(units["project"]):
        Project(staged_ws, unit.split("/")[1]).definition()
    for unit in sorted(units["experiment"]):
        parts = unit.split("/")
        if f"projects/{parts[1]}/{PROJECT_FILE}" not in units["project"]:
            raise _Refused(f"{unit} comes without its project's {PROJECT_FILE}")
        Experiment(Project(staged_ws, parts[1]), parts[3]).definition()
    for unit in sorted(units["run"]):
        parts = unit.split("/")
        exp_def = f"projects/{parts[1]}/experiments/{parts[3]}/{EXPERIMENT_FILE}"
        if exp_def not in units["experiment"]:
            raise _Refused(f"{unit} comes without its experiment's {EXPERIMENT_FILE}")
        path = staged_ws.root / unit / RUN_FILE
        if not path.is_file() or path.is_symlink():
            raise _Refused(f"{unit} has no {RUN_FILE}")
        load_record(path, parts[1], parts[3])
    from molexp.core.assets.library import Scope, load_asset

    for unit in sorted(units["asset"]):
        parts = unit.split("/")
        if parts[0] == ASSETS:
            scope = Scope(staged_ws)
        elif parts[2] == ASSETS:
            scope = Scope(staged_ws, parts[1])
        else:
            scope = Scope(staged_ws, parts[1], parts[3])
        if not (staged_ws.root / unit / ASSET_FILE).is_file():
            raise _Refused(f"{unit} has no {ASSET_FILE}")
        load_asset(scope, parts[-1])


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
        staging = ws.root / f"{store.TMP_PREFIX}import-{os.urandom(6).hex()}"
        staging.mkdir()
    try:
        try:
            with tarfile.open(fileobj=stream, mode="r|gz") as tar:
                staged = _extract(tar, staging, name)
            manifest = _check_manifest(staged)
        except _NotABundle as exc:
            raise UsageError(
                f"{name} is not a molexp bundle ({exc})",
                "Make one with `molexp export REF -o FILE.tar.gz`.",
            ) from None
        except _Refused as exc:
            raise CorruptRecordError(
                name,
                f"refused: {exc}",
                "Nothing was imported; the bundle is damaged or was not made by `molexp export`.",
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
        units: dict[str, set[str]] = {
            k: set() for k in ("dir", "project", "experiment", "run", "asset")
        }
        for path in (*staged.files, *staged.links, *staged.dirs):
            kind, unit = unit_of(path)
            units[kind].add(unit)
        staged_ws = Workspace(staging)
        try:
            _validate_staged(staged_ws, units)
        except _Refused as exc:
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


def _place(ws: Workspace, staging: Path, units: dict[str, set[str]], report: ImportReport) -> None:
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
