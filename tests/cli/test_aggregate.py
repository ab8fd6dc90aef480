"""`molexp compare --aggregate` (and its plot) on a real grid × replicas."""

from __future__ import annotations

import csv
import io
import json
import statistics
import sys
from pathlib import Path

import pytest

from molexp.cli.aggregate import plus_minus
from tests.conftest import Cli

SCRIPT = """\
import json, os
p = json.load(open(os.environ["MOLEXP_PARAMS_FILE"]))
r = int(os.environ["MOLEXP_REPLICA"])
energy = round(-1 - p["T"] / 1000 + [0.002, -0.002, 0.0][r] * (1 + p["T"] / 1000), 6)
json.dump({"energy": energy, "phase": "solid" if p["T"] < 350 else "liquid", "r": f"r{r}"},
          open(os.environ["MOLEXP_RESULTS_FILE"], "w"))
with open(os.environ["MOLEXP_METRICS_FILE"], "a") as fh:
    for step in range(3):
        fh.write(json.dumps({"step": step, "loss": round(1 / (step + 1) + r / 100, 4)}) + "\\n")
"""


def energy(T: int, r: int) -> float:
    return round(-1 - T / 1000 + [0.002, -0.002, 0.0][r] * (1 + T / 1000), 6)


@pytest.fixture
def grid(workspace: Path, cli: Cli) -> Path:
    (workspace / "md.py").write_text(SCRIPT)
    assert cli("project create lj").exit_code == 0
    r = cli(
        f"experiment create lj/md --param T=300 --replicas 3 --command '{sys.executable} md.py'"
    )
    assert r.exit_code == 0, r.output
    r = cli("run lj/md --grid T=300,350,400 --jobs 2")
    assert r.exit_code == 0, r.output
    return workspace


def test_table_and_markdown(grid: Path, cli: Cli) -> None:
    r = cli("compare lj/md --aggregate")
    assert r.exit_code == 0, r.output
    head, *rows = r.stdout.splitlines()
    assert head.split() == [
        "params.T", "n", "results.energy", "results.phase", "results.r", "metrics.loss", "status",
    ]  # fmt: skip
    assert len(rows) == 3
    values = [energy(300, k) for k in range(3)]
    shown = plus_minus(statistics.mean(values), statistics.stdev(values))
    assert shown == "-1.300 ± 0.003"
    assert rows[0].split()[:5] == ["300", "3", "-1.300", "±", "0.003"]
    assert "(varies: r0, r1, r2)" in rows[0] and "3 succeeded" in rows[0]
    assert "0.343 ± 0.010" in rows[0]  # the last loss of each replica: 1/3 + r/100
    md = cli("compare lj/md --aggregate -f md").stdout.splitlines()
    assert (
        md[0]
        == "| params.T | n | results.energy | results.phase | results.r | metrics.loss | status |"
    )
    assert md[2].startswith("| 300 | 3 | -1.300 ± 0.003 | solid | (varies: r0, r1, r2) |")


def test_json_and_csv_columns(grid: Path, cli: Cli) -> None:
    data = json.loads(cli("compare lj/md --aggregate -f json").stdout)
    assert [d["params.T"] for d in data] == [300, 350, 400]
    first = data[0]
    assert list(first) == [
        "params.T", "n",
        "results.energy.mean", "results.energy.std", "results.energy.min", "results.energy.max",
        "results.energy.n", "results.phase", "results.r",
        "metrics.loss.mean", "metrics.loss.std", "metrics.loss.min", "metrics.loss.max",
        "metrics.loss.n", "status", "runs",
    ]  # fmt: skip
    values = [energy(300, k) for k in range(3)]
    assert first["results.energy.mean"] == pytest.approx(statistics.mean(values))
    assert first["results.energy.std"] == pytest.approx(statistics.stdev(values))
    assert (first["results.energy.min"], first["results.energy.max"]) == (min(values), max(values))
    assert (
        first["results.r"] == {"varies": ["r0", "r1", "r2"]} and first["results.phase"] == "solid"
    )
    assert first["status"] == {"succeeded": 3} and len(first["runs"]) == 3
    rows = list(csv.DictReader(io.StringIO(cli("compare lj/md --aggregate -f csv").stdout)))
    assert float(rows[0]["results.energy.std"]) == pytest.approx(statistics.stdev(values))
    assert rows[0]["results.r"] == "(varies: r0, r1, r2)" and rows[0]["status"] == "3 succeeded"
    assert "runs" not in rows[0]


def test_where_sort_limit_and_run_refs(grid: Path, cli: Cli) -> None:
    data = json.loads(
        cli("compare lj/md --aggregate --where replica!=2 --sort -energy -n 1 -f json").stdout
    )
    assert [(d["params.T"], d["n"]) for d in data] == [(300, 2)]
    data = json.loads(cli("compare lj/md --aggregate --where attempts~x -f json").stdout)
    assert data == []  # (a key only full records hold: read in full, then no match)
    ids = cli("ls lj/md --where T=400 --format ids").stdout.split()
    data = json.loads(cli("compare", *ids, "--aggregate", "-f", "json").stdout)
    assert [(d["n"], d["results.phase"]) for d in data] == [(3, "liquid")]
    r = cli("compare lj/md --aggregate --where T>1000")
    assert r.exit_code == 0 and r.stdout == "" and "no runs match" in r.stderr


def test_plot_mean_and_error_bars(grid: Path, cli: Cli) -> None:
    pytest.importorskip("plotext")
    r = cli("compare lj/md --aggregate --plot energy --x T")
    assert r.exit_code == 0, r.output
    assert "results.energy: mean ± std" in r.stdout and "params.T" in r.stdout
    assert cli("compare lj/md --aggregate --plot metrics.loss").exit_code == 0  # x: the one param
    for args, problem in [
        ("compare lj/md --plot energy", "add --aggregate"),
        ("compare lj/md --aggregate --plot nope", "--plot 'nope': no such column"),
        ("compare lj/md --aggregate --plot energy --x nope", "--x 'nope': no such column"),
    ]:
        r = cli(args)
        assert r.exit_code == 2 and problem in r.stderr


@pytest.mark.parametrize(
    "mean, std, text",
    [
        (-1.31612, 0.00412, "-1.316 ± 0.004"),
        (-1.31612, 0.00152, "-1.3161 ± 0.0015"),
        (250.0, 12.3, "250 ± 12"),
        (250.0, 33.0, "250 ± 30"),
        (1234.5, 150.0, "1230 ± 150"),
        (0.5, 0.0, "0.5 ± 0"),
        (0.123456789, None, "0.123457"),
        (1e-9, 3e-20, "0.000000001000 ± 0.000000000000"),
    ],
)
def test_plus_minus(mean: float, std: float | None, text: str) -> None:
    assert plus_minus(mean, std) == text
