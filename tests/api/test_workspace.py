"""The Python API (SPEC §12)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

import molexp as mx
from molexp.core.model import identity
from molexp.core.store import lock as locks
from molexp.errors import ConflictError, InvalidNameError, UsageError
from tests.conftest import ROOT

VECTORS = json.loads((ROOT / "tests" / "data" / "run-id-vectors.json").read_text())["cases"]


def test_workspace_writes_nothing_until_something_is_created(tmp_path: Path) -> None:
    ws = mx.Workspace(tmp_path / "lab")
    assert ws.project_names() == []
    assert not (tmp_path / "lab").exists()
    ws.project("qm9")
    assert (tmp_path / "lab" / "workspace.yaml").read_text().startswith("kind: molexp.workspace")
    assert (tmp_path / "lab" / "projects" / "qm9" / "project.yaml").exists()


def test_get_or_create(tmp_path: Path) -> None:
    ws = mx.Workspace(tmp_path)
    exp = ws.project("qm9").experiment("baseline", params={"lr": 1e-3}, replicas=3)
    same = ws.project("qm9").experiment("baseline", params={"lr": 0.001}, replicas=3)
    assert same.definition()["created_at"] == exp.definition()["created_at"]
    assert ws.project("qm9").experiment("baseline").replicas == 3  # nothing specified: get
    with pytest.raises(ConflictError, match="params"):
        ws.project("qm9").experiment("baseline", params={"lr": 1e-2})
    with pytest.raises(InvalidNameError):
        ws.project("../evil")


def test_seeds_set_replicas_and_must_match(tmp_path: Path) -> None:
    ws = mx.Workspace(tmp_path)
    exp = ws.project("p").experiment("e", seeds=[11, 22, 33])
    assert exp.replicas == 3 and exp.seed_for(2) == 33
    with pytest.raises(UsageError, match="seeds"):
        ws.project("p").experiment("f", seeds=[1, 2], replicas=3)


def test_run_is_fresh_and_random(tmp_path: Path) -> None:
    exp = mx.Workspace(tmp_path).project("p").experiment("e", params={"lr": 0.1})
    a, b = exp.run(), exp.run()
    assert a.id != b.id and identity.is_run_id(a.id)
    assert a.status == "pending" and a.record["identity"] == "random"
    assert exp.run(id="0123456789abcdef").id == "0123456789abcdef"
    with pytest.raises(UsageError):
        exp.run(id="0123456789abcdef")
    assert {r.id for r in exp.runs(status="pending")} == {a.id, b.id, "0123456789abcdef"}
    assert exp.runs(status="failed") == []


@pytest.mark.parametrize("case", [c for c in VECTORS if not c["config"] and c["profile"] is None])
def test_run_for_reproduces_the_vectors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: dict
) -> None:  # type: ignore[type-arg]
    monkeypatch.chdir(tmp_path)
    project, name = case["experiment"].split("/")
    seeds = list(range(case["replica"] + 1))
    seeds[case["replica"]] = case["seed"]
    exp = (
        mx.Workspace(tmp_path / "ws")
        .project(project)
        .experiment(name, params=case["params"], seeds=seeds)
    )
    run = exp.run_for(replica=case["replica"])
    assert run.id == case["run_id"]
    assert run.record["identity"] == "derived"
    assert exp.run_for(replica=case["replica"]).id == run.id  # found again, not duplicated
    assert len(exp.run_ids()) == 1


def test_run_for_with_profile_and_overrides(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "molcfg.yaml").write_text(
        "defaults: {epochs: 10}\nprofiles:\n  smoke: {epochs: 1}\n"
    )
    exp = mx.Workspace(tmp_path / "ws").project("p").experiment("e")
    run = exp.run_for(replica=0, profile="smoke", overrides={"batch": 4})
    assert run.record["config"] == {"epochs": 1, "batch": 4}
    assert run.record["profile"] == "smoke"
    assert run.id == identity.run_id("p/e", {}, 0, 0, "smoke", {"epochs": 1, "batch": 4})


def test_current_run_outside_a_run_is_a_clear_error() -> None:
    with pytest.raises(UsageError, match="molexp run"):
        mx.current_run()


def test_current_run_inside_a_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from molexp.cli.main import app

    monkeypatch.chdir(tmp_path)
    exp = (
        mx.Workspace(tmp_path)
        .project("p")
        .experiment(
            "e",
            params={"lr": 0.5},
            command=f"{sys.executable} -c 'import molexp as mx; c = mx.current_run(); "
            'c.set_result("lr2", c.params["lr"] * 2); '
            'c.artifact_path("sub/x.txt").write_text(str(c.replica))\'',
        )
    )
    res = CliRunner().invoke(app, ["run", "p/e"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    (run,) = exp.runs()
    assert run.results == {"lr2": 1}
    assert (run.dir / "artifacts" / "sub" / "x.txt").read_text() == "0"


def test_runs_where_sort_and_limit(tmp_path: Path) -> None:
    from molexp.core.records.runs import Run as _Run

    ws = mx.Workspace(tmp_path / "ws")
    exp = ws.project("p").experiment("e", params={"T": 300}, replicas=1)
    made: list[_Run] = []
    for t, energy in ((300, -1.2), (350, -1.4), (400, -1.35)):
        run = exp.run(params={"T": t})
        run.record["results"] = {"energy": energy}
        with locks.acquire(run.dir, root=ws.root):
            run.save()
        made.append(run)
    assert sorted(r.params["T"] for r in exp.runs(where=["results.energy<-1.3"])) == [350, 400]
    assert [r.id for r in exp.runs()] == sorted(r.id for r in made)  # id order
    assert [r.params["T"] for r in exp.runs(sort=["results.energy"], limit=2)] == [350, 400]
    assert [r.params["T"] for r in exp.runs(sort=["-T"])] == [400, 350, 300]
    assert exp.runs(where=["T>=350", "status=pending"], sort=["T"], limit=1)[0].params["T"] == 350
    assert exp.runs(status="failed", where=["T>1"]) == []
    with pytest.raises(UsageError, match="unknown operator '>>'"):
        exp.runs(where=["T>>1"])


def test_one_unreadable_record_never_hides_the_other_runs(tmp_path: Path) -> None:
    import warnings

    from molexp.errors import CorruptRecordError, UnreadableRecordWarning

    exp = mx.Workspace(tmp_path / "ws").project("p").experiment("e", replicas=3)
    runs = [exp.run_for(replica=r, cwd=tmp_path) for r in range(3)]
    bad = runs[1].path
    bad.write_bytes(b'{"schema_version": 1, "id": ')
    with pytest.warns(UnreadableRecordWarning, match=r"run\.json: is not valid JSON .*skipped"):
        found = exp.runs()
    assert sorted(r.id for r in found) == sorted([runs[0].id, runs[2].id])
    assert [str(p.path) for p in found.problems] == [str(bad)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        quiet = exp.runs(errors="skip", status="pending")
    assert len(quiet) == 2 and len(quiet.problems) == 1
    with pytest.raises(CorruptRecordError, match="is not valid JSON"):
        exp.runs(errors="raise")
    with pytest.raises(UsageError, match="errors must be"):
        exp.runs(errors="ignore")
    assert exp.runs(errors="skip", limit=1).problems  # problems survive a limit
