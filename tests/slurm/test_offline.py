"""`--executor slurm` where no SLURM is needed: dry runs, refusals, missing tools."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import Cli, snapshot


@pytest.fixture
def exp(workspace: Path, cli: Cli) -> str:
    assert cli("project create p").exit_code == 0
    res = cli("experiment", "create", "p/e", "--replicas", "3", "--command", "echo {replica}")
    assert res.exit_code == 0, res.output
    return "p/e"


def fake_tool(bindir: Path, name: str, body: str) -> None:
    bindir.mkdir(exist_ok=True)
    path = bindir / name
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)


def test_dry_run_prints_the_script_and_writes_nothing(workspace: Path, exp: str, cli: Cli) -> None:
    with open(workspace / "workspace.yaml", "a") as fh:
        fh.write("slurm: {sbatch_args: [--partition=debug, --time=10]}\n")
    with open(workspace / "projects/p/experiments/e/experiment.yaml", "a") as fh:
        fh.write("slurm:\n  sbatch_args: [--time=20, --mem=1G]\n")
    before = snapshot(workspace)
    res = cli(
        "run",
        exp,
        "--executor",
        "slurm",
        "--dry-run",
        "-r",
        "2",
        "-r",
        "0",
        "--sbatch-arg",
        "--time=30",
    )
    assert res.exit_code == 0, res.output
    assert snapshot(workspace) == before
    lines = res.stdout.splitlines()
    assert lines[0] == "#!/bin/bash"
    directives = [line for line in lines if line.startswith("#SBATCH")]
    assert directives[-5:] == [
        "#SBATCH --partition=debug",
        "#SBATCH --time=10",
        "#SBATCH --time=20",
        "#SBATCH --mem=1G",
        "#SBATCH --time=30",
    ]
    assert "#SBATCH --array=0-1" in lines
    assert "2 to submit" in res.stderr and "nothing submitted" in res.stderr

    planned = cli("run", exp, "--executor", "slurm", "--dry-run", "--json")
    assert [json.loads(x)["action"] for x in planned.stdout.splitlines()] == ["planned"] * 3
    assert snapshot(workspace) == before


def test_missing_sbatch_exits_3_and_records_nothing(
    workspace: Path, exp: str, cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    before = snapshot(workspace)
    res = cli("run", exp, "--executor", "slurm")
    assert res.exit_code == 3
    assert res.stderr.startswith("error: sbatch not found: SLURM is not installed")
    assert len(res.stderr.strip().splitlines()) == 2
    assert snapshot(workspace) == before


def test_sbatch_failure_exits_3_with_its_message(
    workspace: Path, exp: str, cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bindir = tmp_path / "bin"
    fake_tool(
        bindir,
        "sbatch",
        "cat >/dev/null; echo 'sbatch: error: Batch job submission failed: "
        "Unable to contact slurm controller (connect failure)' >&2; exit 1",
    )
    # (asked for the cluster's limits first: a configuration it cannot reach, as here)
    fake_tool(bindir, "scontrol", '[ "$1" = show ] && exit 0; exit 1')
    monkeypatch.setenv("PATH", f"{bindir}:/usr/bin:/bin")
    res = cli("run", exp, "--executor", "slurm", "--json")
    assert res.exit_code == 3
    assert "Unable to contact slurm controller (connect failure)" in res.stderr
    assert res.stdout == ""
    assert not (workspace / "projects/p/experiments/e/runs").exists()


def test_a_failed_release_cancels_the_array_and_the_records_say_so(
    workspace: Path, exp: str, cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bindir = tmp_path / "bin"
    log = tmp_path / "calls"
    fake_tool(bindir, "sbatch", f'cat >/dev/null; echo sbatch "$@" >>{log}; echo 77')
    fake_tool(
        bindir,
        "scontrol",
        f'[ "$1" = show ] && exit 0; echo scontrol "$@" >>{log}; echo "release refused" >&2; exit 1',
    )
    fake_tool(bindir, "scancel", f'echo scancel "$@" >>{log}')
    monkeypatch.setenv("PATH", f"{bindir}:/usr/bin:/bin")
    res = cli("run", exp, "--executor", "slurm")
    assert res.exit_code == 3
    assert "release refused" in res.stderr
    assert log.read_text().splitlines() == [
        "sbatch --parsable --hold",
        "scontrol release 77",
        "scancel 77",
    ]
    records = json.loads(cli("ls", exp, "--format", "json").stdout)
    assert [r["status"] for r in records] == ["cancelled"] * 3
    assert all("release refused" in r["attempts"][-1]["error"] for r in records)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--executor", "slurm", "--sbatch-arg=--array=1-9"], "molexp sets --array itself"),
        (["--executor", "slurm", "--sbatch-arg=partition"], "must look like --name=value"),
        (["--sbatch-arg=--time=5"], "--sbatch-arg, --pack and --retries need slurm"),
        (["--pack", "2"], "--pack and --retries need slurm"),
        (["--executor", "slurm", "--sbatch-arg=--arr=0"], "(--arr is how sbatch reads --array)"),
        (["--executor", "slurm", "--pack", "0"], "--pack must be at least 1"),
        (["--executor", "pbs"], "use local or slurm"),
    ],
)
def test_bad_options_exit_2(exp: str, cli: Cli, args: list[str], message: str) -> None:
    res = cli("run", exp, "--dry-run", *args)
    assert res.exit_code == 2, res.output
    assert message in res.stderr


def test_bad_slurm_block_is_named(workspace: Path, exp: str, cli: Cli) -> None:
    with open(workspace / "projects/p/experiments/e/experiment.yaml", "a") as fh:
        fh.write("slurm: {partition: gpu}\n")
    res = cli("run", exp, "--executor", "slurm", "--dry-run")
    assert res.exit_code == 2
    assert "experiment.yaml" in res.stderr and "partition" in res.stderr


def test_run_task_does_nothing_for_a_run_not_queued_for_it(
    exp: str, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = cli("run", exp, "-r", "0", "--json")
    run_id = json.loads(run.stdout)["id"]
    monkeypatch.setenv("SLURM_ARRAY_JOB_ID", "5")
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "0")
    res = cli("run-task", f"{exp}/{run_id}")
    assert res.exit_code == 0, res.output
    assert "(SLURM job 5_0): skipped, succeeded (up to date)" in res.stderr
    record = json.loads(cli("show", run_id, "--json").stdout)
    assert len(record["attempts"]) == 1
    monkeypatch.delenv("SLURM_ARRAY_JOB_ID")
    assert cli("run-task", f"{exp}/{run_id}").exit_code == 2


def test_cancel_scopes_and_nothing_to_cancel(exp: str, cli: Cli) -> None:
    assert cli("run", exp, "-r", "0").exit_code == 0
    assert cli("cancel").exit_code == 2
    res = cli("cancel", "p")
    assert res.exit_code == 2 and "--all" in res.stderr
    assert cli("cancel", "p", "--all").exit_code == 0
    res = cli("cancel", exp)
    assert res.exit_code == 0 and "nothing to cancel" in res.stderr
    assert cli("cancel", "p/nope").exit_code == 2


def test_cancel_signals_a_local_owner(workspace: Path, cli: Cli) -> None:
    import subprocess
    import time

    from tests.conftest import molexp_exe

    assert cli("project create q").exit_code == 0
    assert cli("experiment", "create", "q/slow", "--command", "echo go; sleep 60").exit_code == 0
    proc = subprocess.Popen(
        [*molexp_exe(), "run", "q/slow"],
        cwd=workspace,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while json.loads(cli("ls", "q/slow", "--format", "json").stdout or "[]") == [] or (
            json.loads(cli("ls", "q/slow", "--format", "json").stdout)[0]["status"] != "running"
        ):
            assert time.monotonic() < deadline, "the local run never started"
            time.sleep(0.1)
        res = cli("cancel", "q/slow", "--json")
        assert res.exit_code == 0, res.output
        (out,) = [json.loads(x) for x in res.stdout.splitlines()]
        assert out["action"] == "cancelled" and out["status"] == "cancelled"
        assert proc.wait(timeout=30) == 143
    finally:
        proc.kill()
        proc.wait()
    (record,) = json.loads(cli("ls", "q/slow", "--format", "json").stdout)
    assert record["status"] == "cancelled" and record["attempts"][-1]["exit_code"] == 143
