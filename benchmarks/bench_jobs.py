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

With ``--points N`` it measures issue 17's figure instead, the overhead per executed
run (:func:`per_run`): a grid of N new points of ``true`` with ``--jobs 1``, its wall
time divided by N, round by round beside a shell loop of N ``sh -c true`` and,
with ``--baseline MOLEXP`` (another install's ``molexp``, such as the previous
commit's), the same grid run by that molexp.

    python benchmarks/bench_jobs.py [--repeat 5] [--json]
    python benchmarks/bench_jobs.py --points 1000 --repeat 5 [--baseline /old/.venv/bin/molexp]
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
from collections.abc import Callable
from pathlib import Path
from typing import Any

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


def per_run(
    molexps: dict[str, list[str]],
    ws: Path,
    env: dict[str, str],
    points: int,
    rounds: int,
    say: Callable[[str], None] = lambda _: None,
) -> dict[str, Any]:
    """Milliseconds per executed run: each molexp of ``molexps`` (name: argv) runs a
    grid of ``points`` new points of ``true`` with ``--jobs 1`` in workspace ``ws``,
    interleaved round by round with a shell loop of ``points`` ``sh -c true``.

    Returns, per name and for ``"sh -c true"``, the median wall and CPU milliseconds
    per run (the wall time of the whole invocation divided by ``points``: start-up,
    planning and every run's records, supervisor and logs), and the load averages.
    """
    import resource

    stamp = time.strftime("%H%M%S")
    for name, mx in molexps.items():
        exp = f"bench/per-run-{name}-{stamp}"
        subprocess.run([*mx, "-w", str(ws), "experiment", "create", exp, "--param", "n=0",
                        "--command", "true"], env=env, check=True, capture_output=True)  # fmt: skip
    loop = f"i=0; while [ $i -lt {points} ]; do sh -c true; i=$((i+1)); done"
    wall: dict[str, list[float]] = {name: [] for name in [*molexps, "sh -c true"]}
    cpu: dict[str, list[float]] = {name: [] for name in wall}
    load_start = os.getloadavg()
    for r in range(rounds):
        grid = "n=" + ",".join(str(r * points + i + 1) for i in range(points))
        for name in wall:
            argv = (["sh", "-c", loop] if name == "sh -c true" else
                    [*molexps[name], "-w", str(ws), "run", f"bench/per-run-{name}-{stamp}",
                     "--grid", grid, "--jobs", "1"])  # fmt: skip
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            started = time.perf_counter()
            subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)  # fmt: skip
            elapsed = time.perf_counter() - started
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            used = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
            wall[name].append(1000 * elapsed / points)
            cpu[name].append(1000 * used / points)
            say(f"  round {r + 1}/{rounds}: {name}: {wall[name][-1]:.2f} ms per run")
    return {
        "points": points,
        "rounds": rounds,
        "loadavg_start": load_start,
        "loadavg_end": os.getloadavg(),
        "wall_ms": {k: statistics.median(v) for k, v in wall.items()},
        "cpu_ms": {k: statistics.median(v) for k, v in cpu.items()},
        "samples_ms": wall,
    }


def median_of(repeat: int, *args: str, cwd: Path) -> float:
    return statistics.median(molexp(*args, cwd=cwd) for _ in range(repeat))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="runs per figure (median)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--points", type=int, default=0,
                        help="measure the overhead per executed run over a grid of N points")  # fmt: skip
    parser.add_argument(
        "--baseline", metavar="MOLEXP", help="another molexp to time beside this one"
    )
    args = parser.parse_args()
    if args.points:
        main_per_run(args)
        return

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


def main_per_run(args: argparse.Namespace) -> None:
    """``--points N``: issue 17's overhead per executed run (see :func:`per_run`)."""
    exe = Path(sys.executable).parent / "molexp"
    molexps = {"this": [str(exe)] if exe.exists() else [sys.executable, "-m", "molexp"]}
    if args.baseline:
        molexps["baseline"] = [args.baseline]
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import _bench_util as bu

    env = bu.child_env(Path(tempfile.gettempdir()) / "molexp-bench" / "pycache")
    with tempfile.TemporaryDirectory(prefix="molexp-bench-") as tmp:
        ws = Path(tmp) / "ws"
        subprocess.run([*molexps["this"], "init", str(ws), "--name", "bench"], env=env,
                       check=True, capture_output=True)  # fmt: skip
        subprocess.run([*molexps["this"], "-w", str(ws), "project", "create", "bench"], env=env,
                       check=True, capture_output=True)  # fmt: skip
        say = (lambda _: None) if args.json else print
        figures = per_run(molexps, ws, env, args.points, args.repeat, say)
    if args.json:
        print(json.dumps(figures, indent=2))
        return
    load = ", ".join(f"{x:.2f}" for x in figures["loadavg_start"])
    end = ", ".join(f"{x:.2f}" for x in figures["loadavg_end"])
    print(f"{args.points}-point grid of true, --jobs 1; medians of {args.repeat} rounds "
          f"(load average {load} at the start, {end} at the end)")  # fmt: skip
    shell = figures["wall_ms"]["sh -c true"]
    for name in figures["wall_ms"]:
        ms, cpu = figures["wall_ms"][name], figures["cpu_ms"][name]
        print(
            f"  {name:12s} {ms:7.2f} ms per run (CPU {cpu:6.2f} ms)  {ms / shell:6.1f}x sh -c true"
        )
    if "baseline" in figures["wall_ms"]:
        ratio = figures["wall_ms"]["this"] / figures["wall_ms"]["baseline"]
        print(f"  this / baseline: {ratio:.2f}")


if __name__ == "__main__":
    main()
