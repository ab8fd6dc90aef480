"""`molexp compare` and `molexp diff` on a real sweep."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Cli

SCRIPT = """\
import json, os
p = json.load(open(os.environ["MOLEXP_PARAMS_FILE"]))
loss = round(p["lr"] * 10 + len(p["layers"]), 6)
json.dump({"loss": loss}, open(os.environ["MOLEXP_RESULTS_FILE"], "w"))
"""

GRID = ["--grid", "lr=1e-3,1e-2", "--grid", "layers=[[64],[64,64],[128]]"]


def lines(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


@pytest.fixture
def swept(workspace: Path, cli: Cli) -> list[dict[str, Any]]:
    (workspace / "train.py").write_text(SCRIPT)
    assert cli("project create qm9").exit_code == 0
    r = cli("experiment", "create", "qm9/sweep", "--param", "lr=0.1", "--param", "layers=[32]",
            "--param", "depth=2", "--replicas", "2", "--command", "python train.py")  # fmt: skip
    assert r.exit_code == 0, r.output
    r = cli("run", "qm9/sweep", *GRID, "--jobs", "4", "--json")
    assert r.exit_code == 0, r.output
    return lines(r.stdout)


def table(stdout: str) -> tuple[list[str], list[list[str]]]:
    head, *rows = stdout.strip().splitlines()
    return head.split(), [row.split() for row in rows]


def test_compare_shows_exactly_the_varying_columns(swept: list[dict[str, Any]], cli: Cli) -> None:
    r = cli("compare qm9/sweep")
    assert r.exit_code == 0, r.output
    columns, rows = table(r.stdout)
    assert columns == [
        "run", "replica", "params.lr", "params.layers", "results.loss", "status", "duration",
    ]  # fmt: skip
    assert len(rows) == 12
    # grid order: lr, then layers (element by element), then replica
    assert [(row[2], row[3], row[1]) for row in rows[:4]] == [
        ("0.001", "[64]", "0"), ("0.001", "[64]", "1"),
        ("0.001", "[64,64]", "0"), ("0.001", "[64,64]", "1"),
    ]  # fmt: skip
    assert all(row[5] == "succeeded" and row[6].endswith("s") for row in rows)
    assert "same in every run: params.depth=2 (--all shows them)" in r.stderr


def test_compare_all_and_formats(swept: list[dict[str, Any]], cli: Cli) -> None:
    r = cli("compare qm9/sweep --all --format csv")
    assert r.exit_code == 0
    rows = list(csv.DictReader(io.StringIO(r.stdout)))
    assert len(rows) == 12
    assert list(rows[0]) == [
        "run", "experiment", "profile", "replica", "seed", "params.lr", "params.layers",
        "params.depth", "results.loss", "status", "duration",
    ]  # fmt: skip
    assert {row["params.depth"] for row in rows} == {"2"}
    assert float(rows[0]["duration"]) > 0  # raw seconds in csv
    assert r.stderr == ""

    data = json.loads(cli("compare qm9/sweep --format json").stdout)
    assert isinstance(data, list) and len(data) == 12
    assert set(data[0]) == {"run", "replica", "params.lr", "params.layers", "results.loss",
                            "status", "duration"}  # fmt: skip
    assert {d["run"].rsplit("/", 1)[1] for d in data} == {o["id"] for o in swept}

    md = cli("compare qm9/sweep -f md").stdout.splitlines()
    assert md[0].startswith("| run | replica | params.lr |") and md[1].startswith("|---|")
    assert len(md) == 14


def test_compare_sort_and_where(swept: list[dict[str, Any]], cli: Cli) -> None:
    data = json.loads(cli("compare qm9/sweep --sort -loss --sort replica -f json").stdout)
    losses = [d["results.loss"] for d in data]
    assert losses == sorted(losses, reverse=True)
    assert [d["replica"] for d in data[:2]] == [0, 1]

    r = cli("compare qm9/sweep --where lr=0.01 --where layers=[64,64] -f json")
    data = json.loads(r.stdout)
    assert [d["replica"] for d in data] == [0, 1]
    assert set(data[0]) == {"run", "replica", "results.loss", "status", "duration"}


def test_compare_run_refs_and_projects(swept: list[dict[str, Any]], cli: Cli) -> None:
    a, b = swept[0], swept[3]
    r = cli("compare", a["id"], f"qm9/sweep/{b['id'][:6]}", a["id"], "-f", "json")
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert sorted(d["run"] for d in data) == sorted(
        [f"qm9/sweep/{a['id']}", f"qm9/sweep/{b['id']}"]
    )

    assert cli("experiment create qm9/other --param lr=0.001 --command true").exit_code == 0
    assert cli("run qm9/other").exit_code == 0
    data = json.loads(cli("compare qm9 -f json").stdout)
    assert len(data) == 13
    assert "experiment" in data[0]
    assert [d["experiment"] for d in data].count("qm9/other") == 1
    assert len(json.loads(cli("compare . -f json").stdout)) == 13


def test_compare_errors(swept: list[dict[str, Any]], cli: Cli) -> None:
    for args, code, text in [
        ("compare qm9/sweep --sort nope", 2, "--sort 'nope': no such column"),
        ("compare qm9/sweep -f xml", 2, "--format 'xml'"),
        ("compare qm9/nope", 2, "nope"),
        ("compare qm9/sweep --where lr", 2, "expected KEY=VALUE"),
    ]:
        r = cli(args)
        assert r.exit_code == code, (args, r.output)
        assert text in r.stderr
        assert len(r.stderr.strip().splitlines()) <= 2
    r = cli("compare qm9/sweep --where lr=5")
    assert r.exit_code == 0 and "no runs match" in r.stderr


def test_compare_names_unreadable_records_and_shows_the_rest(
    swept: list[dict[str, Any]], cli: Cli
) -> None:
    bad = Path(swept[0]["run_dir"]) / "run.json"
    bad.write_text("{not json")
    r = cli("compare qm9/sweep -f json")
    assert r.exit_code == 3
    assert len(json.loads(r.stdout)) == 11
    assert str(bad) in r.stderr


def test_diff(swept: list[dict[str, Any]], cli: Cli) -> None:
    a = next(
        o
        for o in swept
        if o["params"] == {"lr": 0.001, "layers": [64], "depth": 2} and o["replica"] == 0
    )
    b = next(
        o
        for o in swept
        if o["params"] == {"lr": 0.01, "layers": [64], "depth": 2} and o["replica"] == 1
    )
    r = cli("diff", a["id"], b["id"], "--json")
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    assert d["a"] == f"qm9/sweep/{a['id']}" and d["b"] == f"qm9/sweep/{b['id']}"
    assert d["params"] == {"lr": {"a": 0.001, "b": 0.01}}
    assert d["run"] == {"replica": {"a": 0, "b": 1}, "seed": {"a": 0, "b": 1}}
    assert d["config"] == {} and d["git"] == {}
    assert set(d["results"]) == {"loss"}
    assert d["attempts"] == {}  # same command, status, host

    text = cli("diff", a["id"], b["id"])
    assert text.exit_code == 0
    rows = [line.split()[0] for line in text.stdout.strip().splitlines()[1:]]
    assert rows == ["run.replica", "run.seed", "params.lr", "results.loss"]

    assert cli("run", "qm9/sweep", "-r", "1", "--grid", "lr=0.01", "--grid", "layers=[[64]]",
               "--force").exit_code == 0  # fmt: skip
    d = json.loads(cli("diff", a["id"], b["id"], "--json").stdout)
    assert d["attempts"]["count"] == {"a": 1, "b": 2}
    assert d["attempts"]["2.status"] == {"b": "succeeded"}


def test_diff_same_run_and_bad_refs(swept: list[dict[str, Any]], cli: Cli) -> None:
    run_id = swept[0]["id"]
    r = cli("diff", run_id, run_id)
    assert r.exit_code == 0 and "do not differ" in r.stderr and r.stdout == ""
    r = cli("diff", "qm9/sweep", run_id)
    assert r.exit_code == 2 and "molexp compare qm9/sweep" in r.stderr
    r = cli("diff", run_id, "ffffffff")
    assert r.exit_code == 2 and "no run matches" in r.stderr
