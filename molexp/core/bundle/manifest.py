"""The bundle format (SPEC §10, §17): member names, header, manifest, hashes.

A bundle is a ``.tar.gz`` whose first member is ``bundle.json`` (the header:
format name, bundle version, molexp version), whose members in between are
workspace-relative paths (``projects/<p>/experiments/<e>/runs/<id>/run.json``,
...), and whose last member is ``manifest.json``: the molexp version, the
references exported, the runs, and every file with its size and ``xxh3_128``
hash.  The manifest comes last so that each hash is of exactly the bytes that
went into the archive, even for the log of a run that is still being written.

This module holds the rules of that format and nothing that touches a file:
which names may appear (:func:`unit_of`), where a symlink may point
(:func:`link_inside`), and what a valid header and manifest say
(:func:`check_header`, :func:`check_manifest`).
"""

from __future__ import annotations

import posixpath
import re
from typing import Any

from molexp.core.model.identity import is_run_id
from molexp.core.model.names import is_valid_name
from molexp.core.records.workspace import EXPERIMENT_FILE, PROJECT_FILE
from molexp.core.store import files as store
from molexp.core.store.lock import BREAK_NAME, LOCK_NAME
from molexp.errors import SchemaVersionError

FORMAT = "molexp.bundle"
BUNDLE_VERSION = 1
HEADER = "bundle.json"
MANIFEST = "manifest.json"
ASSETS = "assets"
ENVIRONMENTS = "environments"
_ENV_FILE = re.compile(r"[0-9a-f]{32}\.txt")
ASSET_FILE = "asset.yaml"
HASH_PREFIX = "xxh3_128:"
SKIPPED_NAMES = (LOCK_NAME, BREAK_NAME)


class Refused(Exception):
    """A bundle member or manifest that cannot be accepted (the importer turns it
    into :class:`~molexp.errors.CorruptRecordError`)."""


class NotABundle(Exception):
    """The archive does not start with a molexp bundle header."""


# --- names ----------------------------------------------------------------------


def skip_name(name: str) -> bool:
    """Files that never travel: locks and temporary files."""
    return name in SKIPPED_NAMES or name.startswith(store.TMP_PREFIX)


def _check_part(part: str) -> None:
    if part in ("", ".", "..") or "\0" in part or len(part.encode()) > 255:
        raise Refused(f"unsafe path component {part!r}")
    if skip_name(part):
        raise Refused(f"{part!r} never belongs in a bundle")


def unit_of(name: str) -> tuple[str, str]:
    """``(kind, unit path)`` of a workspace-relative member name, checked against
    the layout; raises :class:`Refused` for anything else.

    Kinds: ``dir`` (a directory of the layout itself), ``project``, ``experiment``
    (their definition files), ``environment`` (a package list,
    ``environments/<hash>.txt``), ``run`` and ``asset`` (a path inside such a
    directory; the unit is the directory).
    """
    if name.startswith("/"):
        raise Refused("absolute path")
    parts = name.split("/")
    for part in parts:
        _check_part(part)
    n = len(parts)

    def asset(i: int) -> tuple[str, str]:
        # parts[i] == "assets"
        if n == i + 1:
            return "dir", name
        if not is_valid_name(parts[i + 1]):
            raise Refused(f"invalid asset name {parts[i + 1]!r}")
        return "asset", "/".join(parts[: i + 2])

    if parts[0] == ASSETS:
        return asset(0)
    if parts[0] == ENVIRONMENTS:
        if n == 1:
            return "dir", name
        if n == 2 and _ENV_FILE.fullmatch(parts[1]):
            return "environment", name
        raise Refused("not a package list of environments/ (<hash>.txt)")
    if parts[0] != "projects":
        raise Refused("not part of a workspace's projects or assets")
    if n == 1:
        return "dir", name
    if not is_valid_name(parts[1]):
        raise Refused(f"invalid project name {parts[1]!r}")
    if n == 2:
        return "dir", name
    if parts[2] == PROJECT_FILE and n == 3:
        return "project", name
    if parts[2] == ASSETS:
        return asset(2)
    if parts[2] != "experiments":
        raise Refused("not part of a project's layout")
    if n == 3:
        return "dir", name
    if not is_valid_name(parts[3]):
        raise Refused(f"invalid experiment name {parts[3]!r}")
    if n == 4:
        return "dir", name
    if parts[4] == EXPERIMENT_FILE and n == 5:
        return "experiment", name
    if parts[4] == ASSETS:
        return asset(4)
    if parts[4] != "runs":
        raise Refused("not part of an experiment's layout")
    if n == 5:
        return "dir", name
    if not is_run_id(parts[5]):
        raise Refused(f"invalid run id {parts[5]!r}")
    return "run", "/".join(parts[:6])


def link_inside(rel: str, target: str, top: str) -> bool:
    """Whether a symlink at ``rel`` pointing at ``target`` stays inside ``top``
    (judged on the text alone: relative, no ``..`` leaving ``top``)."""
    if not target or target.startswith("/") or "\0" in target:
        return False
    resolved = posixpath.normpath(posixpath.join(posixpath.dirname(rel), target))
    return resolved == top or resolved.startswith(top + "/")


# --- hashes ---------------------------------------------------------------------


class Hasher:
    """The ``xxh3_128`` digest and size of the bytes fed to it, as the manifest
    spells them (``xxh3_128:<hex>``)."""

    def __init__(self) -> None:
        import xxhash  # a C extension: loaded only by commands that hash

        self._h = xxhash.xxh3_128()
        self.size = 0

    def update(self, data: bytes) -> None:
        self._h.update(data)
        self.size += len(data)

    @property
    def digest(self) -> str:
        return HASH_PREFIX + str(self._h.hexdigest())


# --- header and manifest --------------------------------------------------------


def header(version: str) -> dict[str, Any]:
    """The first member: says what the archive is before anything is unpacked."""
    return {"format": FORMAT, "bundle_version": BUNDLE_VERSION, "molexp_version": version}


def check_header(value: dict[str, Any], bundle: str) -> None:
    """Raise :class:`NotABundle` unless ``value`` is a bundle header, and
    :class:`SchemaVersionError` for one newer than this molexp understands."""
    if value.get("format") != FORMAT:
        raise NotABundle(f"{HEADER} names format {value.get('format')!r}")
    version = value.get("bundle_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise NotABundle(f"{HEADER} has an invalid bundle_version {version!r}")
    if version > BUNDLE_VERSION:
        raise SchemaVersionError(
            bundle,
            f"bundle_version {version} (molexp {value.get('molexp_version')}) is newer than "
            f"this molexp understands ({BUNDLE_VERSION})",
            "Upgrade molexp to import this bundle; nothing was imported.",
        )


def build_manifest(
    *,
    molexp_version: str,
    created_at: str,
    source: dict[str, str],
    refs: list[str],
    runs: list[str],
    dirs: list[str],
    files: list[dict[str, Any]],
    links: list[dict[str, str]],
    skipped: list[dict[str, str]],
) -> dict[str, Any]:
    """The last member: what was exported and every file's size and hash."""
    return {
        "format": FORMAT,
        "bundle_version": BUNDLE_VERSION,
        "molexp_version": molexp_version,
        "created_at": created_at,
        "source": source,
        "refs": refs,
        "runs": runs,
        "dirs": dirs,
        "files": files,
        "links": links,
        "skipped": skipped,
    }


def check_manifest(
    manifest: dict[str, Any] | None,
    files: dict[str, tuple[int, str]],
    links: dict[str, str],
) -> dict[str, Any]:
    """Return ``manifest`` if it lists exactly the ``files`` (path -> (size,
    hash)) and ``links`` (path -> target) the archive held; raise
    :class:`Refused` otherwise."""
    if manifest is None:
        raise Refused("no manifest.json (not a molexp bundle, or truncated)")
    if manifest.get("format") != FORMAT or manifest.get("bundle_version") != BUNDLE_VERSION:
        raise Refused(f"{MANIFEST} does not match {HEADER}")
    listed_files = manifest.get("files")
    listed_links = manifest.get("links", [])
    if not isinstance(listed_files, list) or not isinstance(listed_links, list):
        raise Refused("manifest.json: files and links must be lists")
    listed: dict[str, tuple[int, str]] = {}
    for entry in listed_files:
        if not isinstance(entry, dict) or not isinstance(entry.get("path"), str):
            raise Refused("manifest.json: a files entry without a path")
        listed[entry["path"]] = (entry.get("size"), entry.get("hash"))  # type: ignore[assignment]
    if set(listed) != set(files):
        extra = sorted(set(files) - set(listed))
        missing = sorted(set(listed) - set(files))
        what = (
            f"not in the manifest: {extra[0]}"
            if extra
            else f"missing from the archive: {missing[0]}"
        )
        raise Refused(f"files do not match manifest.json ({what})")
    for path, got in files.items():
        if listed[path] != got:
            raise Refused(f"{path}: size or hash differs from manifest.json (damaged bundle?)")
    link_map = {e.get("path"): e.get("target") for e in listed_links if isinstance(e, dict)}
    if link_map != links:
        raise Refused("symlinks do not match manifest.json")
    return manifest
