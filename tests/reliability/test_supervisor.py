"""`molexp run` with its long-lived supervisors (docs/reliability.md, "The command
dies with molexp"): one per job slot, none left behind, and each still takes its
command's whole process group down with molexp, for every attempt it serves."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from tests.conftest import run_molexp
from tests.reliability.conftest import make_experiment, pid_gone, proc_env, spawn, wait_for

PPID_OF = 'echo "$PPID" > "$OUT/$MOLEXP_REPLICA"; sleep "$NAP"'


@pytest.mark.parametrize(("jobs", "most"), [("1", 1), ("2", 2)])
def test_a_batch_starts_one_supervisor_per_job_slot_and_leaves_none(
    ws_root: Path, tmp_path: Path, jobs: str, most: int
) -> None:
    make_experiment(ws_root, replicas=5, command=PPID_OF)
    out = tmp_path / "ppids"
    out.mkdir()
    env = proc_env(OUT=str(out), NAP="0.2")
    res = run_molexp("run", "P/E", "--jobs", jobs, cwd=ws_root, env=env)
    assert res.returncode == 0, res.stderr
    parents = {int(p.read_text()) for p in out.iterdir()}
    assert len(list(out.iterdir())) == 5 and 1 <= len(parents) <= most
    assert all(pid_gone(p) for p in parents), "a supervisor outlived `molexp run`"


def test_nothing_the_command_leaves_running_outlives_the_attempt(
    ws_root: Path, tmp_path: Path
) -> None:
    child = tmp_path / "child"
    make_experiment(ws_root, command=f'sleep 300 & echo "$!" > {child}')
    started = time.monotonic()
    res = run_molexp("run", "P/E", cwd=ws_root)
    assert res.returncode == 0, res.stderr
    assert time.monotonic() - started < 9  # not waiting for the background pipe holder
    wait_for(lambda: pid_gone(int(child.read_text())), "the background child to end", timeout=10)


@pytest.mark.parametrize("whole_group", [False, True], ids=["molexp", "process-group"])
def test_kill9_during_a_later_run_takes_its_whole_group_down(
    ws_root: Path, tmp_path: Path, whole_group: bool
) -> None:
    """The supervisor has served an attempt already; it still guards the next."""
    pids = tmp_path / "pids"
    script = 'if [ "$MOLEXP_REPLICA" = 1 ]; then sleep 300 & echo "$$ $!" > "$PIDS"; wait; fi'
    make_experiment(ws_root, replicas=2, command=script)
    proc = spawn("run", "P/E", cwd=ws_root, new_session=True, env=proc_env(PIDS=str(pids)))
    command, child = (
        int(p) for p in wait_for(lambda: pids.exists() and pids.read_text().split(), "run 2")
    )
    if whole_group:
        os.killpg(proc.pid, signal.SIGKILL)
    else:
        os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)
    wait_for(lambda: pid_gone(command) and pid_gone(child), "the orphaned group to end", 30)
