"""Concurrency (issue #4): `make -j16`, processes racing for one run, and
concurrent contributions to one run record never lose anything."""

from __future__ import annotations

import json
import subprocess
import textwrap
from pathlib import Path
from typing import Any

import pytest

from molexp.core.store.files import leftover_temp_files
from molexp.core.store.lock import LOCK_NAME
from tests.conftest import run_molexp
from tests.reliability.conftest import make_experiment, proc_env, spawn, wait_for

REPLICAS = 256
RACERS = 6


def _runs(root: Path, ref: str = "P/E") -> list[dict[str, Any]]:
    res = run_molexp("ls", ref, "--format", "json", cwd=root)
    assert res.returncode == 0, res.stderr
    records: list[dict[str, Any]] = json.loads(res.stdout)
    return records


@pytest.mark.slow
def test_make_j16_records_every_replica_exactly_once(ws_root: Path) -> None:
    make_experiment(ws_root, replicas=REPLICAS, command="true")
    targets = " ".join(f"r{i}" for i in range(REPLICAS))
    (ws_root.parent / "Makefile").write_text(
        textwrap.dedent(f"""\
        all: {targets}
        r%:
        \t@molexp -w {ws_root} run P/E --replica $* >/dev/null 2>>molexp.err
        .PHONY: all
        """)
    )
    made = subprocess.run(
        ["make", "-j16", "-C", str(ws_root.parent), "all"],
        env=proc_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert made.returncode == 0, made.stderr + (ws_root.parent / "molexp.err").read_text()

    records = _runs(ws_root)
    recorded = sorted(int(r["replica"]) for r in records)
    print(f"\nmake -j16: {len(records)} runs recorded of {REPLICAS} launched")
    assert recorded == list(range(REPLICAS))
    for record in records:
        attempts = record["attempts"]
        assert len(attempts) == 1, record["id"]
        assert record["status"] == "succeeded" and attempts[0]["status"] == "succeeded"
    assert leftover_temp_files(ws_root) == []
    assert list(ws_root.rglob(LOCK_NAME)) == []
    assert list(ws_root.rglob(LOCK_NAME + ".break")) == []


RACE_COMMAND = 'echo "$$" >> "$COUNTER"; while [ ! -e "$RELEASE" ]; do sleep 0.02; done'


def _race_env(tmp_path: Path) -> tuple[dict[str, str], Path, Path]:
    counter, release = tmp_path / "executions", tmp_path / "release"
    return proc_env(COUNTER=str(counter), RELEASE=str(release)), counter, release


def _executions(counter: Path) -> int:
    return len(counter.read_text().splitlines()) if counter.exists() else 0


def test_six_racers_execute_once_and_the_others_name_the_holder(
    ws_root: Path, tmp_path: Path
) -> None:
    make_experiment(ws_root, name="Race", command=RACE_COMMAND)
    env, counter, release = _race_env(tmp_path)
    procs = [spawn("run", "P/Race", cwd=ws_root, env=env) for _ in range(RACERS)]
    # The winner blocks until `release` exists, so every other racer meets its lock.
    wait_for(
        lambda: sum(p.poll() is not None for p in procs) == RACERS - 1,
        f"{RACERS - 1} racers to give up",
    )
    losers = [p for p in procs if p.poll() is not None]
    (winner,) = [p for p in procs if p.poll() is None]
    for p in losers:
        _, err = p.communicate()
        assert p.returncode == 3, err
        assert f"held by pid {winner.pid} on " in err, err
        assert "Traceback" not in err
    release.touch()
    _, err = winner.communicate(timeout=60)
    assert winner.returncode == 0, err
    assert _executions(counter) == 1
    (record,) = _runs(ws_root, "P/Race")
    assert [a["status"] for a in record["attempts"]] == ["succeeded"]


def test_six_racers_with_wait_execute_once_and_all_succeed(ws_root: Path, tmp_path: Path) -> None:
    make_experiment(ws_root, name="Race", command=RACE_COMMAND)
    env, counter, release = _race_env(tmp_path)
    procs = [spawn("run", "P/Race", "--wait", cwd=ws_root, env=env) for _ in range(RACERS)]
    wait_for(lambda: _executions(counter) >= 1, "the winner to start its command")
    release.touch()
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    assert _executions(counter) == 1
    (record,) = _runs(ws_root, "P/Race")
    assert len(record["attempts"]) == 1


def test_unsynchronised_races_never_execute_twice(ws_root: Path, tmp_path: Path) -> None:
    """Racers started together on a quick command: each run executes exactly once."""
    rounds = 4
    make_experiment(
        ws_root, name="Quick", replicas=rounds, command='echo "$MOLEXP_REPLICA" >> "$COUNTER"'
    )
    counter = tmp_path / "executions"
    env = proc_env(COUNTER=str(counter))
    procs = [
        spawn("run", "P/Quick", "--replica", str(r), cwd=ws_root, env=env)
        for r in range(rounds)
        for _ in range(RACERS)
    ]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode in (0, 3), err  # executed / up to date, or held
    per_replica = [counter.read_text().split().count(str(r)) for r in range(rounds)]
    doubles = sum(n - 1 for n in per_replica if n > 1)
    print(f"\nsame-run races: {rounds * RACERS} racers, {doubles} double executions")
    assert per_replica == [1] * rounds
    for record in _runs(ws_root, "P/Quick"):
        assert len(record["attempts"]) == 1


def test_forced_waiters_each_add_one_attempt(ws_root: Path, tmp_path: Path) -> None:
    """Concurrent writers of one run.json (status, attempts) queue on its lock:
    N forced runs give exactly N attempts, numbered 1..N, none lost."""
    n = 4
    make_experiment(ws_root, name="Forced", command='echo "$MOLEXP_ATTEMPT" >> "$COUNTER"')
    counter = tmp_path / "executions"
    env = proc_env(COUNTER=str(counter))
    procs = [spawn("run", "P/Forced", "--force", "--wait", cwd=ws_root, env=env) for _ in range(n)]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    (record,) = _runs(ws_root, "P/Forced")
    attempts = record["attempts"]
    assert [a["n"] for a in attempts] == list(range(1, n + 1))
    assert all(a["status"] == "succeeded" for a in attempts)
    assert sorted(counter.read_text().split()) == [str(i) for i in range(1, n + 1)]


WRITER = """\
import subprocess, sys
from types import SimpleNamespace as NS
children, per_child = int(sys.argv[1]), int(sys.argv[2])
if len(sys.argv) == 3:
    procs = [subprocess.Popen([sys.executable, __file__, str(children), str(per_child), str(i)])
             for i in range(children)]
    sys.exit(max(p.wait() for p in procs))
import molexp as mx
from molexp.core.assets.lineage import record_lookup  # what `assets path`/find_asset append with
ctx = mx.current_run()
me = sys.argv[3]
for j in range(per_child):
    ctx.set_result(f"child{me}_{j}", j)
    asset = NS(name=f"asset-{me}-{j}", scope=NS(text="."), content_hash="xxh3_128:0", path="/x")
    record_lookup(ctx, asset)
"""


def test_concurrent_results_and_inputs_from_one_run_are_all_kept(
    ws_root: Path, tmp_path: Path
) -> None:
    children, per_child = 6, 40
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    make_experiment(ws_root, name="Many", command=None)
    res = run_molexp(
        "run",
        "P/Many",
        "--",
        "python",
        str(script),
        str(children),
        str(per_child),
        cwd=ws_root,
        env=proc_env(),
    )
    assert res.returncode == 0, res.stderr
    (record,) = _runs(ws_root, "P/Many")
    results, inputs = record["results"], record["inputs"]
    expected = {f"child{i}_{j}" for i in range(children) for j in range(per_child)}
    assert set(results) == expected
    assert {i["name"] for i in inputs} == {
        f"asset-{i}-{j}" for i in range(children) for j in range(per_child)
    }
    assert leftover_temp_files(ws_root) == []
