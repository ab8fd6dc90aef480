"""Adding and removing assets (SPEC §11): the one writer of asset libraries.

Adding builds the whole asset in a ``.tmp-*`` sibling folder (data first,
``asset.yaml`` last) and renames it into place, so a crash leaves no valid
half-asset.  ``--replace`` swaps the finished new folder with the old one
(``renameat2(RENAME_EXCHANGE)`` on Linux, else two renames), so readers see the
old or the new asset, never a mix.  Removing renames the asset out of the
library first, so it is there or gone, never half-deleted.
"""

from __future__ import annotations

import errno
import os
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from molexp.core.assets.content import (
    ChangedWhileReadingError,
    Content,
    ProgressHook,
    copy_hashing,
    hash_path,
    kind_of,
    quick_size,
    walk,
)
from molexp.core.assets.library import (
    ASSET_FILE,
    DATA_DIR,
    MODES,
    Asset,
    get_asset,
    load_asset,
    verify_asset,
)
from molexp.core.assets.lineage import Users, users_of
from molexp.core.assets.scope import Scope, parse_scope
from molexp.core.model.names import validate_name
from molexp.core.records.workspace import Workspace
from molexp.core.store import files as store
from molexp.errors import (
    ConflictError,
    CorruptRecordError,
    MolexpError,
    SchemaVersionError,
    UsageError,
    WorkspaceError,
)


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
    kind = kind_of(src)
    if kind == "dir":
        try:
            walk(src)  # refuse links and special files before anything is written
        except OSError as exc:
            raise _os_error(exc, src, f"read {src}") from None
    scope.check_writable()
    target = scope.assets_dir / name
    store.ensure_inside(scope.workspace.root, target)
    if mode != "copy" and _is_within(src, target):
        raise UsageError(f"{src}: is inside the asset {name!r} it would become")
    if kind == "dir" and mode in ("copy", "move") and _is_within(scope.assets_dir, src):
        raise UsageError(f"{src}: contains the asset library {scope.assets_dir} it would go into")
    try:
        existing: Asset | None = load_asset(scope, name)
    except FileNotFoundError:
        existing = None
    except SchemaVersionError:
        raise  # a newer record is never overwritten: this molexp cannot know what it holds
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
        if existing.kind == kind and existing.record.get("size") == quick_size(src, kind):
            content = hash_path(src, progress, f"hash {name}")
            if content.content_hash == existing.content_hash:
                if not replace or verify_asset(existing, progress).status == "ok":
                    return AddResult(existing, "unchanged")
                repair = True  # --replace over damaged stored data rewrites it
        if not replace:
            raise _conflict(existing, content)

    root = scope.workspace.root
    store.make_dirs(root, scope.assets_dir, durable=True)
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
        store.write_yaml(staging / ASSET_FILE, record, root=root)
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


# --- removing ------------------------------------------------------------------


def remove_asset(scope: Scope, name: str, force: bool = False) -> tuple[Asset, Users]:
    """Delete an asset (never the external file of a --link/--ref asset)."""
    asset = get_asset(scope, name)
    scope.check_writable()
    store.ensure_inside(scope.workspace.root, asset.dir)
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


# --- by scope name, as the command line gives it -------------------------------------


def add_to(
    ws: Workspace,
    scope: str,
    name: str,
    source: str | os.PathLike[str],
    mode: str = "copy",
    replace: bool = False,
    description: str | None = None,
    tags: Sequence[str] | None = None,
    progress: ProgressHook | None = None,
) -> AddResult:
    """`molexp assets add`: :func:`add_asset` into the scope named ``scope``.

    The producer is the run this process was launched for (``MOLEXP_RUN_ID``), if any.
    """
    target = parse_scope(ws, scope)
    producer = os.environ.get("MOLEXP_RUN_ID") or None
    return add_asset(target, name, source, mode, replace, description, tags, producer, progress)


def remove_from(ws: Workspace, scope: str, name: str, force: bool = False) -> tuple[Asset, Users]:
    """`molexp assets rm`: :func:`remove_asset` from the scope named ``scope``."""
    return remove_asset(parse_scope(ws, scope), name, force)
