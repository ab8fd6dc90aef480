"""The SLURM batch script, sbatch options and squeue parsing, without a SLURM."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from molexp.core.slurm import scheduler as slurm
from molexp.errors import UsageError

REFS = ["qm9/baseline/0123456789abcdef", "qm9/baseline/fedcba9876543210"]


def script(tmp_path: Path, args: list[str] | None = None) -> str:
    return slurm.batch_script(
        REFS,
        tmp_path / "ws",
        tmp_path / "src",
        args or [],
        "molexp-qm9-baseline",
        python="/opt/venv/bin/python",
    )


def test_one_task_per_run_in_order(tmp_path: Path) -> None:
    text = script(tmp_path)
    lines = text.splitlines()
    assert lines[0] == "#!/bin/bash"
    assert "#SBATCH --array=0-1" in lines
    assert f"#SBATCH --output={tmp_path}/ws/.molexp/slurm/%A_%a.out" in lines
    assert f"#SBATCH --chdir={tmp_path}/src" in lines
    assert "#SBATCH --job-name=molexp-qm9-baseline" in lines
    start = lines.index("RUNS=(")
    assert [line.strip() for line in lines[start + 1 : start + 3]] == REFS
    assert lines[-1] == (
        f"exec /opt/venv/bin/python -m molexp -w {tmp_path}/ws run-task "
        '"${RUNS[$SLURM_ARRAY_TASK_ID]}"'
    )


def test_sbatch_args_follow_the_fixed_lines(tmp_path: Path) -> None:
    lines = script(tmp_path, ["--partition=gpu", "--time=01:00:00", "--gres=gpu:1"]).splitlines()
    directives = [line for line in lines if line.startswith("#SBATCH")]
    assert directives[-3:] == [
        "#SBATCH --partition=gpu",
        "#SBATCH --time=01:00:00",
        "#SBATCH --gres=gpu:1",
    ]
    assert all(not line.startswith("#SBATCH") for line in lines[lines.index("") :])


def test_values_with_spaces_are_quoted(tmp_path: Path) -> None:
    text = slurm.batch_script(
        REFS, tmp_path / "my ws", tmp_path, ["--comment=two words"], "j", python="/p y/python"
    )
    assert f'#SBATCH --output="{tmp_path}/my ws/.molexp/slurm/%A_%a.out"' in text
    assert '#SBATCH --comment="two words"' in text
    assert f"exec '/p y/python' -m molexp -w '{tmp_path}/my ws' run-task" in text


def test_script_is_valid_bash_and_maps_task_ids(tmp_path: Path) -> None:
    text = script(tmp_path).replace("exec /opt/venv/bin/python -m molexp", "echo")
    for index, ref in enumerate(REFS):
        out = subprocess.run(
            ["bash", "-c", text],
            capture_output=True,
            text=True,
            check=True,
            env={"SLURM_ARRAY_TASK_ID": str(index), "PATH": "/usr/bin:/bin"},
        )
        assert out.stdout.split()[-1] == ref


@pytest.mark.parametrize(
    "bad",
    [
        "--array=0-3",
        "-a",
        "-a0-3",
        "--wrap=hostname",
        "--hold",
        "partition=gpu",
        "",
        "-",
        "--comment=a\nb",
        3,
    ],
)
def test_bad_sbatch_args_are_refused(bad: object) -> None:
    with pytest.raises(UsageError):
        slurm.check_sbatch_args([bad], "--sbatch-arg")


def test_good_sbatch_args_pass() -> None:
    good = ["--partition=gpu", "-p", "gpu", "--account=chem", "-A", "chem", "--gres=gpu:2"]
    with pytest.raises(UsageError):  # a bare value is not an option
        slurm.check_sbatch_args(good, "x")
    ok = [g for g in good if g.startswith("-")]
    assert slurm.check_sbatch_args(ok, "x") == ok


def test_parse_squeue_lines() -> None:
    text = "12_0 RUNNING\n12_1 PENDING\n12_[2-5] PENDING\n13_0 COMPLETED\n\n"
    assert slurm.parse_squeue(text) == {"12_0": "RUNNING", "12_1": "PENDING", "13_0": "COMPLETED"}


def test_queue_view_gone_and_unknown() -> None:
    view = slurm.QueueView({"1_0": "RUNNING", "1_1": "CANCELLED", "1_2": "COMPLETING"})
    assert not view.gone("1_0") and not view.gone("1_2")
    assert view.gone("1_1") and view.gone("1_9")
    blind = slurm.QueueView(unreachable="controller down")
    assert not blind.gone("1_1") and not blind.gone("1_9")


def _record(status: str, job: str = "7_0") -> dict[str, object]:
    return {
        "status": status,
        "attempts": [{"n": 1, "status": status, "executor": "slurm", "scheduler_job_id": job}],
    }


def test_verdict_of_a_queued_run(tmp_path: Path) -> None:
    alive = slurm.QueueView({"7_0": "PENDING"})
    assert slurm.verdict(_record("queued"), tmp_path, alive) == ("queued", None)
    status, reason = slurm.verdict(_record("queued"), tmp_path, slurm.QueueView())
    assert (
        status == "cancelled" and "7_0" in str(reason) and "before the run started" in str(reason)
    )
    status, reason = slurm.verdict(
        _record("queued"), tmp_path, slurm.QueueView({"7_0": "CANCELLED"})
    )
    assert status == "cancelled" and "CANCELLED" in str(reason)
    blind = slurm.QueueView(unreachable="down")
    assert slurm.verdict(_record("queued"), tmp_path, blind)[0] == "queued"


def test_verdict_of_a_running_run(tmp_path: Path) -> None:
    from molexp.core.store import lock

    held = lock.acquire(tmp_path)  # this live process owns it
    try:
        done = slurm.QueueView({"7_0": "FAILED"})
        assert slurm.verdict(_record("running"), tmp_path, done)[0] == "running"
    finally:
        held.release()
    status, reason = slurm.verdict(_record("running"), tmp_path, slurm.QueueView({"7_0": "FAILED"}))
    assert status == "interrupted" and "FAILED" in str(reason)
    running = slurm.QueueView({"7_0": "RUNNING"})
    # no lock at all but SLURM runs it: the run.json re-read cannot find a record, keep it
    assert slurm.verdict(_record("running"), tmp_path, running)[0] == "running"


def test_task_job_id_from_the_environment() -> None:
    assert slurm.task_job_id({"SLURM_ARRAY_JOB_ID": "41", "SLURM_ARRAY_TASK_ID": "3"}) == "41_3"
    with pytest.raises(UsageError, match="SLURM array task"):
        slurm.task_job_id({})
