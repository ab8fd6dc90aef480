"""Lineage (SPEC §11): which runs used which assets.

A lookup from inside a run is appended to ``attempts/<n>/inputs.jsonl``, which
molexp merges into ``run.json`` when the attempt ends, so the child never
writes the record its parent holds.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from molexp.core.assets.content import ProgressHook
from molexp.core.assets.library import (
    Asset,
    Verification,
    ensure_intact,
    get_asset,
    resolve_asset,
    verify_assets,
)
from molexp.core.assets.scope import Scope, parse_scope, run_scope, scope_of_ref
from molexp.core.execution.runenv import RunEnv
from molexp.core.model.names import validate_name
from molexp.core.records.workspace import Workspace
from molexp.core.store import files as store
from molexp.errors import MolexpError, UsageError, WorkspaceError

INPUTS_FILE = "inputs.jsonl"


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
    try:
        store.append_line(path, payload, root=ctx.workspace_root)
    except OSError as exc:  # ELOOP: a symlink planted in the attempt directory
        raise WorkspaceError(f"{path}: cannot record the asset lookup ({exc.strerror})") from exc


def current_context() -> RunEnv | None:
    """The run this process was launched for, or None outside `molexp run`."""
    if not os.environ.get("MOLEXP_RUN_ID"):
        return None
    return RunEnv()


def _inputs_of(run_dir: Path, record: dict[str, Any] | None = None) -> Iterator[dict[str, Any]]:
    """Recorded inputs of a run: run.json's (``record``, read if not given), then
    any attempt's inputs.jsonl."""
    if record is None:
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


@dataclass(frozen=True)
class Input:
    """An asset a run recorded as an input: by scope, name and content hash."""

    scope: str
    name: str
    content_hash: str | None

    @property
    def label(self) -> str:
        return f"{self.name} ({'the workspace' if self.scope == '.' else self.scope})"


def inputs_of(run_dir: Path, record: dict[str, Any] | None = None) -> list[Input]:
    """The distinct assets the run in ``run_dir`` recorded as inputs, in order.

    Raises what reading its record raises (``FileNotFoundError``,
    :class:`~molexp.errors.CorruptRecordError`)."""
    seen: dict[tuple[str, str], Input] = {}
    for item in _inputs_of(run_dir, record):
        name, scope = item.get("name"), item.get("scope")
        if not isinstance(name, str) or not isinstance(scope, str):
            continue
        digest = item.get("content_hash")
        seen.setdefault(
            (scope, name), Input(scope, name, digest if isinstance(digest, str) else None)
        )
    return list(seen.values())


def input_dir(ws: Workspace, used: Input) -> Path | None:
    """The asset folder ``used`` names, when its scope and name are valid names
    (never a path game), whether or not it exists."""
    try:
        scope = parse_scope(ws, used.scope, must_exist=False)
        validate_name(used.name, "asset")
    except UsageError:
        return None
    return scope.assets_dir / used.name


@dataclass(frozen=True)
class Dangling:
    """A run's recorded input whose asset is not in the workspace (SPEC §17)."""

    run: str  # PROJECT/EXPERIMENT/RUN_ID
    run_dir: Path
    used: Input
    path: Path | None  # where the asset would be (None: its scope or name is invalid)

    @property
    def message(self) -> str:
        digest = f", {self.used.content_hash}" if self.used.content_hash else ""
        return (
            f"run {self.run} used asset {self.used.label}{digest}, which is not in the "
            "workspace (dangling lineage)"
        )

    def to_json(self) -> dict[str, Any]:
        """In the shape of an `assets verify --json` check (status ``dangling``)."""
        return {
            "scope": self.used.scope,
            "name": self.used.name,
            "status": "dangling",
            "detail": f"an input of run {self.run}; the asset is missing",
            "content_hash": self.used.content_hash,
            "actual_hash": None,
            "path": None if self.path is None else str(self.path),
            "run": self.run,
        }


def dangling_error(dangling: Sequence[Dangling]) -> WorkspaceError | None:
    """The error (exit 3) naming recorded inputs whose asset is missing, or None."""
    if not dangling:
        return None
    more = f" (and {len(dangling) - 1} more)" if len(dangling) > 1 else ""
    return WorkspaceError(
        f"{len(dangling)} recorded run input(s) refer to missing assets: "
        f"{dangling[0].message}{more}",
        "Restore them (import the bundle they came with, or `molexp assets add`); "
        "`molexp doctor` lists every one.",
    )


def missing_inputs(
    ws: Workspace, run: str, run_dir: Path, record: dict[str, Any] | None = None
) -> list[Dangling]:
    """The inputs of one run whose asset is missing."""
    out: list[Dangling] = []
    for used in inputs_of(run_dir, record):
        folder = input_dir(ws, used)
        if folder is None or not (folder / "asset.yaml").is_file():
            out.append(Dangling(run, run_dir, used, folder))
    return out


def dangling_inputs(ws: Workspace, scope: str | None = None) -> list[Dangling]:
    """Every recorded run input in the workspace whose asset is missing (only those
    of ``scope``, as `molexp assets` spells it, when given); unreadable records are
    left to `molexp doctor`."""
    out: list[Dangling] = []
    for proj, exp, run_dir in ws.iter_run_dirs():
        try:
            found = missing_inputs(ws, f"{proj}/{exp}/{run_dir.name}", run_dir)
        except (FileNotFoundError, MolexpError, OSError):
            continue
        out.extend(d for d in found if scope is None or d.used.scope == scope)
    return out


def verify_with_lineage(
    ws: Workspace, scope: str | None = None, progress: ProgressHook | None = None
) -> tuple[Verification, list[Dangling]]:
    """`molexp assets verify`: re-hash the assets of ``scope`` (default: every
    scope), and find the recorded run inputs of that scope whose asset is gone."""
    checked = verify_assets(ws, scope, progress)
    wanted = None if scope is None else parse_scope(ws, scope).text
    return checked, dangling_inputs(ws, wanted)


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


def path_for(
    ws: Workspace,
    name: str,
    from_ref: str | None = None,
    verify: bool = False,
    progress: ProgressHook | None = None,
) -> Asset:
    """`molexp assets path`: the asset ``name`` a shell command asks for.

    The search starts at ``from_ref`` (a REF), else at the current run's
    experiment inside a run, else at the workspace.  With ``verify`` the data is
    re-hashed first (:class:`AssetHashMismatchError` if it changed; nothing is
    recorded then).  Inside `molexp run` the lookup is recorded as an input.
    """
    ctx = current_context()
    if from_ref is not None:
        start = scope_of_ref(ws, from_ref)
    else:
        start = run_scope(ctx, ws) if ctx is not None else Scope(ws)
    asset = resolve_asset(start, name)
    if verify:
        ensure_intact(asset, progress)
    if ctx is not None:
        record_lookup(ctx, asset)
    return asset


def describe_in(ws: Workspace, scope: str, name: str) -> dict[str, Any]:
    """`molexp assets show`: :func:`describe` of the asset ``name`` of exactly ``scope``."""
    return describe(get_asset(parse_scope(ws, scope), name))
