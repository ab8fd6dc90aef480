"""Lineage: lookups recorded on the run that made them, and the runs that used an asset."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from molexp.api.context import RunContext
from molexp.api.workspace import Workspace
from molexp.core import assets
from molexp.core.assets import Scope
from molexp.errors import AssetHashMismatchError, NotFoundError, UsageError, WorkspaceError


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


def test_path_for_outside_a_run_records_nothing(ws: Workspace, tmp_path: Path) -> None:
    src = tmp_path / "f"
    for scope, text in [(".", "ws"), ("qm9/base", "experiment")]:
        src.write_text(text)
        assets.add_asset(assets.parse_scope(ws, scope), "data", src)
    assert assets.path_for(ws, "data").path.read_text() == "ws"  # from the workspace
    assert assets.path_for(ws, "data", from_ref="qm9/base").path.read_text() == "experiment"
    run = ws.project("qm9").experiment("base").run()
    assert assets.path_for(ws, "data", f"qm9/base/{run.id}", verify=True).scope.text == "qm9/base"
    assert not list(ws.root.rglob("inputs.jsonl"))
    with pytest.raises(NotFoundError, match="no asset named 'nope'"):
        assets.path_for(ws, "nope")


def test_path_for_inside_a_run_records_the_lookup(
    ws: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = ws.project("qm9").experiment("base").run()
    attempt_dir = run.attempt_dir(1)
    attempt_dir.mkdir(parents=True)
    for key, value in run_env(ws, run.dir, attempt_dir).items():
        monkeypatch.setenv(key, value)
    src = tmp_path / "f"
    for scope, text in [(".", "ws"), ("qm9/base", "experiment")]:
        src.write_text(text)
        assets.add_asset(assets.parse_scope(ws, scope), "data", src)
    inputs = attempt_dir / "inputs.jsonl"

    found = assets.path_for(ws, "data")  # from the run's experiment
    assert found.scope.text == "qm9/base" and found.path.read_text() == "experiment"
    assert assets.path_for(ws, "data") == found  # the same lookup is recorded once
    [entry] = [json.loads(line) for line in inputs.read_text().splitlines()]
    assert (entry["name"], entry["scope"], entry["content_hash"]) == (
        "data", "qm9/base", found.content_hash,
    )  # fmt: skip

    workspace_data = assets.path_for(ws, "data", from_ref=".")
    workspace_data.path.write_text("WS")  # same size, other bytes
    before = inputs.read_text()
    with pytest.raises(AssetHashMismatchError):
        assets.path_for(ws, "data", from_ref=".", verify=True)
    assert inputs.read_text() == before  # a lookup that failed verification is not recorded
    assert [json.loads(line)["scope"] for line in before.splitlines()] == ["qm9/base", "."]


def test_describe_in_names_the_runs_that_used_it(ws: Workspace, tmp_path: Path) -> None:
    run = ws.project("qm9").experiment("base").run()
    attempt_dir = run.attempt_dir(1)
    attempt_dir.mkdir(parents=True)
    src = tmp_path / "f"
    src.write_text("x")
    asset = assets.add_asset(Scope(ws), "data", src).asset
    assert assets.describe_in(ws, ".", "data")["used_by"] == []
    RunContext(run_env(ws, run.dir, attempt_dir)).find_asset("data")
    shown = assets.describe_in(ws, ".", "data")
    assert shown == assets.describe(asset)
    assert shown["used_by"] == [f"qm9/base/{run.id}"] and "used_by_unknown" not in shown
    assert shown["path"] == str(asset.path) and shown["scope"] == "."
    with pytest.raises(NotFoundError, match="no asset named 'data' in qm9"):
        assets.describe_in(ws, "qm9", "data")
