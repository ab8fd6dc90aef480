"""Environment records (SPEC §16): ``attempt.env`` and ``<workspace>/environments/``.

An attempt's ``env`` holds the facts of :mod:`molexp.core.provenance.environment`
and, under ``packages``, the hash of its package list; the list itself is stored
once per distinct environment as ``environments/<hash>.txt`` (``name==version``
lines: a ``pip install -r`` file), content-addressed by ``xxh3_128`` of its bytes,
created whole and never rewritten.  Two attempts in the same environment share
one file.

What makes it cheap is a cache under ``.molexp/cache/env/`` (derived data: deleting
it costs one recomputation), one small JSON file per interpreter, keyed by
:func:`~molexp.core.provenance.environment.interpreter_key`: the interpreter's
answers (version, ``sys.path``) and, for the current
:func:`~molexp.core.provenance.environment.fingerprint` of its package
directories, the hash of the list.  A warm attempt costs a few ``stat`` calls and
one small read; a changed environment one directory scan.

``MOLEXP_ENV`` chooses what is captured: ``full`` (the default), ``basic`` (no
interpreter, no packages: machine, modules, conda, container and SLURM facts only)
or ``off`` (``env`` is null).
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from molexp.core.provenance import environment as provenance
from molexp.core.store import files as store
from molexp.errors import UsageError, WorkspaceError

ENV_DIR = "environments"
CACHE_DIR = ".molexp/cache/env"
MODES = ("full", "basic", "off")
_LOCK = threading.Lock()  # with --jobs, one thread fills the cache; the others wait
# The cache files this process read or wrote, by path: the next attempt of a batch
# checks the same key and fingerprint without reading the file again.
_RECENT: dict[str, dict[str, Any]] = {}


def mode(env: Mapping[str, str]) -> str:
    value = (env.get("MOLEXP_ENV") or "full").strip().lower()
    if value not in MODES:
        raise UsageError(f"MOLEXP_ENV={value!r}: use one of {', '.join(MODES)}")
    return value


def capture(
    ws_root: Path,
    argv: Sequence[str],
    cwd: Path,
    env: Mapping[str, str],
    use_cache: bool = True,
) -> dict[str, Any] | None:
    """``attempt.env`` for a command ``argv`` about to run in ``cwd`` with ``env``;
    the package list is stored under ``environments/`` when new."""
    how = mode(env)
    if how == "off":
        return None
    out: dict[str, Any] = {"python": None, **provenance.machine(), **provenance.facts(env)}
    out["packages"] = None
    out["package_count"] = None
    if how == "basic":
        return out
    python = provenance.find_python(argv, cwd, env)
    if python is None:
        return out
    with _LOCK:
        interpreter, digest, count = _packages(ws_root, python, env, use_cache)
    out["python"] = {
        k: interpreter.get(k)
        for k in ("executable", "version", "implementation", "prefix", "error")
        if interpreter.get(k) is not None
    }
    out["packages"] = digest
    out["package_count"] = count
    return out


def _cache_path(ws_root: Path, key: str) -> Path:
    import xxhash

    return ws_root / CACHE_DIR / f"{xxhash.xxh3_128_hexdigest(key.encode())}.json"


def _packages(
    ws_root: Path, python: str, env: Mapping[str, str], use_cache: bool
) -> tuple[dict[str, Any], str | None, int | None]:
    """``(interpreter facts, hash of its package list, how many)``."""
    key = provenance.interpreter_key(python, env)
    path = _cache_path(ws_root, key)
    cached: dict[str, Any] = _RECENT.get(str(path), {})
    if cached.get("key") != key:  # (read or written by this process: the same bytes)
        cached = {}
        try:
            raw = json.loads(path.read_bytes())
            if (
                isinstance(raw, dict)
                and raw.get("key") == key
                and isinstance(raw.get("python"), dict)
            ):
                cached = _RECENT[str(path)] = raw
        except (OSError, ValueError):
            pass
    interpreter = cached.get("python") or provenance.probe(python, env)
    if interpreter.get("error"):
        return interpreter, None, None
    dirs = provenance.site_dirs(interpreter)
    stamp = provenance.fingerprint(dirs)
    digest, count = cached.get("packages"), cached.get("package_count")
    if (
        stamp == cached.get("fingerprint")
        and isinstance(digest, str)
        and os.path.exists(env_file(ws_root, digest))
    ):
        return interpreter, digest, count
    lines = provenance.packages(dirs)
    digest = store_list(ws_root, lines)
    count = len(lines)
    if use_cache:
        record = {
            "key": key,
            "python": interpreter,
            "fingerprint": stamp,
            "packages": digest,
            "package_count": count,
        }
        try:
            store.make_dirs(ws_root, path.parent)
            store.atomic_write_bytes(path, json.dumps(record).encode(), durable=False, root=ws_root)
            _RECENT[str(path)] = record
        except (OSError, WorkspaceError):
            pass  # a read-only cache: correct, just slower
    return interpreter, digest, count


def env_file(ws_root: Path, digest: str) -> Path:
    return ws_root / ENV_DIR / f"{digest}.txt"


def store_list(ws_root: Path, lines: Sequence[str]) -> str:
    """Store a package list (if new) and return its hash."""
    import xxhash

    data = "".join(f"{line}\n" for line in lines).encode("utf-8")
    digest = xxhash.xxh3_128_hexdigest(data)
    path = env_file(ws_root, digest)
    if not path.exists():
        store.make_dirs(ws_root, path.parent, durable=True)
        store.create_exclusive(path, data, root=ws_root)  # an identical racer's is as good
    return digest


def read_packages(ws_root: Path, digest: Any) -> dict[str, str] | None:
    """``{name: version}`` of a stored list, or None when it is not there."""
    if not isinstance(digest, str) or not digest.isalnum():
        return None
    try:
        return provenance.parse_packages(env_file(ws_root, digest).read_text(encoding="utf-8"))
    except OSError:
        return None


def referenced(records: Sequence[Mapping[str, Any]]) -> list[str]:
    """The package-list hashes the attempts of ``records`` refer to."""
    out: dict[str, None] = {}
    for record in records:
        for attempt in record.get("attempts") or []:
            env = attempt.get("env") if isinstance(attempt, dict) else None
            digest = env.get("packages") if isinstance(env, dict) else None
            if isinstance(digest, str) and digest.isalnum():
                out.setdefault(digest, None)
    return list(out)
