"""Adding and removing assets: copy, move, link, ref, replace, races and disk errors."""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any

import pytest

from molexp.api.workspace import Workspace
from molexp.core import assets
from molexp.core.assets import Scope, content, write
from molexp.core.store import files as store
from molexp.errors import (
    ConflictError,
    NotFoundError,
    UsageError,
    WorkspaceError,
)
from tests.conftest import snapshot
from tests.core.assets.conftest import reference_dir_hash, tree


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
    monkeypatch.setattr(write, "exchange", lambda a, b: False)
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
    real = content._stream
    calls = {"n": 0}

    def dying(*args: Any, **kwargs: Any) -> int:
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(content, "_stream", dying)
    with pytest.raises(KeyboardInterrupt):
        assets.add_asset(Scope(ws), "t", src)
    assert sorted(p.name for p in (ws.root / "assets").iterdir()) == []

    monkeypatch.setattr(content, "_stream", real)
    assets.add_asset(Scope(ws), "t", src)
    before = snapshot(ws.root)
    (src / "z").write_text("new content")
    calls["n"] = 0
    monkeypatch.setattr(content, "_stream", dying)
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

    monkeypatch.setattr(write, "_rename", exdev)
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


def test_disk_errors_are_clean_and_leave_nothing(
    ws: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = tmp_path / "f"
    src.write_text("x" * 100)

    def full(*args: Any, **kwargs: Any) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(content, "_stream", full)
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

    monkeypatch.setattr(content, "_stream", denied)  # (chmod 0 does not stop root)
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
    real = write._commit

    def racing(staging: Path, target: Path, replacing: bool) -> str:
        monkeypatch.setattr(write, "_commit", real)
        assert assets.add_asset(Scope(ws), "x", theirs).action == "added"  # wins the race
        return real(staging, target, replacing)

    monkeypatch.setattr(write, "_commit", racing)
    if expected == "conflict":
        with pytest.raises(ConflictError):
            assets.add_asset(Scope(ws), "x", mine, mode=mode)
    else:
        assert assets.add_asset(Scope(ws), "x", mine, mode=mode).action == "unchanged"
    assert mine.read_text() == "same"  # a move that lost the race gives the file back
    assert assets.load_asset(Scope(ws), "x").path.read_text() == other_content
    assert sorted(p.name for p in (ws.root / "assets").iterdir()) == ["x"]


def test_add_to_and_remove_from_take_the_scope_as_typed(
    ws: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = tmp_path / "d.csv"
    src.write_text("x,y\n")
    monkeypatch.setenv("MOLEXP_RUN_ID", "0123abcd")  # added from inside a run
    made = assets.add_to(ws, "qm9/base", "data", src, description="the data", tags=["raw"])
    assert made.action == "added"
    rec = made.asset.record
    assert (rec["scope"], rec["producer"], rec["description"], rec["tags"]) == (
        "qm9/base", "0123abcd", "the data", ["raw"],
    )  # fmt: skip
    assert assets.add_to(ws, "qm9/base", "data", src).action == "unchanged"
    monkeypatch.delenv("MOLEXP_RUN_ID")
    linked = assets.add_to(ws, ".", "linked", src, mode="link").asset
    assert linked.record["producer"] is None and linked.path.is_symlink()
    with pytest.raises(NotFoundError, match="no project named 'nope'"):
        assets.add_to(ws, "nope", "data", src)

    removed, users = assets.remove_from(ws, "qm9/base", "data")
    assert removed.name == "data" and users.runs == [] and not removed.dir.exists()
    assets.remove_from(ws, ".", "linked")
    assert src.read_text() == "x,y\n"  # a link's target is never removed
    with pytest.raises(NotFoundError, match="no asset named 'data'"):
        assets.remove_from(ws, "qm9/base", "data")
