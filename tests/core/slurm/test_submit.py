"""Submitting runs as one job array (molexp/core/slurm/submit.py), with fake SLURM tools."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from molexp.core.execution import lifecycle
from molexp.core.execution.lifecycle import RunOptions
from molexp.core.records.plan import RunSpec, plan
from molexp.core.records.profiles import ResolvedConfig
from molexp.core.records.runs import ensure_run
from molexp.core.records.workspace import Experiment
from molexp.core.slurm import submit as slurm
from molexp.core.store import lock as locks
from molexp.errors import ExecutorError, UsageError
from tests.conftest import snapshot
from tests.core.slurm.conftest import FakeTool


@pytest.fixture
def three(experiment: Experiment) -> tuple[Experiment, list[RunSpec]]:
    exp = experiment.project.experiment("three", replicas=3, command="echo {replica}")
    return exp, plan(exp, ResolvedConfig(None, {}, None))


def options(exp: Experiment, **more: Any) -> RunOptions:
    return RunOptions(cwd=exp.workspace.root, **more)


def records(exp: Experiment) -> list[dict[str, Any]]:
    found = [json.loads(p.read_bytes()) for p in exp.runs_dir.glob("*/run.json")]
    return sorted(found, key=lambda r: r["replica"])


def fake_slurm(
    fake_tool: FakeTool, log: Path, release: str = "exit 0", max_array: int = 1001
) -> None:
    """sbatch gives ids 77, 78, ...; scontrol answers `show config`; the rest is logged."""
    count = log.with_suffix(".ids")
    fake_tool(
        "sbatch",
        f'cat >>{log}.scripts; echo sbatch "$@" >>{log}; '
        f"n=$(cat {count} 2>/dev/null || echo 76); n=$((n+1)); echo $n >{count}; echo $n",
    )
    fake_tool(
        "scontrol",
        f'case "$1" in show) printf "MaxArraySize = {max_array}\\nClusterName = fake\\n";; '
        f'*) echo scontrol "$@" >>{log}; {release};; esac',
    )
    fake_tool("scancel", f'echo scancel "$@" >>{log}')
    fake_tool("squeue", "exit 0")


def test_prepare_plans_and_writes_nothing(three: tuple[Experiment, list[RunSpec]]) -> None:
    exp, specs = three
    ensure_run(exp, specs[0])  # exists, pending
    done = ensure_run(exp, specs[1])
    lifecycle.enqueue(done, "5_1", options(exp), {})
    lifecycle.close_attempt(done, 1, "succeeded")
    before = snapshot(exp.workspace.root)
    sub = slurm.prepare(exp, specs, options(exp), ["--time=5"])
    assert snapshot(exp.workspace.root) == before
    assert [(o.action, o.message) for o in sub.outcomes] == [
        ("planned", "submit to SLURM"),
        ("skipped", "up to date"),
        ("planned", "submit to SLURM (new run)"),
    ]
    assert [i for i, _ in sub.pending] == [0, 2] and sub.job_id is None
    assert sub.sbatch_args == ["--time=5"]
    assert sub.script is not None and "#SBATCH --array=0-1" in sub.script
    assert "#SBATCH --time=5" in sub.script
    forced = slurm.prepare(exp, specs, options(exp, force=True), [])
    assert [o.action for o in forced.outcomes] == ["planned"] * 3


def test_prepare_refuses_before_anything(experiment: Experiment) -> None:
    bare = experiment.project.experiment("bare")
    specs = plan(bare, ResolvedConfig(None, {}, None))
    with pytest.raises(UsageError, match="has no command"):
        slurm.prepare(bare, specs, options(bare), [])
    with pytest.raises(UsageError, match="molexp sets --array itself"):
        slurm.prepare(bare, specs, options(bare, argv=["true"]), ["--array=0-3"])
    with pytest.raises(UsageError, match="--pack must be at least 1"):
        slurm.prepare(bare, specs, options(bare, argv=["true"]), [], settings=slurm.Settings(0))


def test_submit_queues_every_run_then_releases_the_array(
    three: tuple[Experiment, list[RunSpec]], fake_tool: FakeTool, tmp_path: Path
) -> None:
    exp, specs = three
    log = tmp_path / "calls"
    fake_slurm(fake_tool, log)
    sub = slurm.submit(exp, specs, options(exp), [])
    assert sub.job_id == "77" and log.read_text().splitlines() == [
        "sbatch --parsable --hold",
        "scontrol release 77",
    ]
    (array,) = sub.arrays
    assert array.script_path == exp.workspace.root / ".molexp/slurm/77.sh"
    assert array.script_path.read_text() == sub.script
    assert "#SBATCH --comment=molexp:" in array.script
    assert not (exp.workspace.root / ".molexp/slurm/journal").exists() or not any(
        (exp.workspace.root / ".molexp/slurm/journal").iterdir()
    )  # the submission is complete: its journal is gone
    assert [(o.action, o.attempt) for o in sub.outcomes] == [("submitted", 1)] * 3
    recorded = records(exp)
    assert [r["status"] for r in recorded] == ["queued"] * 3
    assert [r["attempts"][0]["scheduler_job_id"] for r in recorded] == ["77_0", "77_1", "77_2"]
    submission = recorded[2]["attempts"][0]["submission"]
    assert submission["output"] == str(exp.workspace.root / ".molexp/slurm/77_2.out")
    assert submission["cluster"] == "fake" and submission["uid"] == os.getuid()
    fake_tool("squeue", 'printf "77_0 PENDING\\n77_1 RUNNING\\n77_2 PENDING\\n"')
    again = slurm.submit(exp, specs, options(exp), [])
    assert again.job_id is None and again.script is None
    assert [o.message for o in again.outcomes] == [
        f"already queued as SLURM job 77_{i}" for i in range(3)
    ]
    assert len(log.read_text().splitlines()) == 2  # sbatch was not asked again


def test_a_run_claimed_meanwhile_keeps_its_record_and_its_task_is_cancelled(
    three: tuple[Experiment, list[RunSpec]], fake_tool: FakeTool, tmp_path: Path
) -> None:
    exp, specs = three
    log = tmp_path / "calls"
    fake_slurm(fake_tool, log)
    busy = ensure_run(exp, specs[1])
    got = locks.acquire(busy.dir, "run", root=exp.workspace.root)
    try:
        sub = slurm.submit(exp, specs, options(exp), [])
    finally:
        got.release()
    assert [o.action for o in sub.outcomes] == ["submitted", "held", "submitted"]
    assert log.read_text().splitlines()[1:] == ["scancel 77_1", "scontrol release 77"]
    assert [r["status"] for r in records(exp)] == ["queued", "pending", "queued"]


def test_a_failed_release_cancels_the_array_and_closes_the_attempts(
    three: tuple[Experiment, list[RunSpec]], fake_tool: FakeTool, tmp_path: Path
) -> None:
    exp, specs = three
    log = tmp_path / "calls"
    fake_slurm(fake_tool, log, release="echo 'release refused' >&2; exit 1")
    with pytest.raises(ExecutorError, match="scontrol release 77 failed: release refused"):
        slurm.submit(exp, specs, options(exp), [])
    assert log.read_text().splitlines()[-1] == "scancel 77"
    for record in records(exp):
        attempt = record["attempts"][-1]
        assert record["status"] == "cancelled" == attempt["status"]
        assert attempt["error"].startswith("submission failed: scontrol release 77 failed")


@pytest.fixture
def seven(experiment: Experiment) -> tuple[Experiment, list[RunSpec]]:
    exp = experiment.project.experiment("seven", replicas=7, command="echo {replica}")
    return exp, plan(exp, ResolvedConfig(None, {}, None))


def test_layout_packs_runs_and_splits_arrays_at_the_limit() -> None:
    assert slurm.layout(7, 2, 3) == [[[0, 1], [2, 3], [4, 5]], [[6]]]
    assert slurm.layout(3, 1, 1001) == [[[0], [1], [2]]]
    assert slurm.layout(0, 1, 5) == []


def test_more_tasks_than_max_array_size_make_several_arrays_released_together(
    seven: tuple[Experiment, list[RunSpec]], fake_tool: FakeTool, tmp_path: Path
) -> None:
    exp, specs = seven
    log = tmp_path / "calls"
    fake_slurm(fake_tool, log, max_array=3)
    sub = slurm.submit(exp, specs, options(exp), [], slurm.Settings(pack=2, throttle=1))
    assert sub.job_ids == ["77", "78"] and sub.array_limit == 3
    assert log.read_text().splitlines() == [
        "sbatch --parsable --hold",
        "sbatch --parsable --hold",
        "scontrol release 77,78",
    ]
    first, second = (a.script for a in sub.arrays)
    assert "#SBATCH --array=0-2%1" in first and "#SBATCH --array=0-0%1" in second
    assert "--dependency" not in first and "#SBATCH --dependency=afterany:77" in second
    jobs = {r["replica"]: r["attempts"][0]["scheduler_job_id"] for r in records(exp)}
    assert jobs == {0: "77_0", 1: "77_0", 2: "77_1", 3: "77_1", 4: "77_2", 5: "77_2", 6: "78_0"}
    shown = second.replace(
        f"exec {sys.executable} -m molexp -w {exp.workspace.root} run-task", "echo"
    )
    out = subprocess.run(
        ["bash", "-c", shown], capture_output=True, text=True, check=True,
        env={"SLURM_ARRAY_TASK_ID": "0", "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert out.stdout.split() == [sub.outcomes[6].run.ref]  # index 0 of array 78 is run 6


def test_a_user_dependency_is_kept_beside_the_chain(
    seven: tuple[Experiment, list[RunSpec]], fake_tool: FakeTool, tmp_path: Path
) -> None:
    exp, specs = seven
    fake_slurm(fake_tool, tmp_path / "calls", max_array=4)
    sub = slurm.submit(
        exp, specs, options(exp), ["--dependency=afterok:5"], slurm.Settings(throttle=2)
    )
    first, second = (a.script for a in sub.arrays)
    assert "#SBATCH --dependency=afterok:5\n" in first
    assert "#SBATCH --dependency=afterok:5,afterany:77" in second


def test_a_killed_submitter_is_repaired_by_the_next_look(
    three: tuple[Experiment, list[RunSpec]], fake_tool: FakeTool, tmp_path: Path
) -> None:
    from molexp.core.slurm import journal as journals

    exp, specs = three
    log = tmp_path / "calls"
    fake_slurm(fake_tool, log)
    ws = exp.workspace
    journal = journals.Journal.open(ws.root, [ensure_run(exp, s).ref for s in specs])
    journal.array("77")
    for i, spec in enumerate(specs[:2]):  # died while recording the third run
        lifecycle.enqueue(ensure_run(exp, spec), f"77_{i}", options(exp), {})
    assert journals.repair(ws) == 0  # its submitter (this process) is alive
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    lock = journal.path / ".lock"
    owner = json.loads(lock.read_text())
    lock.write_text(json.dumps(dict(owner, pid=dead.pid, pid_start=None)))
    fake_tool("squeue", f'echo "78|molexp:{journal.token}"; echo "79|other"')
    assert journals.repair(ws) == 1
    assert log.read_text().splitlines() == ["scancel 77 78"]  # 78: found by its comment
    assert [r["status"] for r in records(exp)] == ["cancelled", "cancelled", "pending"]
    attempt = records(exp)[0]["attempts"][0]
    assert attempt["cause"] == "cancelled"
    assert "its submission was interrupted before SLURM could start it" in attempt["error"]
    assert not journal.path.exists()
    assert journals.repair(ws) == 0


def test_a_submitter_killed_after_the_release_note_releases_again(
    three: tuple[Experiment, list[RunSpec]], fake_tool: FakeTool, tmp_path: Path
) -> None:
    from molexp.core.slurm import journal as journals

    exp, specs = three
    log = tmp_path / "calls"
    fake_slurm(fake_tool, log)
    journal = journals.Journal.open(exp.workspace.root, [])
    journal.array("77")
    journal.releasing()
    journal.lock.release() if journal.lock else None  # gone without a word
    assert journals.repair(exp.workspace) == 1
    assert log.read_text().splitlines() == ["scontrol release 77"]


def test_time_limits_for_a_retry() -> None:
    assert slurm.parse_time("90") == 5400 and slurm.parse_time("1:30") == 90
    assert slurm.parse_time("1:00:00") == 3600 and slurm.parse_time("2-12") == 216000
    assert slurm.parse_time("1-0:30") == 86400 + 1800
    assert slurm.parse_time("UNLIMITED") is None and slurm.parse_time("x-1") is None
    assert slurm.format_time(61) == "0-00:02:00" and slurm.format_time(90000) == "1-01:00:00"
    assert slurm.longer(["--time=30"], 2, None)[-1] == "--time=0-01:00:00"
    assert slurm.longer([], 1.5, "00:01:00") == ["--time=0-00:02:00"]
    assert slurm.longer(["-p", "x"], 2, None) == ["-p", "x"]


def test_the_follow_up_job_resubmits_what_slurm_interrupted(
    three: tuple[Experiment, list[RunSpec]], fake_tool: FakeTool, tmp_path: Path
) -> None:
    exp, specs = three
    log = tmp_path / "calls"
    fake_slurm(fake_tool, log)
    with open(exp.definition_path, "a") as fh:
        fh.write("slurm: {retry_time_factor: 3}\n")
    sub = slurm.submit(
        exp, specs, options(exp), ["--time=10", "-pdebug"], slurm.Settings(retries=2)
    )
    assert sub.job_ids == ["77"] and sub.follow_up == "78"
    assert log.read_text().splitlines()[-1] == "scontrol release 77,78"
    follow_up = (tmp_path / "calls.scripts").read_text().split("#!/bin/bash")[-1]
    assert "#SBATCH --dependency=afterany:77" in follow_up and "#SBATCH -pdebug" in follow_up
    assert "--time=10\n" in follow_up and "run-retry" in follow_up
    manifest = next((exp.workspace.root / ".molexp/slurm").glob("retry-*.json"))
    # SLURM's word: 77_0 timed out, 77_1 failed by itself, 77_2 was preempted
    fake_tool("squeue", 'printf "77_0 TIMEOUT\\n77_1 COMPLETED\\n77_2 PREEMPTED\\n"')
    runs = [ensure_run(exp, s) for s in specs]
    lifecycle.close_attempt(runs[1], 1, "failed", "exit 1")
    subs = slurm.retry(exp.workspace.root, manifest)
    assert [s.job_ids for s in subs] == [["79"], ["81"]]  # other causes, then timeouts
    assert [len(s.pending) for s in subs] == [1, 1] and all(s.follow_up for s in subs)
    by_replica = {r["replica"]: r for r in records(exp)}
    assert [a["cause"] for a in by_replica[0]["attempts"]] == ["timeout", None]
    assert by_replica[0]["attempts"][1]["submission"]["retry"] == 1
    assert by_replica[0]["attempts"][1]["submission"]["sbatch_args"][-1] == "--time=0-00:30:00"
    assert by_replica[2]["attempts"][1]["submission"]["sbatch_args"] == ["--time=10", "-pdebug"]
    assert by_replica[1]["status"] == "failed" and len(by_replica[1]["attempts"]) == 1
    assert not manifest.exists()
    with pytest.raises(UsageError, match="no retry manifest"):
        slurm.retry(exp.workspace.root, manifest)
