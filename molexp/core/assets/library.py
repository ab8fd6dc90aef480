"""Assets (SPEC §11): named, scoped, verifiable reusable files and folders.

An asset lives in ``<scope>/assets/<name>/`` where the scope is the workspace
root, ``projects/<p>`` or ``projects/<p>/experiments/<e>``::

    assets/<name>/
    ├── asset.yaml            # the record; the asset exists once this is in place
    └── data/<filename>       # a copied or moved file (a symlink with --link)
        data/                 # ...or a copied or moved folder (a symlink with --link)
                              # (--ref stores no data: the record names the path)

Adding builds the whole asset in a ``.tmp-*`` sibling folder (data first,
``asset.yaml`` last) and renames it into place, so a crash leaves no valid
half-asset.  ``--replace`` swaps the finished new folder with the old one
(``renameat2(RENAME_EXCHANGE)`` on Linux, else two renames), so readers see the
old or the new asset, never a mix.

``content_hash`` is ``xxh3_128:`` + 32 hex digits of XXH3-128 over the file's
bytes, or for a folder over the stream that concatenates, for each regular file
in the order of its relative POSIX path as bytes, the path bytes, a NUL byte,
the size as 8-byte big-endian, and the content.  Empty folders do not count;
a symbolic link inside a folder asset is refused.  Files are streamed in
:data:`CHUNK`-sized pieces (constant memory), and copying hashes the bytes it
writes in the same pass.

This module never imports a UI library: progress is reported through a
:data:`ProgressHook` that the caller may pass.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import stat
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from molexp.core.execution.runenv import RunEnv
from molexp.core.model.names import is_valid_name, validate_name
from molexp.core.records.workspace import Project, Workspace
from molexp.core.store import files as store
from molexp.errors import (
    AssetHashMismatchError,
    ConflictError,
    CorruptRecordError,
    MolexpError,
    NotFoundError,
    UsageError,
    WorkspaceError,
)

ASSETS_DIR = "assets"
ASSET_FILE = "asset.yaml"
DATA_DIR = "data"
INPUTS_FILE = "inputs.jsonl"
HASH_PREFIX = "xxh3_128:"
CHUNK = 1 << 20  # bytes read, hashed (and written) at a time
KINDS = ("file", "dir")
MODES = ("copy", "move", "link", "ref")
_HASH_RE = re.compile(r"xxh3_128:[0-9a-f]{32}")

Advance = Callable[[int], None]
#: ``hook(label, total_bytes)`` is called before hashing; it returns ``advance(n)``.
ProgressHook = Callable[[str, int], Advance]


def _no_progress(_n: int) -> None:
    return None


# --- scopes --------------------------------------------------------------------


@dataclass(frozen=True)
class Scope:
    """Where an asset library lives: the workspace, a project or an experiment."""

    workspace: Workspace
    project: str | None = None
    experiment: str | None = None

    @property
    def text(self) -> str:
        """``.``, ``PROJECT`` or ``PROJECT/EXPERIMENT`` (as recorded and typed)."""
        if self.project is None:
            return "."
        if self.experiment is None:
            return self.project
        return f"{self.project}/{self.experiment}"

    @property
    def label(self) -> str:
        return "the workspace" if self.project is None else self.text

    @property
    def path(self) -> Path:
        if self.project is None:
            return self.workspace.root
        base = self.workspace.projects_dir / self.project
        return base if self.experiment is None else base / "experiments" / self.experiment

    @property
    def assets_dir(self) -> Path:
        return self.path / ASSETS_DIR

    def chain(self) -> list[Scope]:
        """This scope, then the scopes it inherits from (experiment → project → workspace)."""
        out = [self]
        if self.experiment is not None:
            out.append(Scope(self.workspace, self.project))
        if self.project is not None:
            out.append(Scope(self.workspace))
        return out


def parse_scope(ws: Workspace, text: str, must_exist: bool = True) -> Scope:
    """``.`` (workspace), ``PROJECT`` or ``PROJECT/EXPERIMENT``; names are checked first."""
    cleaned = text.strip()
    if cleaned in ("", ".", "/", "./"):
        return Scope(ws)
    parts = cleaned.rstrip("/").split("/")
    kinds = ("project", "experiment")
    for part, kind in zip(parts, kinds):
        validate_name(part, kind)
    if len(parts) > 2:
        raise UsageError(
            f"invalid asset scope {text!r}: use '.' (the workspace), PROJECT or PROJECT/EXPERIMENT"
        )
    if must_exist:
        project = ws.get_project(parts[0])
        if len(parts) == 2:
            project.get_experiment(parts[1])
    return Scope(ws, parts[0], parts[1] if len(parts) == 2 else None)


def scope_of_ref(ws: Workspace, text: str) -> Scope:
    """The scope a reference starts a lookup from (a run starts at its experiment)."""
    from molexp.core.records.refs import resolve

    ref = resolve(ws, text)
    if ref.experiment is not None:
        return Scope(ws, ref.experiment.project.name, ref.experiment.name)
    if ref.project is not None:
        return Scope(ws, ref.project.name)
    return Scope(ws)


def all_scopes(ws: Workspace) -> list[Scope]:
    """The workspace, every project and every experiment, in a stable order."""
    out = [Scope(ws)]
    for proj in ws.project_names():
        out.append(Scope(ws, proj))
        out.extend(Scope(ws, proj, exp) for exp in Project(ws, proj).experiment_names())
    return out


# --- records -------------------------------------------------------------------


@dataclass
class Asset:
    """One asset as its ``asset.yaml`` describes it."""

    scope: Scope
    name: str
    record: dict[str, Any]

    @property
    def dir(self) -> Path:
        return self.scope.assets_dir / self.name

    @property
    def label(self) -> str:
        return f"{self.name!r} in {self.scope.label}"

    @property
    def kind(self) -> str:
        return str(self.record["kind"])

    @property
    def mode(self) -> str:
        return str(self.record["mode"])

    @property
    def content_hash(self) -> str:
        return str(self.record["content_hash"])

    @property
    def path(self) -> Path:
        """The absolute path a user reads the asset's data from."""
        if self.mode == "ref":
            return Path(self.record["source"])
        if self.kind == "dir":
            return self.dir / DATA_DIR
        return self.dir / DATA_DIR / str(self.record["filename"])

    def to_json(self) -> dict[str, Any]:
        out = dict(self.record)
        out["scope"] = self.scope.text
        out["path"] = str(self.path)
        out["asset_dir"] = str(self.dir)
        return out


def _check_record(record: dict[str, Any], path: Path, scope: Scope, name: str) -> None:
    def bad(problem: str) -> CorruptRecordError:
        return CorruptRecordError(path, problem)

    if record.get("name") != name:
        raise bad(f"names asset {record.get('name')!r} but lives in {name!r}")
    if record.get("scope") != scope.text:
        raise bad(f"belongs to scope {record.get('scope')!r}, not {scope.text!r}")
    if record.get("kind") not in KINDS:
        raise bad(f"has unknown kind {record.get('kind')!r} (expected file or dir)")
    if record.get("mode") not in MODES:
        raise bad(f"has unknown mode {record.get('mode')!r}")
    if not isinstance(record.get("content_hash"), str) or not _HASH_RE.fullmatch(
        record["content_hash"]
    ):
        raise bad(f"has an invalid content_hash {record.get('content_hash')!r}")
    filename = record.get("filename")
    if (
        not isinstance(filename, str)
        or filename in ("", ".", "..")
        or "/" in filename
        or "\0" in filename
    ):
        raise bad(f"has an invalid filename {filename!r}")
    source = record.get("source")
    if record["mode"] in ("link", "ref") and not (
        isinstance(source, str) and os.path.isabs(source)
    ):
        raise bad(f"has no absolute source path (mode {record['mode']})")


def load_asset(scope: Scope, name: str) -> Asset:
    """The asset ``name`` of ``scope``; ``FileNotFoundError`` if there is none."""
    path = scope.assets_dir / name / ASSET_FILE
    record = store.read_yaml_record(path, "asset", scope.workspace.cache_dir)
    _check_record(record, path, scope, name)
    return Asset(scope, name, record)


def get_asset(scope: Scope, name: str) -> Asset:
    """The asset ``name`` of exactly ``scope``; :class:`NotFoundError` (exit 2) if none."""
    validate_name(name, "asset")
    try:
        return load_asset(scope, name)
    except FileNotFoundError:
        raise NotFoundError(
            f"no asset named {name!r} in {scope.label}", _close_hint(scope.workspace, name)
        ) from None


def asset_by_ref(ws: Workspace, text: str) -> Asset:
    """``SCOPE:NAME`` (``.:NAME`` or ``:NAME`` for the workspace), as `molexp show` takes it."""
    scope, _, name = text.rpartition(":")
    return get_asset(parse_scope(ws, scope), name)


@dataclass
class Listing:
    assets: list[Asset] = field(default_factory=list)
    problems: list[MolexpError] = field(default_factory=list)


def scan(scopes: Iterable[Scope]) -> Listing:
    """Every readable asset of ``scopes``, and a problem for each unreadable one."""
    out = Listing()
    for scope in scopes:
        try:
            names = sorted(e.name for e in os.scandir(scope.assets_dir) if e.is_dir())
        except (FileNotFoundError, NotADirectoryError):
            continue
        for name in names:
            if not is_valid_name(name):
                continue  # .tmp-* staging folders and foreign entries
            try:
                out.assets.append(load_asset(scope, name))
            except FileNotFoundError:
                out.problems.append(
                    CorruptRecordError(scope.assets_dir / name, f"has no {ASSET_FILE}")
                )
            except MolexpError as exc:
                out.problems.append(exc)
    return out


def shadowed_by(found: Sequence[Asset]) -> list[str | None]:
    """For assets in lookup order, the closer scope hiding each one (None if visible)."""
    first: dict[str, str] = {}
    out: list[str | None] = []
    for asset in found:
        out.append(first.get(asset.name))
        first.setdefault(asset.name, asset.scope.text)
    return out


def _all_names(ws: Workspace) -> list[tuple[str, Scope]]:
    return [(a.name, a.scope) for a in scan(all_scopes(ws)).assets]


def find_everywhere(ws: Workspace, name: str) -> Listing:
    """Every scope's asset called ``name``; :class:`NotFoundError` when none has it."""
    validate_name(name, "asset")
    found = Listing()
    for scope in all_scopes(ws):
        try:
            found.assets.append(load_asset(scope, name))
        except FileNotFoundError:
            continue
        except MolexpError as exc:
            found.problems.append(exc)
    if not found.assets and not found.problems:
        raise NotFoundError(f"no asset named {name!r} in {ws.root}", _close_hint(ws, name))
    return found


def _close_hint(ws: Workspace, name: str) -> str:
    from difflib import get_close_matches

    pairs = _all_names(ws)
    close = get_close_matches(name, sorted({n for n, _ in pairs}), n=3)
    if close:
        shown = [f"{n} ({s.text})" for n, s in pairs if n in close][:5]
        return f"Did you mean: {', '.join(shown)}?"
    return "`molexp assets ls` lists assets; `molexp assets add SCOPE NAME PATH` adds one."


def resolve_asset(start: Scope, name: str) -> Asset:
    """The asset ``name`` seen from ``start``: experiment → project → workspace."""
    validate_name(name, "asset")
    chain = start.chain()
    for scope in chain:
        try:
            return load_asset(scope, name)
        except FileNotFoundError:
            continue
    where = ", ".join(s.label for s in chain)
    ws = start.workspace
    elsewhere = [s.text for n, s in _all_names(ws) if n == name]
    if elsewhere:
        hint = f"It exists in {', '.join(elsewhere)}: pass --from {elsewhere[0]}."
    else:
        hint = _close_hint(ws, name)
    raise NotFoundError(f"no asset named {name!r} in {where}", hint)


# --- hashing -------------------------------------------------------------------


@dataclass
class Content:
    """What a file or folder holds, as hashed."""

    kind: str
    size: int
    files: int
    content_hash: str


@dataclass
class _Tree:
    """A folder's regular files in hash order, and its subfolders (parents first)."""

    files: list[tuple[str, int]]  # (relative POSIX path, size)
    dirs: list[str]

    @property
    def size(self) -> int:
        return sum(size for _, size in self.files)


class ChangedWhileReadingError(UsageError):
    """A file's size changed while it was being hashed or copied."""


def _new_hasher() -> Any:
    import xxhash

    return xxhash.xxh3_128()


def _format(hasher: Any) -> str:
    return HASH_PREFIX + str(hasher.hexdigest())


def _walk(root: Path) -> _Tree:
    """List ``root`` (refusing symbolic links and special files inside it)."""
    files: list[tuple[str, int]] = []
    dirs: list[str] = []
    stack = [""]
    while stack:
        rel = stack.pop()
        with os.scandir(root / rel if rel else root) as entries:
            for entry in entries:
                path = f"{rel}/{entry.name}" if rel else entry.name
                if entry.is_symlink():
                    raise UsageError(
                        f"{root}: contains the symbolic link {path!r}; a folder asset holds "
                        "only regular files and folders",
                        "Copy the target in place of the link, or add it as its own asset.",
                    )
                if entry.is_dir(follow_symlinks=False):
                    dirs.append(path)
                    stack.append(path)
                elif entry.is_file(follow_symlinks=False):
                    files.append((path, entry.stat(follow_symlinks=False).st_size))
                else:
                    raise UsageError(
                        f"{root}: {path!r} is not a regular file or folder (device, pipe or "
                        "socket); a folder asset cannot hold it"
                    )
    files.sort(key=lambda item: os.fsencode(item[0]))
    return _Tree(files, dirs)


def _entry_header(rel: str, size: int) -> bytes:
    return os.fsencode(rel) + b"\0" + size.to_bytes(8, "big")


def _stream(
    src: Path,
    hasher: Any,
    buf: bytearray,
    advance: Advance,
    expected: int | None = None,
    out_fd: int | None = None,
) -> int:
    """Feed ``src`` into ``hasher`` (and ``out_fd``) chunk by chunk; return its size."""
    view = memoryview(buf)
    total = 0
    with open(src, "rb", buffering=0) as fh:
        if hasattr(os, "posix_fadvise"):
            os.posix_fadvise(fh.fileno(), 0, 0, os.POSIX_FADV_SEQUENTIAL)
        while True:
            n = fh.readinto(buf)
            if not n:
                break
            chunk = view[:n]
            hasher.update(chunk)
            if out_fd is not None:
                while chunk:
                    chunk = chunk[os.write(out_fd, chunk) :]
            total += n
            advance(n)
    if expected is not None and total != expected:
        raise ChangedWhileReadingError(
            f"{src}: changed size while being read ({expected} → {total} bytes)",
            "Try again once nothing is writing to it.",
        )
    return total


def _kind_of(path: Path) -> str:
    try:
        st = path.stat()
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file or folder") from None
    except OSError as exc:
        raise UsageError(f"{path}: cannot be read ({exc.strerror})") from None
    if stat.S_ISREG(st.st_mode):
        return "file"
    if stat.S_ISDIR(st.st_mode):
        return "dir"
    raise UsageError(f"{path}: not a regular file or folder")


def _open_progress(progress: ProgressHook | None, label: str, total: int) -> Advance:
    return progress(label, total) if progress is not None else _no_progress


def hash_path(path: Path, progress: ProgressHook | None = None, label: str = "hash") -> Content:
    """The :class:`Content` of a file or folder (SPEC §11 content hash)."""
    return _digest(path, None, progress, label)


def copy_hashing(
    src: Path, dst: Path, progress: ProgressHook | None = None, label: str = "copy"
) -> Content:
    """Copy a file or folder to ``dst`` (which must not exist), hashing in the same pass."""
    return _digest(src, dst, progress, label)


def _digest(src: Path, dst: Path | None, progress: ProgressHook | None, label: str) -> Content:
    kind = _kind_of(src)
    hasher = _new_hasher()
    buf = bytearray(CHUNK)
    if kind == "file":
        advance = _open_progress(progress, label, src.stat().st_size)
        size = _feed(src, dst, hasher, buf, advance)
        return Content("file", size, 1, _format(hasher))
    tree = _walk(src)
    advance = _open_progress(progress, label, tree.size)
    if dst is not None:
        dst.mkdir()
        for rel in tree.dirs:  # parents come before their children
            (dst / rel).mkdir()
    for rel, size in tree.files:
        hasher.update(_entry_header(rel, size))
        _feed(src / rel, None if dst is None else dst / rel, hasher, buf, advance, size)
    return Content("dir", tree.size, len(tree.files), _format(hasher))


def _feed(
    src: Path,
    dst: Path | None,
    hasher: Any,
    buf: bytearray,
    advance: Advance,
    expected: int | None = None,
) -> int:
    """Hash one file (copying it to ``dst`` if given, created with the user's umask)."""
    if dst is None:
        return _stream(src, hasher, buf, advance, expected)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(dst, flags, 0o666 | (src.stat().st_mode & 0o111))  # exec bits as the source
    try:
        return _stream(src, hasher, buf, advance, expected, out_fd=fd)
    finally:
        os.close(fd)


def _quick_size(path: Path, kind: str) -> int:
    return path.stat().st_size if kind == "file" else _walk(path).size


# --- adding --------------------------------------------------------------------


@dataclass
class AddResult:
    asset: Asset
    action: str  # added | replaced | repaired | unchanged
    warnings: list[str] = field(default_factory=list)


def _make_temp_dir(parent: Path, tag: str) -> Path:
    for _ in range(100):
        path = parent / f"{store.TMP_PREFIX}{tag}-{os.urandom(6).hex()}"
        try:
            path.mkdir()
        except FileExistsError:
            continue
        return path
    raise OSError(f"cannot create a temporary folder in {parent}")  # pragma: no cover


def _remove_tree(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink(missing_ok=True)
    elif path.exists():
        shutil.rmtree(path, ignore_errors=True)


def exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths (Linux ``renameat2(RENAME_EXCHANGE)``).

    Returns False when the platform or filesystem cannot (the caller falls back
    to two renames).
    """
    if not sys.platform.startswith("linux"):
        return False
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [
        ctypes.c_int,
        ctypes.c_char_p,
        ctypes.c_int,
        ctypes.c_char_p,
        ctypes.c_uint,
    ]
    renameat2.restype = ctypes.c_int
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP):
        return False
    raise OSError(err, os.strerror(err), str(b))


def _swap_in(staging: Path, target: Path) -> None:
    """Put ``staging`` at ``target``; the old ``target`` ends up at ``staging``."""
    if exchange(staging, target):
        return
    old = _make_temp_dir(target.parent, f"{target.name}-old")
    old.rmdir()
    os.rename(target, old)
    try:
        os.rename(staging, target)
    except BaseException:
        os.rename(old, target)
        raise
    os.rename(old, staging)


def _is_within(path: Path, parent: Path) -> bool:
    try:
        path.resolve().relative_to(parent.resolve())
    except ValueError:
        return False
    return True


def _conflict(existing: Asset, content: Content | None) -> ConflictError:
    new = f" ({content.content_hash})" if content is not None else ""
    return ConflictError(
        f"asset {existing.label} already holds different content "
        f"({existing.content_hash}, {existing.record.get('size')} bytes) than the one given{new}",
        "Pass --replace to replace it (replace=True in Python), or choose another name.",
    )


def add_asset(
    scope: Scope,
    name: str,
    source: str | os.PathLike[str],
    mode: str = "copy",
    replace: bool = False,
    description: str | None = None,
    tags: Sequence[str] | None = None,
    producer: str | None = None,
    progress: ProgressHook | None = None,
) -> AddResult:
    """Add ``source`` as asset ``name`` of ``scope`` (SPEC §11).

    Same name and same content: nothing happens (``unchanged``).  Different
    content: :class:`ConflictError` unless ``replace``; a replacement keeps the
    old description and tags unless new ones are given.
    """
    validate_name(name, "asset")
    for tag in tags or ():
        validate_name(tag, "tag")
    if mode not in MODES:
        raise UsageError(f"unknown asset mode {mode!r}; use one of: {', '.join(MODES)}")
    if not scope.workspace.exists():
        raise WorkspaceError(f"{scope.workspace.root} is not a molexp workspace")
    src = Path(os.path.abspath(os.path.expanduser(os.fspath(source))))
    kind = _kind_of(src)
    if kind == "dir":
        try:
            _walk(src)  # refuse links and special files before anything is written
        except OSError as exc:
            raise _os_error(exc, src, f"read {src}") from None
    target = scope.assets_dir / name
    if mode != "copy" and _is_within(src, target):
        raise UsageError(f"{src}: is inside the asset {name!r} it would become")
    if kind == "dir" and mode in ("copy", "move") and _is_within(scope.assets_dir, src):
        raise UsageError(f"{src}: contains the asset library {scope.assets_dir} it would go into")
    try:
        existing: Asset | None = load_asset(scope, name)
    except FileNotFoundError:
        existing = None
    except CorruptRecordError as exc:
        if not replace:
            raise CorruptRecordError(
                exc.path, exc.problem, "Pass --replace to overwrite it with PATH, or restore it."
            ) from None
        existing = None
    try:
        return _add(
            scope, name, src, kind, mode, replace, existing, description, tags, producer, progress
        )
    except OSError as exc:
        raise _os_error(exc, src, f"add asset {name!r}") from None


def _add(
    scope: Scope,
    name: str,
    src: Path,
    kind: str,
    mode: str,
    replace: bool,
    existing: Asset | None,
    description: str | None,
    tags: Sequence[str] | None,
    producer: str | None,
    progress: ProgressHook | None,
) -> AddResult:
    target = scope.assets_dir / name

    content: Content | None = None
    repair = False
    if existing is not None:
        if existing.kind == kind and existing.record.get("size") == _quick_size(src, kind):
            content = hash_path(src, progress, f"hash {name}")
            if content.content_hash == existing.content_hash:
                if not replace or verify_asset(existing, progress).status == "ok":
                    return AddResult(existing, "unchanged")
                repair = True  # --replace over damaged stored data rewrites it
        if not replace:
            raise _conflict(existing, content)

    scope.assets_dir.mkdir(parents=True, exist_ok=True)
    staging = _make_temp_dir(scope.assets_dir, name)
    data = staging / DATA_DIR if kind == "dir" else staging / DATA_DIR / (src.name or name)
    moved_in: Path | None = None  # set while the user's own data sits in the staging folder
    action = "failed"
    try:
        if kind == "file" and mode != "ref":
            data.parent.mkdir()
        content, moved_in = _stage_data(src, data, mode, content, progress, name)
        if existing is not None:
            description = existing.record.get("description") if description is None else description
            tags = existing.record.get("tags") if tags is None else tags
        record = _new_record(
            scope, name, kind, mode, src, content, description or "", tags or (), producer
        )
        store.write_yaml(staging / ASSET_FILE, record)
        action = _commit(staging, target, replacing=existing is not None or replace)
    finally:
        if moved_in is not None and action not in ("added", "replaced"):
            os.rename(data, moved_in)  # put the user's data back where it was
        _remove_tree(staging)
    store.fsync_dir(scope.assets_dir)
    asset = load_asset(scope, name)
    if action == "exists":  # another process added the name meanwhile
        if asset.content_hash == content.content_hash:
            return AddResult(asset, "unchanged")
        raise _conflict(asset, content)
    result = AddResult(asset, "repaired" if repair and action == "replaced" else action)
    if mode == "move" and moved_in is None:  # moved across filesystems: copied, now remove
        try:
            if kind == "dir":
                shutil.rmtree(src)
            else:
                src.unlink()
        except OSError as exc:
            result.warnings.append(f"could not remove {src} after copying it ({exc.strerror})")
    return result


def _rename(src: Path, dst: Path) -> None:
    """``os.rename`` (a seam: tests make it fail with EXDEV to move across filesystems)."""
    os.rename(src, dst)


def _stage_data(
    src: Path,
    data: Path,
    mode: str,
    known: Content | None,
    progress: ProgressHook | None,
    name: str,
) -> tuple[Content, Path | None]:
    """Put the data into the staging folder; return its content and where it moved from."""
    if mode == "link":
        content = known or hash_path(src, progress, f"hash {name}")
        os.symlink(src, data)
        return content, None
    if mode == "ref":
        return known or hash_path(src, progress, f"hash {name}"), None
    if mode == "move":
        content = known or hash_path(src, progress, f"hash {name}")
        try:
            _rename(src, data)
            return content, src
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise
    copied = copy_hashing(src, data, progress, f"copy {name}")
    if known is not None and copied.content_hash != known.content_hash:
        raise ChangedWhileReadingError(
            f"{src}: changed while being added", "Try again once nothing is writing to it."
        )
    return copied, None


def _new_record(
    scope: Scope,
    name: str,
    kind: str,
    mode: str,
    src: Path,
    content: Content,
    description: str,
    tags: Sequence[str],
    producer: str | None,
) -> dict[str, Any]:
    record: dict[str, Any] = {
        "schema_version": store.SCHEMA_VERSION,
        "name": name,
        "scope": scope.text,
        "kind": kind,
        "mode": mode,
        "filename": src.name or name,
        "size": content.size,
    }
    if kind == "dir":
        record["files"] = content.files
    record.update(
        content_hash=content.content_hash,
        source=str(src),
        description=description or "",
        tags=list(tags),
        producer=producer or None,
        created_at=store.now_iso(),
    )
    return record


def _commit(staging: Path, target: Path, replacing: bool) -> str:
    """Move the finished staging folder to ``target``: ``added``/``replaced``/``exists``.

    ``exists``: another process added the name meanwhile (and we were not replacing).
    """
    for _ in range(5):
        if replacing and target.exists():
            try:
                _swap_in(staging, target)
                return "replaced"
            except FileNotFoundError:
                continue  # removed meanwhile: a plain rename will do
        try:
            os.rename(staging, target)
            return "added"
        except OSError as exc:
            if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise
            if not replacing:
                return "exists"
    raise WorkspaceError(f"{target}: changed by other processes while being replaced", "Try again.")


def _os_error(exc: OSError, src: Path, what: str) -> MolexpError:
    """A clean one-line error for a failed read of ``src`` (exit 2) or write (exit 3)."""
    where = f"{exc.filename}: " if exc.filename is not None else ""
    text = f"cannot {what}: {where}{exc.strerror or exc}"
    if exc.filename is not None and _is_within(Path(os.fsdecode(exc.filename)), src):
        return UsageError(text)
    return WorkspaceError(text, "Check free space and permissions of the workspace.")


# --- lineage -------------------------------------------------------------------


def record_lookup(ctx: RunEnv, asset: Asset) -> None:
    """Append the lookup to ``attempts/<n>/inputs.jsonl`` (merged into run.json later).

    One ``write`` of one line on an ``O_APPEND`` descriptor, so concurrent
    lookups from one run never interleave.  A lookup already recorded in this
    attempt (same name, scope, hash and path) is not repeated.
    """
    attempt_dir = ctx.attempt_dir
    if not attempt_dir.is_dir():
        raise UsageError(
            f"cannot record the asset lookup: {attempt_dir} does not exist",
            "Is this process still inside a live `molexp run`? Unset MOLEXP_RUN_ID otherwise.",
        )
    entry: dict[str, Any] = {
        "name": asset.name,
        "scope": asset.scope.text,
        "content_hash": asset.content_hash,
        "path": str(asset.path),
    }
    path = attempt_dir / INPUTS_FILE
    try:
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                seen = json.loads(line)
            except ValueError:
                continue
            if isinstance(seen, dict) and all(seen.get(k) == v for k, v in entry.items()):
                return
    except FileNotFoundError:
        pass
    entry["looked_up_at"] = store.now_iso()
    entry["attempt"] = ctx.attempt
    payload = (json.dumps(entry, ensure_ascii=False) + "\n").encode("utf-8")
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags, 0o666)
    except OSError as exc:  # ELOOP: a symlink planted in the attempt directory
        raise WorkspaceError(f"{path}: cannot record the asset lookup ({exc.strerror})") from exc
    try:
        os.write(fd, payload)
    finally:
        os.close(fd)


def run_scope(ctx: RunEnv, ws: Workspace) -> Scope:
    """The scope a run's lookups start from: its experiment."""
    if not ctx.project or not ctx.experiment:
        return Scope(ws)
    return Scope(
        ws, validate_name(ctx.project, "project"), validate_name(ctx.experiment, "experiment")
    )


def current_context() -> RunEnv | None:
    """The run this process was launched for, or None outside `molexp run`."""
    if not os.environ.get("MOLEXP_RUN_ID"):
        return None
    return RunEnv()


def _inputs_of(run_dir: Path) -> Iterator[dict[str, Any]]:
    """Recorded inputs of a run: run.json's, then any attempt's inputs.jsonl."""
    record = store.read_json_record(run_dir / "run.json", "run")
    for item in record.get("inputs") or []:
        if isinstance(item, dict):
            yield item
    try:
        attempts = sorted(os.scandir(run_dir / "attempts"), key=lambda e: e.name)
    except FileNotFoundError:
        return
    for entry in attempts:
        try:
            text = (Path(entry.path) / INPUTS_FILE).read_text(encoding="utf-8", errors="replace")
        except (FileNotFoundError, NotADirectoryError):
            continue
        for line in text.splitlines():
            try:
                item = json.loads(line)
            except ValueError:
                continue
            if isinstance(item, dict):
                yield item


@dataclass
class Users:
    runs: list[str] = field(default_factory=list)  # PROJECT/EXPERIMENT/RUN_ID
    unreadable: list[str] = field(default_factory=list)


def users_of(asset: Asset) -> Users:
    """Every run whose recorded inputs refer to ``asset`` (by scope and name)."""
    out = Users()
    for proj, exp, run_dir in asset.scope.workspace.iter_run_dirs():
        ref = f"{proj}/{exp}/{run_dir.name}"
        try:
            if any(
                i.get("name") == asset.name and i.get("scope") == asset.scope.text
                for i in _inputs_of(run_dir)
            ):
                out.runs.append(ref)
        except FileNotFoundError:
            continue
        except (MolexpError, OSError):
            out.unreadable.append(ref)
    return out


# --- verify and remove -----------------------------------------------------------


@dataclass
class Check:
    asset: Asset
    status: str  # ok | missing | changed | unreadable
    detail: str = ""
    actual_hash: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "scope": self.asset.scope.text,
            "name": self.asset.name,
            "status": self.status,
            "detail": self.detail,
            "content_hash": self.asset.content_hash,
            "actual_hash": self.actual_hash,
            "path": str(self.asset.path),
        }


def verify_asset(asset: Asset, progress: ProgressHook | None = None) -> Check:
    """Re-hash an asset's data (for ``--ref``/``--link``, the external file)."""
    path = asset.path
    if not os.path.lexists(path) or not path.exists():
        where = "the file it refers to" if asset.mode in ("ref", "link") else "its data"
        return Check(asset, "missing", f"{where} is gone: {path}")
    try:
        content = hash_path(path, progress, f"verify {asset.name}")
    except UsageError as exc:  # changed while read, a link inside, no longer a file
        return Check(asset, "changed", exc.message)
    except OSError as exc:
        return Check(asset, "unreadable", f"{path}: {exc.strerror}")
    if content.kind != asset.kind:
        return Check(asset, "changed", f"was a {asset.kind}, is now a {content.kind}")
    if content.content_hash != asset.content_hash:
        detail = f"content differs ({content.size} bytes, recorded {asset.record.get('size')})"
        if asset.mode in ("ref", "link"):
            what = "referenced" if asset.mode == "ref" else "linked"
            detail = f"the {what} {asset.kind} changed: {asset.record['source']}"
        return Check(asset, "changed", detail, content.content_hash)
    return Check(asset, "ok", actual_hash=content.content_hash)


def failures_error(checks: Sequence[Check]) -> AssetHashMismatchError | None:
    bad = [c for c in checks if c.status != "ok"]
    if not bad:
        return None
    shown = ", ".join(f"{c.asset.name} ({c.asset.scope.text}: {c.status})" for c in bad[:10])
    more = f" and {len(bad) - 10} more" if len(bad) > 10 else ""
    return AssetHashMismatchError(
        f"{len(bad)} of {len(checks)} assets fail verification: {shown}{more}",
        "Restore the data, or record the new content with `molexp assets add ... --replace`.",
    )


def ensure_intact(asset: Asset, progress: ProgressHook | None = None) -> None:
    """Raise :class:`AssetHashMismatchError` unless ``asset`` re-hashes to its record."""
    error = failures_error([verify_asset(asset, progress)])
    if error is not None:
        raise error


def remove_asset(scope: Scope, name: str, force: bool = False) -> tuple[Asset, Users]:
    """Delete an asset (never the external file of a --link/--ref asset)."""
    asset = get_asset(scope, name)
    users = users_of(asset)
    if (users.runs or users.unreadable) and not force:
        if users.runs:
            shown = ", ".join(users.runs[:5]) + (
                f" and {len(users.runs) - 5} more" if len(users.runs) > 5 else ""
            )
            problem = f"is a recorded input of {len(users.runs)} run(s): {shown}"
        else:
            problem = f"may be an input of runs whose records cannot be read: {users.unreadable[0]}"
        raise WorkspaceError(
            f"asset {asset.label} {problem}",
            "Removing it breaks their lineage; pass --force to remove it anyway.",
        )
    try:
        trash = _make_temp_dir(scope.assets_dir, f"{name}-rm")
        trash.rmdir()
        os.rename(asset.dir, trash)
    except OSError as exc:
        raise _os_error(exc, asset.dir, f"remove asset {name!r}") from None
    _remove_tree(trash)
    store.fsync_dir(scope.assets_dir)
    return asset, users


def describe(asset: Asset) -> dict[str, Any]:
    """What `assets show` prints: the record, paths and the runs that used it."""
    out = asset.to_json()
    users = users_of(asset)
    out["used_by"] = users.runs
    if users.unreadable:
        out["used_by_unknown"] = users.unreadable
    return out


def find_for_run(ctx: RunEnv, name: str, scope: str | None = None) -> Asset:
    """Resolve ``name`` for a run (from its experiment) and record the lookup."""
    ws = Workspace(ctx.workspace_root)
    start = parse_scope(ws, scope) if scope is not None else run_scope(ctx, ws)
    asset = resolve_asset(start, name)
    record_lookup(ctx, asset)
    return asset
