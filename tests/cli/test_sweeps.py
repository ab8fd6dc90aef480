"""Sweeps: `--grid`, `--grid-file`, `--jobs`, `--fail-fast`, Ctrl-C and resuming."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Cli, molexp_exe, snapshot

SCRIPT = """\
import json, os
params = json.load(open(os.environ["MOLEXP_PARAMS_FILE"]))
print("hello from", os.environ["MOLEXP_RUN_ID"])
loss = params["lr"] * 10 + len(params["layers"])
json.dump({"loss": loss}, open(os.environ["MOLEXP_RESULTS_FILE"], "w"))
"""

GRID = ["--grid", "lr=1e-3,1e-2", "--grid", "layers=[[64],[64,64],[128]]"]


def lines(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


@pytest.fixture
def exp(workspace: Path, cli: Cli) -> Path:
    (workspace / "train.py").write_text(SCRIPT)
    assert cli("project create qm9").exit_code == 0
    r = cli("experiment", "create", "qm9/sweep", "--param", "lr=0.1", "--param", "layers=[32]",
            "--param", "depth=2", "--replicas", "2", "--command", "python train.py")  # fmt: skip
    assert r.exit_code == 0, r.output
    return workspace


def test_grid_2x3_with_2_replicas_is_12_runs_once(exp: Path, cli: Cli) -> None:
    first = cli("run", "qm9/sweep", *GRID, "--jobs", "4", "--json")
    assert first.exit_code == 0, first.output
    out = lines(first.stdout)
    assert len(out) == 12 and len({o["id"] for o in out}) == 12
    assert {o["action"] for o in out} == {"executed"}
    assert {o["status"] for o in out} == {"succeeded"}
    points = {(o["params"]["lr"], tuple(o["params"]["layers"]), o["replica"]) for o in out}
    assert points == {
        (lr, layers, r)
        for lr in (0.001, 0.01)
        for layers in ((64,), (64, 64), (128,))
        for r in (0, 1)
    }
    assert all(o["params"]["depth"] == 2 for o in out)
    # several at once: command output goes to the logs only, progress to stderr
    assert "hello from" not in first.output
    assert "[12/12]" in first.stderr and "12 runs of qm9/sweep: 12 succeeded" in first.stderr
    log = Path(out[0]["run_dir"]) / "attempts/1/stdout.log"
    assert log.read_text() == f"hello from {out[0]['id']}\n"

    again = cli("run", "qm9/sweep", *GRID, "--jobs", "4", "--json")
    assert again.exit_code == 0
    assert [o["action"] for o in lines(again.stdout)] == ["skipped"] * 12
    assert "12 up to date" in again.stderr
    assert {o["id"] for o in lines(again.stdout)} == {o["id"] for o in out}


def test_grid_order_is_stable_and_same_as_repeated_options(exp: Path, cli: Cli) -> None:
    a = lines(cli("run", "qm9/sweep", *GRID, "--dry-run", "--json").stdout)
    b = lines(
        cli(
            "run qm9/sweep --grid lr=1e-3,0.01 --grid layers=[64],[64,64],[128] --dry-run --json"
        ).stdout
    )
    assert [o["id"] for o in a] == [o["id"] for o in b]
    assert [(o["params"]["lr"], o["params"]["layers"], o["replica"]) for o in a][:3] == [
        (0.001, [64], 0), (0.001, [64], 1), (0.001, [64, 64], 0)
    ]  # fmt: skip


def test_one_list_valued_point(exp: Path, cli: Cli) -> None:
    r = cli("run", "qm9/sweep", "-r", "0", "--grid", "layers=[[64,64]]", "--dry-run", "--json")
    assert [o["params"]["layers"] for o in lines(r.stdout)] == [[64, 64]]
    p = cli("run", "qm9/sweep", "-r", "0", "--param", "layers=[64,64]", "--dry-run", "--json")
    assert lines(p.stdout)[0]["id"] == lines(r.stdout)[0]["id"]


def test_empty_grid_list_is_refused(exp: Path, cli: Cli) -> None:
    r = cli("run", "qm9/sweep", "--grid", "lr=[]")
    assert r.exit_code == 2
    assert "empty" in r.stderr and len(r.stderr.strip().splitlines()) <= 2


def test_dry_run_shows_the_whole_plan(exp: Path, cli: Cli) -> None:
    assert cli("run", "qm9/sweep", "--grid", "lr=1e-3", "--grid", "layers=[[64]]").exit_code == 0
    before = snapshot(exp)
    r = cli("run", "qm9/sweep", *GRID, "--dry-run")
    assert r.exit_code == 0
    assert snapshot(exp) == before
    rows = r.stdout.strip().splitlines()[1:]
    assert len(rows) == 12
    assert sum("skip (up to date)" in row for row in rows) == 2
    assert sum("execute (new run)" in row for row in rows) == 10
    assert "12 runs planned: 10 would execute, 2 up to date" in r.stderr


def test_grid_file_mapping(exp: Path, cli: Cli) -> None:
    (exp / "sweep.yaml").write_text("lr: [1.0e-3, 1.0e-2]\nlayers: [[64], [64, 64], [128]]\n")
    from_file = lines(cli("run qm9/sweep --grid-file sweep.yaml --dry-run --json").stdout)
    from_args = lines(cli("run", "qm9/sweep", *GRID, "--dry-run", "--json").stdout)
    assert [o["id"] for o in from_file] == [o["id"] for o in from_args]
    # a grid file and --grid combine into one product
    (exp / "lr.yaml").write_text("lr: [1.0e-3, 1.0e-2]\n")
    both = cli("run", "qm9/sweep", "--grid-file", "lr.yaml", "--grid", "layers=[64],[64,64],[128]",
               "--dry-run", "--json")  # fmt: skip
    assert sorted(o["id"] for o in lines(both.stdout)) == sorted(o["id"] for o in from_args)


def test_grid_file_points(exp: Path, cli: Cli) -> None:
    (exp / "points.yaml").write_text(
        "- {lr: 0.001, layers: [64]}\n- {lr: 0.01, layers: [64, 64]}\n- {model.depth: 3}\n"
    )
    r = cli("run qm9/sweep -r 0 --grid-file points.yaml --grid depth=1,2 --dry-run --json")
    assert r.exit_code == 2 and "'model.depth' is not a param of qm9/sweep" in r.stderr
    assert "Did you mean 'depth'?" in r.stderr and "--new-param" in r.stderr
    r = cli("run qm9/sweep -r 0 --grid-file points.yaml --grid depth=1,2 --dry-run --json "
            "--new-param")  # fmt: skip
    assert r.exit_code == 0, r.output
    got = [o["params"] for o in lines(r.stdout)]
    assert len(got) == 6
    assert got[0] == {"lr": 0.001, "layers": [64], "depth": 1}
    assert got[3] == {"lr": 0.01, "layers": [64, 64], "depth": 2}
    assert got[4] == {"lr": 0.1, "layers": [32], "depth": 1, "model": {"depth": 3}}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("lr: [1, 2\n", "malformed YAML"),
        ("[1, 2]\n", "a sweep file is a mapping"),
        ("lr: []\n", "empty list of values"),
        ("'a..b': [1]\n", "not a parameter name"),
        ("", "a sweep file is a mapping"),
    ],
)
def test_bad_grid_files(exp: Path, cli: Cli, text: str, message: str) -> None:
    (exp / "bad.yaml").write_text(text)
    before = snapshot(exp)
    r = cli("run qm9/sweep --grid-file bad.yaml")
    assert r.exit_code == 2, r.output
    assert message in r.stderr and "bad.yaml" in r.stderr
    assert len(r.stderr.strip().splitlines()) <= 2
    assert snapshot(exp) == before


def test_missing_grid_file(exp: Path, cli: Cli) -> None:
    r = cli("run qm9/sweep --grid-file nope.yaml")
    assert r.exit_code == 2 and "nope.yaml: no such file" in r.stderr


def test_point_and_grid_on_the_same_key_is_refused(exp: Path, cli: Cli) -> None:
    (exp / "points.yaml").write_text("- {lr: 0.001}\n")
    r = cli("run qm9/sweep --grid-file points.yaml --grid lr=1,2 --dry-run")
    assert r.exit_code == 2 and "'lr'" in r.stderr


def test_grid_key_twice_is_refused(exp: Path, cli: Cli) -> None:
    r = cli("run qm9/sweep --grid lr=1,2 --grid lr=3 --dry-run")
    assert r.exit_code == 2 and "twice: lr" in r.stderr


# --- --jobs -------------------------------------------------------------------------

GATE = """\
import os, sys, time
gate = sys.argv[1]
n = os.environ["MOLEXP_RUN_ID"]
open(os.path.join(gate, "active-" + n), "w").close()
active = len([f for f in os.listdir(gate) if f.startswith("active-")])
open(os.path.join(gate, "seen-" + n), "w").write(str(active))
want = int(sys.argv[2])
deadline = time.monotonic() + 60
while len([f for f in os.listdir(gate) if f.startswith("seen-")]) < want:
    if time.monotonic() > deadline:
        sys.exit(9)
    time.sleep(0.02)
time.sleep(0.05)
os.unlink(os.path.join(gate, "active-" + n))
"""


def test_jobs_n_runs_n_at_once_and_never_more(exp: Path, cli: Cli) -> None:
    (exp / "gate.py").write_text(GATE)
    gate = exp / "gate"
    gate.mkdir()
    # each run waits until 4 runs have started: this only finishes if 4 run at once
    r = cli("run", "qm9/sweep", "-r", "0", "--grid", "lr=1,2,3,4", "--jobs", "4", "--json",
            "--", "python", str(exp / "gate.py"), str(gate), "4")  # fmt: skip
    assert r.exit_code == 0, r.output
    assert [o["status"] for o in lines(r.stdout)] == ["succeeded"] * 4
    # with --jobs 2, a run never sees more than 2 active
    for f in gate.iterdir():
        f.unlink()
    r = cli("run", "qm9/sweep", "-r", "1", "--grid", "lr=1,2,3,4,5,6", "--jobs", "2", "--json",
            "--", "python", str(exp / "gate.py"), str(gate), "1")  # fmt: skip
    assert r.exit_code == 0, r.output
    seen = [int(f.read_text()) for f in gate.glob("seen-*")]
    assert len(seen) == 6 and max(seen) <= 2


def test_live_progress_on_a_terminal(exp: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    from molexp.cli import output

    monkeypatch.setattr(output, "is_tty", lambda stream=None: True)
    r = cli("run", "qm9/sweep", "-r", "0", "--grid", "lr=1,2,3", "--jobs", "2", "--json")
    assert r.exit_code == 0, r.output
    assert len(lines(r.stdout)) == 3  # held until the display ended, then printed
    assert "3/3" in r.stderr and "0 failed" in r.stderr
    assert "hello from" not in r.output


def test_one_job_streams_the_output(exp: Path, cli: Cli) -> None:
    r = cli("run qm9/sweep -r 0 --grid lr=1,2")
    assert r.exit_code == 0
    assert r.stdout.count("hello from") == 2


# --- failures ----------------------------------------------------------------------


def test_keep_going_is_the_default_and_exit_code_says_a_run_failed(exp: Path, cli: Cli) -> None:
    r = cli("run", "qm9/sweep", "-r", "0", "--grid", "lr=1,2,3,4", "--json", "--",
            "sh", "-c", "test {lr} != 2")  # fmt: skip
    assert r.exit_code == 1
    assert [o["status"] for o in lines(r.stdout)] == [
        "succeeded",
        "failed",
        "succeeded",
        "succeeded",
    ]
    assert "3 succeeded, 1 failed" in r.stderr or "1 failed, 3 succeeded" in r.stderr


FAIL_FIRST = """\
import glob, json, os, sys, time
if sys.argv[1] == "1":
    sys.exit(1)
# the others end only after run lr=1 is recorded failed (and a little more)
runs = os.path.dirname(os.environ["MOLEXP_RUN_DIR"])
while not any(
    r["params"]["lr"] == 1 and r["status"] == "failed"
    for r in (json.load(open(p)) for p in glob.glob(os.path.join(runs, "*", "run.json")))
):
    time.sleep(0.02)
time.sleep(0.5)
"""


@pytest.mark.parametrize("jobs", ["1", "3"])
def test_fail_fast_starts_nothing_after_a_failure(exp: Path, cli: Cli, jobs: str) -> None:
    # run lr=1 fails; with --jobs 1 nothing else starts, with --jobs 3 lr=2 and lr=3
    # are already running (they finish), nothing after them starts
    (exp / "fail_first.py").write_text(FAIL_FIRST)
    r = cli("run", "qm9/sweep", "-r", "0", "--grid", "lr=1,2,3,4,5,6,7,8", "--fail-fast",
            "--jobs", jobs, "--json", "--", "python", "fail_first.py", "{lr}")  # fmt: skip
    assert r.exit_code == 1
    out = lines(r.stdout)
    assert out[0]["status"] == "failed"
    assert len(out) <= int(jobs)
    assert f"{8 - len(out)} not started" in r.stderr
    assert "--fail-fast" in r.stderr
    # the rest is not lost: a plain rerun picks it up
    r = cli("run", "qm9/sweep", "-r", "0", "--grid", "lr=1,2,3,4,5,6,7,8", "--json", "--",
            "true")  # fmt: skip
    assert r.exit_code == 0
    assert sum(o["action"] == "executed" for o in lines(r.stdout)) == 8 - len(out) + 1


# --- Ctrl-C and resuming (real processes) ------------------------------------------

SLEEPY = (
    'if [ {n} -ge "${SLOW_FROM:-99}" ]; then echo $$ > "$MOLEXP_RUN_DIR/artifacts/pid"; '
    "exec sleep 60; fi"
)


def _records(exp_dir: Path) -> dict[int, dict[str, Any]]:
    out = {}
    for path in exp_dir.glob("runs/*/run.json"):
        rec = json.loads(path.read_text())
        out[rec["params"]["n"]] = rec
    return out


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_ctrl_c_cancels_every_running_run_and_a_rerun_resumes(workspace: Path, cli: Cli) -> None:
    assert cli("project create p").exit_code == 0
    r = cli("experiment", "create", "p/sleepy", "--param", "n=0", "--command", SLEEPY)
    assert r.exit_code == 0, r.output
    exp_dir = workspace / "projects/p/experiments/sleepy"
    env = dict(os.environ, SLOW_FROM="3")
    proc = subprocess.Popen(
        [*molexp_exe(), "run", "p/sleepy", "--grid", "n=1,2,3,4,5,6,7,8", "--jobs", "4", "--json"],
        cwd=workspace, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        # n=1,2 finish at once; then 3..6 hold all 4 slots (7, 8 wait for a slot)
        deadline = time.monotonic() + 60
        while len(list(exp_dir.glob("runs/*/artifacts/pid"))) < 4:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the sleeps never started"
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stderr
    recs = _records(exp_dir)
    assert {n: r["status"] for n, r in recs.items()} == {
        1: "succeeded", 2: "succeeded", 3: "cancelled", 4: "cancelled", 5: "cancelled",
        6: "cancelled",
    }  # fmt: skip
    assert {o["status"] for o in lines(stdout)} == {"succeeded", "cancelled"}
    assert "2 not started" in stderr
    assert not list(exp_dir.glob("runs/*/.lock"))
    pids = [int(p.read_text()) for p in exp_dir.glob("runs/*/artifacts/pid")]
    deadline = time.monotonic() + 10  # the supervisor ends its group; allow it a moment
    while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(_alive(pid) for pid in pids)

    # re-running executes only what has not succeeded
    again = subprocess.run(
        [*molexp_exe(), "run", "p/sleepy", "--grid", "n=1,2,3,4,5,6,7,8", "--jobs", "4", "--json"],
        cwd=workspace, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert again.returncode == 0, again.stderr
    by_n = {o["params"]["n"]: o for o in lines(again.stdout)}
    assert {n for n, o in by_n.items() if o["action"] == "skipped"} == {1, 2}
    assert {n for n, o in by_n.items() if o["action"] == "executed"} == {3, 4, 5, 6, 7, 8}
    assert all(by_n[n]["attempt"] == 2 for n in (3, 4, 5, 6))
    assert {r["status"] for r in _records(exp_dir).values()} == {"succeeded"}
