"""Crashes (issue #4): `kill -9` of `molexp run` (alone or with its whole process
group), owners that are gone on this host or on another, and a writer killed in
a loop while readers read: never a torn record."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from molexp.api.workspace import Experiment
from molexp.core.records.runs import Run
from molexp.core.store import lock as locks
from molexp.errors import CorruptRecordError
from tests.conftest import molexp_exe, run_molexp
from tests.reliability.conftest import (
    make_experiment,
    pid_gone,
    proc_env,
    records_snapshot,
    spawn,
    wait_for,
)

# Sleeps (recording its pid) when $SLEEP is set, else succeeds at once.
SLEEPER = 'if [ -n "$SLEEP" ]; then echo "$$" > "$PIDFILE"; exec sleep 300; fi'


def _show(root: Path, ref: str) -> dict[str, Any]:
    res = run_molexp("show", ref, "--json", cwd=root)
    assert res.returncode == 0, res.stderr
    record: dict[str, Any] = json.loads(res.stdout)
    return record


@pytest.mark.parametrize("whole_group", [False, True], ids=["molexp", "process-group"])
def test_kill9_mid_run_reads_interrupted_then_attempt_2(
    ws_root: Path, tmp_path: Path, whole_group: bool
) -> None:
    make_experiment(ws_root, name="C", command=SLEEPER)
    pidfile = tmp_path / "command.pid"
    proc = spawn(
        "run", "P/C", cwd=ws_root, new_session=True, env=proc_env(SLEEP="1", PIDFILE=str(pidfile))
    )
    command_pid = int(
        wait_for(lambda: pidfile.exists() and pidfile.read_text().strip(), "the command to start")
    )
    if whole_group:
        os.killpg(proc.pid, signal.SIGKILL)  # molexp and everything in its group
    else:
        os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)
    # The supervisor's parent-death signal takes the command down with molexp.
    wait_for(lambda: pid_gone(command_pid), "the orphaned command to end", timeout=30)

    before = records_snapshot(ws_root)
    listed = run_molexp("ls", "P/C", "--format", "json", cwd=ws_root)
    assert listed.returncode == 0, listed.stderr
    (seen,) = json.loads(listed.stdout)
    assert seen["status"] == "interrupted" and seen["recorded_status"] == "running"
    shown = _show(ws_root, seen["id"])
    assert shown["status"] == "interrupted"
    assert "gone" in shown["status_reason"]
    assert records_snapshot(ws_root) == before, "ls/show must only report, never write"

    again = run_molexp("run", "P/C", "--json", cwd=ws_root)
    assert again.returncode == 0, again.stderr
    (line,) = [json.loads(x) for x in again.stdout.splitlines()]
    assert line["action"] == "executed" and line["attempt"] == 2
    final = _show(ws_root, seen["id"])
    assert [a["status"] for a in final["attempts"]] == ["interrupted", "succeeded"]
    assert "gone" in final["attempts"][0]["error"]
    assert not (Path(final["run_dir"]) / locks.LOCK_NAME).exists()


def _fake_running(exp: Experiment, owner: dict[str, Any], heartbeat: float | None = None) -> Run:
    """A run recorded `running` whose lock names ``owner`` (as if held elsewhere)."""
    run = exp.run_for(replica=0, cwd=exp.workspace.root)
    run.record["attempts"].append(
        {
            "n": 1,
            "status": "running",
            "started_at": run.record["created_at"],
            "host": owner["host"],
            "pid": owner["pid"],
            "executor": "local",
        }
    )
    run.record["status"] = "running"
    with locks.acquire(run.dir, root=run.experiment.workspace.root):
        run.save()
    lock = run.dir / locks.LOCK_NAME
    lock.write_text(json.dumps(owner))
    if heartbeat is not None:
        os.utime(lock, (heartbeat, heartbeat))
    return run


def _status(root: Path, env: dict[str, str] | None = None) -> str:
    res = run_molexp("ls", "P/E", "--format", "json", cwd=root, env=env)
    assert res.returncode == 0, res.stderr
    (record,) = json.loads(res.stdout)
    return str(record["status"])


def test_a_recycled_pid_is_not_mistaken_for_the_owner(ws_root: Path) -> None:
    exp = make_experiment(ws_root)
    me = locks.owner_info()  # a live pid on this host: the test itself
    assert me["pid_start"] is not None, "needs /proc (Linux)"
    run = _fake_running(exp, {**me, "pid_start": str(int(me["pid_start"]) + 1)})
    assert not locks.pid_alive(me["pid"], str(int(me["pid_start"]) + 1))
    assert _status(ws_root) == "interrupted"  # same pid, another process: gone
    (run.dir / locks.LOCK_NAME).write_text(json.dumps(me))
    assert _status(ws_root) == "running"  # the very process: alive
    held = run_molexp("run", "P/E", cwd=ws_root)
    assert held.returncode == 3
    assert f"held by pid {me['pid']} on {me['host']}" in held.stderr


def test_another_hosts_lock_is_stale_only_after_the_heartbeat_timeout(ws_root: Path) -> None:
    exp = make_experiment(ws_root)
    owner = {"host": "node-17.invalid", "pid": 4242, "pid_start": "1", "boot_id": "x"}
    run = _fake_running(exp, owner, heartbeat=time.time() - 1000)
    assert _status(ws_root) == "interrupted"  # default timeout: 120 s
    assert _status(ws_root, {"MOLEXP_HEARTBEAT_TIMEOUT": "5000"}) == "running"
    os.utime(run.dir / locks.LOCK_NAME)  # a fresh heartbeat
    assert _status(ws_root) == "running"
    held = run_molexp("run", "P/E", cwd=ws_root)
    assert held.returncode == 3 and "held by pid 4242 on node-17.invalid" in held.stderr
    os.utime(run.dir / locks.LOCK_NAME, (time.time() - 1000,) * 2)
    took_over = run_molexp("run", "P/E", "--", "true", cwd=ws_root)
    assert took_over.returncode == 0, took_over.stderr
    attempts = Run.load(exp, run.id).attempts
    assert [a["status"] for a in attempts] == ["interrupted", "succeeded"]


WRITER = """\
import sys
from pathlib import Path
from molexp.core.store import files as store
path, n = Path(sys.argv[1]), 0
while True:
    n += 1
    size = 1000 + (n * 7919) % 200000
    store.write_json(
        path, {"schema_version": 1, "n": n, "size": size, "pad": "x" * size}, root=path.parent
    )
    if n == 1:
        print("ready", flush=True)
"""


def test_killing_a_writer_in_a_loop_never_leaves_a_torn_record(tmp_path: Path) -> None:
    """`kill -9` a process rewriting a record, over and over, while readers read."""
    kills = 30
    path = tmp_path / "run.json"
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    stop = threading.Event()
    reads = torn = 0
    problems: list[str] = []

    def reader() -> None:
        nonlocal reads, torn
        from molexp.core.store.files import read_json_record

        while not stop.is_set():
            try:
                record = read_json_record(path, "run")
            except FileNotFoundError:
                continue
            except CorruptRecordError as exc:
                torn += 1
                problems.append(str(exc)[:200])
                continue
            reads += 1
            if len(record["pad"]) != record["size"]:
                torn += 1
                problems.append(f"record {record['n']}: pad of {len(record['pad'])}")

    threads = [threading.Thread(target=reader) for _ in range(2)]
    for t in threads:
        t.start()
    rng = random.Random(4)
    try:
        for _ in range(kills):
            writer = subprocess.Popen(
                [sys.executable, str(script), str(path)],
                stdout=subprocess.PIPE,
                text=True,
                env=proc_env(),
            )
            assert writer.stdout is not None
            assert writer.stdout.readline().strip() == "ready"
            time.sleep(rng.uniform(0, 0.05))
            writer.kill()
            writer.communicate()
    finally:
        stop.set()
        for t in threads:
            t.join()
    print(f"\nkill loop: {kills} writers killed, {reads} reads, {torn} torn records")
    assert torn == 0, problems[:5]
    assert reads > 0
    final = json.loads(path.read_bytes())  # what survived the last kill is whole
    assert len(final["pad"]) == final["size"]


# --- fencing: an owner judged gone that wakes up writes nothing (issue #12) ------

WAITER = 'echo "$$" > "$PIDFILE"; while [ ! -e "$GO" ]; do sleep 0.05; done; echo done'


@pytest.mark.skipif(
    os.geteuid() != 0 or not Path("/usr/bin/unshare").exists(),
    reason="needs root and unshare(1) to play a second host (a UTS namespace)",
)
def test_a_paused_owner_judged_gone_by_another_host_never_overwrites_its_attempt(
    ws_root: Path, tmp_path: Path
) -> None:
    """A paused VM: host A's molexp stops (SIGSTOP) long enough for its heartbeat
    to go stale; host B breaks the lock and runs attempt 2; A wakes up, its
    command finishes, and A must not save its attempt over B's record."""
    make_experiment(ws_root, name="F", command=WAITER)
    pidfile, go = tmp_path / "command.pid", tmp_path / "go"
    env = proc_env(MOLEXP_HEARTBEAT_TIMEOUT="1", PIDFILE=str(pidfile), GO=str(go))
    a = spawn("run", "P/F", cwd=ws_root, env=env)
    wait_for(lambda: pidfile.exists() and pidfile.read_text().strip(), "A's command to start")
    os.kill(a.pid, signal.SIGSTOP)
    try:
        (run_dir,) = (ws_root / "projects/P/experiments/F/runs").iterdir()
        lock = run_dir / locks.LOCK_NAME
        wait_for(lambda: time.time() - lock.stat().st_mtime > 1.5, "A's heartbeat to go stale")
        b = subprocess.run(
            ["unshare", "--uts", "sh", "-c", 'hostname node-b && exec "$@"', "sh",
             *molexp_exe(), "run", "P/F", "--json", "--", "true"],
            cwd=ws_root, env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert b.returncode == 0, b.stderr
        assert json.loads(b.stdout)["attempt"] == 2
        after_b = (run_dir / "run.json").read_bytes()
        record = json.loads(after_b)
        assert [x["status"] for x in record["attempts"]] == ["interrupted", "succeeded"]
        assert record["attempts"][1]["host"] == "node-b"
    finally:
        go.touch()
        os.kill(a.pid, signal.SIGCONT)
    _, err = a.communicate(timeout=60)
    assert a.returncode == 3, err
    assert "lost the run's lock" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) <= 3, err
    assert (run_dir / "run.json").read_bytes() == after_b, "A overwrote B's attempt"
    assert not lock.exists()
