"""`molexp doctor [--fix] [--json]` (issue #4): reports every problem of the
workspace; fixes only what is safe; never deletes or rewrites a record."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from molexp.api.workspace import Experiment, Workspace
from molexp.core.records.runs import Run
from molexp.core.store import lock as locks
from molexp.core.views import doctor
from tests.conftest import Cli, run_molexp
from tests.reliability.conftest import (
    make_experiment,
    proc_env,
    records_snapshot,
    spawn,
    wait_for,
)

OLD = time.time() - 3600


def _report(cli: Cli, *args: str) -> tuple[int, dict[str, Any]]:
    res = cli("doctor", "--json", *args)
    report: dict[str, Any] = json.loads(res.stdout)
    return res.exit_code, report


def _kinds(report: dict[str, Any]) -> list[tuple[str, str]]:
    return sorted((p["kind"], p["relpath"]) for p in report["problems"])


def _active(exp: Experiment, status: str = "running", **attempt: Any) -> Run:
    run = exp.run_for(replica=0, cwd=exp.workspace.root)
    run.record["attempts"].append({"n": 1, "status": status, "executor": "local", **attempt})
    run.record["status"] = status
    with locks.acquire(run.dir, root=exp.workspace.root):
        run.save()
    return run


def _dead_owner() -> dict[str, Any]:
    owner = locks.owner_info()
    owner["pid_start"] = "0"  # this pid, but not the process that started then
    return owner


@pytest.fixture
def exp(workspace: Path) -> Experiment:
    return make_experiment(workspace, command="true")


def test_a_clean_workspace_exits_0_and_writes_nothing(
    workspace: Path, cli: Cli, exp: Experiment
) -> None:
    assert cli("run", "P/E").exit_code == 0
    before = records_snapshot(workspace)
    res = cli("doctor")
    assert res.exit_code == 0, res.output
    assert res.stdout == "" and "No problems" in res.stderr
    code, report = _report(cli)
    assert code == 0 and report["problems"] == [] and report["remaining"] == 0
    assert report["checked"] == {"projects": 1, "experiments": 1, "runs": 1}
    assert records_snapshot(workspace) == before


def test_a_crashed_run_is_reported_then_fixed_under_its_lock(
    workspace: Path, cli: Cli, exp: Experiment
) -> None:
    run = _active(exp)
    (run.dir / locks.LOCK_NAME).write_text(json.dumps(_dead_owner()))
    before = records_snapshot(workspace)
    code, report = _report(cli)
    assert code == 3
    rel = f"projects/P/experiments/E/runs/{run.id}"
    assert _kinds(report) == [("interrupted", f"{rel}/run.json"), ("stale-lock", f"{rel}/.lock")]
    assert all(p["fixable"] and not p["fixed"] for p in report["problems"])
    assert records_snapshot(workspace) == before, "doctor without --fix writes nothing"

    code, report = _report(cli, "--fix")
    assert code == 0 and report["fixed"] == 2 and report["remaining"] == 0
    assert not (run.dir / locks.LOCK_NAME).exists()
    fixed = Run.load(exp, run.id)
    assert fixed.status == "interrupted" and fixed.attempts[0]["status"] == "interrupted"
    assert "gone" in fixed.attempts[0]["error"]
    assert cli("doctor").exit_code == 0
    assert cli("run", "P/E").exit_code == 0
    assert [a["status"] for a in Run.load(exp, run.id).attempts] == ["interrupted", "succeeded"]


def test_a_running_record_without_a_lock_is_interrupted(
    workspace: Path, cli: Cli, exp: Experiment
) -> None:
    run = _active(exp)
    code, report = _report(cli)
    assert code == 3 and [p["kind"] for p in report["problems"]] == ["interrupted"]
    assert "no lock held" in report["problems"][0]["message"]
    assert _report(cli, "--fix")[0] == 0
    assert Run.load(exp, run.id).status == "interrupted"


def test_a_queued_run_whose_job_left_the_queue_is_closed(
    workspace: Path, cli: Cli, exp: Experiment
) -> None:
    run = _active(exp, "queued", executor="slurm", scheduler_job_id=None)
    code, report = _report(cli)
    assert code == 3 and [p["kind"] for p in report["problems"]] == ["interrupted"]
    assert _report(cli, "--fix")[0] == 0
    assert Run.load(exp, run.id).status == "cancelled"


def test_a_live_owner_is_never_reported_nor_touched(
    workspace: Path, cli: Cli, exp: Experiment, tmp_path: Path
) -> None:
    make_experiment(
        workspace,
        name="Live",
        command='touch "$STARTED"; while [ ! -e "$RELEASE" ]; do sleep 0.02; done',
    )
    started, release = tmp_path / "started", tmp_path / "release"
    holder = spawn(
        "run", "P/Live", cwd=workspace, env=proc_env(STARTED=str(started), RELEASE=str(release))
    )
    wait_for(started.exists, "the run to start")
    code, report = _report(cli, "--fix")
    assert code == 0 and report["problems"] == []
    release.touch()
    _, err = holder.communicate(timeout=60)
    assert holder.returncode == 0, err


def test_another_hosts_lock_goes_stale_after_the_heartbeat_timeout(
    workspace: Path, cli: Cli, exp: Experiment, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = _active(exp)
    lock = run.dir / locks.LOCK_NAME
    lock.write_text(json.dumps({"host": "node-3.invalid", "pid": 99, "boot_id": "b"}))
    assert _report(cli)[0] == 0  # a fresh heartbeat
    os.utime(lock, (OLD, OLD))
    monkeypatch.setenv("MOLEXP_HEARTBEAT_TIMEOUT", str(2 * 3600))
    assert _report(cli)[0] == 0  # still within a (longer) documented timeout
    monkeypatch.delenv("MOLEXP_HEARTBEAT_TIMEOUT")
    code, report = _report(cli, "--fix")
    assert code == 0 and sorted(p["kind"] for p in report["problems"]) == [
        "interrupted",
        "stale-lock",
    ]
    assert Run.load(exp, run.id).status == "interrupted"


def test_old_temp_files_and_break_guards_are_removed_young_ones_kept(
    workspace: Path, cli: Cli, exp: Experiment
) -> None:
    assert cli("run", "P/E").exit_code == 0
    (run_dir,) = exp.runs_dir.iterdir()
    old_tmp = run_dir / ".tmp-run.json-0123abcd"
    young_tmp = exp.path / ".tmp-experiment.yaml-4567ef01"
    guard = run_dir / locks.BREAK_NAME
    for path in (old_tmp, young_tmp, guard):
        path.write_text("{partial")
    os.utime(old_tmp, (OLD, OLD))
    os.utime(guard, (OLD, OLD))
    record = (run_dir / "run.json").read_bytes()
    code, report = _report(cli)
    assert code == 3
    assert sorted(p["kind"] for p in report["problems"]) == ["stale-break", "temp-file"]
    assert old_tmp.exists() and guard.exists()
    code, report = _report(cli, "--fix")
    assert code == 0 and report["fixed"] == 2
    assert not old_tmp.exists() and not guard.exists()
    assert young_tmp.exists(), "a young temporary file may belong to a live writer"
    assert (run_dir / "run.json").read_bytes() == record


def test_unfixable_problems_are_all_listed_and_left_alone(
    workspace: Path, cli: Cli, exp: Experiment
) -> None:
    assert cli("experiment", "create", "P/F", "--replicas", "3", "--command", "true").exit_code == 0
    assert cli("run", "P/F").exit_code == 0
    runs = sorted(Experiment(exp.project, "F").runs_dir.iterdir())
    (runs[0] / "run.json").write_text('{"schema_version": 1, "id": ')
    (runs[1] / "run.json").write_text(
        (runs[1] / "run.json").read_text().replace('"schema_version": 1', '"schema_version": 9')
    )
    (runs[2] / "run.json").unlink()
    (workspace / "projects/Stray").mkdir()
    (workspace / "projects/P/experiments/Gone").mkdir()
    (workspace / "workspace.yaml").write_text(
        (workspace / "workspace.yaml").read_text() + "extra: [unclosed\n"
    )
    before = records_snapshot(workspace)
    for fix in ([], ["--fix"]):
        code, report = _report(cli, *fix)
        assert code == 3 and report["fixed"] == 0
        assert _kinds(report) == sorted(
            [
                ("missing", "projects/P/experiments/Gone/experiment.yaml"),
                ("missing", f"projects/P/experiments/F/runs/{runs[2].name}/run.json"),
                ("missing", "projects/Stray/project.yaml"),
                ("newer-schema", f"projects/P/experiments/F/runs/{runs[1].name}/run.json"),
                ("unreadable", f"projects/P/experiments/F/runs/{runs[0].name}/run.json"),
                ("unreadable", "workspace.yaml"),
            ]
        )
        assert all(p["hint"] and not p["fixable"] for p in report["problems"])
        assert records_snapshot(workspace) == before
    text = cli("doctor")
    assert text.exit_code == 3
    assert "6 problem(s)" in text.stderr and "6 remaining" in text.stderr
    assert f"runs/{runs[1].name}/run.json: schema_version 9 is newer" in text.stdout


def test_doctor_fix_after_a_real_kill_9(ws_root: Path, tmp_path: Path) -> None:
    make_experiment(ws_root, name="K", command='touch "$STARTED"; exec sleep 300')
    started = tmp_path / "started"
    proc = spawn("run", "P/K", cwd=ws_root, env=proc_env(STARTED=str(started)), new_session=True)
    wait_for(started.exists, "the command to start")
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)
    report = run_molexp("doctor", "--json", cwd=ws_root)
    assert report.returncode == 3
    assert sorted(p["kind"] for p in json.loads(report.stdout)["problems"]) == [
        "interrupted",
        "stale-lock",
    ]
    fixed = run_molexp("doctor", "--fix", cwd=ws_root)
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert "[fixed]" in fixed.stdout
    listed = json.loads(run_molexp("ls", "--format", "json", cwd=ws_root).stdout)
    assert [r["status"] for r in listed] == ["interrupted"]
    assert "recorded_status" not in listed[0]  # the record itself now says so


def test_check_is_usable_from_python(ws_root: Path) -> None:
    make_experiment(ws_root)
    report = doctor.check(Workspace(ws_root))
    assert report.remaining == [] and report.to_json()["checked"]["experiments"] == 1


def test_a_stale_asset_staging_folder_is_removed_a_filling_one_kept(
    workspace: Path, cli: Cli
) -> None:
    assets = workspace / "assets"
    stale = assets / ".tmp-add-0123abcd"
    filling = assets / ".tmp-add-4567ef01"
    for folder in (stale, filling):
        (folder / "data").mkdir(parents=True)
        (folder / "data" / "big.bin").write_bytes(b"x" * 100)
    for path in (stale, stale / "data", stale / "data" / "big.bin", filling):
        os.utime(path, (OLD, OLD))  # `filling`'s file is still being written: young
    code, report = _report(cli)
    assert code == 3 and [p["path"] for p in report["problems"]] == [str(stale)]
    code, report = _report(cli, "--fix")
    assert code == 0 and report["fixed"] == 1
    assert not stale.exists() and (filling / "data" / "big.bin").exists()
