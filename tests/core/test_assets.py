"""Assets in the core (SPEC §11): hashing, adding, replacing, lineage, verify, rm."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path
from typing import Any

import pytest
import xxhash

from molexp.api.context import RunContext
from molexp.api.workspace import Workspace
from molexp.core.assets import library as assets
from molexp.core.assets.library import Scope
from molexp.core.store import files as store
from molexp.errors import (
    AssetHashMismatchError,
    ConflictError,
    CorruptRecordError,
    NotFoundError,
    SchemaVersionError,
    UsageError,
    WorkspaceError,
)
from tests.conftest import snapshot


def reference_dir_hash(root: Path) -> str:
    """SPEC §11 folder hash, written independently of molexp (os.walk, whole reads)."""
    entries = []
    for dirpath, _dirs, files in os.walk(root):
        for fname in files:
            full = Path(dirpath) / fname
            rel = full.relative_to(root).as_posix().encode("utf-8")
            entries.append((rel, full.read_bytes()))
    stream = b"".join(
        rel + b"\x00" + len(data).to_bytes(8, "big") + data for rel, data in sorted(entries)
    )
    return "xxh3_128:" + xxhash.xxh3_128(stream).hexdigest()


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    w = Workspace(tmp_path / "lab")
    w.init("lab")
    w.project("qm9").experiment("base", command="true", git_cwd=tmp_path)
    return w


def tree(root: Path) -> Path:
    (root / "sub" / "deeper").mkdir(parents=True)
    (root / "empty").mkdir()
    (root / "a-b").write_bytes(b"dash")
    (root / "a").mkdir()
    (root / "a" / "b").write_bytes(b"slash")
    (root / "sub" / "x.bin").write_bytes(bytes(range(256)) * 5000)  # more than one chunk
    (root / "sub" / "deeper" / "é.txt").write_text("unicode name\n")
    (root / "z").write_bytes(b"")
    return root


# --- hashing --------------------------------------------------------------------


def test_file_hash_is_xxh3_128_of_the_bytes(tmp_path: Path) -> None:
    data = os.urandom(3 * assets.CHUNK + 123)
    f = tmp_path / "f.bin"
    f.write_bytes(data)
    seen: list[int] = []

    def hook(label: str, total: int) -> Any:
        assert total == len(data)
        return seen.append

    content = assets.hash_path(f, hook)
    assert content.content_hash == "xxh3_128:" + xxhash.xxh3_128(data).hexdigest()
    assert (content.kind, content.size, content.files) == ("file", len(data), 1)
    assert sum(seen) == len(data) and len(seen) == 4


def test_dir_hash_matches_an_independent_implementation(tmp_path: Path) -> None:
    root = tree(tmp_path / "t")
    content = assets.hash_path(root)
    assert content.content_hash == reference_dir_hash(root)
    assert content.kind == "dir" and content.files == 5
    # empty folders do not count; byte order puts "a-b" (0x2d) before "a/b" (0x2f)
    (root / "more-empty" / "nested").mkdir(parents=True)
    assert assets.hash_path(root).content_hash == content.content_hash
    order = [rel for rel, _ in assets._walk(root).files]
    assert order.index("a-b") < order.index("a/b")


def test_copy_hashing_equals_hash_and_keeps_bytes(tmp_path: Path) -> None:
    root = tree(tmp_path / "t")
    copied = assets.copy_hashing(root, tmp_path / "copy")
    assert copied == assets.hash_path(root)
    assert snapshot(tmp_path / "copy") == snapshot(root)
    assert (tmp_path / "copy" / "empty").is_dir()


def test_symlink_inside_a_folder_is_refused(tmp_path: Path) -> None:
    root = tree(tmp_path / "t")
    (root / "link").symlink_to(root / "z")
    with pytest.raises(UsageError, match="symbolic link 'link'") as info:
        assets.hash_path(root)
    assert info.value.exit_code == 2


def test_files_get_the_umask_and_keep_exec_bits(ws: Workspace, tmp_path: Path) -> None:
    src = tmp_path / "tool.sh"
    src.write_text("#!/bin/sh\n")
    src.chmod(0o755)
    old = os.umask(0o027)
    try:
        asset = assets.add_asset(Scope(ws), "tool", src).asset
    finally:
        os.umask(old)
    assert asset.path.stat().st_mode & 0o777 == 0o750
    assert asset.dir.stat().st_mode & 0o777 == 0o750
    assert (asset.dir / "asset.yaml").stat().st_mode & 0o777 == 0o640


# --- adding -----------------------------------------------------------------------


def test_add_same_content_does_nothing_different_content_conflicts(
    ws: Workspace, tmp_path: Path
) -> None:
    src = tmp_path / "d.csv"
    src.write_text("x,y\n1,2\n")
    scope = assets.parse_scope(ws, "qm9/base")
    first = assets.add_asset(scope, "data", src, description="the data", tags=["raw"])
    assert first.action == "added"
    rec = first.asset.record
    assert rec["kind"] == "file" and rec["filename"] == "d.csv" and rec["size"] == 8
    assert rec["scope"] == "qm9/base" and rec["producer"] is None
    assert first.asset.path == scope.assets_dir / "data" / "data" / "d.csv"
    before = snapshot(ws.root)
    assert assets.add_asset(scope, "data", src).action == "unchanged"
    assert snapshot(ws.root) == before

    src.write_text("x,y\n1,3\n")  # same size, different bytes
    with pytest.raises(ConflictError, match="--replace") as info:
        assets.add_asset(scope, "data", src)
    assert info.value.exit_code == 3
    src.write_text("longer content now\n")
    with pytest.raises(ConflictError, match="--replace"):
        assets.add_asset(scope, "data", src)
    assert snapshot(ws.root) == before

    replaced = assets.add_asset(scope, "data", src, replace=True)
    assert replaced.action == "replaced"
    assert replaced.asset.path.read_text() == "longer content now\n"
    assert replaced.asset.record["description"] == "the data"  # kept
    assert replaced.asset.record["tags"] == ["raw"]
    assert store.leftover_temp_files(ws.root) == []
    assert not [p for p in scope.assets_dir.iterdir() if p.name.startswith(".tmp-")]


def test_replace_without_rename_exchange(
    ws: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(assets, "exchange", lambda a, b: False)
    src = tmp_path / "d"
    src.write_text("one")
    assets.add_asset(Scope(ws), "d", src)
    src.write_text("two!")
    assert assets.add_asset(Scope(ws), "d", src, replace=True).action == "replaced"
    assert assets.load_asset(Scope(ws), "d").path.read_text() == "two!"
    assert sorted(p.name for p in (ws.root / "assets").iterdir()) == ["d"]


def test_interrupted_add_and_replace_leave_old_or_nothing(
    ws: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = tree(tmp_path / "t")
    real = assets._stream
    calls = {"n": 0}

    def dying(*args: Any, **kwargs: Any) -> int:
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(assets, "_stream", dying)
    with pytest.raises(KeyboardInterrupt):
        assets.add_asset(Scope(ws), "t", src)
    assert sorted(p.name for p in (ws.root / "assets").iterdir()) == []

    monkeypatch.setattr(assets, "_stream", real)
    assets.add_asset(Scope(ws), "t", src)
    before = snapshot(ws.root)
    (src / "z").write_text("new content")
    calls["n"] = 0
    monkeypatch.setattr(assets, "_stream", dying)
    with pytest.raises(KeyboardInterrupt):
        assets.add_asset(Scope(ws), "t", src, replace=True)
    assert snapshot(ws.root) == before
    assert sorted(p.name for p in (ws.root / "assets").iterdir()) == ["t"]


def test_move_same_and_across_filesystems(
    ws: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = tree(tmp_path / "t")
    expected = reference_dir_hash(src)
    asset = assets.add_asset(Scope(ws), "moved", src, mode="move").asset
    assert not src.exists()
    assert asset.content_hash == expected and asset.path == asset.dir / "data"
    assert reference_dir_hash(asset.path) == expected

    def exdev(a: Path, b: Path) -> None:
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(assets, "_rename", exdev)
    src2 = tmp_path / "f.txt"
    src2.write_text("across")
    moved = assets.add_asset(Scope(ws), "across", src2, mode="move").asset
    assert not src2.exists() and moved.path.read_text() == "across"


def test_move_that_conflicts_keeps_the_source(ws: Workspace, tmp_path: Path) -> None:
    src = tmp_path / "f.txt"
    src.write_text("one")
    assets.add_asset(Scope(ws), "f", src)
    src.write_text("two")
    with pytest.raises(ConflictError):
        assets.add_asset(Scope(ws), "f", src, mode="move")
    assert src.read_text() == "two"
    src.write_text("one")
    assert assets.add_asset(Scope(ws), "f", src, mode="move").action == "unchanged"
    assert src.exists()


def test_link_and_ref_verify_their_external_file(ws: Workspace, tmp_path: Path) -> None:
    ext = tmp_path / "external.dat"
    ext.write_text("external")
    linked = assets.add_asset(Scope(ws), "linked", ext, mode="link").asset
    refd = assets.add_asset(Scope(ws), "refd", ext, mode="ref").asset
    assert linked.path.is_symlink() and linked.path.read_text() == "external"
    assert refd.path == ext and not (refd.dir / "data").exists()
    assert [assets.verify_asset(a).status for a in (linked, refd)] == ["ok", "ok"]
    ext.write_text("External")
    checks = [assets.verify_asset(a) for a in (linked, refd)]
    assert [c.status for c in checks] == ["changed", "changed"]
    assert "linked file changed" in checks[0].detail
    assert "referenced file changed" in checks[1].detail
    ext.unlink()
    assert [assets.verify_asset(a).status for a in (linked, refd)] == ["missing", "missing"]
    ext.write_text("back")
    assets.remove_asset(Scope(ws), "linked")
    assets.remove_asset(Scope(ws), "refd")
    assert ext.read_text() == "back"


def test_verify_catches_tampering(ws: Workspace, tmp_path: Path) -> None:
    src = tree(tmp_path / "t")
    asset = assets.add_asset(Scope(ws, "qm9"), "t", src).asset
    assert assets.verify_asset(asset).status == "ok"
    (asset.path / "sub" / "x.bin").write_bytes(b"tampered")
    check = assets.verify_asset(asset)
    assert check.status == "changed" and check.actual_hash != asset.content_hash
    with pytest.raises(AssetHashMismatchError, match="t \\(qm9: changed\\)") as info:
        assets.ensure_intact(asset)
    assert info.value.exit_code == 3
    (asset.path / "sub" / "x.bin").unlink()
    (asset.path / "sub" / "x.bin").symlink_to(asset.path / "z")
    assert assets.verify_asset(asset).status == "changed"
    # the source still matches the record: a plain add does nothing, --replace repairs
    assert assets.add_asset(asset.scope, "t", src).action == "unchanged"
    assert assets.add_asset(asset.scope, "t", src, replace=True).action == "repaired"
    assert assets.verify_asset(assets.load_asset(asset.scope, "t")).status == "ok"
    assert assets.add_asset(asset.scope, "t", src, replace=True).action == "unchanged"


def test_names_are_checked_before_anything_is_written(ws: Workspace, tmp_path: Path) -> None:
    src = tmp_path / "f"
    src.write_text("x")
    before = snapshot(ws.root)
    for scope, name in [
        (".", "../x"),
        (".", ".."),
        (".", "a/b"),
        ("..", "x"),
        ("qm9/../x", "y"),
        ("qm9/base/extra", "y"),
        (".", ".hidden"),
        (".", "x" * 65),
    ]:
        with pytest.raises(UsageError):
            assets.add_asset(assets.parse_scope(ws, scope), name, src)
    with pytest.raises(NotFoundError, match="no project named 'nope'"):
        assets.parse_scope(ws, "nope")
    with pytest.raises(UsageError, match="no such file"):
        assets.add_asset(Scope(ws), "ok", tmp_path / "missing")
    assert snapshot(ws.root) == before
    assert not (ws.root / "assets").exists()


def test_corrupt_and_newer_records(ws: Workspace, tmp_path: Path) -> None:
    src = tmp_path / "f"
    src.write_text("x")
    asset = assets.add_asset(Scope(ws), "f", src).asset
    assets.add_asset(Scope(ws), "g", src)
    record_path = asset.dir / "asset.yaml"
    text = record_path.read_text()
    record_path.write_text(text.replace("filename: f", "filename: ../../../etc"))
    with pytest.raises(CorruptRecordError, match="invalid filename"):
        assets.load_asset(Scope(ws), "f")
    listing = assets.scan([Scope(ws)])
    assert [a.name for a in listing.assets] == ["g"] and len(listing.problems) == 1
    record_path.write_text(text.replace("schema_version: 1", "schema_version: 99"))
    with pytest.raises(SchemaVersionError):
        assets.load_asset(Scope(ws), "f")
    # a broken record can be replaced
    assert assets.add_asset(Scope(ws), "f", src, replace=True).action == "replaced"


def test_resolution_order_and_suggestions(ws: Workspace, tmp_path: Path) -> None:
    src = tmp_path / "f"
    for scope, text in [(".", "ws"), ("qm9", "project"), ("qm9/base", "experiment")]:
        src.write_text(text)
        assets.add_asset(assets.parse_scope(ws, scope), "data", src)
    exp = Scope(ws, "qm9", "base")
    assert assets.resolve_asset(exp, "data").path.read_text() == "experiment"
    assets.remove_asset(exp, "data")
    assert assets.resolve_asset(exp, "data").path.read_text() == "project"
    assets.remove_asset(Scope(ws, "qm9"), "data")
    assert assets.resolve_asset(exp, "data").path.read_text() == "ws"
    with pytest.raises(NotFoundError, match="Did you mean: data") as info:
        assets.resolve_asset(exp, "dta")
    assert "qm9/base, qm9, the workspace" in info.value.message
    ws.project("other")
    assets.add_asset(Scope(ws, "other"), "only-there", src)
    with pytest.raises(NotFoundError, match="--from other"):
        assets.resolve_asset(exp, "only-there")


# --- lineage ------------------------------------------------------------------------


def run_env(ws: Workspace, run_dir: Path, attempt_dir: Path) -> dict[str, str]:
    return {
        "MOLEXP_WORKSPACE": str(ws.root),
        "MOLEXP_RUN_ID": run_dir.name,
        "MOLEXP_RUN_DIR": str(run_dir),
        "MOLEXP_PROJECT": "qm9",
        "MOLEXP_EXPERIMENT": "base",
        "MOLEXP_ATTEMPT": "1",
        "MOLEXP_ATTEMPT_DIR": str(attempt_dir),
    }


def test_run_context_finds_registers_and_records(ws: Workspace, tmp_path: Path) -> None:
    run = ws.project("qm9").experiment("base").run()
    attempt_dir = run.attempt_dir(1)
    attempt_dir.mkdir(parents=True)
    ctx = RunContext(run_env(ws, run.dir, attempt_dir))
    src = tmp_path / "train.csv"
    src.write_text("a,b\n")
    assets.add_asset(Scope(ws), "training-data", src)

    path = ctx.find_asset("training-data")
    assert path.read_text() == "a,b\n"
    ctx.find_asset("training-data")  # the same lookup is recorded once
    lines = (attempt_dir / "inputs.jsonl").read_text().splitlines()
    assert len(lines) == 1
    entry = json.loads(lines[0])
    assert entry["name"] == "training-data" and entry["scope"] == "."
    assert entry["content_hash"] == assets.load_asset(Scope(ws), "training-data").content_hash
    assert entry["path"] == str(path) and entry["looked_up_at"].endswith("+00:00")
    assert entry["attempt"] == 1

    out = ctx.artifact_path("model.bin")
    out.write_bytes(b"weights")
    registered = ctx.register_asset("model", out, mode="move")
    asset = assets.load_asset(Scope(ws, "qm9", "base"), "model")
    assert registered == asset.path and asset.record["producer"] == run.id
    assert not out.exists()

    with pytest.raises(WorkspaceError, match="recorded input of 1 run") as info:
        assets.remove_asset(Scope(ws), "training-data")
    assert "--force" in str(info.value) and info.value.exit_code == 3
    _asset, users = assets.remove_asset(Scope(ws), "training-data", force=True)
    assert users.runs == [f"qm9/base/{run.id}"]


def test_lookup_outside_a_live_attempt_is_refused(ws: Workspace, tmp_path: Path) -> None:
    run = ws.project("qm9").experiment("base").run()
    ctx = RunContext(run_env(ws, run.dir, run.attempt_dir(7)))
    src = tmp_path / "f"
    src.write_text("x")
    assets.add_asset(Scope(ws), "f", src)
    with pytest.raises(UsageError, match="does not exist"):
        ctx.find_asset("f")


def test_the_documented_reimplementation_agrees(tmp_path: Path) -> None:
    """docs/assets.md shows another tool how to recompute a folder hash: keep it true."""
    from tests.conftest import ROOT

    text = (ROOT / "docs" / "assets.md").read_text()
    code = text.split("```python\nimport os, xxhash\n", 1)[1].split("```", 1)[0]
    namespace: dict[str, Any] = {}
    exec("import os, xxhash\n" + code, namespace)
    root = tree(tmp_path / "t")
    assert namespace["folder_hash"](str(root)) == assets.hash_path(root).content_hash


def test_disk_errors_are_clean_and_leave_nothing(
    ws: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = tmp_path / "f"
    src.write_text("x" * 100)

    def full(*args: Any, **kwargs: Any) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(assets, "_stream", full)
    with pytest.raises(WorkspaceError, match="No space left on device") as info:
        assets.add_asset(Scope(ws), "f", src)
    assert info.value.exit_code == 3
    assert list((ws.root / "assets").iterdir()) == []


def test_unreadable_source_is_a_usage_error(
    ws: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tree(tmp_path / "t")

    def denied(src: Path, *args: Any, **kwargs: Any) -> int:
        raise PermissionError(errno.EACCES, "Permission denied", str(src))

    monkeypatch.setattr(assets, "_stream", denied)  # (chmod 0 does not stop root)
    with pytest.raises(UsageError, match="Permission denied") as info:
        assets.add_asset(Scope(ws), "t", root)
    assert info.value.exit_code == 2
    assert list((ws.root / "assets").iterdir()) == []


@pytest.mark.parametrize("mode", ["copy", "move"])
@pytest.mark.parametrize("other_content, expected", [("same", "unchanged"), ("other", "conflict")])
def test_a_concurrent_add_of_the_same_name(
    ws: Workspace,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    other_content: str,
    expected: str,
    mode: str,
) -> None:
    mine, theirs = tmp_path / "mine", tmp_path / "theirs"
    mine.write_text("same")
    theirs.write_text(other_content)
    real = assets._commit

    def racing(staging: Path, target: Path, replacing: bool) -> str:
        monkeypatch.setattr(assets, "_commit", real)
        assert assets.add_asset(Scope(ws), "x", theirs).action == "added"  # wins the race
        return real(staging, target, replacing)

    monkeypatch.setattr(assets, "_commit", racing)
    if expected == "conflict":
        with pytest.raises(ConflictError):
            assets.add_asset(Scope(ws), "x", mine, mode=mode)
    else:
        assert assets.add_asset(Scope(ws), "x", mine, mode=mode).action == "unchanged"
    assert mine.read_text() == "same"  # a move that lost the race gives the file back
    assert assets.load_asset(Scope(ws), "x").path.read_text() == other_content
    assert sorted(p.name for p in (ws.root / "assets").iterdir()) == ["x"]
