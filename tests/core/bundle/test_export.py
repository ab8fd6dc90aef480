"""export_bundle / export_to_file / export_refs on a real workspace."""

from __future__ import annotations

import io
import json
import os
import tarfile
from pathlib import Path
from typing import Any

import pytest

from molexp._version import __version__
from molexp.core.bundle.export import export_bundle, export_refs, export_to_file
from molexp.core.bundle.manifest import HEADER, MANIFEST
from molexp.core.records.refs import resolve
from molexp.core.records.workspace import Workspace
from molexp.core.store.files import leftover_temp_files
from molexp.core.store.lock import hostname
from molexp.errors import CorruptRecordError, NotFoundError, UsageError
from tests.core.bundle.conftest import digest, run_dirs


def members(data: bytes) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return {m.name: m for m in tar.getmembers()}


def read_json(data: bytes, name: str) -> Any:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return json.loads(tar.extractfile(name).read())  # type: ignore[union-attr]


def export(ws: Workspace, *refs: str) -> tuple[bytes, Any]:
    buf = io.BytesIO()
    report = export_bundle(ws, [resolve(ws, r) for r in refs], buf)
    return buf.getvalue(), report


def test_a_project_bundle_holds_its_definitions_runs_and_assets(source: Workspace) -> None:
    data, report = export(source, "lj")
    names = list(members(data))
    assert names[0] == HEADER and names[-1] == MANIFEST
    assert read_json(data, HEADER) == {
        "format": "molexp.bundle", "bundle_version": 1, "molexp_version": __version__,
    }  # fmt: skip
    manifest = read_json(data, MANIFEST)
    assert manifest["refs"] == ["lj"] == report.refs
    assert len(manifest["runs"]) == 3 and manifest["runs"] == report.runs == sorted(report.runs)
    assert manifest["source"] == {
        "workspace": "source",
        "root": str(source.root),
        "host": hostname(),
    }
    assert manifest["molexp_version"] == __version__ and manifest["skipped"] == []
    paths = {f["path"] for f in manifest["files"]}
    assert {"projects/lj/project.yaml", "projects/lj/experiments/mc/experiment.yaml",
            "projects/lj/experiments/md/experiment.yaml"} <= paths  # fmt: skip
    for run in run_dirs(source):
        rel = run.relative_to(source.root).as_posix()
        assert f"{rel}/run.json" in paths and f"{rel}/artifacts/out.txt" in paths
        assert rel in manifest["dirs"]
    # the project's and the experiment's assets, not the workspace's
    assert any(p.startswith("projects/lj/assets/data/") for p in paths)
    assert any(p.startswith("projects/lj/experiments/mc/assets/data/") for p in paths)
    assert not any(p.startswith("assets/") for p in paths)
    # every file is listed with the size and hash of its bytes in the archive
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        for entry in manifest["files"]:
            raw = tar.extractfile(entry["path"]).read()  # type: ignore[union-attr]
            assert (entry["size"], entry["hash"]) == (len(raw), digest(raw))
    assert report.files == len(manifest["files"])
    assert report.bytes == sum(f["size"] for f in manifest["files"])
    assert set(names) == {HEADER, MANIFEST, *paths, *manifest["dirs"]}


def test_the_workspace_bundle_has_every_scope(source: Workspace) -> None:
    data, report = export(source, ".")
    paths = {f["path"] for f in read_json(data, MANIFEST)["files"]}
    assert "assets/data/asset.yaml" in paths and len(report.runs) == 3


def test_a_run_travels_with_its_definitions_but_not_the_experiments_assets(
    source: Workspace,
) -> None:
    run = run_dirs(source)[0]
    data, report = export(source, run.name[:8])
    paths = {f["path"] for f in read_json(data, MANIFEST)["files"]}
    exp = run.parent.parent.relative_to(source.root).as_posix()
    assert {"projects/lj/project.yaml", f"{exp}/experiment.yaml"} <= paths
    assert not any("/assets/" in p for p in paths)
    assert report.runs == [f"lj/{run.parent.parent.name}/{run.name}"]


def test_locks_temporary_files_and_outside_links_stay_behind(source: Workspace) -> None:
    run = run_dirs(source)[0]
    rel = run.relative_to(source.root).as_posix()
    (run / ".lock").write_text("{}")
    (run / ".tmp-run.json-abc").write_text("{}")
    (run / "inside").symlink_to("artifacts/out.txt")
    (run / "outside").symlink_to("../../../../../../workspace.yaml")
    (run / "absolute").symlink_to("/etc/passwd")
    os.mkfifo(run / "fifo")
    data, report = export(source, "lj")
    manifest = read_json(data, MANIFEST)
    names = set(members(data))
    assert f"{rel}/.lock" not in names and f"{rel}/.tmp-run.json-abc" not in names
    assert {"path": f"{rel}/inside", "target": "artifacts/out.txt"} in manifest["links"]
    assert members(data)[f"{rel}/inside"].issym()
    assert sorted(report.skipped, key=lambda s: s["path"]) == [
        {"path": f"{rel}/absolute", "reason": "symlink to /etc/passwd (outside its directory)"},
        {"path": f"{rel}/fifo", "reason": "not a regular file"},
        {"path": f"{rel}/outside",
         "reason": "symlink to ../../../../../../workspace.yaml (outside its directory)"},
    ]  # fmt: skip
    assert manifest["skipped"] == report.skipped
    assert not {f"{rel}/absolute", f"{rel}/fifo", f"{rel}/outside"} & names


def test_a_corrupt_run_is_left_out_and_reported(source: Workspace) -> None:
    bad, missing = run_dirs(source)[:2]
    (bad / "run.json").write_text("{")
    (missing / "run.json").unlink()
    data, report = export(source, "lj")
    assert len(report.runs) == 1
    problems = sorted(str(p).splitlines()[0] for p in report.problems)
    assert len(problems) == 2
    assert f"{missing}/run.json: is missing (run directory without a record)" in problems
    assert any(p.startswith(f"{bad}/run.json: is not valid JSON") for p in problems)
    assert not [n for n in members(data) if bad.name in n or missing.name in n]
    assert report.to_json()["problems"] == [str(p).splitlines()[0] for p in report.problems]


def test_a_corrupt_definition_refuses_the_export(source: Workspace, tmp_path: Path) -> None:
    (source.root / "projects/lj/experiments/md/experiment.yaml").write_text("params: [")
    out = tmp_path / "out.tar.gz"
    with pytest.raises(CorruptRecordError):
        export_to_file(source, [resolve(source, "lj")], out)
    assert not out.exists() and not leftover_temp_files(tmp_path)


def test_export_to_file_writes_atomically(source: Workspace, tmp_path: Path) -> None:
    out = tmp_path / "lj.tar.gz"
    report = export_to_file(source, [resolve(source, "lj/md")], out)
    assert report.output == str(out) and report.to_json()["bundle"] == str(out)
    assert read_json(out.read_bytes(), MANIFEST)["runs"] == report.runs
    assert not leftover_temp_files(tmp_path)
    with pytest.raises(UsageError, match="is not a directory"):
        export_to_file(source, [resolve(source, "lj")], tmp_path / "no" / "x.tar.gz")


def test_export_refs_resolves_then_writes_a_file_or_a_stream(
    source: Workspace, tmp_path: Path
) -> None:
    out = tmp_path / "b.tar.gz"
    to_file = export_refs(source, ["lj/mc", "lj/md"], out)
    assert to_file.output == str(out) and len(to_file.runs) == 3
    stream = io.BytesIO()
    to_stream = export_refs(source, ["lj/mc", "lj/md"], stream)
    assert to_stream.output is None and to_stream.runs == to_file.runs
    assert set(members(stream.getvalue())) == set(members(out.read_bytes()))


def test_an_unknown_ref_writes_nothing(source: Workspace, tmp_path: Path) -> None:
    stream = io.BytesIO()
    with pytest.raises(NotFoundError):
        export_refs(source, ["lj", "nope"], stream)
    assert stream.getvalue() == b""
    with pytest.raises(NotFoundError):
        export_refs(source, ["lj/nope"], tmp_path / "x.tar.gz")
    assert list(tmp_path.glob("*.tar.gz")) == [] and not leftover_temp_files(tmp_path)
