"""Metrics over time (SPEC §14): written by real commands, folded by the lifecycle,
read by `molexp metrics`, `show`, `ls`, `compare` and `--where`/`--sort`."""

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

from tests.conftest import Cli, molexp_exe

PY = sys.executable

SHELL = """\
for i in 1 2 3; do
  echo "{\\"step\\": $((i * 10)), \\"loss\\": 0.$((10 - i)), \\"T\\": 30$i}" >> "$MOLEXP_METRICS_FILE"
done
"""

LOGGING = """\
import molexp as mx
ctx = mx.current_run()
T = ctx.params["T"]
for step in range(4):
    ctx.log(step=step, loss=round(1 / (step + 1) + T / 1000, 4))
ctx.set_result("final", T)
"""


def env() -> dict[str, str]:
    out = dict(os.environ)
    out["PATH"] = str(Path(PY).parent) + os.pathsep + out.get("PATH", "")
    return out


def record(workspace: Path, ref: str) -> dict[str, Any]:
    _, exp, run_id = ref.split("/")
    path = workspace / "projects" / "lj" / "experiments" / exp / "runs" / run_id / "run.json"
    data: dict[str, Any] = json.loads(path.read_text())
    return data


@pytest.fixture
def shell_run(workspace: Path, cli: Cli) -> str:
    (workspace / "md.sh").write_text(SHELL)
    assert cli("project create lj").exit_code == 0
    assert cli("experiment create lj/sh --command 'sh md.sh'").exit_code == 0
    r = cli("run lj/sh --json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    return f"lj/sh/{out['id']}"


@pytest.fixture
def logged(workspace: Path, cli: Cli) -> list[str]:
    (workspace / "md.py").write_text(LOGGING)
    assert cli("project create lj").exit_code == 0
    r = cli(f"experiment create lj/py --param T=300 --replicas 2 --command '{PY} md.py'")
    assert r.exit_code == 0, r.output
    r = cli("run lj/py --grid T=300,400")
    assert r.exit_code == 0, r.output
    return cli("ls lj/py --format ids").stdout.split()


def test_shell_lines_are_folded_into_the_record(workspace: Path, cli: Cli, shell_run: str) -> None:
    rec = record(workspace, shell_run)
    assert rec["metrics"] == {"loss": 0.7, "T": 303}
    assert rec["attempts"][-1]["metrics"] == {
        "loss": {"last": 0.7, "step": 30, "n": 3},
        "T": {"last": 303, "step": 30, "n": 3},
    }
    r = cli("metrics", shell_run)
    assert r.exit_code == 0, r.output
    assert r.stdout.splitlines() == [
        "step  time  loss  T",
        "10          0.9   301",
        "20          0.8   302",
        "30          0.7   303",
    ]
    assert json.loads(cli("metrics", shell_run, "-f", "json").stdout) == [
        {"step": 10, "time": None, "loss": 0.9, "T": 301},
        {"step": 20, "time": None, "loss": 0.8, "T": 302},
        {"step": 30, "time": None, "loss": 0.7, "T": 303},
    ]
    csv = cli("metrics", shell_run, "-f", "csv", "-m", "T").stdout
    assert csv == "step,time,T\n10,,301\n20,,302\n30,,303\n"


def test_ctx_log_writes_steps_times_and_the_last_values(
    workspace: Path, cli: Cli, logged: list[str]
) -> None:
    assert len(logged) == 4
    data = json.loads(cli("metrics", logged[0], "-f", "json").stdout)
    assert [p["step"] for p in data] == [0, 1, 2, 3]
    assert all(abs(p["time"] - time.time()) < 600 for p in data)
    assert data[-1]["loss"] == 0.55
    # the last values everywhere: show, ls, compare, --where, --sort
    shown = cli("show", logged[0]).stdout
    assert (
        "metric  last  step  points  attempt" in shown and "loss    0.55  3     4       1" in shown
    )
    assert json.loads(cli("show", logged[0], "--json").stdout)["metrics"] == {"loss": 0.55}
    assert cli("ls --where metrics.loss>0.6 --format ids").stdout.split() == logged[2:]
    top = cli("ls --sort -metrics.loss --limit 1")
    assert top.stdout.splitlines()[0].split()[-1] == "metrics.loss"
    assert top.stdout.splitlines()[1].split()[-1] == "0.65"
    rows = json.loads(cli("compare lj/py -f json --sort -loss").stdout)
    assert [r["metrics.loss"] for r in rows] == [0.65, 0.65, 0.55, 0.55]
    diff = json.loads(cli("diff", logged[0], logged[2], "--json").stdout)
    assert diff["metrics"] == {"loss": {"a": 0.55, "b": 0.65}}


def test_attempts_and_metric_choice(workspace: Path, cli: Cli, shell_run: str) -> None:
    (workspace / "md.sh").write_text('echo \'{"energy": -1.5}\' >> "$MOLEXP_METRICS_FILE"\n')
    assert cli("run lj/sh --force").exit_code == 0
    rec = record(workspace, shell_run)
    assert rec["metrics"] == {"energy": -1.5}  # the latest attempt's
    assert cli("metrics", shell_run).stdout.splitlines() == [
        "step  time  energy",
        "1           -1.5",
    ]
    first = cli("metrics", shell_run, "--attempt", "1", "-m", "loss").stdout.splitlines()
    assert first == ["step  time  loss", "10          0.9", "20          0.8", "30          0.7"]
    # a retry that records none keeps the metrics of the attempt that did (like results)
    (workspace / "md.sh").write_text("true\n")
    assert cli("run lj/sh --force").exit_code == 0
    assert record(workspace, shell_run)["metrics"] == {"energy": -1.5}
    r = cli("metrics", shell_run)
    assert r.exit_code == 0 and r.stdout == ""
    assert "recorded no metrics in attempt 3" in r.stderr


@pytest.mark.parametrize(
    "args, code, message",
    [
        (["--attempt", "9"], 2, "has no attempt 9; its attempts are 1"),
        (["-m", "lose"], 2, "has no metric 'lose' (attempt 1: loss, T); did you mean loss?"),
        (["-f", "xml"], 2, "--format 'xml'"),
        (["--plot", "--follow"], 2, "--plot draws the series once"),
    ],
)
def test_metrics_refusals(
    cli: Cli, shell_run: str, args: list[str], code: int, message: str
) -> None:
    r = cli("metrics", shell_run, *args)
    assert r.exit_code == code, r.output
    assert message in r.stderr and len(r.stderr.strip().splitlines()) <= 2


def test_metrics_of_something_else_than_a_run(cli: Cli, shell_run: str) -> None:
    r = cli("metrics lj/sh")
    assert r.exit_code == 2 and "molexp metrics shows one run; 'lj/sh' is a experiment" in r.stderr
    assert cli("metrics lj/sh/ffff").exit_code == 2


def test_a_pending_run_has_no_metrics_yet(workspace: Path, cli: Cli) -> None:
    assert cli("project create lj").exit_code == 0
    assert cli("experiment create lj/e --command true").exit_code == 0
    import molexp as mx

    run = mx.Workspace(workspace).get_project("lj").get_experiment("e").run_for()
    r = cli("metrics", f"lj/e/{run.id}")
    assert r.exit_code == 0 and r.stdout == "" and "has not started" in r.stderr


def test_junk_lines_are_named_and_a_torn_one_is_ignored(
    workspace: Path, cli: Cli, shell_run: str
) -> None:
    rec = record(workspace, shell_run)
    path = workspace / "projects/lj/experiments/sh/runs" / rec["id"] / "attempts/1/metrics.jsonl"
    with path.open("a") as fh:
        fh.write('oops\n{"loss": 0.')
    r = cli("metrics", shell_run, "-f", "json")
    assert r.exit_code == 0 and len(json.loads(r.stdout)) == 3
    assert f"1 line(s) of {path} ignored: not JSON objects" in r.stderr


def test_a_killed_command_keeps_what_it_flushed(workspace: Path, cli: Cli) -> None:
    """SIGKILL while the command sleeps: the lines flushed (within a second) are read
    live by `show` and `metrics`, and folded when the run's end is recorded."""
    (workspace / "slow.py").write_text(
        "import time, molexp as mx\n"
        "ctx = mx.current_run()\n"
        "for i in range(3):\n"
        "    ctx.log(step=i, loss=1.0 - i / 10)\n"
        "time.sleep(60)\n"
    )
    assert cli("project create lj").exit_code == 0
    assert cli(f"experiment create lj/slow --command '{PY} slow.py'").exit_code == 0
    proc = subprocess.Popen([*molexp_exe(), "run", "lj/slow"], cwd=workspace, env=env(),
                            start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        runs = workspace / "projects/lj/experiments/slow/runs"
        deadline = time.monotonic() + 30
        found: list[Path] = []
        while time.monotonic() < deadline:
            found = list(runs.glob("*/attempts/1/metrics.jsonl"))
            if found and found[0].read_text().count("\n") == 3:
                break
            time.sleep(0.1)
        else:
            raise AssertionError("ctx.log did not flush within the deadline")
        ref = f"lj/slow/{found[0].parents[2].name}"
        with found[0].open("a") as fh:
            fh.write('{"step": 3, "loss": 0.')  # as if killed mid-write
        assert json.loads(cli("show", ref, "--json").stdout)["metrics"] == {"loss": 0.8}
        r = cli("metrics", ref, "-f", "json")
        assert [p["loss"] for p in json.loads(r.stdout)] == [1.0, 0.9, 0.8]
        assert cli("ls --where metrics.loss<0.85 --format ids").stdout.split() == [ref]
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    assert cli("doctor --fix").exit_code in (0, 3)
    rec = record(workspace, ref)
    assert rec["status"] == "interrupted"
    assert rec["metrics"] == {"loss": 0.8}  # the torn line is ignored, never an error


def test_follow_prints_points_as_they_come_and_ends_with_the_run(workspace: Path, cli: Cli) -> None:
    (workspace / "tick.sh").write_text(
        'for i in 1 2 3; do echo "{\\"step\\": $i, \\"x\\": $i}" >> "$MOLEXP_METRICS_FILE";'
        " sleep 0.7; done\n"
        'echo \'{"step": 4, "y": 1}\' >> "$MOLEXP_METRICS_FILE"\n'
    )
    assert cli("project create lj").exit_code == 0
    assert cli("experiment create lj/tick --command 'sh tick.sh'").exit_code == 0
    run = subprocess.Popen([*molexp_exe(), "run", "lj/tick"], cwd=workspace, env=env(),
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        runs = workspace / "projects/lj/experiments/tick/runs"
        deadline = time.monotonic() + 30
        while not list(runs.glob("*/attempts/1")) and time.monotonic() < deadline:
            time.sleep(0.05)
        (run_dir,) = runs.iterdir()
        started = time.monotonic()
        follow = subprocess.run(
            [*molexp_exe(), "metrics", f"lj/tick/{run_dir.name}", "--follow", "-f", "json"],
            cwd=workspace, env=env(), capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert follow.returncode == 0, follow.stderr
        assert time.monotonic() - started > 1  # it waited for the run
        points = [json.loads(line) for line in follow.stdout.splitlines()]
        assert [(p["step"], p.get("x"), p.get("y")) for p in points] == [
            (1, 1, None), (2, 2, None), (3, 3, None), (4, None, 1),
        ]  # fmt: skip
        table = cli("metrics", f"lj/tick/{run_dir.name}", "--follow").stdout
        assert table.splitlines()[0] == "step  time  x  y"  # (ended: read at once)
    finally:
        run.wait(timeout=60)


def test_follow_a_table_names_new_metrics_as_they_appear(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from molexp.cli.metrics import _Stream
    from molexp.core.records.metrics import Point

    stream = _Stream("table", ["a"])
    stream.add([Point(1, 1, None, {"a": 1})])
    stream.add([])
    stream.names.append("b")
    stream.add([Point(2, 2, None, {"b": 2})])
    csv = _Stream("csv", ["a"])
    csv.add([Point(1, 1, 1.5, {"a": 0.1})])
    assert capsys.readouterr().out.splitlines() == [
        "step  time  a", "1    1", "step  time  a  b", "2      2", "step,time,a", "1,1.5,0.1",
    ]  # fmt: skip


def test_plots(cli: Cli, shell_run: str, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("plotext")
    r = cli("metrics", shell_run, "--plot", "-m", "loss")
    assert r.exit_code == 0, r.output
    assert f"{shell_run} (attempt 1)" in r.stdout and "loss" in r.stdout and "step" in r.stdout
    assert "\x1b[" not in r.stdout  # no colour when NO_COLOR / piped
    monkeypatch.setitem(sys.modules, "plotext", None)  # as if it were not installed
    r = cli("metrics", shell_run, "--plot")
    assert r.exit_code == 2
    assert r.stderr.strip() == (
        "error: --plot needs the plotext library, which is not installed; "
        "pip install 'molexp[plot]' (or: pip install 'plotext>=5.2,<6')"
    )


def test_a_run_without_numbers_has_nothing_to_plot(workspace: Path, cli: Cli) -> None:
    pytest.importorskip("plotext")
    (workspace / "w.sh").write_text('echo \'{"phase": "solid"}\' >> "$MOLEXP_METRICS_FILE"\n')
    assert cli("project create lj").exit_code == 0
    assert cli("experiment create lj/w --command 'sh w.sh'").exit_code == 0
    ref = "lj/w/" + json.loads(cli("run lj/w --json").stdout)["id"]
    r = cli("metrics", ref, "--plot")
    assert r.exit_code == 2 and "has no numeric metric to plot" in r.stderr


def test_importing_the_cli_loads_no_plotting_library() -> None:
    code = (
        "import sys, molexp.cli.main as m\n"
        "for name in ('metrics', 'compare', 'ls', 'show'):\n"
        "    m.load_command(name)\n"
        "print('plotext' in sys.modules)\n"
    )
    out = subprocess.run([PY, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
