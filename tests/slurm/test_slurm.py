"""`molexp run --executor slurm`, reconciliation and `molexp cancel`, against a real SLURM."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Cli
from tests.slurm.conftest import Slurm

pytestmark = pytest.mark.slurm


def lines(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


def statuses(records: list[dict[str, Any]]) -> list[str]:
    return sorted(r["status"] for r in records)


def make(cli: Cli, name: str, replicas: int, command: str) -> str:
    assert cli("project create p").exit_code in (0, 3)
    res = cli(
        "experiment", "create", f"p/{name}", "--replicas", str(replicas), "--command", command
    )
    assert res.exit_code == 0, res.output
    return f"p/{name}"


def submit(cli: Cli, ref: str, *extra: str, code: int = 0) -> list[dict[str, Any]]:
    res = cli("run", ref, "--executor", "slurm", "--json", *extra)
    assert res.exit_code == code, res.output
    return lines(res.stdout)


def test_four_replicas_succeed_with_their_job_ids_and_resubmission_is_a_no_op(
    workspace: Path, cli: Cli, slurm: Slurm
) -> None:
    ref = make(cli, "four", 4, 'echo replica {replica} && echo "on $SLURM_JOB_ID" >&2')
    out = submit(cli, ref)
    assert [o["action"] for o in out] == ["submitted"] * 4
    array = out[0]["scheduler_job_id"].split("_")[0]
    assert [o["scheduler_job_id"] for o in out] == [f"{array}_{i}" for i in range(4)]
    assert [o["replica"] for o in out] == [0, 1, 2, 3]

    records = slurm.wait_for(ref, lambda rs: statuses(rs) == ["succeeded"] * 4)
    for rec in records:
        (attempt,) = rec["attempts"]
        assert attempt["executor"] == "slurm"
        assert attempt["scheduler_job_id"] == f"{array}_{rec['replica']}"
        assert attempt["exit_code"] == 0 and attempt["host"] and attempt["pid"]
        assert attempt["submitted_at"] <= attempt["started_at"] <= attempt["finished_at"]
        assert attempt["cwd"] == str(workspace)
        logs = workspace / "projects/p/experiments/four/runs" / rec["id"] / "attempts/1"
        assert (logs / "stdout.log").read_text() == f"replica {rec['replica']}\n"
        assert (logs / "stderr.log").read_text().startswith("on ")
    assert (workspace / ".molexp/slurm" / f"{array}.sh").read_text().count("p/four/") == 4
    assert "replica 0" in (workspace / ".molexp/slurm" / f"{array}_0.out").read_text()

    again = cli("run", ref, "--executor", "slurm", "--json")
    assert again.exit_code == 0, again.output
    assert [o["action"] for o in lines(again.stdout)] == ["skipped"] * 4
    assert "nothing submitted" in again.stderr
    assert set(slurm.jobs()) == {f"{array}_{i}" for i in range(4)}  # no new job
    dry = cli("run", ref, "--executor", "slurm", "--dry-run")
    assert dry.exit_code == 0 and dry.stdout == ""


def test_queued_array_is_not_submitted_twice_and_cancel_ends_it(
    workspace: Path, cli: Cli, slurm: Slurm
) -> None:
    ref = make(cli, "later", 3, "echo never")
    out = submit(cli, ref, "--sbatch-arg=--begin=now+3600")
    jobs = [o["scheduler_job_id"] for o in out]
    records = slurm.records(ref)
    assert statuses(records) == ["queued"] * 3
    assert {r["scheduler_state"] for r in records} == {"PENDING"}
    assert all(r["attempts"][-1]["scheduler_job_id"] in jobs for r in records)

    held = submit(cli, ref, "--sbatch-arg=--begin=now+3600", code=3)
    assert [o["action"] for o in held] == ["held"] * 3
    assert sorted(slurm.active_jobs()) == sorted(jobs)

    res = cli("cancel", ref, "--json")
    assert res.exit_code == 0, res.output
    assert [o["action"] for o in lines(res.stdout)] == ["cancelled"] * 3
    assert slurm.active_jobs() == {}
    records = slurm.records(ref)
    assert statuses(records) == ["cancelled"] * 3
    assert all("molexp cancel" in r["attempts"][-1]["error"] for r in records)
    # cancelled runs are submitted again, as a new attempt
    out = submit(cli, ref, "--replica", "0", "--sbatch-arg=--begin=now+3600")
    assert [(o["action"], o["attempt"]) for o in out] == [("submitted", 2)]
    assert cli("cancel", f"{ref}/{out[0]['id']}").exit_code == 0


def test_running_array_cancelled_with_molexp_cancel(
    workspace: Path, cli: Cli, slurm: Slurm
) -> None:
    ref = make(cli, "long", 2, "echo started; sleep 120")
    submit(cli, ref)
    slurm.wait_for(ref, lambda rs: statuses(rs) == ["running", "running"])
    res = cli("cancel", ref)
    assert res.exit_code == 0, res.output
    records = slurm.records(ref)
    assert statuses(records) == ["cancelled", "cancelled"]
    for rec in records:
        attempt = rec["attempts"][-1]
        assert attempt["exit_code"] == 143, attempt  # SIGTERM reached the command
        logs = workspace / "projects/p/experiments/long/runs" / rec["id"] / "attempts/1"
        assert (logs / "stdout.log").read_text() == "started\n"
    slurm_states = slurm.jobs()
    assert all(s != "RUNNING" for s in slurm_states.values()), slurm_states


def test_jobs_killed_behind_molexps_back_are_reconciled(
    workspace: Path, cli: Cli, slurm: Slurm
) -> None:
    import subprocess

    queued_ref = make(cli, "pending", 1, "echo never")
    (queued,) = submit(cli, queued_ref, "--sbatch-arg=--begin=now+3600")
    running_ref = make(cli, "dies", 2, "sleep 120")
    submit(cli, running_ref)
    slurm.wait_for(running_ref, lambda rs: statuses(rs) == ["running", "running"])

    # 1. scancel of a queued task: the run never started -> cancelled
    subprocess.run(["scancel", queued["scheduler_job_id"]], check=True, timeout=30)
    # 2. the task's molexp dies at once (node lost, OOM killer): -> interrupted
    doomed, cancelled = slurm.records(running_ref)
    os.kill(doomed["attempts"][-1]["pid"], signal.SIGKILL)
    # 3. plain scancel of a running task: its molexp records cancelled itself
    subprocess.run(
        ["scancel", cancelled["attempts"][-1]["scheduler_job_id"]], check=True, timeout=30
    )

    (rec,) = slurm.wait_for(queued_ref, lambda rs: rs[0]["status"] != "queued")
    assert rec["status"] == "cancelled"
    assert "recorded_status" not in rec  # ls wrote it, under the lock
    assert "left the queue before the run started" in rec["attempts"][-1]["error"]

    by_id = {
        r["id"]: r
        for r in slurm.wait_for(
            running_ref, lambda rs: all(r["status"] != "running" for r in rs), timeout=60
        )
    }
    died = by_id[doomed["id"]]
    assert died["status"] == "interrupted"
    assert doomed["attempts"][-1]["scheduler_job_id"] in died["attempts"][-1]["error"]
    assert by_id[cancelled["id"]]["status"] == "cancelled"
    assert by_id[cancelled["id"]]["attempts"][-1]["exit_code"] == 143
    shown = json.loads(cli("show", died["id"], "--json").stdout)
    assert shown["status"] == "interrupted" and shown["attempts"][-1]["status"] == "interrupted"

    # resubmission picks up both, as attempt 2
    out = submit(cli, running_ref, "--sbatch-arg=--begin=now+3600")
    assert [(o["action"], o["attempt"]) for o in out] == [("submitted", 2), ("submitted", 2)]
    assert cli("cancel", running_ref).exit_code == 0


def test_unreachable_controller_exits_3_and_queues_nothing(
    workspace: Path, cli: Cli, slurm: Slurm, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ref = make(cli, "nowhere", 2, "echo hi")
    conf = Path(os.environ.get("SLURM_CONF", "/etc/slurm/slurm.conf"))
    bad = tmp_path / "slurm.conf"
    text = "\n".join(
        "SlurmctldPort=1" if line.startswith("SlurmctldPort=") else line
        for line in conf.read_text().splitlines()
    )
    bad.write_text(text if "SlurmctldPort=1" in text else text + "\nSlurmctldPort=1\n")
    monkeypatch.setenv("SLURM_CONF", str(bad))
    try:
        res = cli("run", ref, "--executor", "slurm")
    finally:
        monkeypatch.setenv("SLURM_CONF", str(conf))
    assert res.exit_code == 3, res.output
    assert "the SLURM controller does not answer (Slurmctld(primary) at" in res.stderr
    assert len(res.stderr.strip().splitlines()) <= 2
    assert not (workspace / "projects/p/experiments/nowhere/runs").exists()
