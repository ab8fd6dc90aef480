"""Asset records: reading, resolving (experiment → project → workspace), verifying."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from molexp.api.workspace import Workspace
from molexp.core import assets
from molexp.core.assets import Scope, library
from molexp.errors import (
    AssetHashMismatchError,
    CorruptRecordError,
    NotFoundError,
    SchemaVersionError,
)
from tests.core.assets.conftest import tree


def test_verify_catches_tampering(ws: Workspace, tmp_path: Path) -> None:
    src = tree(tmp_path / "t")
    asset = assets.add_asset(Scope(ws, "qm9"), "t", src).asset
    assert assets.verify_asset(asset).status == "ok"
    (asset.path / "sub" / "x.bin").write_bytes(b"tampered")
    check = assets.verify_asset(asset)
    assert check.status == "changed" and check.actual_hash != asset.content_hash
    with pytest.raises(AssetHashMismatchError, match="t \\(qm9: changed\\)") as info:
        library.ensure_intact(asset)
    assert info.value.exit_code == 3
    (asset.path / "sub" / "x.bin").unlink()
    (asset.path / "sub" / "x.bin").symlink_to(asset.path / "z")
    assert assets.verify_asset(asset).status == "changed"
    # the source still matches the record: a plain add does nothing, --replace repairs
    assert assets.add_asset(asset.scope, "t", src).action == "unchanged"
    assert assets.add_asset(asset.scope, "t", src, replace=True).action == "repaired"
    assert assets.verify_asset(assets.load_asset(asset.scope, "t")).status == "ok"
    assert assets.add_asset(asset.scope, "t", src, replace=True).action == "unchanged"


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
    # a broken record can be replaced
    assert assets.add_asset(Scope(ws), "f", src, replace=True).action == "replaced"
    record_path.write_text(text.replace("schema_version: 1", "schema_version: 99"))
    with pytest.raises(SchemaVersionError):
        assets.load_asset(Scope(ws), "f")
    # a newer one never is: this molexp cannot know what it would lose
    newer = record_path.read_bytes()
    with pytest.raises(SchemaVersionError):
        assets.add_asset(Scope(ws), "f", src, replace=True)
    assert record_path.read_bytes() == newer


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


def test_list_assets_of_every_scope_one_scope_or_what_it_inherits(
    ws: Workspace, tmp_path: Path
) -> None:
    src = tmp_path / "f"
    for scope, name in [(".", "data"), (".", "other"), ("qm9", "data"), ("qm9/base", "data")]:
        src.write_text(f"{scope} {name}")
        assets.add_asset(assets.parse_scope(ws, scope), name, src)

    every = assets.list_assets(ws)
    assert [(a.scope.text, a.name) for a in every.assets] == [
        (".", "data"), (".", "other"), ("qm9", "data"), ("qm9/base", "data"),
    ]  # fmt: skip
    assert every.shadowed is None and every.problems == []
    assert assets.list_assets(ws, inherited=True).shadowed is None  # no scope: nothing inherited
    one = assets.list_assets(ws, "qm9")
    assert [(a.scope.text, a.name) for a in one.assets] == [("qm9", "data")]
    assert one.shadowed is None

    inherited = assets.list_assets(ws, "qm9/base", inherited=True)
    assert [(a.scope.text, a.name) for a in inherited.assets] == [
        ("qm9/base", "data"), ("qm9", "data"), (".", "data"), (".", "other"),
    ]  # fmt: skip
    assert inherited.shadowed == [None, "qm9/base", "qm9/base", None]
    with pytest.raises(NotFoundError, match="no project named 'nope'"):
        assets.list_assets(ws, "nope")


def test_verify_assets_names_failures_and_unreadable_records(ws: Workspace, tmp_path: Path) -> None:
    src = tmp_path / "f"
    src.write_text("x")
    good = assets.add_asset(Scope(ws), "good", src).asset
    bad = assets.add_asset(Scope(ws, "qm9"), "bad", src).asset
    seen: list[str] = []

    def hook(label: str, total: int) -> Any:
        seen.append(label)
        return lambda n: None

    result = assets.verify_assets(ws, progress=hook)
    assert [(c.asset.name, c.status) for c in result.checks] == [("good", "ok"), ("bad", "ok")]
    assert result.failure is None and result.problems == []
    assert seen == ["verify good", "verify bad"]

    bad.path.write_text("tampered")
    result = assets.verify_assets(ws)
    assert [c.status for c in result.checks] == ["ok", "changed"]
    assert isinstance(result.failure, AssetHashMismatchError)
    assert "1 of 2 assets fail verification: bad (qm9: changed)" in result.failure.message
    assert assets.verify_assets(ws, ".").failure is None  # only the workspace's

    (good.dir / "asset.yaml").write_text("not: [a record")
    result = assets.verify_assets(ws, ".")
    assert result.checks == [] and len(result.problems) == 1
    assert "asset.yaml" in str(result.problems[0])
