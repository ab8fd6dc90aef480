"""The cost of environment capture per attempt (SPEC §16), side by side.

    python benchmarks/bench_env.py                # 15 rounds
    python benchmarks/bench_env.py --reps 31 --dir /tmp/molexp-bench-env

Builds a workspace and a real virtual environment (``python -m venv
--without-pip``, first on the command's ``PATH``, so the command's ``python`` is
that one), then times, interleaved round by round so the machine's noise hits all
alike:

- ``molexp run --force`` of one run with ``MOLEXP_ENV=off`` (no capture: the
  baseline), ``basic`` (facts, no Python) and the default ``full`` with a warm cache;
- the same right after a package change (a new ``*.dist-info`` folder in the venv's
  ``site-packages``, which is what ``pip install`` leaves): the list is read again
  and a new ``environments/<hash>.txt`` written;
- in process, :func:`molexp.core.records.environments.capture` alone: warm, after a
  package change, and cold (no cache: the interpreter is asked, a subprocess).

Prints the medians and, for each, the difference to the baseline.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _molexp() -> list[str]:
    return [sys.executable, "-m", "molexp"]


def setup(base: Path) -> tuple[Path, Path, dict[str, str]]:
    """``(workspace, site-packages, env)``: a workspace with one run of
    ``python -c pass`` done once, and the venv its command runs in."""
    base.mkdir(parents=True, exist_ok=True)
    venv = base / "venv"
    if not (venv / "bin" / "python").exists():
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    (site,) = (venv / "lib").glob("python*/site-packages")
    ws = base / f"ws-{os.getpid()}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COVERAGE_", "MOLEXP_"))}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["MOLEXP_WORKSPACE"] = str(ws)
    for args in (
        ["init", str(ws)],
        ["project", "create", "b"],
        ["experiment", "create", "b/env", "--command", "python -c pass"],
        ["run", "b/env"],
    ):
        subprocess.run([*_molexp(), *args], env=env, check=True, capture_output=True, cwd=base)
    return ws, site, env


def _time_run(env: dict[str, str], cwd: Path) -> float:
    start = time.perf_counter()
    subprocess.run(
        [*_molexp(), "run", "b/env", "--force"], env=env, check=True, capture_output=True, cwd=cwd
    )
    return time.perf_counter() - start


def _change(site: Path, n: int) -> None:
    """What a `pip install` leaves in site-packages: a new distribution folder."""
    dist = site / f"benchpkg{n}-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: benchpkg{n}\nVersion: 0.1\n")


def commands(ws: Path, site: Path, env: dict[str, str], reps: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {k: [] for k in ("off", "basic", "full, warm", "full, changed")}
    for i in range(reps + 1):
        for mode in ("off", "basic", "full, warm", "full, changed"):
            if mode == "full, changed":
                _change(site, 1000 + i)
            run_env = dict(env, MOLEXP_ENV=mode.split(",")[0])
            took = _time_run(run_env, ws)
            if i:  # the first round warms caches and the page cache
                times[mode].append(took)
    return times


def in_process(ws: Path, site: Path, env: dict[str, str], reps: int) -> dict[str, list[float]]:
    import shutil

    from molexp.core.records import environments

    argv = ["/bin/sh", "-c", "python -c pass"]
    out: dict[str, list[float]] = {"capture, warm": [], "capture, changed": [], "capture, cold": []}
    environments.capture(ws, argv, ws, env)
    for i in range(reps):
        start = time.perf_counter()
        environments.capture(ws, argv, ws, env)
        out["capture, warm"].append(time.perf_counter() - start)
        _change(site, 2000 + i)
        start = time.perf_counter()
        environments.capture(ws, argv, ws, env)
        out["capture, changed"].append(time.perf_counter() - start)
        shutil.rmtree(ws / environments.CACHE_DIR, ignore_errors=True)
        start = time.perf_counter()
        environments.capture(ws, argv, ws, env)
        out["capture, cold"].append(time.perf_counter() - start)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=15, help="rounds per figure (default 15)")
    parser.add_argument(
        "--dir", type=Path, default=Path("/tmp/molexp-bench-env"), help="where to build"
    )
    args = parser.parse_args(argv)
    ws, site, env = setup(args.dir)
    sys.path.insert(0, str(ROOT))
    runs = commands(ws, site, env, args.reps)
    calls = in_process(ws, site, env, args.reps)
    base = statistics.median(runs["off"])
    print(f"environment capture, {args.reps} rounds, medians ({sys.executable})")
    print(f"{'figure':<44}{'median':>12}{'vs off':>12}")
    for name, values in runs.items():
        med = statistics.median(values)
        delta = f"{(med - base) * 1000:+.1f} ms" if name != "off" else ""
        print(f"{'molexp run --force, MOLEXP_ENV=' + name:<44}{med * 1000:>9.1f} ms{delta:>12}")
    for name, values in calls.items():
        print(f"{name + ' (in process)':<44}{statistics.median(values) * 1000:>9.2f} ms")
    envs = len(list((ws / "environments").iterdir()))
    print(f"package lists stored: {envs} (one per distinct environment)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
