"""A derived, self-validating index of run records, so big workspaces list fast.

Reading and validating 100,000 ``run.json`` files takes seconds; ``stat``-ing them
takes a fraction of that.  Each experiment gets one index file,
``<workspace>/.molexp/index/<project>/<experiment>.idx``, holding for every run
the *signature* of its ``run.json`` (``st_mtime_ns``, ``st_size``, ``st_ino``,
``st_ctime_ns``) at the moment it was read, and a summary of the record as it was
validated then.

Nothing in it is trusted without checking the file it describes:

- Every scan lists the ``runs/`` directory and ``stat``s every ``run.json``.  An
  entry is used only when the signature is unchanged; anything else (a record
  rewritten by molexp, edited by hand, copied in by rsync with its old mtime but
  a new inode and ctime, replaced, deleted, added behind molexp's back) is read
  and validated again, and only that record.
- ``st_ctime_ns`` cannot be set by users (``touch``/``rsync -t`` set mtime only),
  so an in-place edit that keeps size and mtime is still seen.  A record whose
  ctime is within :data:`RACY_NS` of the time it was read is not stored at all
  (two edits in one timestamp tick could otherwise look alike): it is read again
  next time, like a new one.
- Unreadable or invalid records are never stored: they are read, and reported,
  on every scan.
- The file carries a format number, the molexp version, the experiment it
  describes and an xxh3 checksum of its content; an index that fails any check
  (truncated, edited, written by another version) is ignored and rebuilt.
- It is written atomically (``store.atomic_write_bytes``) and only on a best-effort
  basis: a read-only workspace lists correctly, just without the speed-up.  No
  lock is needed: two processes (or hosts) writing it at once each rename a
  complete, valid file into place, and the loser's work is simply redone later.

Deleting ``.molexp/`` loses nothing.  ``MOLEXP_NO_INDEX=1`` bypasses the index
(every record is read), e.g. on an NFS mount whose attribute cache is too slow
for a particular use (see ``docs/performance.md``).
"""

from __future__ import annotations

import json
import operator
import os
import time
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import compress, repeat
from pathlib import Path
from typing import Any

from molexp.core.model.names import is_valid_name
from molexp.core.records.index_entry import (
    _SHARED,
    INDEX_DIR,
    SUFFIX,
    Entry,
    Rest,
    _Experiment,
)
from molexp.core.records.runs import RUN_FILE, missing_record, validate_record
from molexp.core.records.signatures import Ahead
from molexp.core.records.signatures import signature as _signature
from molexp.core.records.signatures import signatures as _signatures
from molexp.core.store import files as store
from molexp.errors import CorruptRecordError, MolexpError, WorkspaceError

FORMAT = 5  # 5: lines oldest first; 4: the REST fields in columns of their own; 3: last-attempt host, results, metrics
MAGIC = "molexp-run-index"
RACY_NS = 3_000_000_000


def enabled() -> bool:
    """False when ``MOLEXP_NO_INDEX`` is set (to anything but ``0`` or empty)."""
    return os.environ.get("MOLEXP_NO_INDEX", "") in ("", "0")


@dataclass
class Scanned:
    """What a scan of one experiment's runs found."""

    entries: list[Entry] = field(default_factory=list)
    problems: list[MolexpError] = field(default_factory=list)
    looked_at: int = 0  # run directories


def index_path(ws_root: Path, project: str, experiment: str) -> Path | None:
    """Where the index of an experiment lives (None for names unsafe as file names)."""
    if not (is_valid_name(project) and is_valid_name(experiment)):
        return None
    return ws_root / INDEX_DIR / project / f"{experiment}{SUFFIX}"


def _header(checksum: str) -> bytes:
    from molexp._version import __version__

    return f"{MAGIC} {FORMAT} {__version__} {store.SCHEMA_VERSION} {checksum}\n".encode()


def _load(path: Path, project: str, experiment: str) -> tuple[list[Any], list[str]]:
    """``(values, lines)`` of a valid index file, else empty ones."""
    try:
        raw = path.read_bytes()
    except OSError:
        return [], []
    head, _, body = raw.partition(b"\n")
    try:
        import xxhash

        if _header(xxhash.xxh3_128_hexdigest(body)) != head + b"\n":
            return [], []
        meta_line, _, lines = body.decode().partition("\n")
        meta = json.loads(meta_line)
        if meta["project"] != project or meta["experiment"] != experiment:
            return [], []
        values = meta["values"]
        if not isinstance(values, list):
            return [], []
        return values, lines.split("\n") if lines else []
    except (ValueError, KeyError, TypeError):
        return [], []


class _Values:
    """A table of distinct JSON values (params/config shared by many runs)."""

    def __init__(self, items: list[Any]) -> None:
        self.items = items
        self._refs: dict[str, int] | None = None

    def ref(self, value: Any) -> int:
        if self._refs is None:
            self._refs = {}
            for i, item in enumerate(self.items):
                self._refs.setdefault(_compact(item), i)
        key = _compact(value)
        found = self._refs.get(key)
        if found is None:
            found = self._refs[key] = len(self.items)
            self.items.append(value)
        return found


# One encoder for every column (json.dumps with options builds a new one per call).
_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def _compact(value: Any) -> str:
    """``json.dumps(value, ensure_ascii=False, separators=(",", ":"))``; the values
    most columns hold (null, integers, plain ASCII text) without the encoder, which
    builds a new C encoder for every value that is not text."""
    if value is None:
        return "null"
    kind = type(value)
    if kind is int:
        return str(value)
    if kind is str and value.isascii() and value.isprintable() and '"' not in value:
        if "\\" not in value:
            return f'"{value}"'
    return _encode(value)


def _tail(record: dict[str, Any], table: _Values) -> str:
    """``PARAMS_REF <TAB> CONFIG_REF <TAB> RESULTS <TAB> METRICS <TAB> REST`` of a
    validated record."""
    return "\t".join((
        str(table.ref(record.get("params"))), str(table.ref(record.get("config"))),
        _compact(record.get("results")), _compact(record.get("metrics")),
        *map(_compact, Rest.of(record)),
    ))  # fmt: skip


def _save(
    ws_root: Path, path: Path, project: str, experiment: str, values: list[Any], lines: list[str]
) -> None:
    import xxhash

    # Keep only the values some line refers to (renumbered).
    remap: dict[str, str] = {}
    kept: list[Any] = []
    out = [""]  # the values line, once they are known
    for line in lines:
        parts = line.split("\t")
        try:
            for col in (4, 5):
                ref = parts[col]
                if ref not in remap:
                    remap[ref] = str(len(kept))
                    kept.append(values[int(ref)])
                parts[col] = remap[ref]
        except (ValueError, IndexError):  # only a forged index gets here
            continue
        out.append("\t".join(parts))
    out[0] = json.dumps(
        {"project": project, "experiment": experiment, "values": kept},
        ensure_ascii=False, separators=(",", ":"),
    )  # fmt: skip
    body = "\n".join(out).encode()
    try:
        store.make_dirs(ws_root, path.parent)
        store.atomic_write_bytes(
            path, _header(xxhash.xxh3_128_hexdigest(body)) + body, root=ws_root
        )
    except (OSError, WorkspaceError):
        pass  # a read-only workspace (or .molexp/ linked out) lists, just without the index


def _read(dir_fd: int, name: str, path: Path) -> tuple[os.stat_result, dict[str, Any]]:
    """Open ``<name>/run.json`` relative to ``dir_fd``; its signature is taken from
    the open file *before* reading, so a change during the read is seen next time."""
    try:
        fd = os.open(f"{name}/{RUN_FILE}", os.O_RDONLY, dir_fd=dir_fd)
    except (FileNotFoundError, NotADirectoryError):
        raise
    except OSError as exc:
        raise CorruptRecordError(path, f"cannot be read ({exc.strerror})") from exc
    try:
        st = os.fstat(fd)
        with open(fd, "rb", closefd=False) as fh:
            raw = fh.read()
    except OSError as exc:
        raise CorruptRecordError(path, f"cannot be read ({exc.strerror})") from exc
    finally:
        os.close(fd)
    return st, store.parse_json_record(raw, path, "run")


_split_line = operator.methodcaller("split", "\t", 4)


def _order(entry: Entry) -> tuple[str, str]:
    """Oldest first, then by id: the order of a listing (and of an index's lines)."""
    created = entry[3]
    return (created if type(created) is str else str(created)), entry[1]


def scan_experiment(
    ws_root: Path,
    project: str,
    experiment: str,
    wanted: Collection[str] | None = None,
    refresh: bool = True,
    seen: tuple[list[str], list[str | None]] | None = None,
) -> Scanned:
    """Every run of one experiment: readable ones as entries (oldest first, then by
    id), the others as problems.

    ``wanted`` limits the entries to runs with these recorded statuses (every run
    is still checked, and every problem reported).  Uses and (unless ``refresh`` is
    false: a dry run writes nothing) refreshes the experiment's index unless
    :func:`enabled` is false.  ``seen``: the run directories' names and their
    ``run.json``'s signatures, taken during this listing (:class:`signatures.Ahead`).

    When the run directories are those the index lists and every signature is the
    one it holds (the usual case), the entries are made from the index's columns
    without running Python code per run; otherwise each run is looked at, and only
    new or changed records are read.
    """
    runs_dir = ws_root / "projects" / project / "experiments" / experiment / "runs"
    out = Scanned()
    try:
        dir_fd = os.open(runs_dir, os.O_RDONLY | os.O_DIRECTORY)
    except (FileNotFoundError, NotADirectoryError):
        return out
    try:
        path = index_path(ws_root, project, experiment) if enabled() else None
        values, lines = _load(path, project, experiment) if path else ([], [])
        exp = _Experiment(project, experiment, runs_dir, values)
        if seen is None:
            names = sorted(name for name in os.listdir(dir_fd) if name[0] != ".")
            now = None
        else:
            names, now = seen
        out.looked_at = len(names)
        parts = list(map(_split_line, lines))
        if parts and min(map(len, parts)) == 5:
            ids, sigs, statuses, created, tails = zip(*parts)
            statuses = tuple(map(_SHARED.get, statuses, statuses))  # one text per status
        else:
            ids = sigs = statuses = created = tails = ()
        if ids and sorted(ids) == names:
            if now is None:  # every one, now: in the index's order, which is the order
                # they were made in, mostly that of their inodes (a cold disk reads less)
                now = _signatures(dir_fd, [name + _RUN_FILE for name in ids])
                same = now == list(sigs)
                now = None if same else [n for _, n in sorted(zip(ids, now))]  # (by name)
            else:
                same = dict(zip(names, now)) == dict(zip(ids, sigs))
            if same:
                # Every entry holds: no record to read, nothing to write.
                rows: Any = zip(map(exp.prefix.__add__, ids), ids, statuses, created, tails,
                                sigs, repeat(exp))  # fmt: skip
                if wanted is not None:
                    rows = compress(rows, map(wanted.__contains__, statuses))
                out.entries = list(map(Entry, rows))
                return out
        old = dict(zip(ids, parts))
        _rescan(ws_root, out, dir_fd, exp, names, old, now, wanted, path, refresh)
    finally:
        os.close(dir_fd)
    return out


def scan_all(
    ws_root: Path, experiments: Sequence[tuple[str, str]], wanted: Collection[str] | None = None
) -> Iterator[tuple[str, str, Scanned]]:
    """``(project, experiment, scan_experiment(...))`` of each of ``experiments``, in order.

    Once the first ones have taken :data:`AHEAD_S`, the names and signatures of the
    second half of the rest are taken by a child process meanwhile
    (:class:`signatures.Ahead`; two cores or more, this process without threads),
    unless the disk is what is waited for (more than :data:`AHEAD_MAX_S` a run so
    far: a cold page cache, NFS), where a second process only contends for it.
    Every signature is still taken during this listing."""
    import threading

    start = time.perf_counter()
    ahead: Ahead | None = None
    decided = False
    half = len(experiments)
    runs = 0
    try:
        for i, (project, experiment) in enumerate(experiments):
            seen = None
            if ahead is not None and i >= half:
                seen = ahead.take(_runs_dir(ws_root, project, experiment))
            scanned = scan_experiment(ws_root, project, experiment, wanted, seen=seen)
            runs += scanned.looked_at
            yield project, experiment, scanned
            rest = len(experiments) - i - 1
            took = time.perf_counter() - start
            if decided or rest < 4 or took <= AHEAD_S:
                continue
            decided = True
            if took > AHEAD_MAX_S * runs or _cores() < 2 or threading.active_count() > 1:
                continue
            if hasattr(os, "fork"):
                half = len(experiments) - rest // 2
                ahead = Ahead([_runs_dir(ws_root, p, e) for p, e in experiments[half:]], _RUN_FILE)
    finally:
        if ahead is not None:
            ahead.close()


AHEAD_S = 0.03  # a listing this long so far: the rest is shared with a child process
AHEAD_MAX_S = 30e-6  # ... unless each run took longer than this (~8 µs warm)
_RUN_FILE = "/" + RUN_FILE


def _runs_dir(ws_root: Path, project: str, experiment: str) -> str:
    return f"{ws_root}/projects/{project}/experiments/{experiment}/runs"


def _cores() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1  # pragma: no cover - (not Linux)


def _rescan(
    ws_root: Path,
    out: Scanned,
    dir_fd: int,
    exp: _Experiment,
    names: list[str],
    old: dict[str, list[str]],
    now: list[str | None] | None,
    wanted: Collection[str] | None,
    path: Path | None,
    refresh: bool,
) -> None:
    """:func:`scan_experiment` run by run: entries whose signature holds are kept,
    new and changed records read and validated; the index is written if it changed."""
    project, experiment, runs_dir, values = exp.project, exp.experiment, exp.runs_dir, exp.values
    table = _Values(values)
    kept: list[tuple[tuple[str, str], str]] = []  # ((created_at, id), line) to write
    changed = False  # whether the index on disk no longer matches ``kept``
    racy_before = time.time_ns() - RACY_NS
    known = [name for name in names if name in old]
    if now is None:
        now = _signatures(dir_fd, [name + _RUN_FILE for name in known])  # every one, now
    elif len(known) < len(names):
        by_name = dict(zip(names, now))
        now = [by_name[name] for name in known]
    unread = [] if len(known) == len(names) else [n for n in names if n not in old]
    entries = out.entries
    for name, sig in zip(known, now):
        _, signature, status, created, tail = old.pop(name)
        if signature == sig:
            status = _SHARED.get(status, status)  # one text per status
            kept.append(((created, name), "\t".join((name, signature, status, created, tail))))
            if wanted is None or status in wanted:
                entries.append(Entry.make(name, status, created, tail, exp, signature))
            continue
        changed = True  # a stale entry: dropped, or replaced below
        unread.append(name)
    for name in sorted(unread):
        record_path = runs_dir / name / RUN_FILE
        try:
            st, record = _read(dir_fd, name, record_path)
            validate_record(record, record_path, project, experiment)
        except NotADirectoryError:
            continue  # a stray file beside the run directories
        except FileNotFoundError:
            problem = missing_record(runs_dir / name)  # (None: being created, no run yet)
            if problem is not None:
                out.problems.append(problem)
            continue
        except MolexpError as exc:
            out.problems.append(exc)
            continue
        created_at = record.get("created_at")
        plain = isinstance(created_at, str) and not any(
            c in text for c in "\t\n" for text in (name, created_at)
        )
        status = record["status"]
        tail = _tail(record, table)
        trusted = plain and st.st_ctime_ns < racy_before and st.st_mtime_ns < racy_before
        if wanted is None or status in wanted:
            entries.append(Entry.make(
                name, status, created_at, tail, exp, _signature(st) if trusted else None
            ))  # fmt: skip
        if trusted:
            # (a too recent record is read again next time)
            line = "\t".join((name, _signature(st), status, str(created_at), tail))
            kept.append(((str(created_at), name), line))
            changed = True
    entries.sort(key=_order)
    if old:
        changed = True  # runs removed since the index was written
    if path is not None and changed and refresh:
        kept.sort(key=operator.itemgetter(0))
        _save(ws_root, path, project, experiment, values, [line for _, line in kept])
