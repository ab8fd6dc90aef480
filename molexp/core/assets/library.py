"""Asset records (SPEC §11): reading, finding and verifying what a library holds.

An asset lives in ``<scope>/assets/<name>/``::

    assets/<name>/
    ├── asset.yaml            # the record; the asset exists once this is in place
    └── data/<filename>       # a copied or moved file (a symlink with --link)
        data/                 # ...or a copied or moved folder (a symlink with --link)
                              # (--ref stores no data: the record names the path)

:mod:`molexp.core.assets.write` is the only code that adds or removes one.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from molexp.core.assets.content import ProgressHook, hash_path
from molexp.core.assets.scope import Scope, all_scopes, parse_scope
from molexp.core.model.names import is_valid_name, validate_name
from molexp.core.records.workspace import Workspace
from molexp.core.store import files as store
from molexp.errors import (
    AssetHashMismatchError,
    CorruptRecordError,
    MolexpError,
    NotFoundError,
    UsageError,
)

ASSET_FILE = "asset.yaml"
DATA_DIR = "data"
KINDS = ("file", "dir")
MODES = ("copy", "move", "link", "ref")
_HASH_RE = re.compile(r"xxh3_128:[0-9a-f]{32}")


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
    #: In a listing of a scope and what it inherits: for each asset, the closer
    #: scope hiding it (None if visible).  None in any other listing.
    shadowed: list[str | None] | None = None


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


def list_assets(ws: Workspace, scope: str | None = None, inherited: bool = False) -> Listing:
    """`molexp assets ls`: every scope's assets, or those of ``scope``.

    With ``inherited``, also the assets ``scope`` inherits (project, workspace),
    in lookup order, each marked with the scope that shadows it, if any.
    """
    if scope is None:
        return scan(all_scopes(ws))
    start = parse_scope(ws, scope)
    if not inherited:
        return scan([start])
    listing = scan(start.chain())
    listing.shadowed = shadowed_by(listing.assets)
    return listing


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


# --- verifying -----------------------------------------------------------------


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


@dataclass
class Verification:
    checks: list[Check] = field(default_factory=list)
    problems: list[MolexpError] = field(default_factory=list)  # records that cannot be read

    @property
    def failure(self) -> AssetHashMismatchError | None:
        """The error naming every asset that failed, or None if all are intact."""
        return failures_error(self.checks)


def verify_assets(
    ws: Workspace, scope: str | None = None, progress: ProgressHook | None = None
) -> Verification:
    """`molexp assets verify`: re-hash every asset of ``scope`` (default: of every scope)."""
    scopes = [parse_scope(ws, scope)] if scope is not None else all_scopes(ws)
    listing = scan(scopes)
    checks = [verify_asset(a, progress) for a in listing.assets]
    return Verification(checks, listing.problems)
