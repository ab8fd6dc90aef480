"""How much does `molexp run --jobs` add to the work itself?

Times (median of --repeat runs, each a fresh `molexp` process):

* ``noop``: `molexp run` of 8 runs that are all up to date (start-up, planning,
  reading 8 records: the fixed cost of an invocation);
* ``true, --jobs 1``: 8 runs of ``true`` one after the other: the cost of one run
  (claim, record writes, supervisor process, logs) is ``(wall - noop) / 8``;
* ``sleep 1, --jobs 4``: 8 runs of ``sleep 1``, 4 at once (the issue's figure; ideal
  2 s).  Each slot runs 2 runs, so the overhead per run is
  ``(wall - noop - 2 s) / 2``;
* ``sleep 1, --jobs 8``: the same, all at once (ideal 1 s).

    python benchmarks/bench_jobs.py [--repeat 5] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RUNS = 8
GRID = "n=" + ",".join(str(i) for i in range(1, RUNS + 1))


def molexp(*args: str, cwd: Path) -> float:
    """Wall time of one `molexp` invocation (it must succeed)."""
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "molexp", *args], cwd=cwd, capture_output=True, text=True
    )
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"molexp {' '.join(args)} failed ({proc.returncode}): {proc.stderr}")
    return elapsed


def median_of(repeat: int, *args: str, cwd: Path) -> float:
    return statistics.median(molexp(*args, cwd=cwd) for _ in range(repeat))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="runs per figure (median)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="molexp-bench-") as tmp:
        ws = Path(tmp) / "ws"
        os.environ.pop("MOLEXP_WORKSPACE", None)
        molexp("init", str(ws), "--name", "bench", cwd=Path(tmp))
        molexp("project", "create", "bench", cwd=ws)
        molexp(
            "experiment", "create", "bench/sleep", "--param", "n=0", "--command", "sleep 1", cwd=ws
        )
        molexp("experiment", "create", "bench/true", "--param", "n=0", "--command", "true", cwd=ws)

        run = ("run", "--grid", GRID)
        molexp(*run[:1], "bench/true", *run[1:], cwd=ws)  # warm caches, create the records
        noop = median_of(args.repeat, "run", "bench/true", "--grid", GRID, cwd=ws)
        seq = median_of(args.repeat, "run", "bench/true", "--grid", GRID, "--force", cwd=ws)
        jobs4 = median_of(
            args.repeat, "run", "bench/sleep", "--grid", GRID, "--jobs", "4", "--force", cwd=ws
        )
        jobs8 = median_of(
            args.repeat, "run", "bench/sleep", "--grid", GRID, "--jobs", "8", "--force", cwd=ws
        )

    figures = {
        "runs": RUNS,
        "repeat": args.repeat,
        "noop_s": round(noop, 3),
        "true_jobs1_s": round(seq, 3),
        "per_run_cost_s": round((seq - noop) / RUNS, 4),
        "sleep1_jobs4_s": round(jobs4, 3),
        "sleep1_jobs4_overhead_vs_ideal_s": round(jobs4 - 2.0, 3),
        "sleep1_jobs4_per_run_overhead_s": round((jobs4 - noop - 2.0) / 2, 4),
        "sleep1_jobs8_s": round(jobs8, 3),
        "sleep1_jobs8_per_run_overhead_s": round(jobs8 - noop - 1.0, 4),
    }
    if args.json:
        print(json.dumps(figures, indent=2))
        return
    print(f"median of {args.repeat} runs each, {RUNS} runs per invocation")
    print(f"  molexp run, all {RUNS} up to date (fixed cost)   {noop:6.3f} s")
    print(f"  {RUNS} x true, --jobs 1                           {seq:6.3f} s"
          f"   -> {1000 * (seq - noop) / RUNS:5.1f} ms per run")  # fmt: skip
    print(f"  {RUNS} x sleep 1, --jobs 4 (ideal 2 s)            {jobs4:6.3f} s"
          f"   -> +{jobs4 - 2:5.3f} s vs ideal, "
          f"{1000 * (jobs4 - noop - 2) / 2:5.1f} ms per run beyond start-up")  # fmt: skip
    print(f"  {RUNS} x sleep 1, --jobs 8 (ideal 1 s)            {jobs8:6.3f} s"
          f"   -> +{jobs8 - 1:5.3f} s vs ideal")  # fmt: skip
    print(
        f"  goal: {RUNS} x sleep 1 with --jobs 4 under 2.5 s: {'met' if jobs4 < 2.5 else 'MISSED'}"
    )


if __name__ == "__main__":
    main()
