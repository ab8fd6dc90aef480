"""Queries, aggregation and metrics (issue #14), side by side with their baselines.

    python benchmarks/bench_query.py            # 100,000 runs (built once), 10,000 to aggregate
    python benchmarks/bench_query.py --quick    # 5,000 runs, 2,000 to aggregate, fewer rounds

Figures (medians of interleaved rounds after a warm-up that builds the index):

- ``ls --where 'results.y>0.5'`` (half the runs match), ``--where 'results.y>0.99'``
  (1% match) and ``ls --sort -metrics.loss --limit 10``, each against
  ``ls --status failed`` (1% of runs) over the same workspace, in the same output
  format; goal: within 1.5x (wall time; the ratio of CPU times, less moved by a busy
  machine, is printed beside it);
- ``compare EXP --aggregate`` over one experiment of 10,000 runs (1,000 points x 10
  replicas); goal: < 1 s;
- ``ctx.log(step=i, loss=x, T=y)`` per call, amortised over 200,000 calls including
  every write, against a bare append of the same line (``json.dumps`` + buffered
  ``write``) and against a pre-formatted one; goal: < 5 us.

Workspaces are built with molexp's own core functions into ``--dir`` (default
/tmp/molexp-bench-query) and reused; nothing there is ever deleted.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _bench_util as bu  # noqa: E402

MS = 1000.0


def _y(experiment: int, replica: int) -> float:
    return ((experiment * 1000 + replica) * 7919 % 10007) / 10007  # spread over [0, 1)


def _build_experiment(args: tuple[str, int, int, int]) -> int:
    """The missing runs of experiment ``index``: results ``y``, metric ``loss``."""
    from molexp.api.workspace import Workspace
    from molexp.core.records import plan, runs
    from molexp.core.records.profiles import ResolvedConfig
    from molexp.core.store import files as store

    root, index, points, replicas = args
    ws = Workspace(root)
    exp = ws.project(bu.PROJECT).experiment(
        f"q{index:03d}", params={"lr": 0.001, "variant": index, "T": 300}, replicas=replicas,
        command="true", git_cwd=Path(root),
    )  # fmt: skip
    resolved = ResolvedConfig(profile=None, config=dict(bu.CONFIG), source=None)
    exp.runs_dir.mkdir(parents=True, exist_ok=True)
    created = 0
    grid = [("T", list(range(300, 300 + points)))] if points > 1 else []
    for spec in plan.plan(exp, resolved, grid=grid):
        path = exp.runs_dir / spec.run_id / runs.RUN_FILE
        if path.exists():
            continue
        record = runs.new_record(exp, spec.run_id, spec.params, spec.replica, spec.seed,
                                 spec.profile, spec.config, "derived")  # fmt: skip
        point = spec.params["T"] - 300
        r = spec.replica + point * replicas
        status = "failed" if r % 100 == 7 else "succeeded"
        y = _y(index, r)
        results = {"y": round(y, 6), "energy": round(-1 - point / 1000 + y / 100, 6)}
        metrics = {"loss": {"last": round(1 - y, 6), "step": 100, "n": 101}}
        record["attempts"] = [{
            "n": 1, "status": status, "started_at": record["created_at"],
            "finished_at": record["created_at"], "exit_code": 0 if status == "succeeded" else 1,
            "duration": 12.5, "host": "node017", "pid": 2_000_000_000, "executor": "local",
            "scheduler_job_id": None, "argv": ["/bin/sh", "-c", "true"], "cwd": root,
            "git": None, "error": None, "results": results, "metrics": metrics,
        }]  # fmt: skip
        record["results"] = results
        record["metrics"] = {"loss": metrics["loss"]["last"]}
        record["status"] = status
        path.parent.mkdir(exist_ok=True)
        created += store.create_exclusive(path, store.dumps_json(record), root=Path(root))
    return created


def build(root: Path, experiments: int, points: int, replicas: int) -> None:
    marker = root.with_name(root.name + ".complete")
    if marker.exists():
        return
    from molexp.api.workspace import Workspace

    Workspace(root).init(name="bench-query")
    say(f"building {experiments} x {points * replicas} runs in {root} (once)")
    start = time.perf_counter()
    jobs = [(str(root), i, points, replicas) for i in range(experiments)]
    if experiments > 1:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(max_workers=2) as pool:
            for i, _ in enumerate(pool.map(_build_experiment, jobs), 1):
                if i % 10 == 0:
                    say(f"  {i}/{experiments} experiments ({time.perf_counter() - start:.0f} s)")
    else:
        _build_experiment(jobs[0])
    marker.write_text(json.dumps({"seconds": round(time.perf_counter() - start, 1)}))


def say(message: str) -> None:
    sys.stderr.write(message + "\n")
    sys.stderr.flush()


LOG = r"""
import json, os, statistics, sys, time
import molexp as mx

n, rounds, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
ctx = mx.current_run()
result = {"log": [], "dumps": [], "format": []}
for r in range(rounds):
    t = time.perf_counter()
    for i in range(n):
        ctx.log(step=i, loss=1.0 / (i + 1), T=300.5)
    ctx.flush_metrics()
    result["log"].append((time.perf_counter() - t) / n)
    t = time.perf_counter()
    with open(os.path.join(out, f"dumps{r}.jsonl"), "a") as fh:
        for i in range(n):
            fh.write(json.dumps({"step": i, "loss": 1.0 / (i + 1), "T": 300.5, "time": time.time()}) + "\n")
    result["dumps"].append((time.perf_counter() - t) / n)
    t = time.perf_counter()
    with open(os.path.join(out, f"format{r}.jsonl"), "a") as fh:
        for i in range(n):
            fh.write('{"step":%d,"loss":%r,"T":%r,"time":%r}\n' % (i, 1.0 / (i + 1), 300.5, time.time()))
    result["format"].append((time.perf_counter() - t) / n)
lines = sum(1 for _ in open(ctx.metrics_file))
assert lines == n * rounds, lines
print(json.dumps({k: statistics.median(v) for k, v in result.items()}))
"""


def log_cost(calls: int, rounds: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="molexp-log-") as tmp:
        env = dict(os.environ, MOLEXP_RUN_ID="bench", MOLEXP_RUN_DIR=tmp, MOLEXP_WORKSPACE=tmp,
                   MOLEXP_METRICS_FILE=str(Path(tmp) / "metrics.jsonl"))  # fmt: skip
        proc = subprocess.run([sys.executable, "-c", LOG, str(calls), str(rounds), tmp],
                              env=env, capture_output=True, text=True, check=True)  # fmt: skip
        out: dict[str, float] = json.loads(proc.stdout)
        return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--dir", default=os.environ.get("MOLEXP_BENCH_QUERY_DIR", "/tmp/molexp-bench-query")
    )
    parser.add_argument("--quick", action="store_true", help="5,000 runs, 2,000 to aggregate")
    parser.add_argument(
        "--reps", type=int, default=0, help="rounds per figure (default 7; quick 3)"
    )
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--no-goals", action="store_true", help="exit 0 even when a goal is missed")
    args = parser.parse_args(argv)
    base = Path(args.dir).absolute()
    base.mkdir(parents=True, exist_ok=True)
    reps = args.reps or (3 if args.quick else 7)
    experiments, replicas = (5, 1000) if args.quick else (100, 1000)
    agg_points, agg_replicas = (200, 10) if args.quick else (1000, 10)
    total = experiments * replicas
    big = base / f"ws-{total}"
    agg = base / f"agg-{agg_points * agg_replicas}"
    build(big, experiments, 1, replicas)
    build(agg, 1, agg_points, agg_replicas)
    env = bu.child_env(base / "pycache")
    mx = [str(Path(sys.executable).parent / "molexp")]
    figures: list[dict[str, Any]] = []

    say(f"timing listings of {total} runs ({reps} rounds)")
    ls = [*mx, "-w", str(big), "ls"]
    for fmt in ("ids", "table"):
        f = ["--format", fmt]
        t = bu.time_commands([
            ("failed", [*ls, "--status", "failed", *f]),
            ("where-half", [*ls, "--where", "results.y>0.5", *f]),
            ("where-1pc", [*ls, "--where", "results.y>0.99", *f]),
            ("sort", [*ls, "--sort", "-metrics.loss", "--limit", "10", *f]),
        ], reps, env, big)  # fmt: skip
        base_ms = t["failed"].median * MS
        base_cpu = t["failed"].cpu_median * MS
        figures.append({"name": f"ls --status failed --format {fmt} ({total} runs)", "ms": base_ms,
                        "cpu_ms": base_cpu})  # fmt: skip
        for key, label in (
            ("where-half", "ls --where 'results.y>0.5'   (50% match)"),
            ("where-1pc", "ls --where 'results.y>0.99'  (1% match)"),
            ("sort", "ls --sort -metrics.loss --limit 10"),
        ):
            ms = t[key].median * MS
            cpu = t[key].cpu_median * MS
            figures.append({"name": f"{label} --format {fmt}", "ms": ms, "cpu_ms": cpu,
                            "baseline_ms": base_ms, "ratio": ms / base_ms,
                            "cpu_ratio": cpu / base_cpu, "goal": "<= 1.5x",
                            "met": ms <= 1.5 * base_ms})  # fmt: skip

    say(f"timing compare --aggregate of {agg_points * agg_replicas} runs")
    t = bu.time_commands([
        ("aggregate", [*mx, "-w", str(agg), "compare", f"{bu.PROJECT}/q000", "--aggregate", "-f", "json"]),
        ("compare", [*mx, "-w", str(agg), "compare", f"{bu.PROJECT}/q000", "-f", "json"]),
    ], reps, env, agg)  # fmt: skip
    ms = t["aggregate"].median * MS
    figures.append({"name": f"compare --aggregate ({agg_points * agg_replicas} runs, {agg_points} points)",
                    "ms": ms, "baseline_ms": t["compare"].median * MS,
                    "baseline": "compare (one row per run)", "goal": "< 1000 ms", "met": ms < 1000})  # fmt: skip

    say("timing ctx.log")
    calls = 20_000 if args.quick else 200_000
    cost = log_cost(calls, reps)
    us = cost["log"] * 1e6
    figures.append({"name": f"ctx.log per call (amortised, {calls} calls)", "us": us,
                    "baseline_us": cost["dumps"] * 1e6, "baseline": "json.dumps + write",
                    "ratio": cost["log"] / cost["dumps"], "goal": "< 5 us", "met": us < 5})  # fmt: skip
    figures.append(
        {
            "name": "bare append of a pre-formatted line (% format + write)",
            "us": cost["format"] * 1e6,
        }
    )
    if args.json:
        print(json.dumps({"reps": reps, "loadavg": os.getloadavg(), "figures": figures}, indent=2))
    else:
        for f in figures:
            value = f"{f['ms']:.0f} ms" if "ms" in f else f"{f['us']:.2f} us"
            base_v = (f"{f['baseline_ms']:.0f} ms" if "baseline_ms" in f
                      else f"{f['baseline_us']:.2f} us" if "baseline_us" in f else "")  # fmt: skip
            ratio = f"{f['ratio']:.2f}x" if "ratio" in f else ""
            cpu = f"{f['cpu_ratio']:.2f}x" if "cpu_ratio" in f else ""
            met = {None: "", True: "yes", False: "NO"}[f.get("met")]
            print(
                f"{f['name']:<62} {value:>10}  {base_v:>10}  {ratio:>6}  {cpu:>6}  "
                f"{f.get('goal', ''):>10}  {met}"
            )
        load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
        print(f"\nmedians of {reps} rounds; load average now {load}")
    return 0 if args.no_goals or all(f.get("met", True) for f in figures) else 1


if __name__ == "__main__":
    sys.exit(main())
