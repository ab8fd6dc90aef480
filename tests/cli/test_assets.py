"""`molexp assets ...` as a user types it, and the lineage story with real runs."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest
import xxhash

from tests.conftest import Cli, run_molexp, snapshot


@pytest.fixture
def lab(workspace: Path, cli: Cli) -> Path:
    assert cli("project create qm9").exit_code == 0
    assert cli("experiment create qm9/base --command true").exit_code == 0
    (workspace / "train.csv").write_text("x,y\n1,2\n")
    folder = workspace / "features"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.npy").write_bytes(b"\x00\x01" * 100)
    (folder / "sub" / "b.txt").write_text("b\n")
    return workspace


def xxh(data: bytes) -> str:
    return "xxh3_128:" + xxhash.xxh3_128(data).hexdigest()


def test_add_ls_show_find(lab: Path, cli: Cli) -> None:
    r = cli(
        "assets",
        "add",
        ".",
        "training-data",
        "train.csv",
        "--description",
        "QM9 split",
        "--tag",
        "raw",
    )
    assert r.exit_code == 0, r.output
    assert "Added asset 'training-data' in the workspace" in r.stderr and r.stdout == ""
    assert cli("assets add qm9 features features").exit_code == 0
    assert cli("assets add qm9/base training-data train.csv").exit_code == 0

    listed = json.loads(cli("assets ls --json").stdout)
    assert [(a["scope"], a["name"]) for a in listed] == [
        (".", "training-data"),
        ("qm9", "features"),
        ("qm9/base", "training-data"),
    ]
    first = listed[0]
    assert first["content_hash"] == xxh(b"x,y\n1,2\n")
    assert first["kind"] == "file" and first["mode"] == "copy" and first["size"] == 8
    assert first["filename"] == "train.csv" and first["tags"] == ["raw"]
    assert first["description"] == "QM9 split" and first["producer"] is None
    assert first["path"] == str(lab / "assets" / "training-data" / "data" / "train.csv")
    assert listed[1]["kind"] == "dir" and listed[1]["files"] == 2
    assert listed[1]["path"] == str(lab / "projects" / "qm9" / "assets" / "features" / "data")

    plain = cli("assets ls qm9")
    assert plain.exit_code == 0
    assert plain.stdout.splitlines()[0].split() == [
        "scope",
        "name",
        "kind",
        "mode",
        "size",
        "content_hash",
        "producer",
        "description",
    ]
    assert "features" in plain.stdout and "training-data" not in plain.stdout

    inherited = json.loads(cli("assets ls qm9/base --all --json").stdout)
    assert [(a["scope"], a["name"], a["shadowed"]) for a in inherited] == [
        ("qm9/base", "training-data", False),
        ("qm9", "features", False),
        (".", "training-data", True),
    ]

    shown = cli("assets show . training-data --json")
    assert shown.exit_code == 0
    assert json.loads(shown.stdout)["used_by"] == []
    assert "content_hash" in cli("assets show . training-data").stdout

    via_show = json.loads(cli("show qm9:features --json").stdout)
    assert via_show["path"] == listed[1]["path"] and via_show["used_by"] == []
    assert json.loads(cli("show :training-data --json").stdout)["scope"] == "."
    assert cli("show qm9/base:nope").exit_code == 2

    found = json.loads(cli("assets find training-data --json").stdout)
    assert [a["scope"] for a in found] == [".", "qm9/base"]

    assert cli("assets path training-data").stdout == first["path"] + "\n"
    from_exp = cli("assets path training-data --from qm9/base").stdout.strip()
    assert from_exp == str(
        lab / "projects/qm9/experiments/base/assets/training-data/data/train.csv"
    )
    assert cli("assets path features --from qm9/base --verify").exit_code == 0


def test_conflict_replace_and_usage_errors(lab: Path, cli: Cli) -> None:
    assert cli("assets add . data train.csv").exit_code == 0
    again = cli("assets add . data train.csv")
    assert again.exit_code == 0 and "Unchanged" in again.stderr
    (lab / "train.csv").write_text("x,y\n9,9\n")
    before = snapshot(lab)
    conflict = cli("assets add . data train.csv")
    assert conflict.exit_code == 3
    assert "--replace" in conflict.stderr and "Traceback" not in conflict.output
    assert len(conflict.stderr.strip().splitlines()) <= 2
    assert snapshot(lab) == before
    replaced = cli("assets add . data train.csv --replace")
    assert replaced.exit_code == 0 and "Replaced" in replaced.stderr
    assert cli("assets path data").stdout.strip().endswith("train.csv")

    missing = cli("assets add . other nothing-here.csv")
    assert missing.exit_code == 2 and "no such file" in missing.stderr
    both = cli("assets add . other train.csv --move --link")
    assert both.exit_code == 2 and "exclude each other" in both.stderr
    unknown_scope = cli("assets add nope other train.csv")
    assert unknown_scope.exit_code == 2 and "no project named 'nope'" in unknown_scope.stderr

    unknown = cli("assets path dat")
    assert unknown.exit_code == 2
    assert "no asset named 'dat' in the workspace" in unknown.stderr
    assert "Did you mean: data (.)" in unknown.stderr
    assert cli("assets show . dat").exit_code == 2
    assert cli("assets rm . dat").exit_code == 2
    assert cli("assets find nothing-like-it").exit_code == 2


@pytest.mark.parametrize(
    "argv",
    [
        ["assets", "add", ".", "../x", "train.csv"],
        ["assets", "add", ".", "..", "train.csv"],
        ["assets", "add", ".", "a/b", "train.csv"],
        ["assets", "add", "..", "x", "train.csv"],
        ["assets", "add", "../..", "x", "train.csv"],
        ["assets", "add", "qm9/..", "x", "train.csv"],
        ["assets", "add", "qm9/base/../../x", "y", "train.csv"],
        ["assets", "add", ".", "-x", "train.csv"],
        ["assets", "add", ".", "x\n", "train.csv"],
        ["assets", "add", "qm9", "../../../escape", "features", "--move"],
        ["assets", "path", "../x"],
        ["assets", "rm", ".", "../x"],
    ],
)
def test_names_that_leave_the_workspace_are_refused(lab: Path, cli: Cli, argv: list[str]) -> None:
    before = snapshot(lab.parent)
    r = cli(*argv)
    assert r.exit_code == 2, r.output
    assert "Traceback" not in r.output and r.stderr.startswith("error: ")
    assert snapshot(lab.parent) == before


def test_verify_catches_tampering(lab: Path, cli: Cli) -> None:
    assert cli("assets add qm9 features features").exit_code == 0
    assert cli("assets add . training-data train.csv").exit_code == 0
    (lab / "outside.txt").write_text("external")
    assert cli("assets add qm9/base ext outside.txt --ref").exit_code == 0
    ok = cli("assets verify")
    assert ok.exit_code == 0 and "3 asset(s) verified" in ok.stderr

    stored = lab / "projects" / "qm9" / "assets" / "features" / "data" / "sub" / "b.txt"
    stored.write_text("B\n")
    (lab / "outside.txt").write_text("changed!")
    bad = cli("assets verify --json")
    assert bad.exit_code == 3
    statuses = {(c["scope"], c["name"]): c["status"] for c in json.loads(bad.stdout)}
    assert statuses == {
        ("qm9", "features"): "changed",
        (".", "training-data"): "ok",
        ("qm9/base", "ext"): "changed",
    }
    assert "features (qm9: changed)" in bad.stderr and "ext (qm9/base: changed)" in bad.stderr

    (lab / "assets" / "training-data" / "data" / "train.csv").unlink()
    scoped = cli("assets verify .")
    assert scoped.exit_code == 3
    assert "training-data" in scoped.stdout and "missing" in scoped.stdout
    assert "training-data (.: missing)" in scoped.stderr
    assert cli("assets path training-data --verify").exit_code == 3


def test_unreadable_record_is_named_and_the_rest_listed(lab: Path, cli: Cli) -> None:
    assert cli("assets add . good train.csv").exit_code == 0
    assert cli("assets add . bad train.csv").exit_code == 0
    (lab / "assets" / "bad" / "asset.yaml").write_text("kind: [unclosed\n")
    r = cli("assets ls --json")
    assert r.exit_code == 3
    assert [a["name"] for a in json.loads(r.stdout)] == ["good"]
    assert "assets/bad/asset.yaml" in r.stderr


def test_rm_and_leftovers(lab: Path, cli: Cli) -> None:
    assert cli("assets add qm9 features features --link").exit_code == 0
    assert (lab / "projects/qm9/assets/features/data").is_symlink()
    r = cli("assets rm qm9 features")
    assert r.exit_code == 0 and "external file is kept" in r.stderr
    assert (lab / "features" / "a.npy").exists()
    assert sorted(os.listdir(lab / "projects/qm9/assets")) == []


def test_progress_bar_on_a_terminal(lab: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    from molexp.cli import assets as cli_assets

    monkeypatch.setattr(cli_assets.output, "is_tty", lambda stream=None: True)
    monkeypatch.setattr(cli_assets, "PROGRESS_MIN_BYTES", 1)
    (lab / "big.bin").write_bytes(os.urandom(3 << 20))
    r = cli("assets add . big big.bin")
    assert r.exit_code == 0, r.output
    assert cli("assets verify .").exit_code == 0


# --- real runs: lineage and promotion -------------------------------------------------


def sub_env(lab: Path) -> dict[str, str]:
    bin_dir = str(Path(sys.executable).parent)
    return {"PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""), "MOLEXP_WORKSPACE": str(lab)}


def molexp_ok(lab: Path, *args: str) -> str:
    r = run_molexp(*args, cwd=lab, env=sub_env(lab))
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


def test_a_run_records_the_assets_it_uses(lab: Path) -> None:
    molexp_ok(lab, "assets", "add", ".", "training-data", "train.csv")
    molexp_ok(
        lab,
        "experiment",
        "create",
        "qm9/train",
        "--command",
        'cat "$(molexp assets path training-data)" > "$MOLEXP_RUN_DIR/artifacts/out.txt"',
    )
    (out,) = [
        json.loads(line) for line in molexp_ok(lab, "run", "qm9/train", "--json").splitlines()
    ]
    assert out["status"] == "succeeded"
    record = json.loads(molexp_ok(lab, "show", out["id"], "--json"))
    (inp,) = record["inputs"]
    assert inp["name"] == "training-data" and inp["scope"] == "."
    assert inp["content_hash"] == xxh(b"x,y\n1,2\n")
    assert (Path(out["run_dir"]) / "artifacts" / "out.txt").read_text() == "x,y\n1,2\n"
    shown = molexp_ok(lab, "show", out["id"])
    assert "training-data" in shown and inp["content_hash"] in shown

    used = json.loads(molexp_ok(lab, "assets", "show", ".", "training-data", "--json"))
    assert used["used_by"] == [f"qm9/train/{out['id']}"]
    refused = run_molexp("assets", "rm", ".", "training-data", cwd=lab, env=sub_env(lab))
    assert refused.returncode == 3 and "--force" in refused.stderr
    assert (lab / "assets" / "training-data" / "asset.yaml").exists()
    molexp_ok(lab, "assets", "rm", ".", "training-data", "--force")


PIPELINE = (
    'if [ {step} = make ]; then echo weights > "$MOLEXP_RUN_DIR/artifacts/model.txt" && '
    'molexp assets add qm9/pipeline model "$MOLEXP_RUN_DIR/artifacts/model.txt" --move; '
    'else cp "$(molexp assets path model)" "$MOLEXP_RUN_DIR/artifacts/used.txt"; fi'
)

USE_FROM_PYTHON = """\
import molexp as mx
ctx = mx.current_run()
data = ctx.find_asset("model").read_text()
out = ctx.artifact_path("doubled.txt")
out.write_text(data * 2)
ctx.register_asset("doubled", out, mode="move", description="twice the model")
"""


def test_a_later_run_finds_what_an_earlier_run_promoted(lab: Path) -> None:
    molexp_ok(lab, "experiment", "create", "qm9/pipeline", "--param", "step=make",
              "--command", PIPELINE)  # fmt: skip
    (made,) = [
        json.loads(x)
        for x in molexp_ok(
            lab, "run", "qm9/pipeline", "--param", "step=make", "--json"
        ).splitlines()
    ]
    assert made["status"] == "succeeded"
    assert not (Path(made["run_dir"]) / "artifacts" / "model.txt").exists()  # moved
    model = json.loads(molexp_ok(lab, "assets", "show", "qm9/pipeline", "model", "--json"))
    assert model["producer"] == made["id"] and model["content_hash"] == xxh(b"weights\n")

    (used,) = [
        json.loads(x)
        for x in molexp_ok(lab, "run", "qm9/pipeline", "--param", "step=use", "--json").splitlines()
    ]
    assert used["status"] == "succeeded"
    assert (Path(used["run_dir"]) / "artifacts" / "used.txt").read_text() == "weights\n"
    record: dict[str, Any] = json.loads(molexp_ok(lab, "show", used["id"], "--json"))
    assert [(i["name"], i["scope"], i["content_hash"]) for i in record["inputs"]] == [
        ("model", "qm9/pipeline", model["content_hash"])
    ]

    (lab / "use.py").write_text(USE_FROM_PYTHON)
    molexp_ok(
        lab,
        "experiment",
        "create",
        "qm9/pipeline-py",
        "--command",
        "{py} use.py",
        "--param",
        f"py={sys.executable}",
    )
    molexp_ok(lab, "assets", "add", "qm9", "model", str(Path(model["path"])))
    (py,) = [json.loads(x) for x in molexp_ok(lab, "run", "qm9/pipeline-py", "--json").splitlines()]
    assert py["status"] == "succeeded", py
    record = json.loads(molexp_ok(lab, "show", py["id"], "--json"))
    assert [(i["name"], i["scope"]) for i in record["inputs"]] == [("model", "qm9")]
    doubled = json.loads(molexp_ok(lab, "assets", "show", "qm9/pipeline-py", "doubled", "--json"))
    assert doubled["producer"] == py["id"] and doubled["description"] == "twice the model"
    assert Path(doubled["path"]).read_text() == "weights\nweights\n"
