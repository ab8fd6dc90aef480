"""Cluster behaviour (SPEC §13's list) against the real SLURM of ci/slurm-ci.sh.

That SLURM has MaxArraySize=16 (so arrays get split), a partition `urgent` that
preempts `debug` with PreemptMode=REQUEUE, requeued jobs that may start again
after 11 s, and accounting through slurmdbd (sacct).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from molexp.core.slurm import scheduler
from tests.conftest import Cli, molexp_exe
from tests.slurm.conftest import Slurm
from tests.slurm.test_slurm import lines, make, statuses, submit

pytestmark = pytest.mark.slurm


def shim(bindir: Path, name: str, body: str) -> None:
    """A SLURM command on PATH in front of the real one (``$REAL`` runs the real one)."""
    bindir.mkdir(exist_ok=True)
    real = subprocess.run(["which", name], capture_output=True, text=True).stdout.strip()
    path = bindir / name
    path.write_text(f"#!/bin/bash\nREAL={real}\n{body}\n")
    path.chmod(0o755)


def attempts(record: dict[str, Any]) -> list[tuple[str, str | None]]:
    return [(a["status"], a.get("cause")) for a in record["attempts"]]


def test_more_runs_than_max_array_size_are_split_throttled_and_packed(
    workspace: Path, cli: Cli, slurm: Slurm
) -> None:
    limit = scheduler.array_limit(scheduler.config())
    assert limit == 16  # read from `scontrol show config` (ci/slurm-ci.sh sets it small)
    ref = make(
        cli, "many", 34, "echo run {replica} in ${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}"
    )
    res = cli("run", ref, "--executor", "slurm", "--json", "--pack", "2", "--jobs", "1")
    assert res.exit_code == 0, res.output
    out = lines(res.stdout)
    arrays = sorted({o["scheduler_job_id"].split("_")[0] for o in out}, key=int)
    assert len(arrays) == 2 and "2 arrays: this cluster allows 16 tasks per array" in res.stderr
    tasks = [o["scheduler_job_id"] for o in out]
    assert tasks[:32:2] == [f"{arrays[0]}_{i}" for i in range(16)] == tasks[1:32:2]
    assert tasks[32:] == [f"{arrays[1]}_0"] * 2  # the second array starts at index 0
    records = slurm.wait_for(ref, lambda rs: statuses(rs) == ["succeeded"] * 34, timeout=150)
    spans = sorted(
        (r["attempts"][0]["started_at"], r["attempts"][0]["finished_at"]) for r in records
    )
    for (_, end), (start, _) in zip(spans, spans[1:]):
        assert end <= start  # --jobs 1: one task at a time, its two runs in turn
    for rec in records:
        log = workspace / "projects/p/experiments/many/runs" / rec["id"] / "attempts/1/stdout.log"
        job = rec["attempts"][0]["scheduler_job_id"]
        assert log.read_text() == f"run {rec['replica']} in {job}\n"


def test_requeue_is_a_new_attempt_and_keeps_each_start_s_output(
    workspace: Path, cli: Cli, slurm: Slurm
) -> None:
    ref = make(
        cli,
        "requeued",
        1,
        'echo "start $MOLEXP_ATTEMPT"; [ "$MOLEXP_ATTEMPT" = 1 ] && sleep 120; true',
    )
    (queued,) = submit(cli, ref)
    job = queued["scheduler_job_id"]
    slurm.wait_for(ref, lambda rs: statuses(rs) == ["running"])
    subprocess.run(["scontrol", "requeue", job], check=True, timeout=30)
    # SLURM starts it again after cred_expire (11 s): meanwhile it is a requeue victim
    (rec,) = slurm.wait_for(ref, lambda rs: rs[0]["status"] != "running", timeout=30)
    if len(rec["attempts"]) == 1:
        listed = json.loads(cli("ls", ref, "--status", "interrupted", "--format", "json").stdout)
        assert [r["id"] for r in listed] == [rec["id"]]
        assert "was requeued by SLURM" in cli("show", rec["id"]).output
    (rec,) = slurm.wait_for(ref, lambda rs: rs[0]["status"] == "succeeded", timeout=90)
    assert attempts(rec) == [("interrupted", "requeued"), ("succeeded", None)]
    first, second = rec["attempts"]
    assert first["scheduler_job_id"] == second["scheduler_job_id"] == job
    assert (first["restart"], second["restart"]) == (0, 1)
    assert "requeued" in first["error"]
    run_dir = workspace / "projects/p/experiments/requeued/runs" / rec["id"]
    assert (run_dir / "attempts/1/stdout.log").read_text() == "start 1\n"
    assert (run_dir / "attempts/2/stdout.log").read_text() == "start 2\n"
    output = Path(second["submission"]["output"]).read_text()
    assert "DUE TO JOB REQUEUE" in output  # the first start's output, kept (append)
    assert output.index("start 1") < output.index("start 2")


def test_a_preempted_task_is_interrupted_then_runs_again(
    workspace: Path, cli: Cli, slurm: Slurm
) -> None:
    ref = make(
        cli,
        "victim",
        1,
        'echo "start $MOLEXP_ATTEMPT"; [ "$MOLEXP_ATTEMPT" = 1 ] && sleep 120; true',
    )
    submit(cli, ref, "--sbatch-arg=--exclusive", "--sbatch-arg=--partition=debug")
    slurm.wait_for(ref, lambda rs: statuses(rs) == ["running"], timeout=120)
    urgent = subprocess.run(
        ["sbatch", "--parsable", "-p", "urgent", "-o", "/dev/null", f"--chdir={workspace}",
         "--wrap", "sleep 1"],
        capture_output=True, text=True, check=True, timeout=30,
    ).stdout.strip()  # fmt: skip
    try:
        (rec,) = slurm.wait_for(ref, lambda rs: rs[0]["status"] == "succeeded", timeout=120)
    finally:
        subprocess.run(["scancel", urgent], capture_output=True, timeout=30)
    assert attempts(rec) == [("interrupted", "preempted"), ("succeeded", None)]
    interrupted = json.loads(cli("ls", ref, "--status", "interrupted", "--format", "json").stdout)
    assert interrupted == []  # it ran again: its status is its latest attempt's


def test_walltime_usr1_checkpoint_and_a_retry_with_more_time(
    workspace: Path, cli: Cli, slurm: Slurm
) -> None:
    """The one slow test (--time=1 is SLURM's smallest limit): ~2 minutes."""
    ref = make(
        cli,
        "slow",
        1,
        "trap 'echo checkpoint at USR1' USR1; "
        'if [ "$MOLEXP_ATTEMPT" = 1 ]; then for i in $(seq 600); do sleep 0.5; done; fi; echo done',
    )
    with open(workspace / "projects/p/experiments/slow/experiment.yaml", "a") as fh:
        fh.write("slurm: {retry_time_factor: 2}\n")
    res = cli(
        "run", ref, "--executor", "slurm", "--retries", "1", "--sbatch-arg=--time=1",
        "--sbatch-arg=--signal=B:USR1@45",
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "resubmits what SLURM interrupts (--retries)" in res.stderr

    def timed_out(rs: list[dict[str, Any]]) -> bool:
        return rs[0]["attempts"][0]["status"] == "interrupted"

    (rec,) = slurm.wait_for(ref, timed_out, timeout=200)
    first = rec["attempts"][0]
    assert (first["status"], first["cause"]) == ("interrupted", "timeout")
    assert "reached its time limit" in first["error"]
    log = workspace / "projects/p/experiments/slow/runs" / rec["id"] / "attempts/1/stdout.log"
    assert "checkpoint at USR1" in log.read_text()  # passed to the command, not fatal
    if len(rec["attempts"]) == 1:  # listed before the retry job resubmitted it
        listed = json.loads(cli("ls", ref, "--status", "interrupted", "--format", "json").stdout)
        assert [r["id"] for r in listed] == [rec["id"]]
        assert "reached its time limit (walltime)" in cli("show", rec["id"]).output
    (rec,) = slurm.wait_for(ref, lambda rs: rs[0]["status"] == "succeeded", timeout=120)
    assert attempts(rec) == [("interrupted", "timeout"), ("succeeded", None)]
    retry = rec["attempts"][1]["submission"]
    assert retry["retry"] == 1 and retry["sbatch_args"][-1] == "--time=0-00:02:00"
    assert rec["attempts"][1]["scheduler_job_id"] != first["scheduler_job_id"]


def test_usr1_reaches_the_command_and_the_run_goes_on(
    workspace: Path, cli: Cli, slurm: Slurm
) -> None:
    ref = make(
        cli,
        "usr1",
        1,
        "trap 'echo got USR1; exit 0' USR1; echo ready; for i in $(seq 600); do sleep 0.1; done; exit 7",
    )
    (queued,) = submit(cli, ref)
    slurm.wait_for(ref, lambda rs: statuses(rs) == ["running"])
    run_dir = workspace / "projects/p/experiments/usr1/runs" / queued["id"]
    deadline = time.monotonic() + 30
    while "ready" not in (run_dir / "attempts/1/stdout.log").read_text():
        assert time.monotonic() < deadline
        time.sleep(0.1)
    subprocess.run(["scancel", "-s", "USR1", "-b", queued["scheduler_job_id"]], check=True)
    (rec,) = slurm.wait_for(ref, lambda rs: rs[0]["status"] != "running")
    assert rec["status"] == "succeeded" and rec["attempts"][0]["exit_code"] == 0, rec["attempts"]
    assert (run_dir / "attempts/1/stdout.log").read_text() == "ready\ngot USR1\n"


@pytest.mark.parametrize(
    "where, sig", [("sbatch", "KILL"), ("release", "KILL"), ("release", "HUP")]
)
def test_a_killed_submitter_leaves_no_run_queued_behind_a_held_job(
    workspace: Path, cli: Cli, slurm: Slurm, tmp_path: Path, where: str, sig: str
) -> None:
    ref = make(cli, "orphans", 5, "echo hi")
    bindir = tmp_path / "shim"
    if where == "sbatch":  # the array is accepted, the submitter dies before it hears the id
        shim(bindir, "sbatch", f'"$REAL" "$@"; kill -{sig} $PPID; sleep 5')
    else:  # every run recorded queued, the arrays still held
        shim(
            bindir,
            "scontrol",
            f'[ "$1" = release ] && {{ kill -{sig} $PPID; sleep 5; exit 1; }}; exec "$REAL" "$@"',
        )
    env = dict(os.environ, PATH=f"{bindir}:{os.environ['PATH']}")
    proc = subprocess.run(
        [*molexp_exe(), "run", ref, "--executor", "slurm"], cwd=workspace, env=env,
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode != 0
    if sig == "KILL":
        assert proc.returncode == -signal.SIGKILL
        journals = list((workspace / ".molexp/slurm/journal").iterdir())
        assert len(journals) == 1  # what the next command repairs
        held = {j: s for j, s in slurm.active_jobs().items()}
        assert held and all(s == "PENDING" for s in held.values())
    records = slurm.records(ref)  # `ls` looks: it repairs first
    assert not any((workspace / ".molexp/slurm/journal").iterdir())
    if where == "release" and sig == "KILL":  # it had noted the release: released again
        slurm.wait_for(ref, lambda rs: statuses(rs) == ["succeeded"] * 5, timeout=90)
        return
    assert statuses(records) in (["cancelled"] * 5, [])  # undone (sbatch: none recorded yet)
    assert all(attempts(r) == [("cancelled", "cancelled")] for r in records)
    assert slurm.active_jobs() == {}  # nothing held, nothing unknown
    out = submit(cli, ref)  # and it submits again as usual
    assert [o["action"] for o in out] == ["submitted"] * 5
    slurm.wait_for(ref, lambda rs: statuses(rs) == ["succeeded"] * 5, timeout=90)


def test_a_squeue_that_hides_jobs_is_not_taken_for_their_death(
    workspace: Path, cli: Cli, slurm: Slurm, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ref = make(cli, "hidden", 2, "echo never")
    out = submit(cli, ref, "--sbatch-arg=--begin=now+3600")
    bindir = tmp_path / "shim"
    shim(bindir, "squeue", "exit 0")  # PrivateData=jobs, another cluster's login node ...
    monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")
    records = slurm.records(ref)
    assert statuses(records) == ["queued", "queued"]  # scontrol says they wait
    assert {r["scheduler_state"] for r in records} == {"PENDING"}
    gone = out[0]["scheduler_job_id"]
    subprocess.run(["scancel", gone], check=True, timeout=30)
    records = {r["id"]: r for r in slurm.records(ref)}
    assert records[out[0]["id"]]["status"] == "cancelled"
    assert attempts(records[out[0]["id"]]) == [("cancelled", "cancelled")]
    assert records[out[1]["id"]]["status"] == "queued"
    assert cli("cancel", ref).exit_code == 0


def test_launch_failure_is_failed_and_output_is_molexps(
    workspace: Path, cli: Cli, slurm: Slurm
) -> None:
    ref = make(cli, "launch", 1, "echo hi")
    (bad,) = submit(cli, ref, "--sbatch-arg=--input=/nonexistent/dir/in.txt")  # cannot start
    (rec,) = slurm.wait_for(ref, lambda rs: rs[0]["status"] != "queued", timeout=60)
    assert attempts(rec) == [("failed", "launch_failed")]
    assert bad["scheduler_job_id"] in rec["attempts"][0]["error"]
    if scheduler.accounting(scheduler.config()):  # what answers after MinJobAge
        job = bad["scheduler_job_id"]
        deadline = time.monotonic() + 30
        while (found := scheduler.sacct([job]).get(job)) is None:
            assert time.monotonic() < deadline, "sacct never knew the job"
            time.sleep(0.5)
        assert found.state == "FAILED"
    for own in ("--output=/tmp/x.out", "-o/tmp/x.out", "--error=e", "--chdir=/tmp", "--open=a"):
        res = cli("run", ref, "--executor", "slurm", f"--sbatch-arg={own}")
        assert res.exit_code == 2 and "molexp sets --" in res.output, (own, res.output)
    (good,) = submit(cli, ref)
    (rec,) = slurm.wait_for(ref, lambda rs: rs[0]["status"] == "succeeded", timeout=60)
    recorded = Path(rec["attempts"][-1]["submission"]["output"])
    array, index = good["scheduler_job_id"].split("_")
    assert recorded == workspace / ".molexp" / "slurm" / f"{array}_{index}.out"
    assert "run-task" in recorded.read_text()


def test_percent_in_the_workspace_path_and_values_with_quotes(
    tmp_path: Path, cli: Cli, slurm: Slurm, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "lab 50%j"
    root.mkdir()
    monkeypatch.chdir(root)
    assert cli("init", ".", "--name", "lab").exit_code == 0
    slurm.root = root
    ref = make(cli, "pct", 1, "echo fine")
    comment = 'two words, "quoted" #hash \\ back'
    res = cli("run", ref, "--executor", "slurm", "--json", f"--sbatch-arg=--job-name={comment}")
    assert res.exit_code == 0, res.output
    job = lines(res.stdout)[0]["scheduler_job_id"]
    shown = subprocess.run(
        ["squeue", "-h", "-t", "all", "-j", job, "-o", "%j"], capture_output=True, text=True,
        timeout=30,
    ).stdout  # fmt: skip
    assert shown.strip() == comment  # sbatch read the value whole
    (rec,) = slurm.wait_for(ref, lambda rs: rs[0]["status"] == "succeeded", timeout=60)
    output = Path(rec["attempts"][0]["submission"]["output"])
    deadline = time.monotonic() + 30  # the task's line follows its record (and its cleanup)
    while "run-task" not in (text := output.read_text()) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert text.count("run-task") == 1, text


def test_a_controller_that_is_down_costs_ls_a_second_not_18(
    workspace: Path, cli: Cli, slurm: Slurm, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ref = make(cli, "down", 1, "echo never")
    submit(cli, ref, "--sbatch-arg=--begin=now+3600")
    conf = Path(os.environ.get("SLURM_CONF", "/etc/slurm/slurm.conf"))
    bad = tmp_path / "slurm.conf"
    bad.write_text(
        "\n".join(
            "SlurmctldPort=1" if line.startswith("SlurmctldPort=") else line
            for line in conf.read_text().splitlines()
        )
    )
    env = dict(os.environ, SLURM_CONF=str(bad))
    started = time.monotonic()
    proc = subprocess.run(
        [*molexp_exe(), "ls", ref, "--format", "json"], cwd=workspace, env=env,
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    took = time.monotonic() - started
    assert proc.returncode == 0, proc.stderr
    (rec,) = json.loads(proc.stdout)
    assert rec["status"] == "queued" and "does not answer" in rec["status_reason"]
    assert took < 6, took
    assert cli("cancel", ref).exit_code == 0
    assert sys.executable  # the same interpreter the tasks run
