"""Tags and notes (SPEC §16): what a person says about a run, an experiment or a project.

``tags`` is a sorted list of distinct names, ``notes`` a list of ``{time, text}``;
neither is part of a run's identity.  A run's annotations live in its
``run.json``, which only the holder of the run's lock writes.  A change is
therefore first *queued* as one small file, ``runs/<id>/annotations/<time>-*.json``
(created whole, never edited), and folded into the record by whoever saves it
next under the lock: the annotating command itself when the run is free, the
attempt that holds it otherwise (see ``Run.save`` and
``lifecycle.annotate``).  Folding is idempotent (a tag set twice is one tag; a
note already recorded with the same time and text is not added again), so a
crash between saving the record and deleting the queued files loses nothing
and doubles nothing.

Experiments and projects keep theirs in ``experiment.yaml``/``project.yaml``,
written under a short lock on the definition's directory; the rest of the file
(comments included) is left as it was whenever the two keys can be replaced as
text.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from molexp.core.model.names import validate_name
from molexp.core.store import files as store
from molexp.errors import CorruptRecordError, UsageError, WorkspaceError

QUEUE_DIR = "annotations"
MAX_NOTE = 65536  # characters


class Change(NamedTuple):
    """One annotation request: tag operations (``+name``/``-name``, applied in
    order) and at most one note, stamped with the time it was asked for."""

    ops: tuple[str, ...] = ()
    note: str | None = None
    time: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"ops": list(self.ops), "note": self.note, "time": self.time}


def change(add: Iterable[str] = (), remove: Iterable[str] = (), note: str | None = None) -> Change:
    """A checked :class:`Change`: tags are names (SPEC §3), a note is non-empty text."""
    ops = [f"+{validate_name(t, 'tag')}" for t in add]
    ops += [f"-{validate_name(t, 'tag')}" for t in remove]
    return Change(tuple(ops), check_note(note) if note is not None else None, store.now_iso())


def tag_ops(ops: Sequence[str]) -> Change:
    """A :class:`Change` from ``+TAG``/``-TAG`` words, in the order given."""
    for op in ops:
        if op[:1] not in ("+", "-"):
            raise UsageError(f"tag operation {op!r}: write +TAG to add or -TAG to remove")
        validate_name(op[1:], "tag")
    return Change(tuple(ops), None, store.now_iso())


def check_note(text: str) -> str:
    if not isinstance(text, str) or not text.strip():
        raise UsageError("a note needs some text")
    if "\0" in text:
        raise UsageError("a note may not contain a NUL byte")
    if len(text) > MAX_NOTE:
        raise UsageError(f"a note may hold at most {MAX_NOTE} characters, got {len(text)}")
    return text


def tags_of(record: dict[str, Any]) -> list[str]:
    tags = record.get("tags")
    return [t for t in tags if isinstance(t, str)] if isinstance(tags, list) else []


def notes_of(record: dict[str, Any]) -> list[dict[str, Any]]:
    notes = record.get("notes")
    return [n for n in notes if isinstance(n, dict)] if isinstance(notes, list) else []


def apply(record: dict[str, Any], ch: Change) -> bool:
    """Apply ``ch`` to ``record`` in place; return whether anything changed."""
    before = (record.get("tags"), record.get("notes"))
    if ch.ops:
        tags = set(tags_of(record))
        for op in ch.ops:
            (tags.add if op[0] == "+" else tags.discard)(op[1:])
        record["tags"] = sorted(tags)
    if ch.note is not None:
        notes = notes_of(record)
        entry = {"time": ch.time, "text": ch.note}
        if entry not in notes:
            notes.append(entry)
        record["notes"] = notes
    return (record.get("tags"), record.get("notes")) != before


# --- the queue of a run ------------------------------------------------------------


def queue(run_dir: Path, ch: Change, root: Path) -> Path:
    """Queue ``ch`` for the run in ``run_dir`` (one file, created whole) of the
    workspace at ``root``."""
    directory = run_dir / QUEUE_DIR
    store.make_dirs(root, directory)
    stamp = ch.time.replace(":", "").replace("-", "").replace("+", "")
    data = (json.dumps(ch.to_json(), ensure_ascii=False) + "\n").encode("utf-8")
    while True:
        path = directory / f"{stamp}-{os.urandom(4).hex()}.json"
        if store.create_exclusive(path, data, root=root):
            return path


def _read(path: Path) -> Change | None:
    try:
        raw = json.loads(path.read_bytes())
        ops = tuple(str(op) for op in raw.get("ops") or ())
        note = raw.get("note")
        if any(op[:1] not in ("+", "-") for op in ops) or not isinstance(raw.get("time"), str):
            return None
        return Change(ops, note if isinstance(note, str) else None, raw["time"])
    except (OSError, ValueError, AttributeError, TypeError):
        return None


def pending(run_dir: Path) -> list[tuple[Path, Change | None]]:
    """The queued changes of a run, oldest first (None for a file that cannot be
    read: it is dropped when the queue is next folded)."""
    try:
        names = sorted(e.name for e in os.scandir(run_dir / QUEUE_DIR) if e.name.endswith(".json"))
    except (FileNotFoundError, NotADirectoryError):
        return []
    return [(run_dir / QUEUE_DIR / n, _read(run_dir / QUEUE_DIR / n)) for n in names]


def fold(record: dict[str, Any], run_dir: Path) -> list[Path]:
    """Apply the queued changes to ``record``; return the files to delete once
    the record is saved (see :func:`forget`)."""
    found = pending(run_dir)
    for _, ch in found:
        if ch is not None:
            apply(record, ch)
    return [p for p, _ in found]


def forget(run_dir: Path, applied: Sequence[Path]) -> None:
    """Delete queued files that a saved record now holds."""
    for path in applied:
        path.unlink(missing_ok=True)
    if applied:
        try:
            (run_dir / QUEUE_DIR).rmdir()
        except OSError:
            pass  # a new change arrived meanwhile: the next save takes it


def with_pending(record: dict[str, Any], run_dir: Path) -> dict[str, Any]:
    """``record`` as it will read once its queued changes are folded in (for a
    reader: nothing is written)."""
    for _, ch in pending(run_dir):
        if ch is not None:
            apply(record, ch)
    return record


# --- definitions (experiment.yaml, project.yaml) -----------------------------------


def _block(text: str, key: str) -> tuple[int, int] | None:
    """``(start, end)`` line numbers of the top-level ``key:`` entry of a block
    mapping (its continuation lines: indented, ``- `` items, blank or comments)."""
    lines = text.splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if line.startswith(f"{key}:")), None)
    if start is None:
        return None
    end = start + 1
    while end < len(lines):
        line = lines[end]
        if line[:1] in (" ", "\t", "-", "\n", "\r", "#") or not line.strip():
            end += 1
            continue
        break
    while end > start + 1 and (not lines[end - 1].strip() or lines[end - 1].startswith("#")):
        end -= 1  # a comment or blank line before the next key belongs to that key
    return start, end


def edit_definition_text(text: str, record: dict[str, Any]) -> str:
    """``text`` with its top-level ``tags``/``notes`` replaced by ``record``'s
    (appended when absent), leaving every other line as it is; the whole of
    ``record`` dumped when the file is not plainly a block mapping."""
    from molexp.core.model.identity import normalise
    from molexp.core.model.yaml12 import dump_yaml, load_yaml

    out = text if text.endswith("\n") or not text else text + "\n"
    for key in ("tags", "notes"):
        if key not in record:
            continue
        lines = out.splitlines(keepends=True)
        new = dump_yaml({key: record[key]})
        span = _block(out, key)
        if span is None:
            out += new
        else:
            out = "".join([*lines[: span[0]], new, *lines[span[1] :]])
    try:
        if normalise(load_yaml(out, "edited")) == normalise(record):
            return out
    except UsageError:
        pass
    return dump_yaml(record)


def annotate_definition(path: Path, kind: str, ch: Change, root: Path) -> dict[str, Any]:
    """Apply ``ch`` to the definition at ``path`` under a short lock on its
    directory; return the definition as written."""
    from molexp.core.store import lock as locks

    store.ensure_inside(root, path)
    held = locks.acquire(path.parent, "annotate", wait=True, root=root)
    try:
        raw = path.read_bytes()
        record = store.read_yaml_record(path, kind)
        if apply(record, ch):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise CorruptRecordError(path, "is not UTF-8 text") from exc
            store.atomic_write_bytes(
                path, edit_definition_text(text, record).encode("utf-8"), root=root
            )
        return record
    finally:
        held.release()


# --- tags in use (for completion) --------------------------------------------------

TAGS_CACHE = ".molexp/cache/tags.json"


def known_tags(root: Path) -> list[str]:
    """Tags ever added in the workspace at ``root`` (derived data: a hint for
    completion, never the record)."""
    try:
        tags = json.loads((root / TAGS_CACHE).read_bytes())
    except (OSError, ValueError):
        return []
    return sorted(t for t in tags if isinstance(t, str)) if isinstance(tags, list) else []


def remember_tags(root: Path, tags: Iterable[str]) -> None:
    new = set(tags) - set(known_tags(root))
    if not new:
        return
    path = root / TAGS_CACHE
    try:
        store.make_dirs(root, path.parent)
        data = json.dumps(sorted(new | set(known_tags(root))), ensure_ascii=False).encode()
        store.atomic_write_bytes(path, data, durable=False, root=root)
    except (OSError, WorkspaceError):
        pass  # a read-only workspace still tags; completion just knows fewer names
