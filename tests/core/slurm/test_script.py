"""The SLURM batch script and sbatch options (molexp/core/slurm/script.py), without a SLURM."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from molexp.core.slurm import script as slurm
from molexp.errors import UsageError

REFS = ["qm9/baseline/0123456789abcdef", "qm9/baseline/fedcba9876543210"]


def script(tmp_path: Path, args: list[str] | None = None) -> str:
    return slurm.batch_script(
        [[r] for r in REFS],
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
    assert "#SBATCH --open-mode=append" in lines  # a requeued start adds to the output
    assert lines[-1] == (
        f"exec /opt/venv/bin/python -m molexp -w {tmp_path}/ws run-task "
        "${RUNS[$SLURM_ARRAY_TASK_ID]}"
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
        [REFS], tmp_path / "my ws%j", tmp_path, ["--mail-user=a b\"c'd#e\\f"], "j",
        python="/p y/python",
    )  # fmt: skip
    assert f'#SBATCH --output="{tmp_path}/my ws%%j/.molexp/slurm/%A_%a.out"' in text
    assert '#SBATCH --mail-user="a b\\"c\'d#e\\\\f"' in text
    assert f"exec '/p y/python' -m molexp -w '{tmp_path}/my ws%j' run-task" in text
    assert slurm.escape("--time=10") == "--time=10"
    assert slurm.escape("two words") == '"two words"'


def test_packed_tasks_throttle_and_dependency(tmp_path: Path) -> None:
    text = slurm.batch_script(
        [REFS, REFS[:1]], tmp_path, tmp_path, [], "j", comment="molexp:t", throttle=3,
        dependency="afterany:5",
    )  # fmt: skip
    assert "#SBATCH --array=0-1%3" in text and "#SBATCH --comment=molexp:t" in text
    assert "#SBATCH --dependency=afterany:5" in text
    assert "3 run(s) in 2 task(s)" in text
    shown = text.replace(f"exec {sys.executable} -m molexp -w {tmp_path} run-task", "echo")
    out = subprocess.run(
        ["bash", "-c", shown], capture_output=True, text=True, check=True,
        env={"SLURM_ARRAY_TASK_ID": "0", "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert out.stdout.split() == REFS  # task 0 runs both, in turn


def test_the_output_pattern_is_recorded_as_slurm_writes_it(tmp_path: Path) -> None:
    values = {"A": "76", "a": "3", "x": "molexp-p-e", "u": "me"}
    pattern = slurm.output_pattern(tmp_path / "w%s")
    assert f"#SBATCH --output={slurm.output_pattern(tmp_path / 'ws')}" in script(tmp_path)
    assert slurm.expand_pattern(pattern, values) == f"{tmp_path}/w%s/.molexp/slurm/76_3.out"
    assert slurm.option(["--time=5", "-t9"], "time", "t") == "9"


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
        "--arr=0",
        "--ar=0",
        "--par",
        "--comm=x",
        "--wr=x",
        "-vH",
        "-va3",
        "--output=logs/%j.out",
        "--out=x",
        "-o",
        "-oout.txt",
        "--error=e.txt",
        "-e",
        "--open-mode=truncate",
        "--open=append",
        "--chdir=/scratch",
        "--ch=/x",
        "-D/scratch",
        "-vD",
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
    good = ["--partition=gpu", "-p", "gpu", "--account=chem", "-A", "chem", "--gres=gpu:2",
            "-Jname-with-a-and-H", "--input=in.txt", "--time=1", "--signal=B:USR1@120"]  # fmt: skip
    with pytest.raises(UsageError):  # a bare value is not an option
        slurm.check_sbatch_args(good, "x")
    ok = [g for g in good if g.startswith("-")]
    assert slurm.check_sbatch_args(ok, "x") == ok
