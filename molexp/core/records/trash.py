"""The workspace's trash (SPEC §16): where `molexp rm` puts what it removes.

``<workspace>/.trash/<id>/`` holds one removal: the removed directories at their
workspace-relative paths (``projects/<p>/experiments/<e>/runs/<id>/...``, a whole
experiment or project), and ``trash.json`` saying what was removed, when, and by
whom.  Everything is moved by ``rename`` within the workspace, so a restore puts
back the very same files (bytes, modes and times).

This module knows the layout and moves directories; deciding what may go (locks,
lineage, running runs) is :mod:`molexp.core.actions.curate`'s.  While a whole
experiment or project is being moved, a marker file ``.removing`` in its
directory tells the lifecycle not to start runs in it (see :func:`being_removed`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, NamedTuple

from molexp.core.store import files as store
from molexp.core.store.lock import BREAK_NAME, LOCK_NAME
from molexp.errors import ConflictError, CorruptRecordError, NotFoundError, UsageError

TRASH_DIR = ".trash"
MANIFEST = "trash.json"
MARKER = ".removing"
FORMAT = "molexp.trash"


class Item(NamedTuple):
    """One removed thing: ``kind`` (run, experiment, project), its reference, its
    workspace-relative path, and the runs it held (for a run: itself)."""

    kind: str
    ref: str
    path: str
    runs: int = 1

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "ref": self.ref, "path": self.path, "runs": self.runs}


class Entry(NamedTuple):
    """One removal in the trash, as its ``trash.json`` describes it."""

    id: str
    dir: Path
    removed_at: str
    items: list[Item]
    record: dict[str, Any]

    @property
    def runs(self) -> int:
        return sum(i.runs for i in self.items)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "removed_at": self.removed_at,
            "runs": self.runs,
            "items": [i.to_json() for i in self.items],
            "refs": self.record.get("refs", []),
            "forced": bool(self.record.get("forced")),
            "host": self.record.get("host"),
            "path": str(self.dir),
        }


def trash_dir(root: Path) -> Path:
    return root / TRASH_DIR


def being_removed(experiment_dir: Path) -> bool:
    """Whether runs of the experiment at ``experiment_dir`` must not start: it, or
    its project, is being moved to the trash (or is gone already)."""
    return (
        os.path.exists(experiment_dir / MARKER)
        or os.path.exists(experiment_dir.parent.parent / MARKER)
        or not os.path.exists(experiment_dir / "experiment.yaml")
    )


def mark(root: Path, directory: Path) -> bool:
    """Put the ``.removing`` marker into ``directory`` (an experiment or project);
    False when one is there already (another removal at work)."""
    data = json.dumps({"since": store.now_iso()}).encode()
    return store.create_exclusive(directory / MARKER, data, root=root)


# --- a new removal --------------------------------------------------------------


def _new_id(now: datetime) -> str:
    return now.strftime("%Y%m%d-%H%M%S-%f")


def open_entry(root: Path) -> tuple[str, Path]:
    """A new, empty entry directory ``.trash/<id>`` (ids sort by time)."""
    base = trash_dir(root)
    store.make_dirs(root, base)
    now = datetime.now(timezone.utc)
    entry_id = _new_id(now)
    for n in range(1000):
        candidate = entry_id if n == 0 else f"{entry_id}-{n}"
        try:
            (base / candidate).mkdir()
        except FileExistsError:
            continue
        return candidate, base / candidate
    raise ConflictError(f"cannot make a new entry in {base}")  # pragma: no cover


def move_in(root: Path, entry_dir: Path, rel: str) -> None:
    """Move ``<root>/<rel>`` to ``<entry_dir>/<rel>`` (one rename)."""
    dest = entry_dir / rel
    store.make_dirs(root, dest.parent)
    os.rename(root / rel, dest)


def _holders(directory: Path, kind: str) -> list[Path]:
    """The directories of a moved ``kind`` that may hold locks: the run, experiment
    and project directories themselves (never data: artifacts, logs, assets)."""
    if kind == "run":
        return [directory]
    if kind == "experiment":
        return [directory, *_subdirs(directory / "runs")]
    return [
        directory,
        *(d for exp in _subdirs(directory / "experiments") for d in _holders(exp, "experiment")),
    ]


def _subdirs(path: Path) -> list[Path]:
    try:
        return [Path(e.path) for e in os.scandir(path) if e.is_dir(follow_symlinks=False)]
    except (FileNotFoundError, NotADirectoryError):
        return []


def tidy(directory: Path, kind: str) -> None:
    """Remove what only a live process may hold from a moved tree: locks, their
    temporary files and the removal marker (no one holds a trashed run)."""
    for holder in _holders(directory, kind):
        try:
            names = [e.name for e in os.scandir(holder) if e.is_file(follow_symlinks=False)]
        except FileNotFoundError:
            continue
        for name in names:
            if name in (LOCK_NAME, BREAK_NAME, MARKER) or name.startswith(
                f"{store.TMP_PREFIX}{LOCK_NAME}"
            ):
                (holder / name).unlink(missing_ok=True)


def write_manifest(
    root: Path,
    entry_dir: Path,
    entry_id: str,
    items: Sequence[Item],
    refs: Sequence[str],
    forced: bool,
) -> None:
    from molexp.core.store.lock import hostname

    record = {
        "kind": FORMAT,
        "schema_version": store.SCHEMA_VERSION,
        "id": entry_id,
        "removed_at": store.now_iso(),
        "refs": list(refs),
        "forced": forced,
        "host": hostname(),
        "items": [i.to_json() for i in items],
    }
    store.write_json(entry_dir / MANIFEST, record, root=root)


# --- what is in the trash -------------------------------------------------------


def _load(entry_dir: Path) -> Entry:
    path = entry_dir / MANIFEST
    record = store.read_json_record(path, "trash")
    try:
        items = [
            Item(str(i["kind"]), str(i["ref"]), str(i["path"]), int(i.get("runs", 1)))
            for i in record["items"]
        ]
        removed_at = str(record["removed_at"])
    except (KeyError, TypeError, ValueError) as exc:
        raise CorruptRecordError(path, f"is not a trash manifest ({exc})") from exc
    for item in items:
        parts = item.path.split("/")
        if item.path.startswith("/") or any(p in ("", ".", "..") for p in parts):
            raise CorruptRecordError(path, f"names an unsafe path {item.path!r}")
    return Entry(entry_dir.name, entry_dir, removed_at, items, record)


def entries(root: Path) -> tuple[list[Entry], list[CorruptRecordError]]:
    """Every removal in the trash, oldest first, and the entries that cannot be read."""
    base = trash_dir(root)
    try:
        names = sorted(e.name for e in os.scandir(base) if e.is_dir() and e.name[0] != ".")
    except FileNotFoundError:
        return [], []
    found: list[Entry] = []
    problems: list[CorruptRecordError] = []
    for name in names:
        try:
            found.append(_load(base / name))
        except FileNotFoundError:
            problems.append(CorruptRecordError(base / name / MANIFEST, "is missing"))
        except CorruptRecordError as exc:
            problems.append(exc)
    return found, problems


def ids(root: Path) -> list[str]:
    """The entry ids in the trash (directory names only; for completion)."""
    try:
        return sorted(
            e.name for e in os.scandir(trash_dir(root)) if e.is_dir() and e.name[0] != "."
        )
    except OSError:
        return []


def find(root: Path, text: str) -> Entry:
    """The entry whose id is ``text`` or starts with it (unique)."""
    if not text or "/" in text or text in (".", ".."):
        raise NotFoundError(f"invalid trash id {text!r}", "`molexp trash ls` lists them.")
    known = ids(root)
    matching = [i for i in known if i == text] or [i for i in known if i.startswith(text)]
    if not matching:
        raise NotFoundError(f"no trash entry {text!r}", "`molexp trash ls` lists them.")
    if len(matching) > 1:
        raise NotFoundError(
            f"trash id {text!r} is ambiguous: {', '.join(matching[:5])}",
            "Give more characters of the id.",
        )
    try:
        return _load(trash_dir(root) / matching[0])
    except FileNotFoundError:
        raise CorruptRecordError(trash_dir(root) / matching[0] / MANIFEST, "is missing") from None


# --- restoring and emptying -----------------------------------------------------


def _parent_needed(item: Item) -> tuple[str, str] | None:
    """``(what, workspace-relative definition)`` that must exist to restore ``item``."""
    parts = item.path.split("/")
    if item.kind == "run":
        return f"experiment {parts[1]}/{parts[3]}", "/".join([*parts[:4], "experiment.yaml"])
    if item.kind == "experiment":
        return f"project {parts[1]}", "/".join([*parts[:2], "project.yaml"])
    return None


def check_restore(root: Path, entry: Entry) -> None:
    """Refuse (exit 3) a restore whose places are taken or whose parents are gone."""
    for item in entry.items:
        if not (entry.dir / item.path).is_dir():
            raise CorruptRecordError(entry.dir / item.path, "is missing from the trash entry")
        if os.path.lexists(root / item.path):
            raise ConflictError(
                f"cannot restore {item.ref}: {root / item.path} exists",
                "It was created again after `molexp rm` (a new run of the same id, say); "
                "move it aside or `molexp rm` it first.",
            )
        needed = _parent_needed(item)
        if needed is not None and not (root / needed[1]).is_file():
            raise ConflictError(
                f"cannot restore {item.ref}: its {needed[0]} does not exist",
                "Restore the trash entry that holds it first (`molexp trash ls`).",
            )


def restore(root: Path, entry: Entry) -> list[Item]:
    """Move every item of ``entry`` back to its place, then drop the entry."""
    check_restore(root, entry)
    for item in entry.items:
        dest = root / item.path
        store.make_dirs(root, dest.parent, durable=True)
        os.rename(entry.dir / item.path, dest)
        store.fsync_dir(dest.parent)
    drop(entry)
    return entry.items


def drop(entry: Entry) -> None:
    """Delete ``entry`` for good: renamed out of sight first, so a half-deleted
    entry never lists."""
    import shutil

    gone = entry.dir.parent / f"{store.TMP_PREFIX}drop-{entry.id}-{os.urandom(4).hex()}"
    os.rename(entry.dir, gone)
    shutil.rmtree(gone, ignore_errors=True)
    if gone.exists():  # pragma: no cover - a file that cannot be deleted
        raise UsageError(f"cannot delete {gone} entirely; remove it by hand")


def age_days(entry: Entry, now: datetime | None = None) -> float:
    try:
        removed = datetime.fromisoformat(entry.removed_at)
    except ValueError:
        return float("inf")
    return ((now or datetime.now(timezone.utc)) - removed).total_seconds() / 86400
