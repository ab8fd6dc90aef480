"""`molexp export` / `molexp import`: moving runs between workspaces."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from molexp.core.store.files import leftover_temp_files
from tests.conftest import Cli, snapshot

SCRIPT = """\
import json, os, sys
json.dump({"loss": float(os.environ["MOLEXP_SEED"]) / 10}, open(os.environ["MOLEXP_RESULTS_FILE"], "w"))
open(os.path.join(os.environ["MOLEXP_RUN_DIR"], "artifacts", "out.txt"), "w").write("data\\n")
print("ran", os.environ["MOLEXP_REPLICA"])
sys.exit(int(os.environ.get("FAIL", "0")))
"""


@pytest.fixture
def source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli: Cli) -> Path:
    """A workspace with two experiments, finished runs and an asset."""
    root = tmp_path / "cluster"
    root.mkdir()
    monkeypatch.chdir(root)
    assert cli("init . --name cluster").exit_code == 0
    (root / "train.py").write_text(SCRIPT)
    assert cli("project create lj --description fluid").exit_code == 0
    for name, replicas in (("mc", 2), ("md", 1)):
        r = cli(
            "experiment",
            "create",
            f"lj/{name}",
            "-p",
            "temperature=1.0",
            "--replicas",
            str(replicas),
            "--command",
            "python train.py",
        )
        assert r.exit_code == 0, r.output
        assert cli(f"run lj/{name}").exit_code == 0
    (root / "data.csv").write_text("x,y\n1,2\n")
    r = cli("assets add lj/mc training-data data.csv")
    assert r.exit_code == 0, r.output
    return root


@pytest.fixture
def dest(tmp_path: Path, cli: Cli) -> Path:
    root = tmp_path / "laptop"
    assert cli("init", str(root), "--name", "laptop").exit_code == 0
    return root


def top_level(root: Path) -> list[str]:
    """What a workspace holds besides the rebuildable cache ``.molexp/``."""
    return sorted(n for n in os.listdir(root) if n != ".molexp")


def ls_json(cli: Cli, root: Path, *args: str) -> Any:
    r = cli("-w", str(root), "ls", "--format", "json", *args)
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)


def bundle_of(cli: Cli, root: Path, out: Path, *refs: str) -> Path:
    r = cli("-w", str(root), "export", *refs, "-o", str(out))
    assert r.exit_code == 0, r.output
    return out


def test_round_trip_shows_the_same_runs(source: Path, dest: Path, cli: Cli, tmp_path: Path) -> None:
    bundle = bundle_of(cli, source, tmp_path / "lj.tar.gz", "lj")
    assert not leftover_temp_files(tmp_path)
    r = cli("-w", str(dest), "import", str(bundle), "--json")
    assert r.exit_code == 0, r.output
    report = json.loads(r.stdout)
    kinds = sorted(i["kind"] for i in report["imported"])
    # the runs' package list (environments/<hash>.txt, one: they share it) travels too
    kinds_expected = [
        "asset",
        "environment",
        "experiment",
        "experiment",
        "project",
        "run",
        "run",
        "run",
    ]
    assert kinds == kinds_expected
    assert report["conflicts"] == [] and report["source"]["workspace"] == "cluster"
    assert ls_json(cli, dest) == ls_json(cli, source)
    assert len(ls_json(cli, dest)) == 3
    for sub in ("project ls --json", "experiment ls --json"):
        assert cli(f"-w {dest} {sub}").stdout == cli(f"-w {source} {sub}").stdout
    # logs, artifacts and the asset came along; no lock, no temporary files
    run_dir = Path(ls_json(cli, dest, "lj/md")[0]["attempts"][0]["cwd"])
    assert run_dir == source  # records are copied byte for byte
    rid = ls_json(cli, dest, "lj/md")[0]["id"]
    moved = dest / "projects/lj/experiments/md/runs" / rid
    assert (moved / "attempts/1/stdout.log").read_text() == "ran 0\n"
    assert (moved / "artifacts/out.txt").read_text() == "data\n"
    assert cli(f"-w {dest} assets verify").exit_code == 0
    assert cli(f"-w {dest} assets path training-data --from lj/mc").exit_code == 0
    assert not leftover_temp_files(dest)
    assert not [p for p in dest.iterdir() if p.name.startswith(".tmp-")]


def test_importing_twice_changes_nothing(
    source: Path, dest: Path, cli: Cli, tmp_path: Path
) -> None:
    bundle = bundle_of(cli, source, tmp_path / "all.tar.gz", ".")
    assert cli(f"-w {dest} import {bundle}").exit_code == 0
    before = snapshot(dest)
    again = cli(f"-w {dest} import {bundle} --json")
    assert again.exit_code == 0, again.output
    report = json.loads(again.stdout)
    assert report["imported"] == [] and report["conflicts"] == []
    assert len(report["unchanged"]) == 8  # 7, and the shared package list
    assert "nothing new" in again.stderr
    assert snapshot(dest) == before


def test_export_a_run_by_prefix_and_a_set_of_runs(
    source: Path, dest: Path, cli: Cli, tmp_path: Path
) -> None:
    ids = cli(f"-w {source} ls lj/mc --format ids").stdout.split()
    bundle = bundle_of(cli, source, tmp_path / "one.tar.gz", ids[0].split("/")[-1][:6])
    r = cli(f"-w {dest} import {bundle}")
    assert r.exit_code == 0, r.output
    assert [x["id"] for x in ls_json(cli, dest)] == [ids[0].split("/")[-1]]
    # the experiment's asset only travels with the experiment itself
    assert not (dest / "projects/lj/experiments/mc/assets").exists()
    bundle = bundle_of(cli, source, tmp_path / "set.tar.gz", *ids)
    r = cli(f"-w {dest} import {bundle} --json")
    assert r.exit_code == 0
    assert [i["ref"] for i in json.loads(r.stdout)["imported"]] == [ids[1]]
    assert len(ls_json(cli, dest)) == 2


def test_a_differing_record_is_reported_and_kept(
    source: Path, dest: Path, cli: Cli, tmp_path: Path
) -> None:
    first = bundle_of(cli, source, tmp_path / "first.tar.gz", "lj/mc")
    assert cli(f"-w {dest} import {first}").exit_code == 0
    mine = snapshot(dest)
    # the cluster runs replica 0 again and gains a new experiment meanwhile
    assert cli(f"-w {source} run lj/mc -r 0 --force").exit_code == 0
    second = bundle_of(cli, source, tmp_path / "second.tar.gz", "lj")
    r = cli(f"-w {dest} import {second} --json")
    assert r.exit_code == 3, r.output
    report = json.loads(r.stdout)
    rerun = next(x for x in ls_json(cli, source, "lj/mc") if len(x["attempts"]) == 2)
    assert [(c["kind"], c["ref"]) for c in report["conflicts"]] == [("run", f"lj/mc/{rerun['id']}")]
    assert "2 attempt(s)" in report["conflicts"][0]["reason"]
    assert "conflict: run lj/mc/" in r.stderr
    # the conflicting record is untouched; the new experiment did arrive
    for path, data in mine.items():
        assert (dest / path).read_bytes() == data, path
    assert [i["ref"] for i in report["imported"] if i["kind"] == "experiment"] == ["lj/md"]


def test_a_differing_experiment_takes_none_of_its_runs(
    source: Path, dest: Path, cli: Cli, tmp_path: Path
) -> None:
    assert cli(f"-w {dest} project create lj").exit_code == 0
    r = cli(
        "-w",
        str(dest),
        "experiment",
        "create",
        "lj/mc",
        "-p",
        "temperature=2.0",
        "--replicas",
        "2",
        "--command",
        "python train.py",
    )
    assert r.exit_code == 0, r.output
    bundle = bundle_of(cli, source, tmp_path / "lj.tar.gz", "lj")
    r = cli(f"-w {dest} import {bundle} --json")
    assert r.exit_code == 3
    conflicts = json.loads(r.stdout)["conflicts"]
    assert {c["kind"] for c in conflicts} == {"project", "experiment", "run", "asset"}
    assert "params" in next(c for c in conflicts if c["kind"] == "experiment")["reason"]
    assert [x["experiment"] for x in ls_json(cli, dest)] == ["md"]


def test_pipe_from_one_workspace_to_another(source: Path, dest: Path) -> None:
    exe = f"{sys.executable} -m molexp"
    proc = subprocess.run(
        f"{exe} -w {source} export lj/md -o - | {exe} -w {dest} import -",
        shell=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Imported 1 project, 1 experiment, 1 run from stdin" in proc.stderr


def test_dry_run_writes_nothing(source: Path, dest: Path, cli: Cli, tmp_path: Path) -> None:
    bundle = bundle_of(cli, source, tmp_path / "lj.tar.gz", "lj")
    before = snapshot(dest)
    r = cli(f"-w {dest} import {bundle} --dry-run")
    assert r.exit_code == 0, r.output
    assert "Would import 1 project, 2 experiments, 1 asset, 3 runs" in r.stderr
    assert snapshot(dest) == before and top_level(dest) == ["workspace.yaml"]


def test_a_corrupt_record_is_left_out_of_an_export(source: Path, cli: Cli, tmp_path: Path) -> None:
    rid = ls_json(cli, source, "lj/md")[0]["id"]
    (source / "projects/lj/experiments/md/runs" / rid / "run.json").write_text("{")
    r = cli(f"-w {source} export lj -o {tmp_path / 'x.tar.gz'}")
    assert r.exit_code == 3
    assert "run.json: is not valid JSON" in r.stderr and "Exported 2 runs" in r.stderr
    with tarfile.open(tmp_path / "x.tar.gz") as tar:
        assert not [n for n in tar.getnames() if rid in n]


def test_usage_errors(source: Path, cli: Cli, tmp_path: Path) -> None:
    assert cli(f"-w {source} export nope -o {tmp_path / 'x.tar.gz'}").exit_code == 2
    assert cli(f"-w {source} export lj -o {tmp_path / 'no/dir/x.tar.gz'}").exit_code == 2
    assert cli(f"-w {source} export lj -o - --json").exit_code == 2
    assert cli(f"-w {source} import {tmp_path / 'missing.tar.gz'}").exit_code == 2
    (tmp_path / "junk.tar.gz").write_bytes(b"not a bundle")
    r = cli(f"-w {source} import {tmp_path / 'junk.tar.gz'}")
    assert r.exit_code == 2 and "is not a readable molexp bundle" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 2


# --- hostile bundles ------------------------------------------------------------------


def _member(tar: tarfile.TarFile, name: str, data: bytes = b"x", **attrs: Any) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    for key, value in attrs.items():
        setattr(info, key, value)
    tar.addfile(info, io.BytesIO(data) if info.isreg() else None)


def _header(tar: tarfile.TarFile) -> None:
    _member(
        tar, "bundle.json", json.dumps({"format": "molexp.bundle", "bundle_version": 1}).encode()
    )


RID = "0123456789abcdef"
RUN = f"projects/lj/experiments/mc/runs/{RID}"

SPECIAL = "hard link, device, FIFO or other special file"
HOSTILE: dict[str, tuple[Callable[[tarfile.TarFile], object], str]] = {
    "dotdot": (lambda t: _member(t, f"{RUN}/../../../../../../../escaped"), "unsafe path"),
    "dotdot-top": (lambda t: _member(t, "../escaped"), "unsafe path component '..'"),
    "absolute": (lambda t: _member(t, "/tmp/escaped-molexp-test"), "absolute path"),
    "symlink-out": (
        lambda t: (
            _member(t, f"{RUN}/evil", type=tarfile.SYMTYPE, linkname="/tmp"),
            _member(t, f"{RUN}/evil/escaped"),
        ),
        "symlink to '/tmp' points outside",
    ),
    "symlink-up": (
        lambda t: _member(t, f"{RUN}/up", type=tarfile.SYMTYPE, linkname="../../../.."),
        "points outside its directory",
    ),
    "symlink-chain": (
        lambda t: (
            _member(t, f"{RUN}/a", type=tarfile.SYMTYPE, linkname="b/.."),
            _member(t, f"{RUN}/b", type=tarfile.SYMTYPE, linkname="."),
        ),
        "symlink resolves outside its directory",
    ),
    "through-link": (
        lambda t: (
            _member(t, f"{RUN}/d", type=tarfile.SYMTYPE, linkname="attempts"),
            _member(t, f"{RUN}/d/x"),
        ),
        "lies below a symlink",
    ),
    "hardlink": (
        lambda t: _member(t, f"{RUN}/h", type=tarfile.LNKTYPE, linkname="/etc/passwd"),
        SPECIAL,
    ),
    "device": (
        lambda t: _member(t, f"{RUN}/dev", type=tarfile.CHRTYPE, devmajor=1, devminor=3),
        SPECIAL,
    ),
    "fifo": (lambda t: _member(t, f"{RUN}/fifo", type=tarfile.FIFOTYPE), SPECIAL),
    "workspace-file": (
        lambda t: _member(t, "workspace.yaml", b"kind: molexp.workspace\n"),
        "not part of a workspace's projects or assets",
    ),
    "lock": (lambda t: _member(t, f"{RUN}/.lock"), "'.lock' never belongs in a bundle"),
    "bad-name": (lambda t: _member(t, "projects/-x/project.yaml"), "invalid project name '-x'"),
    "stray": (lambda t: _member(t, "projects/lj/notes.txt"), "not part of a project's layout"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_bundles_are_refused(case: str, dest: Path, cli: Cli, tmp_path: Path) -> None:
    bundle = tmp_path / "evil.tar.gz"
    with tarfile.open(bundle, "w:gz") as tar:
        _header(tar)
        HOSTILE[case][0](tar)
    outside = sorted(p.name for p in tmp_path.iterdir())
    before = snapshot(dest)
    r = cli(f"-w {dest} import {bundle}")
    assert r.exit_code == 3, r.output
    assert "evil.tar.gz: refused: member '" in r.stderr and "Traceback" not in r.output
    assert HOSTILE[case][1] in r.stderr
    assert snapshot(dest) == before and top_level(dest) == ["workspace.yaml"]
    assert sorted(p.name for p in tmp_path.iterdir()) == outside
    assert not Path("/tmp/escaped-molexp-test").exists()


def _rewrite(bundle: Path, out: Path, change: Callable[[str, bytes], bytes | None]) -> None:
    """Copy a bundle, passing each regular member's bytes through ``change``."""
    with tarfile.open(bundle) as src, tarfile.open(out, "w:gz") as dst:
        for member in src.getmembers():
            data = src.extractfile(member).read() if member.isreg() else None  # type: ignore[union-attr]
            if data is not None:
                new = change(member.name, data)
                if new is None:
                    continue
                member.size = len(new)
                dst.addfile(member, io.BytesIO(new))
            else:
                dst.addfile(member)


def test_damaged_and_forged_bundles_are_refused(
    source: Path, dest: Path, cli: Cli, tmp_path: Path
) -> None:
    good = bundle_of(cli, source, tmp_path / "good.tar.gz", "lj/md")
    rid = ls_json(cli, source, "lj/md")[0]["id"]

    def flip_log(name: str, data: bytes) -> bytes:
        return b"tampered\n" if name.endswith("stdout.log") else data

    def forge_record(name: str, data: bytes) -> bytes:
        if not name.endswith("run.json"):
            return data
        record = json.loads(data)
        record["params"]["temperature"] = 99
        return json.dumps(record).encode()

    def forge_everywhere(name: str, data: bytes) -> bytes:
        """A consistent forgery: the manifest's hashes are fixed up too."""
        data = forge_record(name, data)
        if name == "manifest.json":
            import xxhash

            manifest = json.loads(data)
            with tarfile.open(good) as tar:
                for entry in manifest["files"]:
                    raw = tar.extractfile(entry["path"]).read()  # type: ignore[union-attr]
                    raw = forge_record(entry["path"], raw)
                    entry["size"] = len(raw)
                    entry["hash"] = "xxh3_128:" + xxhash.xxh3_128_hexdigest(raw)
            return json.dumps(manifest).encode()
        return data

    cases = {
        "damaged": (flip_log, "size or hash differs"),
        "no manifest": (lambda n, d: None if n == "manifest.json" else d, "no manifest.json"),
        "forged": (forge_everywhere, f"runs/{rid}/run.json: its parameters give run id"),
    }
    for label, (change, message) in cases.items():
        out = tmp_path / f"{label.replace(' ', '-')}.tar.gz"
        _rewrite(good, out, change)
        r = cli(f"-w {dest} import {out}")
        assert r.exit_code == 3, (label, r.output)
        assert message in r.stderr, (label, r.stderr)
        assert top_level(dest) == ["workspace.yaml"], label


def test_a_newer_bundle_asks_for_an_upgrade(dest: Path, cli: Cli, tmp_path: Path) -> None:
    bundle = tmp_path / "new.tar.gz"
    with tarfile.open(bundle, "w:gz") as tar:
        _member(tar, "bundle.json", b'{"format": "molexp.bundle", "bundle_version": 9}')
    r = cli(f"-w {dest} import {bundle}")
    assert r.exit_code == 3 and "Upgrade molexp" in r.stderr


def test_imported_files_follow_the_umask(
    source: Path, dest: Path, cli: Cli, tmp_path: Path
) -> None:
    bundle = bundle_of(cli, source, tmp_path / "lj.tar.gz", "lj/md")
    old = os.umask(0o002)
    try:
        assert cli(f"-w {dest} import {bundle}").exit_code == 0
    finally:
        os.umask(old)
    record = next(dest.rglob("run.json"))
    assert record.stat().st_mode & 0o777 == 0o664
    assert record.parent.stat().st_mode & 0o777 == 0o775


# --- lineage travels with the runs (SPEC §17) -------------------------------------

USES_ASSETS = (
    f'{sys.executable} -c "import molexp as mx, pathlib; ctx = mx.current_run(); '
    "print(pathlib.Path(ctx.find_asset('potential')).read_text().strip()); "
    "print(pathlib.Path(ctx.find_asset('structure', scope='geo/relax')).read_text().strip())\""
)


@pytest.fixture
def lineage_source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli: Cli) -> Path:
    """md/run uses a workspace asset and an asset of another project's experiment."""
    root = tmp_path / "hpc"
    root.mkdir()
    monkeypatch.chdir(root)
    assert cli("init . --name hpc").exit_code == 0
    assert cli("project create md").exit_code == 0
    assert cli("project create geo").exit_code == 0
    assert cli("experiment", "create", "geo/relax", "--command", "true").exit_code == 0
    assert cli("experiment", "create", "md/run", "--command", USES_ASSETS).exit_code == 0
    (root / "lj.txt").write_text("lennard-jones\n")
    (root / "fcc.xyz").write_text("fcc lattice\n")
    assert cli("assets add . potential lj.txt").exit_code == 0
    assert cli("assets add geo/relax structure fcc.xyz").exit_code == 0
    ran = cli("run", "md/run")
    assert ran.exit_code == 0, ran.output
    (shown,) = json.loads(cli("ls", "md/run", "--format", "json").stdout)
    assert sorted(i["name"] for i in shown["inputs"]) == ["potential", "structure"]
    return root


def test_an_experiments_bundle_carries_the_assets_its_runs_used(
    lineage_source: Path, dest: Path, cli: Cli, tmp_path: Path
) -> None:
    bundle = bundle_of(cli, lineage_source, tmp_path / "md.tar.gz", "md/run")
    r = cli("-w", str(dest), "import", str(bundle), "--json")
    assert r.exit_code == 0, r.output
    assets = json.loads(cli("-w", str(dest), "assets", "ls", "--json").stdout)
    assert sorted((a["scope"], a["name"]) for a in assets) == [
        (".", "potential"),
        ("geo/relax", "structure"),
    ]
    source_assets = json.loads(cli("-w", str(lineage_source), "assets", "ls", "--json").stdout)
    hashes = {(a["scope"], a["name"]): a["content_hash"] for a in source_assets}
    assert {(a["scope"], a["name"]): a["content_hash"] for a in assets} == hashes
    # the scope's definitions came along: the other project's experiment exists
    assert (dest / "projects/geo/project.yaml").is_file()
    assert (dest / "projects/geo/experiments/relax/experiment.yaml").is_file()
    assert not (dest / "projects/geo/experiments/relax/runs").exists()
    assert cli("-w", str(dest), "assets", "verify").exit_code == 0
    assert cli("-w", str(dest), "doctor").exit_code == 0
    # importing again keeps them; another asset under the same name is a conflict
    assert cli("-w", str(dest), "import", str(bundle)).exit_code == 0
    (tmp_path / "other.txt").write_text("morse\n")
    assert cli("-w", str(dest), "assets", "add", ".", "potential", str(tmp_path / "other.txt"),
               "--replace").exit_code == 0  # fmt: skip
    again = cli("-w", str(dest), "import", str(bundle), "--json")
    assert again.exit_code == 3, again.output
    (conflict,) = json.loads(again.stdout)["conflicts"]
    assert conflict["ref"] == ".:potential" and "other content" in conflict["reason"]


def test_dangling_lineage_is_reported_by_doctor_verify_and_export(
    lineage_source: Path, cli: Cli, tmp_path: Path
) -> None:
    ws = ["-w", str(lineage_source)]
    assert cli(*ws, "assets", "rm", "geo/relax", "structure", "--force").exit_code == 0
    doctor = cli(*ws, "doctor", "--json")
    assert doctor.exit_code == 3
    (problem,) = json.loads(doctor.stdout)["problems"]
    assert problem["kind"] == "dangling-input"
    assert "structure (geo/relax)" in problem["message"] and problem["path"].endswith("run.json")
    verify = cli(*ws, "assets", "verify")
    assert verify.exit_code == 3
    assert "dangling" in verify.stdout and "refer to missing assets" in verify.stderr
    as_json = json.loads(cli(*ws, "assets", "verify", "--json").stdout)
    assert [c["status"] for c in as_json] == ["ok", "dangling"]
    assert cli(*ws, "assets", "verify", "geo/relax").exit_code == 3
    assert cli(*ws, "assets", "verify", ".").exit_code == 0  # only that scope's inputs
    exported = cli(*ws, "export", "md/run", "-o", str(tmp_path / "b.tar.gz"))
    assert exported.exit_code == 0, exported.output
    assert "geo/relax:structure" in exported.stderr and "dangling lineage" in exported.stderr
