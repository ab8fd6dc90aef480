"""molexp.core.views.compare: records in, columns and rows out (pure)."""

from __future__ import annotations

from typing import Any

import pytest

from molexp.core.views.compare import MISSING, compare, diff, flatten, sort_rows
from molexp.core.views.query import parse_where
from molexp.errors import UsageError


def rec(
    run_id: str,
    params: dict[str, Any],
    results: dict[str, Any] | None = None,
    replica: int = 0,
    seed: int | None = None,
    config: dict[str, Any] | None = None,
    status: str = "succeeded",
    experiment: str = "e",
    attempts: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    return {
        "id": run_id,
        "project": "p",
        "experiment": experiment,
        "identity": "derived",
        "params": params,
        "replica": replica,
        "seed": replica if seed is None else seed,
        "profile": None,
        "config": config or {},
        "status": status,
        "results": results or {},
        "attempts": attempts if attempts is not None else [{"n": 1, "duration": 1.5}],
    }


def test_flatten() -> None:
    assert flatten({"a": 1, "b": {"c": [1, 2], "d": {"e": None}}, "f": {}}) == {
        "a": 1, "b.c": [1, 2], "b.d.e": None, "f": {},
    }  # fmt: skip
    assert flatten({}) == {}


def test_only_varying_params_and_config_are_columns() -> None:
    records = [
        rec("a", {"lr": 0.1, "depth": 2}, {"loss": 1.0}, config={"epochs": 10, "opt": {"m": 1}}),
        rec("b", {"lr": 0.2, "depth": 2}, {"loss": 0.5}, config={"epochs": 10, "opt": {"m": 2}}),
    ]
    table = compare(records)
    assert table.columns == [
        "run", "params.lr", "config.opt.m", "results.loss", "status", "duration",
    ]  # fmt: skip
    assert table.rows[0] == {
        "run": "p/e/a", "params.lr": 0.1, "config.opt.m": 1, "results.loss": 1.0,
        "status": "succeeded", "duration": 1.5,
    }  # fmt: skip
    assert table.constant == {"params.depth": 2, "config.epochs": 10}


def test_all_shows_constant_columns() -> None:
    records = [rec("a", {"lr": 0.1, "depth": 2}), rec("b", {"lr": 0.2, "depth": 2})]
    table = compare(records, show_all=True)
    assert table.columns == [
        "run", "experiment", "profile", "replica", "seed", "params.lr", "params.depth",
        "status", "duration",
    ]  # fmt: skip
    assert table.constant == {}


def test_equal_numbers_do_not_vary_and_missing_keys_do() -> None:
    records = [
        rec("a", {"x": 10, "y": {"k": 1, "j": 2}}),
        rec("b", {"x": 10.0, "y": {"j": 2, "k": 1}, "z": None}),
    ]
    assert compare(records).columns == ["run", "params.z", "status", "duration"]
    assert compare(records).rows[0]["params.z"] is MISSING
    assert compare(records).rows[1]["params.z"] is None


def test_results_are_always_shown() -> None:
    table = compare([rec("a", {}, {"loss": 1}), rec("b", {}, {"loss": 1, "acc": 0.9})])
    assert table.columns == ["run", "results.loss", "results.acc", "status", "duration"]


def test_replica_shown_seed_only_when_it_says_more() -> None:
    default = [rec("a", {}, replica=0), rec("b", {}, replica=1)]
    assert compare(default).columns == ["run", "replica", "status", "duration"]
    custom = [rec("a", {}, replica=0, seed=11), rec("b", {}, replica=1, seed=22)]
    assert compare(custom).columns == ["run", "replica", "seed", "status", "duration"]


def test_several_experiments() -> None:
    table = compare([rec("a", {"lr": 1}, experiment="e1"), rec("b", {"lr": 1}, experiment="e2")])
    assert table.columns == ["run", "experiment", "status", "duration"]


def test_default_order_follows_the_grid() -> None:
    records = [
        rec("a", {"lr": 0.2, "layers": [64, 64]}, replica=1),
        rec("b", {"lr": 0.1, "layers": [128]}, replica=0),
        rec("c", {"lr": 0.1, "layers": [64]}, replica=1),
        rec("d", {"lr": 0.1, "layers": [64]}, replica=0),
        rec("e", {"lr": 0.1, "layers": [64, 64]}, replica=0),
    ]
    assert [r["run"][-1] for r in compare(records).rows] == ["d", "c", "e", "b", "a"]


def test_sort_descending_and_by_bare_key_with_missing_last() -> None:
    records = [
        rec("a", {"lr": 1}, {"loss": 0.3}),
        rec("b", {"lr": 2}, {}),
        rec("c", {"lr": 3}, {"loss": 0.1}),
        rec("d", {"lr": 4}, {"loss": None}),
    ]
    assert [r["run"][-1] for r in compare(records, sort=["loss"]).rows] == ["c", "a", "b", "d"]
    assert [r["run"][-1] for r in compare(records, sort=["-results.loss"]).rows] == [
        "a",
        "c",
        "b",
        "d",
    ]
    assert [r["run"][-1] for r in compare(records, sort=["-lr"]).rows] == ["d", "c", "b", "a"]


def test_sort_by_several_keys_and_mixed_types() -> None:
    rows: list[dict[str, Any]] = [
        {"k": "b", "n": 1},
        {"k": 2, "n": 2},
        {"k": "a", "n": 2},
        {"k": [1], "n": 1},
    ]
    assert sort_rows(rows, ["-n", "k"], ["k", "n"]) == [
        {"k": 2, "n": 2}, {"k": "a", "n": 2}, {"k": "b", "n": 1}, {"k": [1], "n": 1},
    ]  # fmt: skip


@pytest.mark.parametrize("key", ["nope", "-nope", "-"])
def test_unknown_sort_column(key: str) -> None:
    with pytest.raises(UsageError) as info:
        compare([rec("a", {"lr": 1})], sort=[key])
    assert "--sort" in str(info.value)


def test_where_filters_before_columns_are_chosen() -> None:
    records = [
        rec("a", {"lr": 1, "depth": 2}, {"loss": 0.5}),
        rec("b", {"lr": 1, "depth": 3}, {"loss": 0.5}),
        rec("c", {"lr": 2, "depth": 3}, {"loss": 0.1}),
    ]
    table = compare(records, where=parse_where(["lr=1"]))
    assert [r["run"] for r in table.rows] == ["p/e/a", "p/e/b"]
    assert table.columns == ["run", "params.depth", "results.loss", "status", "duration"]
    assert [r["run"] for r in compare(records, where=parse_where(["results.loss=0.1"])).rows] == [
        "p/e/c"
    ]


def test_no_records() -> None:
    table = compare([], sort=["anything"])
    assert table.rows == [] and table.columns == ["run", "status", "duration"]


def test_diff_lists_only_what_differs() -> None:
    git_a = {"commit": "a" * 40, "branch": "main", "dirty": False, "root": "/r"}
    git_b = dict(git_a, commit="b" * 40, dirty=True)
    a = rec("a", {"lr": 1, "depth": 2}, {"loss": 0.5}, config={"epochs": 10},
            attempts=[{"n": 1, "status": "succeeded", "exit_code": 0, "host": "h", "git": git_a,
                       "duration": 1.0, "pid": 1}])  # fmt: skip
    b = rec("b", {"lr": 2, "depth": 2}, {"loss": 0.4, "acc": 1}, config={"epochs": 10.0},
            attempts=[{"n": 1, "status": "failed", "exit_code": 1, "host": "h", "duration": 2.0,
                       "pid": 2},
                      {"n": 2, "status": "succeeded", "exit_code": 0, "host": "h", "git": git_b,
                       "duration": 3.0, "pid": 3}])  # fmt: skip
    d = diff(a, b)
    assert d["run"] == {}
    assert d["params"] == {"lr": (1, 2)}
    assert d["config"] == {}
    assert d["results"] == {"loss": (0.5, 0.4), "acc": (MISSING, 1)}
    assert d["git"] == {"commit": ("a" * 40, "b" * 40), "dirty": (False, True)}
    assert d["attempts"] == {
        "count": (1, 2),
        "1.status": ("succeeded", "failed"),
        "1.exit_code": (0, 1),
        "2.status": (MISSING, "succeeded"),
        "2.exit_code": (MISSING, 0),
        "2.host": (MISSING, "h"),
    }


def test_diff_of_a_run_with_itself_is_empty() -> None:
    a = rec("a", {"lr": 1}, {"loss": 0.5})
    assert all(not section for section in diff(a, a).values())
