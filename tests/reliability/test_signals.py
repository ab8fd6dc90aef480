"""Signals (issue #4): SIGINT/SIGTERM reach the command's process group, the
attempt is recorded `cancelled`, molexp exits 130/143, and repeated Ctrl-C never
leaves a record `running`."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from molexp.core.store.lock import LOCK_NAME
from tests.conftest import run_molexp
from tests.reliability.conftest import make_experiment, pid_gone, proc_env, spawn, wait_for

# Records which signal reached it, in the background too (its child `sleep`
# shares the process group and gets the signal as well).
TRAPPING = (
    "trap 'echo INT >> \"$SIGFILE\"; exit 130' INT; "
    "trap 'echo TERM >> \"$SIGFILE\"; exit 143' TERM; "
    'echo "$$" > "$PIDFILE"; '
    'sleep 300 & echo "$!" > "$PIDFILE.child"; wait'
)
# Notes a signal and carries on; dies only to SIGKILL or SIGTERM.
STUBBORN_INT = (
    'trap \'echo INT >> "$SIGFILE"\' INT; echo "$$" > "$PIDFILE"; while :; do sleep 0.05; done'
)
# Ignores SIGINT and SIGTERM: only the third Ctrl-C (SIGKILL) ends it.
DEAF = 'trap "" INT TERM; echo "$$" > "$PIDFILE"; while :; do sleep 0.05; done'


def _files(tmp_path: Path) -> tuple[dict[str, str], Path, Path]:
    pidfile, sigfile = tmp_path / "cmd.pid", tmp_path / "signals"
    return proc_env(PIDFILE=str(pidfile), SIGFILE=str(sigfile)), pidfile, sigfile


def _record(root: Path, ref: str) -> dict[str, Any]:
    res = run_molexp("ls", ref, "--format", "json", cwd=root)
    assert res.returncode == 0, res.stderr
    (record,) = json.loads(res.stdout)
    assert isinstance(record, dict)
    return record


def _started(pidfile: Path) -> int:
    return int(
        wait_for(lambda: pidfile.exists() and pidfile.read_text().strip(), "the command to start")
    )


def _signal_until_exit(proc: subprocess.Popen[str], sig: int, timeout: float = 60) -> str:
    """Send ``sig`` every 0.3 s until ``proc`` exits (as a user pressing Ctrl-C)."""
    deadline = time.monotonic() + timeout
    while proc.poll() is None:
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("molexp did not exit after repeated signals")
        proc.send_signal(sig)
        try:
            proc.wait(timeout=0.3)
        except subprocess.TimeoutExpired:
            pass
    _, err = proc.communicate()
    return err


@pytest.mark.parametrize(
    ("sig", "code", "name"),
    [(signal.SIGINT, 130, "INT"), (signal.SIGTERM, 143, "TERM")],
)
def test_signal_is_forwarded_recorded_cancelled_and_exit_code(
    ws_root: Path, tmp_path: Path, sig: int, code: int, name: str
) -> None:
    make_experiment(ws_root, name="S", command=TRAPPING)
    env, pidfile, sigfile = _files(tmp_path)
    proc = spawn("run", "P/S", cwd=ws_root, env=env)
    _started(pidfile)
    child = int(
        wait_for(
            lambda: (
                Path(f"{pidfile}.child").exists() and Path(f"{pidfile}.child").read_text().strip()
            ),
            "the child",
        )
    )
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    assert "Traceback" not in err
    assert sigfile.read_text().split() == [name]  # the command got it, once
    wait_for(lambda: pid_gone(child), "the command's background child to end")
    record = _record(ws_root, "P/S")
    assert record["status"] == "cancelled"
    (attempt,) = record["attempts"]
    assert attempt["status"] == "cancelled" and f"signal {int(sig)}" in attempt["error"]
    assert not list(ws_root.rglob(LOCK_NAME))


def test_second_ctrl_c_ends_a_command_that_ignores_the_first(ws_root: Path, tmp_path: Path) -> None:
    make_experiment(ws_root, name="S", command=STUBBORN_INT)
    env, pidfile, sigfile = _files(tmp_path)
    proc = spawn("run", "P/S", cwd=ws_root, env=env)
    _started(pidfile)
    proc.send_signal(signal.SIGINT)
    wait_for(
        lambda: sigfile.exists() and "INT" in sigfile.read_text(),
        "the command to see the first Ctrl-C",
    )
    err = _signal_until_exit(proc, signal.SIGINT)  # the second one insists (SIGTERM)
    assert proc.returncode == 130, err
    record = _record(ws_root, "P/S")
    assert record["status"] == "cancelled"
    assert record["attempts"][-1]["status"] == "cancelled"


def test_repeated_ctrl_c_kills_a_deaf_command_and_never_leaves_running(
    ws_root: Path, tmp_path: Path
) -> None:
    make_experiment(ws_root, name="S", command=DEAF)
    env, pidfile, _ = _files(tmp_path)
    proc = spawn("run", "P/S", cwd=ws_root, env=env)
    command = _started(pidfile)
    err = _signal_until_exit(proc, signal.SIGINT)  # third Ctrl-C: SIGKILL
    assert proc.returncode == 130, err
    assert pid_gone(command)
    record = _record(ws_root, "P/S")
    assert record["status"] == "cancelled"
    assert "recorded_status" not in record  # the record itself says so, not just `ls`


def test_ctrl_c_while_waiting_for_a_held_run_exits_130(ws_root: Path, tmp_path: Path) -> None:
    make_experiment(ws_root, name="S", command=STUBBORN_INT)
    env, pidfile, _ = _files(tmp_path)
    holder = spawn("run", "P/S", cwd=ws_root, env=env)
    _started(pidfile)
    waiter = spawn("run", "P/S", "--wait", cwd=ws_root, env=env)
    time.sleep(1.0)  # let it reach its wait loop (the test passes either way)
    err = _signal_until_exit(waiter, signal.SIGINT, timeout=30)
    assert waiter.returncode == 130, err
    assert holder.poll() is None, "the holder must not be disturbed"
    assert _record(ws_root, "P/S")["status"] == "running"
    holder.send_signal(signal.SIGTERM)  # forwarded: the stubborn command dies of it
    _, err = holder.communicate(timeout=60)
    assert holder.returncode == 143, err
    record = _record(ws_root, "P/S")
    assert [a["status"] for a in record["attempts"]] == ["cancelled"]


def test_ctrl_c_with_jobs_cancels_every_running_command_and_starts_no_more(
    ws_root: Path, tmp_path: Path
) -> None:
    make_experiment(
        ws_root,
        name="J",
        replicas=4,
        command='echo "$$" >> "$PIDFILE"; exec sleep 300',
    )
    pidfile = tmp_path / "pids"
    proc = spawn("run", "P/J", "--jobs", "2", cwd=ws_root, env=proc_env(PIDFILE=str(pidfile)))
    wait_for(
        lambda: pidfile.exists() and len(pidfile.read_text().split()) == 2, "two commands to start"
    )
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert len(pidfile.read_text().split()) == 2, "no run may start after Ctrl-C"
    res = run_molexp("ls", "P/J", "--format", "json", cwd=ws_root)
    statuses = sorted(r["status"] for r in json.loads(res.stdout))
    assert statuses.count("cancelled") == 2
    assert "running" not in statuses
