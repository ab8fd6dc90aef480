"""molexp on a real SLURM: submission, listing and the task path, with medians.

    python benchmarks/bench_slurm.py [--reps N] [--sizes 1000,5000] [--pack-runs 200]

Start a SLURM first (`ci/slurm-ci.sh up`, then `export SLURM_CONF=/tmp/slurm-ci/slurm.conf`).
Each figure is the median of ``--reps`` rounds, in fresh workspaces (a temporary
directory):

- **submit N**: `molexp run --executor slurm` of N new runs (held back with
  `--begin=now+1hour`, so nothing runs): the arrays (split at the cluster's
  `MaxArraySize`), N records, one release.  Per run: the ratio to N=1,000.
- **ls with N queued**: `molexp ls --format json` of those N queued runs, and how
  many times it called a SLURM command (counted by shims on PATH that log and exec
  the real one); the baseline is the same listing with 10 queued runs: the calls
  must not grow with N.
- **task path**: runs/s from submission to every run succeeded, for an `echo`
  command, with `--pack 1` (the baseline) and `--pack 10`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MOLEXP = [sys.executable, "-m", "molexp"]
TOOLS = ("sbatch", "squeue", "scontrol", "scancel", "sacct")


def molexp(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [*MOLEXP, *args], cwd=cwd, capture_output=True, text=True, timeout=1800, env=env
    )
    if proc.returncode != 0:
        raise SystemExit(
            f"molexp {' '.join(args)} failed ({proc.returncode}): {proc.stderr[-2000:]}"
        )
    return proc


def workspace(root: Path, name: str, n: int, command: str = "echo replica {replica}") -> Path:
    ws = root / name
    ws.mkdir()
    molexp("init", ".", "--name", "bench", cwd=ws)
    molexp("project", "create", "b", cwd=ws)
    molexp("experiment", "create", "b/e", "--replicas", str(n), "--command", command, cwd=ws)
    return ws


def shims(root: Path) -> tuple[Path, Path]:
    """A PATH directory whose SLURM commands log each call, then run the real one."""
    bindir, log = root / "shim-bin", root / "calls.log"
    bindir.mkdir(exist_ok=True)
    for tool in TOOLS:
        real = shutil.which(tool)
        if real:
            (bindir / tool).write_text(f'#!/bin/sh\necho {tool} >>"{log}"\nexec {real} "$@"\n')
            (bindir / tool).chmod(0o755)
    return bindir, log


def cancel_all(ws: Path) -> None:
    molexp("cancel", "b/e", "--timeout", "120", cwd=ws)


def submit_and_list(root: Path, n: int, rep: int) -> dict[str, float]:
    ws = workspace(root, f"held-{n}-{rep}", n)
    started = time.perf_counter()
    out = molexp("run", "b/e", "--executor", "slurm", "--sbatch-arg=--begin=now+3600", cwd=ws)
    submit = time.perf_counter() - started
    arrays = out.stderr.count("SLURM job array ")
    bindir, log = shims(root)
    env = dict(os.environ, PATH=f"{bindir}:{os.environ['PATH']}")
    log.unlink(missing_ok=True)
    started = time.perf_counter()
    listed = molexp("ls", "b/e", "--format", "json", cwd=ws, env=env)
    ls = time.perf_counter() - started
    calls = len(log.read_text().splitlines()) if log.exists() else 0
    records = json.loads(listed.stdout)
    assert len(records) == n and {r["status"] for r in records} == {"queued"}, "not all queued"
    cancel_all(ws)
    return {"submit": submit, "ls": ls, "calls": calls, "arrays": arrays}


def task_path(root: Path, n: int, pack: int, rep: int) -> float:
    ws = workspace(root, f"pack-{pack}-{rep}", n)
    runs = ws / "projects/b/experiments/e/runs"
    started = time.perf_counter()
    molexp("run", "b/e", "--executor", "slurm", "--pack", str(pack), cwd=ws)
    deadline = started + 1800
    while True:
        done = 0
        for path in runs.glob("*/run.json"):
            try:
                if json.loads(path.read_bytes())["status"] == "succeeded":
                    done += 1
            except ValueError:
                pass
        if done == n:
            break
        if time.perf_counter() > deadline:
            raise SystemExit(f"--pack {pack}: {done}/{n} succeeded after 30 min")
        time.sleep(0.2)
    return n / (time.perf_counter() - started)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3, help="rounds per figure (median)")
    parser.add_argument("--sizes", default="1000,5000", help="queued runs to submit and list")
    parser.add_argument(
        "--pack-runs", type=int, default=200, help="runs for the task-path figure (0: skip it)"
    )
    args = parser.parse_args(argv)
    for tool in ("sbatch", "squeue", "scontrol"):
        if shutil.which(tool) is None:
            print(f"{tool} not found: start SLURM with ci/slurm-ci.sh up", file=sys.stderr)
            return 1
    ping = subprocess.run(["scontrol", "ping"], capture_output=True, text=True)
    if " is UP" not in ping.stdout:
        print(f"SLURM controller not reachable: {ping.stdout}{ping.stderr}", file=sys.stderr)
        return 1
    config = subprocess.run(["scontrol", "show", "config"], capture_output=True, text=True).stdout
    limit = next(
        (ln.split("=")[1].strip() for ln in config.splitlines() if ln.startswith("MaxArraySize")),
        "?",
    )
    cpus = subprocess.run(
        ["sinfo", "-h", "-o", "%c"], capture_output=True, text=True
    ).stdout.split()
    print(f"SLURM: {ping.stdout.strip()}; MaxArraySize {limit}; CPUs per node {','.join(cpus)}; "
          f"host CPUs {os.cpu_count()}; {args.reps} round(s) per figure, medians")  # fmt: skip
    sizes = [10, *(int(s) for s in args.sizes.split(",") if s)]
    with tempfile.TemporaryDirectory(prefix="molexp-bench-slurm-") as tmp:
        root = Path(tmp)
        figures: dict[int, list[dict[str, float]]] = {n: [] for n in sizes}
        for rep in range(args.reps):
            for n in sizes:
                figures[n].append(submit_and_list(root, n, rep))
        print(f"\n{'queued runs':>11}  {'arrays':>6}  {'submit':>8}  {'per run':>8}  "
              f"{'ls':>7}  {'SLURM calls per ls':>18}")  # fmt: skip
        base_per_run = None
        for n in sizes:
            med = {k: statistics.median(f[k] for f in figures[n]) for k in figures[n][0]}
            per_run = med["submit"] / n
            if n == 1000 or base_per_run is None and n != 10:
                base_per_run = per_run
            ratio = f" ({per_run / base_per_run:.2f}x)" if base_per_run and n != 10 else ""
            print(f"{n:>11}  {med['arrays']:>6.0f}  {med['submit']:>7.2f}s  "
                  f"{per_run * 1000:>6.2f}ms{ratio}  {med['ls']:>6.2f}s  {med['calls']:>18.0f}")  # fmt: skip
        if args.pack_runs <= 0:
            return 0
        print(f"\ntask path, {args.pack_runs} runs of `echo`:")
        rates: dict[int, list[float]] = {1: [], 10: []}
        for rep in range(args.reps):
            for pack in (1, 10):
                rates[pack].append(task_path(root, args.pack_runs, pack, rep))
        base = statistics.median(rates[1])
        for pack in (1, 10):
            med = statistics.median(rates[pack])
            print(f"  --pack {pack:<3} {med:6.1f} runs/s  ({med / base:.2f}x --pack 1)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
