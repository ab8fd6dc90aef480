"""`molexp logs`, the failure shown by `show` and `run`, and why `run --dry-run`
would (not) execute each run (SPEC §16)."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from molexp.core.views import logs as view
from tests.conftest import Cli, snapshot
from tests.reliability.conftest import proc_env, spawn, wait_for

NOISY = "echo out1; echo out2; for i in $(seq 1 15); do echo err$i >&2; done; exit {code}"


@pytest.fixture
def failing(workspace: Path, cli: Cli) -> str:
    assert cli("project create p").exit_code == 0
    r = cli("experiment", "create", "p/f", "-p", "code=3", "--command", NOISY)
    assert r.exit_code == 0, r.output
    assert cli("run p/f").exit_code == 1
    (ref,) = cli("ls p/f --format ids").stdout.split()
    return ref


def test_logs_prints_both_streams_or_one_and_a_tail(failing: str, cli: Cli) -> None:
    r = cli("logs", failing)
    assert r.exit_code == 0
    lines = r.stdout.splitlines()
    assert lines[:4] == ["==> stdout <==", "out1", "out2", "==> stderr <=="]
    assert lines[4:] == [f"err{i}" for i in range(1, 16)]
    assert cli("logs", failing, "--stdout").stdout == "out1\nout2\n"
    assert cli("logs", failing, "--stderr", "--tail", "2").stdout == "err14\nerr15\n"
    assert cli("logs", failing, "--stderr", "-n", "0").stdout == ""
    assert cli("logs", failing, "--stdout", "--stderr", "-n", "1").stdout.splitlines() == [
        "==> stdout <==", "out2", "==> stderr <==", "err15",
    ]  # fmt: skip


def test_logs_of_an_older_attempt_and_bad_requests(failing: str, cli: Cli) -> None:
    assert cli("run p/f -p code=4").exit_code == 1  # another run (another param)
    assert cli("run p/f").exit_code == 1  # attempt 2 of the first
    shown = json.loads(cli("logs", failing, "--json", "--tail", "1").stdout)
    assert shown["attempt"] == 2 and shown["stdout"] == "out2\n" and shown["stderr"] == "err15\n"
    assert cli("logs", failing, "--json", "--follow").exit_code == 2
    assert cli("logs", failing, "--attempt", "1", "--stdout").stdout == "out1\nout2\n"
    r = cli("logs", failing, "--attempt", "7")
    assert r.exit_code == 2 and "Its attempts: 1, 2" in r.stderr
    assert cli("logs p/f").exit_code == 2  # an experiment, not a run
    assert cli("logs", failing, "--tail", "-1").exit_code == 2


def test_logs_follow_prints_what_a_running_attempt_writes(
    workspace: Path, cli: Cli, tmp_path: Path
) -> None:
    assert cli("project create p").exit_code == 0
    command = 'echo start; while [ ! -e "$RELEASE" ]; do sleep 0.02; done; echo done; echo bye >&2'
    assert cli("experiment", "create", "p/slow", "--command", command).exit_code == 0
    release = tmp_path / "release"
    runner = spawn("run", "p/slow", cwd=workspace, env=proc_env(RELEASE=str(release)))
    try:
        runs = workspace / "projects/p/experiments/slow/runs"
        run_dir = wait_for(
            lambda: next(iter(runs.glob("*/attempts/1/stdout.log")), None), "the log"
        )
        wait_for(lambda: run_dir.read_text() == "start\n", "the first line")
        follower = spawn("logs", "p/slow/" + run_dir.parents[2].name, "--follow", cwd=workspace)
        time.sleep(0.5)
        assert follower.poll() is None  # it waits for more
        release.touch()
        out, err = follower.communicate(timeout=60)
    finally:
        release.touch()
        runner.communicate(timeout=60)
    assert follower.returncode == 0, err
    assert out.splitlines() == ["==> stdout <==", "start", "done", "==> stderr <==", "bye"]


def test_tail_reads_from_the_end_of_big_files(tmp_path: Path) -> None:
    log = tmp_path / "big.log"
    log.write_bytes(b"".join(b"line %d\n" % i for i in range(200_000)))
    assert view.tail(log, 2) == b"line 199998\nline 199999\n"
    assert view.tail(log, 1) == b"line 199999\n"
    (tmp_path / "open.log").write_bytes(b"a\nb\nno newline")
    assert view.tail(tmp_path / "open.log", 2) == b"b\nno newline"
    assert view.tail(tmp_path / "open.log", 9) == b"a\nb\nno newline"
    assert view.tail(tmp_path / "missing.log", 3) == b""


def test_show_of_a_failed_run_says_how_it_ended(failing: str, cli: Cli) -> None:
    shown = cli("show", failing).stdout
    assert re.search(r"^error +exit code 3$", shown, re.M)
    assert "stderr, last 10 line(s):" in shown
    tail = [line for line in shown.splitlines() if line.startswith("  | ")]
    assert tail == [f"  | err{i}" for i in range(6, 16)]
    assert json.loads(cli("show", failing, "--json").stdout)["stderr_tail"][-1] == "err15"


def test_run_of_a_failing_run_prints_the_stderr_tail_even_with_json(
    workspace: Path, cli: Cli
) -> None:
    assert cli("project create p").exit_code == 0
    assert cli("experiment", "create", "p/f", "-p", "code=2", "--command", NOISY).exit_code == 0
    r = cli("run p/f --json -j 2")  # (output only in the logs)
    assert r.exit_code == 1
    assert json.loads(r.stdout)["status"] == "failed"  # stdout stays JSON
    assert "stderr, last 10 line(s):" in r.stderr and "  | err15" in r.stderr
    assert "  | err5" not in r.stderr


def test_dry_run_says_why_each_run_would_or_would_not_execute(workspace: Path, cli: Cli) -> None:
    (workspace / "molcfg.yaml").write_text(
        "defaults: {epochs: 100}\nprofiles:\n  smoke: {epochs: 3}\n"
    )
    assert cli("project create p").exit_code == 0
    r = cli(
        "experiment",
        "create",
        "p/e",
        "-p",
        "x=1",
        "--replicas",
        "2",
        "--command",
        "test {replica} = 0",
    )
    assert r.exit_code == 0
    assert cli("run p/e").exit_code == 1  # replica 1 fails

    def plan(*args: str) -> dict[int, dict[str, object]]:
        res = cli("run", "p/e", "--dry-run", "--json", *args)
        assert res.exit_code == 0, res.output
        return {o["replica"]: o for o in map(json.loads, res.stdout.splitlines())}

    before = snapshot(workspace, derived=True)
    now = plan()
    assert now[0]["reason"] == "up_to_date" and now[0]["message"] == "skip (up to date)"
    assert now[1]["reason"] == "failed"
    assert now[1]["message"] == "execute (attempt 1 failed with exit code 1)"
    forced = plan("--force", "-r", "0")
    assert forced[0]["reason"] == "forced"
    smoke = plan("--profile", "smoke")
    twin = now[0]["id"]
    assert smoke[0]["reason"] == "new"
    assert smoke[0]["differs"] == ["profile smoke (was none)", "config.epochs 3 (was 100)"]
    assert smoke[0]["message"] == (
        f"execute (new run): like {twin} but profile smoke (was none), config.epochs 3 (was 100)"
    )
    assert plan("-p", "x=2")[0]["message"] == "execute (new run): new point"
    table = cli("run p/e --dry-run -o epochs=5").stdout
    assert f"like {twin} but config.epochs 5 (was 100)" in table
    assert snapshot(workspace, derived=True) == before  # a dry run writes nothing, no index
    # a changed seed makes new runs too
    definition = workspace / "projects/p/experiments/e/experiment.yaml"
    definition.write_text(
        definition.read_text().replace("replicas: 2", "replicas: 2\nseeds: [7, 1]")
    )
    seeded = plan()
    assert seeded[0]["differs"] == ["seed 7 (was 0)"] and seeded[1]["reason"] == "failed"
