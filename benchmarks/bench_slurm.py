"""Time from `molexp run --executor slurm` to every run succeeded, on a real SLURM.

    python benchmarks/bench_slurm.py [N ...]        (default: 4 32)

Each figure is one fresh workspace (in a temporary directory) with an experiment
of N replicas whose command is `echo`, so the time is molexp's and SLURM's own:
submission, scheduling, task start-up, recording.  Start a SLURM first
(`ci/slurm-ci.sh up`, then `export SLURM_CONF=/tmp/slurm-ci/slurm.conf`).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

MOLEXP = [sys.executable, "-m", "molexp"]


def molexp(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([*MOLEXP, *args], cwd=cwd, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise SystemExit(
            f"molexp {' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()}"
        )
    return proc


def records(runs: Path) -> list[dict[str, object]]:
    out = []
    for path in runs.glob("*/run.json"):
        try:
            out.append(json.loads(path.read_bytes()))
        except ValueError:
            pass  # never half-written (atomic rename), but be safe
    return out


def ts(text: object) -> float:
    return datetime.fromisoformat(str(text)).timestamp()


def bench(n: int, root: Path) -> dict[str, float]:
    ws = root / f"ws{n}"
    ws.mkdir()
    molexp("init", ".", "--name", "bench", cwd=ws)
    molexp("project", "create", "b", cwd=ws)
    molexp(
        "experiment",
        "create",
        "b/echo",
        "--replicas",
        str(n),
        "--command",
        "echo replica {replica}",
        cwd=ws,
    )
    runs = ws / "projects/b/experiments/echo/runs"
    started = time.time()
    molexp("run", "b/echo", "--executor", "slurm", cwd=ws)
    submitted = time.time()
    deadline = started + 600
    while True:
        recs = records(runs)
        if len(recs) == n and all(r["status"] == "succeeded" for r in recs):
            break
        bad = [r["status"] for r in recs if r["status"] in ("failed", "cancelled", "interrupted")]
        if bad or time.time() > deadline:
            raise SystemExit(f"{n} replicas: {bad or 'timed out'}")
        time.sleep(0.05)
    done = time.time()
    attempts = [r["attempts"][-1] for r in recs]  # type: ignore[index]
    return {
        "n": n,
        "submit": submitted - started,
        "first_start": min(ts(a["started_at"]) for a in attempts) - started,
        "all_succeeded": done - started,
    }


def main(argv: list[str]) -> int:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sizes", nargs="*", type=int, help="replica counts (default: 4 32)")
    sizes = parser.parse_args(argv).sizes or [4, 32]
    for tool in ("sbatch", "squeue", "scontrol"):
        if shutil.which(tool) is None:
            print(f"{tool} not found: start SLURM with ci/slurm-ci.sh up", file=sys.stderr)
            return 1
    ping = subprocess.run(["scontrol", "ping"], capture_output=True, text=True)
    if " is UP" not in ping.stdout:
        print(f"SLURM controller not reachable: {ping.stdout}{ping.stderr}", file=sys.stderr)
        return 1
    cpus = subprocess.run(
        ["sinfo", "-h", "-o", "%c"], capture_output=True, text=True
    ).stdout.split()
    print(
        f"SLURM: {ping.stdout.strip()}; CPUs per node: {','.join(cpus)}; host CPUs: {os.cpu_count()}"
    )
    print(f"{'replicas':>8}  {'submit':>8}  {'first start':>11}  {'all succeeded':>13}")
    with tempfile.TemporaryDirectory(prefix="molexp-bench-") as tmp:
        for n in sizes:
            r = bench(n, Path(tmp))
            print(
                f"{n:>8}  {r['submit']:>7.2f}s  {r['first_start']:>10.2f}s  {r['all_succeeded']:>12.2f}s"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
