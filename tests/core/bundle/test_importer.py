"""import_bundle: refuse before placing, place by rename, never replace."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest

from molexp.core.assets import Scope, add_asset
from molexp.core.bundle.export import export_refs
from molexp.core.bundle.importer import ImportReport, Item, import_bundle
from molexp.core.records.workspace import Workspace
from molexp.errors import CorruptRecordError, SchemaVersionError, UsageError
from tests.conftest import Cli, snapshot
from tests.core.bundle.conftest import RUN, header_member, make_bundle, member, run_dirs


def bundle(ws: Workspace, *refs: str) -> io.BytesIO:
    buf = io.BytesIO()
    export_refs(ws, list(refs), buf)
    buf.seek(0)
    return buf


def kinds(items: list[Item]) -> list[str]:
    return sorted(i.kind for i in items)


def no_staging_left(ws: Workspace) -> bool:
    return not [p for p in ws.root.iterdir() if p.name.startswith(".tmp-")]


def test_round_trip(source: Workspace, dest: Workspace) -> None:
    report = import_bundle(dest, bundle(source, "."), "all.tar.gz")
    # the runs' package list (one environment, shared) travels with them
    assert kinds(report.imported) == (
        ["asset"] * 3 + ["environment"] + ["experiment"] * 2 + ["project"] + ["run"] * 3
    )
    assert report.unchanged == [] and report.conflicts == []
    assert report.refs == ["."] and report.bundle == "all.tar.gz" and not report.dry_run
    assert report.source["workspace"] == "source" and "molexp_version" in report.source
    refs = {i.ref for i in report.imported}
    assert {"lj", "lj/mc", "lj/md", ".:data", "lj:data", "lj/mc:data"} <= refs
    # every record, log, artifact and asset file arrived byte for byte
    theirs = {
        k: v
        for k, v in snapshot(source.root).items()
        if k.startswith(("projects", "assets", "environments"))
    }
    ours = {
        k: v
        for k, v in snapshot(dest.root).items()
        if k.startswith(("projects", "assets", "environments"))
    }
    assert ours == theirs
    assert no_staging_left(dest)


def test_importing_twice_changes_nothing(source: Workspace, dest: Workspace) -> None:
    import_bundle(dest, bundle(source, "."), "b")
    before = snapshot(dest.root)
    again = import_bundle(dest, bundle(source, "."), "b")
    assert again.imported == [] and again.conflicts == [] and len(again.unchanged) == 10
    assert snapshot(dest.root) == before


def test_a_dry_run_reports_and_writes_nothing(source: Workspace, dest: Workspace) -> None:
    before = snapshot(dest.root, derived=True)
    report = import_bundle(dest, bundle(source, "lj"), "b", dry_run=True)
    assert report.dry_run and kinds(report.imported).count("run") == 3
    assert snapshot(dest.root, derived=True) == before and no_staging_left(dest)
    assert report.to_json()["dry_run"] is True


def test_a_run_gains_files_it_lacks(source: Workspace, dest: Workspace) -> None:
    import_bundle(dest, bundle(source, "lj/md"), "b")
    run = run_dirs(dest)[0]
    (run / "artifacts" / "out.txt").unlink()
    report = import_bundle(dest, bundle(source, "lj/md"), "b")
    assert [(i.kind, i.path) for i in report.imported] == [
        ("run", run.relative_to(dest.root).as_posix())
    ]
    assert (run / "artifacts" / "out.txt").read_text() == "data\n"


def test_a_differing_run_is_a_conflict_and_kept(source: Workspace, dest: Workspace) -> None:
    import_bundle(dest, bundle(source, "lj/md"), "b")
    run = run_dirs(dest)[0]
    record = json.loads((run / "run.json").read_text())
    record["status"] = "failed"
    (run / "run.json").write_text(json.dumps(record))
    mine = snapshot(dest.root)
    report = import_bundle(dest, bundle(source, "lj/md"), "b")
    assert [(c.kind, c.ref) for c in report.conflicts] == [("run", f"lj/md/{run.name}")]
    assert "here: failed, 1 attempt(s); bundle: succeeded, 1 attempt(s)" in (
        report.conflicts[0].reason or ""
    )
    assert snapshot(dest.root) == mine


def test_a_differing_file_in_a_run_is_a_conflict(source: Workspace, dest: Workspace) -> None:
    import_bundle(dest, bundle(source, "lj/md"), "b")
    run = run_dirs(dest)[0]
    (run / "artifacts" / "out.txt").write_text("mine\n")
    report = import_bundle(dest, bundle(source, "lj/md"), "b")
    assert [c.reason for c in report.conflicts] == [
        "artifacts/out.txt differs from the workspace's copy"
    ]
    assert (run / "artifacts" / "out.txt").read_text() == "mine\n"


def test_an_unreadable_run_record_is_a_conflict(source: Workspace, dest: Workspace) -> None:
    import_bundle(dest, bundle(source, "lj/md"), "b")
    run = run_dirs(dest)[0]
    (run / "run.json").write_text("{")
    report = import_bundle(dest, bundle(source, "lj/md"), "b")
    assert "the workspace's record cannot be read" in (report.conflicts[0].reason or "")
    (run / "run.json").unlink()
    report = import_bundle(dest, bundle(source, "lj/md"), "b")
    assert report.conflicts[0].reason == "the run directory exists without a run.json"


def test_a_differing_experiment_takes_none_of_its_runs_or_assets(
    source: Workspace, dest: Workspace, cli: Cli
) -> None:
    assert cli(f"-w {dest.root} project create lj").exit_code == 0
    r = cli(f"-w {dest.root} experiment create lj/mc -p temperature=2.0 --command true")
    assert r.exit_code == 0, r.output
    report = import_bundle(dest, bundle(source, "lj"), "b")
    reasons = {(c.kind, c.ref): c.reason or "" for c in report.conflicts}
    assert "params" in reasons["experiment", "lj/mc"]
    held_back = {k: v for k, v in reasons.items() if k[0] in ("run", "asset")}
    assert sorted(kind for kind, _ in held_back) == ["asset", "run", "run"]
    assert set(held_back.values()) == {"not imported: experiment lj/mc conflicts"}
    # the project only groups experiments: lj/md and the project's asset still arrive
    assert [(i.kind, i.ref) for i in report.unchanged] == [("project", "lj")]
    (md_run,) = [i.ref for i in report.imported if i.kind == "run"]
    (env,) = [i.ref for i in report.imported if i.kind == "environment"]  # lj/md's run's
    assert {(i.kind, i.ref) for i in report.imported} == {
        ("experiment", "lj/md"), ("asset", "lj:data"), ("run", md_run), ("environment", env),
    }  # fmt: skip
    assert run_dirs(dest) == sorted(dest.root.glob("projects/lj/experiments/md/runs/*"))


def test_an_asset_with_other_content_is_a_conflict(
    source: Workspace, dest: Workspace, tmp_path: Path
) -> None:
    other = tmp_path / "other.csv"
    other.write_text("something else\n")
    add_asset(Scope(dest), "data", other)
    before = (dest.root / "assets/data/asset.yaml").read_bytes()
    report = import_bundle(dest, bundle(source, "."), "b")
    (conflict,) = [c for c in report.conflicts if c.kind == "asset"]
    assert conflict.ref == ".:data" and "other content" in str(conflict.reason)
    assert (dest.root / "assets/data/asset.yaml").read_bytes() == before


def test_an_asset_with_the_same_content_is_kept_as_it_is(
    source: Workspace, dest: Workspace, tmp_path: Path
) -> None:
    same = tmp_path / "data.csv"
    same.write_text("x,y\n1,2\n")
    add_asset(Scope(dest), "data", same, description="added here first")
    before = (dest.root / "assets/data/asset.yaml").read_bytes()
    report = import_bundle(dest, bundle(source, "."), "b")
    assert ("asset", ".:data") in [(u.kind, u.ref) for u in report.unchanged]
    assert not [c for c in report.conflicts if c.kind == "asset"]
    assert (dest.root / "assets/data/asset.yaml").read_bytes() == before


def test_the_report_as_json() -> None:
    report = ImportReport(bundle="b", refs=["lj"], dry_run=True)
    report.imported.append(Item("run", "lj/mc/x", "projects/lj/experiments/mc/runs/x"))
    report.conflicts.append(Item("project", "lj", "projects/lj/project.yaml", "differs"))
    assert report.to_json() == {
        "bundle": "b", "refs": ["lj"], "source": {}, "dry_run": True,
        "imported": [{"kind": "run", "ref": "lj/mc/x", "path": "projects/lj/experiments/mc/runs/x"}],
        "unchanged": [],
        "conflicts": [{"kind": "project", "ref": "lj", "path": "projects/lj/project.yaml",
                       "reason": "differs"}],
    }  # fmt: skip


# --- refused before anything is placed -------------------------------------------


def refused(dest: Workspace, buf: io.BytesIO, error: type[Exception] = CorruptRecordError) -> str:
    before = snapshot(dest.root, derived=True)
    with pytest.raises(error) as exc:
        import_bundle(dest, buf, "b.tar.gz")
    assert snapshot(dest.root, derived=True) == before and no_staging_left(dest)
    return str(exc.value)


def test_not_a_bundle(dest: Workspace) -> None:
    message = refused(dest, io.BytesIO(b"junk"), UsageError)
    assert message.startswith("b.tar.gz is not a readable molexp bundle")
    assert "molexp export REF -o FILE.tar.gz" in message
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:  # a tar.gz without the header
        member(tar, "projects/lj/project.yaml")
    buf.seek(0)
    message = refused(dest, buf, UsageError)
    assert "b.tar.gz is not a molexp bundle (it does not start with bundle.json)" in message


def test_an_unsafe_member_refuses_the_whole_bundle(dest: Workspace) -> None:
    message = refused(dest, make_bundle({"projects/lj/project.yaml": b"x", "../escaped": b"x"}))
    assert message.startswith("b.tar.gz: refused: member '../escaped': unsafe path component")
    assert "Nothing was imported" in message


def test_a_damaged_bundle_is_refused(source: Workspace, dest: Workspace) -> None:
    data = bundle(source, "lj/md").getvalue()
    message = refused(dest, io.BytesIO(data[: len(data) // 2]), UsageError)
    assert "is not a readable molexp bundle" in message


def test_records_come_with_their_definitions(dest: Workspace) -> None:
    exp = "projects/lj/experiments/mc/experiment.yaml"
    assert "comes without its project's project.yaml" in refused(dest, make_bundle({exp: b"x"}))
    message = refused(dest, make_bundle({f"{RUN}/run.json": b"{}"}))
    assert "comes without its experiment's experiment.yaml" in message


def test_an_invalid_record_is_named_inside_the_bundle(source: Workspace, dest: Workspace) -> None:
    files = {
        "projects/lj/project.yaml": (source.root / "projects/lj/project.yaml").read_bytes(),
        "projects/lj/experiments/mc/experiment.yaml": b"params: [",
    }
    message = refused(dest, make_bundle(files))
    assert message.startswith("b.tar.gz:projects/lj/experiments/mc/experiment.yaml: ")
    assert "; refused" in message


def test_a_newer_bundle_asks_for_an_upgrade(dest: Workspace) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        header_member(tar, version=2)
    buf.seek(0)
    assert "Upgrade molexp" in refused(dest, buf, SchemaVersionError)
