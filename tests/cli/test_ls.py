"""`molexp ls --where/--sort/--limit` on real runs, with and without the index."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import Cli

SCRIPT = """\
import json, os
p = json.load(open(os.environ["MOLEXP_PARAMS_FILE"]))
seed = int(os.environ["MOLEXP_SEED"])
energy = round(-1 - p["T"] / 1000 + 0.001 * seed, 6)
results = {"energy": energy, "phase": "solid" if p["T"] < 350 else "liquid"}
json.dump(results, open(os.environ["MOLEXP_RESULTS_FILE"], "w"))
"""


@pytest.fixture
def grid(workspace: Path, cli: Cli) -> Path:
    (workspace / "md.py").write_text(SCRIPT)
    assert cli("project create lj").exit_code == 0
    r = cli("experiment create lj/md --param T=300 --replicas 2 --command 'python md.py'")
    assert r.exit_code == 0, r.output
    r = cli("run lj/md --grid T=300,350,400")
    assert r.exit_code == 0, r.output
    return workspace


def ids_of(cli: Cli, *args: str) -> list[str]:
    r = cli("ls", *args, "--format", "json")
    assert r.exit_code == 0, r.output
    return [f"{d['params']['T']}/{d['replica']}" for d in json.loads(r.stdout)]


@pytest.mark.parametrize("index", ["1", ""])
def test_where_sort_limit(
    grid: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch, index: str
) -> None:
    monkeypatch.setenv("MOLEXP_NO_INDEX", "" if index else "1")
    for _ in range(2):  # once building the index, once from it
        assert ids_of(cli, "--where", "results.energy<=-1.35") == ["350/0", "400/0", "400/1"]
        assert ids_of(cli, "--where", "T>=350", "--where", "replica!=0") == ["350/1", "400/1"]
        assert ids_of(cli, "--where", "phase~^liq") == ["350/0", "350/1", "400/0", "400/1"]
        assert ids_of(cli, "--where", "results.phase>1") == []  # text vs number: no match
        assert ids_of(cli, "--where", "results.nope=1") == []
        assert ids_of(cli, "--sort", "energy", "--limit", "2") == ["400/0", "400/1"]
        assert ids_of(cli, "--sort", "-T", "--sort", "-replica", "--limit", "3") == [
            "400/1", "400/0", "350/1",
        ]  # fmt: skip
        assert ids_of(cli, "--sort", "nope", "--limit", "1") == ["300/0"]  # missing: in order
        assert ids_of(cli, "--where", "host~.", "--limit", "0") == []
        assert len(ids_of(cli, "--where", "host~.")) == 6


def test_the_keys_a_query_names_get_columns(grid: Path, cli: Cli) -> None:
    r = cli("ls --where results.energy<-1.39 --sort -results.energy --sort status")
    assert r.exit_code == 0, r.output
    head, *rows = r.stdout.splitlines()
    assert head.split()[-1] == "results.energy" and head.split().count("status") == 1
    assert [row.split()[-1] for row in rows] == ["-1.399", "-1.4"]
    csv = cli("ls --sort T --limit 1 --format csv").stdout.splitlines()
    assert csv[0].endswith(",T") and csv[1].endswith(",300")
    ids = cli("ls --sort -T --limit 1 --format ids").stdout
    assert ids.count("\n") == 1 and ids.startswith("lj/md/")


@pytest.mark.parametrize(
    "args, problem",
    [
        (["--where", "T>>1"], "unknown operator '>>'"),
        (["--where", "T=>1"], "unknown operator '=>'"),
        (["--where", "=1"], "empty key"),
        (["--where", "lr"], "no operator"),
        (["--where", "x~("], "not a regular expression"),
        (["--sort", "-"], "give a key"),
        (["--limit", "-2"], "--limit -2"),
    ],
)
def test_bad_queries_exit_2_with_one_line(
    grid: Path, cli: Cli, args: list[str], problem: str
) -> None:
    r = cli("ls", *args)
    assert r.exit_code == 2
    assert r.stdout == ""
    (line,) = r.stderr.strip().splitlines()
    assert problem in line
    if args[0] == "--where":
        assert "KEY=VALUE, KEY!=VALUE, KEY<VALUE" in line and "docs/questions.md" in line


def test_compare_takes_the_same_conditions(grid: Path, cli: Cli) -> None:
    r = cli("compare lj/md --where 'results.energy<-1.34' --sort energy --limit 2 -f json")
    assert r.exit_code == 0, r.output
    assert [(d["params.T"], d["replica"]) for d in json.loads(r.stdout)] == [(400, 0), (400, 1)]
    r = cli("compare lj/md --where 'T>>1'")
    assert r.exit_code == 2 and "unknown operator '>>'" in r.stderr
