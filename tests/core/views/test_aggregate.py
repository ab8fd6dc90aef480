"""molexp.core.views.aggregate: replicas folded into points (pure)."""

from __future__ import annotations

import statistics
from typing import Any

import pytest

from molexp.core.views.aggregate import Stat, Varies, aggregate, plot_series
from molexp.core.views.compare import MISSING
from molexp.core.views.query import parse_where
from molexp.errors import UsageError


def rec(
    n: int,
    params: dict[str, Any],
    replica: int,
    results: dict[str, Any] | None = None,
    metrics: dict[str, Any] | None = None,
    status: str = "succeeded",
    experiment: str = "e",
    profile: str | None = None,
) -> dict[str, Any]:
    return {
        "id": f"{n:016x}", "project": "p", "experiment": experiment, "params": params,
        "replica": replica, "seed": replica + 100, "profile": profile, "config": {"steps": 10},
        "status": status, "results": results or {}, "metrics": metrics,
    }  # fmt: skip


ENERGIES = {300: [-1.312, -1.316, -1.320], 350: [-1.35, -1.36, -1.34]}


def grid() -> list[dict[str, Any]]:
    out = []
    for T, energies in ENERGIES.items():
        for r, e in enumerate(energies):
            out.append(rec(len(out), {"T": T, "model": "lj"}, r,
                           {"energy": e, "phase": "solid" if T < 350 else "liquid",
                            "note": f"r{r}"},
                           {"loss": 0.1 * (r + 1)}))  # fmt: skip
    return out


def test_one_row_per_point_with_mean_and_sample_std() -> None:
    table = aggregate(grid())
    assert table.columns == [
        "params.T", "n", "results.energy", "results.phase", "results.note", "metrics.loss",
        "status", "runs",
    ]  # fmt: skip
    assert table.measured == ["results.energy", "results.phase", "results.note", "metrics.loss"]
    assert table.constant == {"params.model": "lj", "config.steps": 10}
    first, second = table.rows
    assert (first["params.T"], first["n"], second["params.T"]) == (300, 3, 350)
    energy = first["results.energy"]
    assert isinstance(energy, Stat)
    assert energy.mean == pytest.approx(statistics.mean(ENERGIES[300]))
    assert energy.std == pytest.approx(statistics.stdev(ENERGIES[300]))  # sample (n - 1)
    assert (energy.min, energy.max, energy.n) == (-1.32, -1.312, 3)
    assert first["results.phase"] == "solid" and second["results.phase"] == "liquid"
    assert first["results.note"] == Varies(["r0", "r1", "r2"])
    assert first["metrics.loss"].mean == pytest.approx(0.2)
    assert first["status"] == {"succeeded": 3}
    assert first["runs"] == [f"p/e/{i:016x}" for i in range(3)]


def test_missing_values_and_single_runs() -> None:
    records = [
        rec(0, {"T": 1}, 0, {"e": 1.0, "s": "a"}),
        rec(1, {"T": 1}, 1, {}, status="failed"),  # a failed replica: no result
        rec(2, {"T": 2}, 0, {"e": 5, "s": "a"}),
    ]
    table = aggregate(records)
    one, two = table.rows
    assert one["n"] == 2 and one["results.e"] == Stat(1.0, None, 1.0, 1.0, 1)
    assert one["results.s"] == Varies(["a", None])  # a run without the key disagrees
    assert one["status"] == {"succeeded": 1, "failed": 1}
    assert two["results.e"] == Stat(5, None, 5, 5, 1)
    # text and numbers mixed: not a number
    mixed = aggregate([rec(0, {}, 0, {"x": 1}), rec(1, {}, 1, {"x": "a"})])
    assert mixed.rows[0]["results.x"] == Varies([1, "a"])
    assert mixed.columns[:2] == ["n", "results.x"]  # nothing varies: no identity column
    # true is not a number
    flags = aggregate([rec(0, {}, 0, {"ok": True}), rec(1, {}, 1, {"ok": True})])
    assert flags.rows[0]["results.ok"] is True


def test_points_differ_in_experiment_profile_params_or_config() -> None:
    records = [
        rec(0, {"T": 1}, 0, experiment="a"), rec(1, {"T": 1}, 1, experiment="a"),
        rec(2, {"T": 1}, 0, experiment="b"), rec(3, {"T": 1}, 0, experiment="b", profile="x"),
    ]  # fmt: skip
    records[3]["config"] = {"steps": 20}
    table = aggregate(records)
    assert [(r["experiment"], r["profile"], r["n"]) for r in table.rows] == [
        ("p/a", None, 2),
        ("p/b", "x", 1),
        ("p/b", None, 1),
    ]  # fmt: skip  (null sorts last)
    assert "config.steps" in table.columns
    everything = aggregate(records, show_all=True)
    assert "params.T" in everything.columns and everything.constant == {}


def test_sort_where_and_limit() -> None:
    table = aggregate(grid(), sort=["-energy"])
    assert [r["params.T"] for r in table.rows] == [300, 350]
    table = aggregate(grid(), sort=["results.energy"], limit=1)
    assert [r["params.T"] for r in table.rows] == [350]
    assert [r["n"] for r in aggregate(grid(), sort=["-n", "-T"]).rows] == [3, 3]
    table = aggregate(grid(), where=parse_where(["replica!=2"]))
    assert [r["n"] for r in table.rows] == [2, 2]
    assert aggregate(grid(), where=parse_where(["T>1000"])).rows == []
    with pytest.raises(UsageError, match="--sort 'nope': no such column"):
        aggregate(grid(), sort=["nope"])
    with pytest.raises(UsageError, match="give a column name"):
        aggregate(grid(), sort=["-"])


def test_plot_series() -> None:
    table = aggregate(grid())
    y, x, (series,) = plot_series(table, "energy", None)
    assert (y, x, series.label, series.xs) == ("results.energy", "params.T", "", [300, 350])
    assert series.stds[0] == pytest.approx(statistics.stdev(ENERGIES[300]))
    assert plot_series(table, "metrics.loss", "T")[0] == "metrics.loss"
    for result, x_param, problem in [
        ("nope", None, "--plot 'nope': no such column"),
        ("energy", "nope", "--x 'nope': no such column"),
        ("phase", None, "no point has a number for results.phase"),
    ]:
        with pytest.raises(UsageError, match=problem):
            plot_series(table, result, x_param)


def test_plot_series_by_the_other_params() -> None:
    records = [rec(i, {"T": T, "model": m}, r, {"e": T + r})
               for i, (T, m, r) in enumerate((T, m, r) for T in (1, 2) for m in ("a", "b")
                                             for r in (0, 1))]  # fmt: skip
    table = aggregate(records)
    with pytest.raises(UsageError, match="say which param goes on the x axis"):
        plot_series(table, "e", None)
    _, _, series = plot_series(table, "e", "T")
    assert [(s.label, s.xs, s.means) for s in series] == [
        ("model=a", [1, 2], [1.5, 2.5]), ("model=b", [1, 2], [1.5, 2.5]),
    ]  # fmt: skip


def test_an_empty_selection() -> None:
    table = aggregate([])
    assert table.rows == [] and table.columns == ["n", "status", "runs"]
    assert MISSING is not None
