"""Persistence in one place: writes that stay inside the workspace, atomic
writes, and validating record readers.

Every file molexp writes goes through :func:`atomic_write_bytes` (temporary file
named ``.tmp-*`` in the same directory, flush, fsync, rename),
:func:`create_exclusive` (never replaces an existing file) or
:func:`append_line`, and every directory it creates through :func:`make_dirs`.
Each of them takes the workspace ``root`` and refuses, before writing, a path
that a symlink leads out of it (:func:`ensure_inside`, SPEC §2); code that
renames or links into place checks the destination with :func:`ensure_inside`
or creates it with :func:`make_dirs`.  Files get the user's umask.  Readers
validate what they read and name the file when they refuse it.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import json
import os
import stat
import threading
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from molexp.errors import CorruptRecordError, SchemaVersionError

TMP_PREFIX = ".tmp-"
SCHEMA_VERSION = 1

# kind -> {from_version: function upgrading a record from that version by one}.
# Older records are migrated in memory on read and rewritten on the next write.
MIGRATIONS: dict[str, dict[int, Callable[[dict[str, Any]], dict[str, Any]]]] = {
    "workspace": {},
    "project": {},
    "experiment": {},
    "run": {},
    "asset": {},
}


def now_iso() -> str:
    """The current time, ISO 8601 in UTC with offset and microseconds."""
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


def fsync_dir(directory: Path) -> None:
    """Make a rename or new entry in ``directory`` durable (best effort)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _open_temp(directory: Path, name: str) -> tuple[int, Path]:
    """Create ``.tmp-<name>-<random>`` exclusively, with the user's umask."""
    for _ in range(100):
        tmp = directory / f"{TMP_PREFIX}{name}-{os.urandom(6).hex()}"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        return fd, tmp
    raise OSError(f"cannot create a temporary file in {directory}")  # pragma: no cover


def _write_all(fd: int, data: bytes, path: Path, durable: bool = False) -> None:
    """Write all of ``data`` to ``fd`` (and fsync it when ``durable``); a failure
    (a full disk: ``ENOSPC``, a quota) is raised naming ``path``, the file the
    user knows, so that it reads as one line saying where."""
    view = memoryview(data)
    try:
        while view:
            written = os.write(fd, view)
            view = view[written:]
        if durable:
            os.fsync(fd)
    except OSError as exc:
        if exc.filename is not None:
            raise
        raise OSError(exc.errno, exc.strerror, str(path)) from None


def atomic_write_bytes(
    path: Path,
    data: bytes,
    durable: bool = True,
    durable_entry: bool | None = None,
    *,
    root: Path,
) -> None:
    """Replace ``path`` (inside ``root``) with ``data`` so that readers see the old
    or the new file.

    ``durable`` (records) fsyncs the file before the rename, so that after a
    crash of the machine the name holds the old or the new content, never an
    empty file; files re-created by every attempt (the command's params/config
    copies) skip it and stay atomic.  ``durable_entry`` (default: ``durable``)
    also fsyncs the directory, so the new version itself survives a crash: what
    a record must keep for good (an attempt's outcome) asks for it; a step that
    may be lost with the attempt in progress (the ``running`` record) does not
    (docs/reliability.md, "What is fsynced").
    """
    ensure_inside(root, path)
    fd, tmp = _open_temp(path.parent, path.name)
    try:
        try:
            _write_all(fd, data, path, durable)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if durable if durable_entry is None else durable_entry:
        fsync_dir(path.parent)


def create_exclusive(
    path: Path,
    data: bytes,
    durable: bool = True,
    durable_entry: bool | None = None,
    *,
    root: Path,
) -> bool:
    """Write ``path`` (inside ``root``) atomically only if it does not exist;
    return whether it did.

    The content is complete before the name appears (``link`` of a finished
    temporary file), so a concurrent reader never sees a partial record and a
    concurrent creator never overwrites one.  ``durable``/``durable_entry``: as
    for :func:`atomic_write_bytes`.
    """
    return create_exclusive_inode(path, data, durable, durable_entry, root=root) is not None


def create_exclusive_inode(
    path: Path,
    data: bytes,
    durable: bool = True,
    durable_entry: bool | None = None,
    *,
    root: Path,
) -> int | None:
    """:func:`create_exclusive`, returning the inode of the file it created (None
    when ``path`` existed).

    On NFS the ``link`` may succeed on the server while its reply is lost; the
    client's retry then fails with ``EEXIST`` although the link is ours.  The
    temporary file's link count tells: 2 means ``path`` is the file just written
    (the check ``open(2)`` recommends for lock files on NFS).
    """
    ensure_inside(root, path)
    fd, tmp = _open_temp(path.parent, path.name)
    try:
        try:
            _write_all(fd, data, path, durable)
            inode = os.fstat(fd).st_ino
        finally:
            os.close(fd)
        try:
            _link(tmp, path)
        except FileExistsError:
            if os.stat(tmp).st_nlink != 2:
                return None
        if durable if durable_entry is None else durable_entry:
            fsync_dir(path.parent)
        return inode
    finally:
        tmp.unlink(missing_ok=True)


def _link(src: Path, dst: Path) -> None:
    """``os.link`` (a seam: a test replays NFS's lost reply, a link that succeeded
    but raised ``EEXIST``)."""
    os.link(src, dst)


def append_line(path: Path, line: bytes, *, root: Path) -> None:
    """Append ``line`` to ``path`` (inside ``root``; created with the user's umask)
    in one ``O_APPEND`` write, so lines of concurrent writers never interleave."""
    ensure_inside(root, path)
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(path, flags, 0o666)
    try:
        _write_all(fd, line, path)
    finally:
        os.close(fd)


def make_dirs(root: Path, path: Path, durable: bool = False) -> Path:
    """Create the directory ``path`` and its missing parents, refused (before
    anything is created) unless it stays inside ``root``; return it resolved.

    ``durable`` makes each directory created durable in its parent (``fsync`` of
    the parent), so a new project, experiment or run directory survives a crash
    of the machine together with the record written into it; folders inside a
    run (attempts, artifacts) become durable with the attempt's outcome instead.
    """
    real = ensure_inside(root, path)
    missing: list[Path] = []
    current = real
    while not os.path.lexists(current):
        missing.append(current)
        current = current.parent
    for directory in reversed(missing):
        try:
            os.mkdir(directory)
        except FileExistsError:
            if not os.path.isdir(directory):
                raise
            continue
        if durable:
            fsync_dir(directory.parent)
    if not missing and not os.path.isdir(real):
        raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(path))
    return real


def ensure_inside(root: Path, path: Path) -> Path:
    """``path`` with symlinks resolved; refused unless it stays inside ``root``.

    Everything molexp writes stays in the workspace (SPEC §2): a symlink inside
    it that leads out (a ``runs`` folder linked to elsewhere, say) is refused
    before anything is written through it.  Below a directory checked for the
    attempt in progress (:func:`checked_dir`) only the parts below it are looked
    at again.
    """
    given = os.fspath(path)
    base = os.fspath(root)
    if _CHECKED:
        found = _below_checked(base, given)
        if found is not None:
            return Path(found)
    real_root = _realpath(base)
    fast = _resolve_below(base, given, real_root)  # ~10x cheaper when nothing is a link
    if fast is not None:
        return Path(fast)
    return _resolve_fully(root, path, real_root)


def _resolve_fully(root: Path, path: Path, real_root: str) -> Path:
    from molexp.errors import WorkspaceError

    real = Path(path).resolve()
    top = Path(real_root)
    if real != top and top not in real.parents:
        raise WorkspaceError(
            f"{path} leads outside the workspace {root} (to {real})",
            "A symlink inside the workspace points out of it; molexp writes only inside "
            "the workspace. Replace the link by a folder, or move the whole workspace.",
        )
    return real


@functools.lru_cache(maxsize=16)
def _realpath(path: str) -> str:
    """``os.path.realpath``, once per workspace root and process."""
    return os.path.realpath(path)


def _relative(base: str, given: str) -> str | None:
    """``given`` relative to ``base`` (normalised paths, as ``str(Path)`` gives), as
    ``a/b/c`` ("" for ``base`` itself); None unless it lies lexically below ``base``
    without a ``..``."""
    if given == base:
        return ""
    prefix = base if base.endswith("/") else base + "/"
    if not given.startswith(prefix):
        return None
    rel = given[len(prefix) :]
    if not rel or rel == ".." or rel.startswith("../") or "/../" in rel or rel.endswith("/.."):
        return None
    return rel


def _resolve_below(base: str, given: str, real_base: str) -> str | None:
    """The resolved ``given`` when it lies lexically below ``base`` and no existing
    part of it below ``base`` is a symlink (then it is ``real_base`` joined with the
    relative parts); None when the full check is needed."""
    rel = _relative(base, given)
    if rel is None:
        return None
    if not rel:
        return real_base
    current = base.rstrip("/")
    for part in rel.split("/"):
        current = f"{current}/{part}"
        try:
            if stat.S_ISLNK(os.lstat(current).st_mode):
                return None
        except FileNotFoundError:
            break  # nothing below exists yet, so nothing below is a link
        except OSError:
            return None
    return f"{real_base.rstrip('/')}/{rel}"


# Directories checked once for the attempt in progress (:func:`checked_dir`):
# directory -> [workspace root, its resolved path (None until it exists), holders].
_CHECKED: dict[str, list[Any]] = {}
_CHECKED_GUARD = threading.Lock()


@contextlib.contextmanager
def checked_dir(root: Path, directory: Path) -> Iterator[None]:
    """While inside the block, :func:`ensure_inside` of a path below ``directory``
    (inside ``root``) checks ``directory`` itself once, when it first exists, and
    then only the parts of the path below it (an attempt writes ~10 files in its
    run's folder: each would stat every folder from the workspace's root down).
    A symlink below ``directory`` still gets the full check, and one leading out
    is refused as before."""
    key = os.fspath(directory)
    with _CHECKED_GUARD:
        entry = _CHECKED.get(key)
        if entry is None or entry[0] != os.fspath(root):
            entry = _CHECKED[key] = [os.fspath(root), None, 0]
        entry[2] += 1
    try:
        yield
    finally:
        with _CHECKED_GUARD:
            entry[2] -= 1
            if entry[2] <= 0 and _CHECKED.get(key) is entry:
                del _CHECKED[key]


def _below_checked(base: str, given: str) -> str | None:
    """The resolved ``given`` when it lies below a directory of :func:`checked_dir`
    for the workspace ``base`` and nothing below that directory is a link; else None."""
    cut = len(given)
    while cut > 0:
        entry = _CHECKED.get(given[:cut])
        if entry is not None and entry[0] == base:
            directory = given[:cut]
            real = entry[1]
            if real is None:  # checked when it first exists (created by this attempt)
                if not os.path.isdir(directory):
                    return None
                real = _resolve_below(base, directory, _realpath(base))
                if real is None:
                    return None  # a link on the way: the full check, every time
                entry[1] = real
            return _resolve_below(directory, given, real)
        cut = given.rfind("/", 0, cut)
    return None


def dumps_json(record: Any) -> bytes:
    """A record as stored: indented by 2, UTF-8, NaN refused, a final newline.

    Byte for byte ``json.dumps(record, indent=2, ensure_ascii=False,
    allow_nan=False)``, which has no C encoder for ``indent``: :func:`indented`
    writes the common types twice as fast."""
    return (indented(record) + "\n").encode()


def indented(data: Any, allow_nan: bool = False) -> str:
    """``json.dumps(data, indent=2, ensure_ascii=False, allow_nan=allow_nan)``, the
    same text, built without the encoder's generators: dicts with string keys,
    lists, tuples, strings, ints, finite floats, bools and None; anything else (a
    subclass, NaN, a cycle) is left to ``json.dumps`` itself, errors included."""
    out: list[str] = []
    try:
        _put(data, "\n", out)
    except (_Unusual, RecursionError):
        return json.dumps(data, indent=2, ensure_ascii=False, allow_nan=allow_nan)
    return "".join(out)


class _Unusual(Exception):
    """A value :func:`indented` leaves to ``json.dumps``."""


_encode_str: Callable[[str], str] = json.encoder.encode_basestring  # (C, when built)
_INF = float("inf")


def _put(o: Any, nl: str, out: list[str]) -> None:
    """Append the indented JSON of ``o`` at the depth whose line break is ``nl``."""
    t = type(o)
    if t is str:
        out.append(_encode_str(o))
    elif t is dict:
        if not o:
            out.append("{}")
            return
        inner = nl + "  "
        sep = "{" + inner
        append = out.append
        for k, v in o.items():
            if type(k) is not str:
                raise _Unusual
            tv = type(v)
            if tv is str:
                append(sep + _encode_str(k) + ": " + _encode_str(v))
            elif v is None:
                append(sep + _encode_str(k) + ": null")
            elif tv is int:
                append(sep + _encode_str(k) + ": " + int.__repr__(v))
            else:
                append(sep + _encode_str(k) + ": ")
                _put(v, inner, out)
            sep = "," + inner
        append(nl + "}")
    elif t is list or t is tuple:
        if not o:
            out.append("[]")
            return
        inner = nl + "  "
        sep = "[" + inner
        append = out.append
        for v in o:
            if type(v) is str:
                append(sep + _encode_str(v))
            else:
                append(sep)
                _put(v, inner, out)
            sep = "," + inner
        append(nl + "]")
    elif o is None:
        out.append("null")
    elif o is True:
        out.append("true")
    elif o is False:
        out.append("false")
    elif t is int:
        out.append(int.__repr__(o))
    elif t is float and o == o and o != _INF and o != -_INF:
        out.append(float.__repr__(o))
    else:
        raise _Unusual


def write_json(path: Path, record: Any, durable_entry: bool = True, *, root: Path) -> None:
    atomic_write_bytes(path, dumps_json(record), durable_entry=durable_entry, root=root)


def write_yaml(path: Path, record: Any, *, root: Path) -> None:
    from molexp.core.model.yaml12 import dump_yaml

    atomic_write_bytes(path, dump_yaml(record).encode("utf-8"), root=root)


def check_schema(record: dict[str, Any], path: Path, kind: str) -> dict[str, Any]:
    """Refuse a newer schema, migrate an older one in memory."""
    version = record.get("schema_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise CorruptRecordError(path, f"missing or invalid schema_version ({version!r})")
    if version > SCHEMA_VERSION:
        raise SchemaVersionError(
            path,
            f"schema_version {version} is newer than this molexp understands ({SCHEMA_VERSION})",
            "Upgrade molexp to read this workspace.",
        )
    steps = MIGRATIONS.get(kind, {})
    while version < SCHEMA_VERSION:
        record = steps[version](record)
        version += 1
        record["schema_version"] = version
    return record


def read_json_record(path: Path, kind: str) -> dict[str, Any]:
    """Read a JSON record; refuse unreadable, non-object or newer-schema files."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise CorruptRecordError(path, f"cannot be read ({exc.strerror})") from exc
    return parse_json_record(raw, path, kind)


def parse_json_record(raw: bytes, path: Path, kind: str) -> dict[str, Any]:
    try:
        record = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        problem = "is empty" if not raw.strip() else f"is not valid JSON ({exc})"
        raise CorruptRecordError(path, problem) from exc
    except RecursionError:
        raise CorruptRecordError(path, "is not valid JSON (nested too deeply)") from None
    if not isinstance(record, dict):
        raise CorruptRecordError(path, "is not a JSON object")
    return check_schema(record, path, kind)


CACHE_DIR = ".molexp/cache/yaml"


def load_yaml_cached(raw: bytes, source: str, cache_dir: Path | None) -> Any:
    """``yaml12.load_yaml`` of ``raw``, through a content-addressed JSON cache.

    Parsing YAML (and importing PyYAML) costs ~20 ms, a lot for a CLI called in
    Makefile loops.  The cache is keyed by a hash of the bytes themselves, so it
    can never be stale; deleting ``<workspace>/.molexp/`` loses nothing.  Values
    whose JSON form would differ from the YAML (non-string keys) are not cached.
    """
    if cache_dir is None:
        from molexp.core.model.yaml12 import load_yaml

        return load_yaml(raw, source)
    import xxhash

    entry = cache_dir / f"{xxhash.xxh3_128_hexdigest(raw)}.json"
    try:
        return json.loads(entry.read_bytes())["value"]
    except (OSError, ValueError, KeyError, TypeError):
        pass
    from molexp.core.model.yaml12 import load_yaml

    value = load_yaml(raw, source)
    try:
        encoded = json.dumps({"value": value}, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError):
        return value  # .inf/.nan or a non-JSON type: correct, just not cached
    if json.loads(encoded)["value"] == value:
        from molexp.errors import WorkspaceError

        root = cache_dir.parents[len(Path(CACHE_DIR).parts) - 1]
        try:
            make_dirs(root, cache_dir)
            atomic_write_bytes(entry, encoded.encode(), root=root)
        except (OSError, WorkspaceError):
            pass  # a read-only workspace (or .molexp/ linked out) works, just slower
    return value


def read_yaml_record(path: Path, kind: str, cache_dir: Path | None = None) -> dict[str, Any]:
    """Read a YAML definition; malformed YAML in a record file is a corrupt record."""
    from molexp.errors import UsageError

    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise CorruptRecordError(path, f"cannot be read ({exc.strerror})") from exc
    try:
        record = load_yaml_cached(raw, str(path), cache_dir)
    except UsageError as exc:
        raise CorruptRecordError(path, exc.message.removeprefix(f"{path}: ")) from exc
    if not isinstance(record, dict):
        raise CorruptRecordError(path, "is not a YAML mapping")
    return check_schema(record, path, kind)


def leftover_temp_files(root: Path) -> list[Path]:
    """Temporary files under ``root`` (none should survive a finished command)."""
    return [p for p in root.rglob(f"{TMP_PREFIX}*") if p.is_file()]
