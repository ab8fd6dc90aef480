"""`molexp assets add` of a large file against `cp` of the same file.

    python benchmarks/bench_assets.py                 # 1 GiB, 5 repetitions
    python benchmarks/bench_assets.py --size-mib 256 --reps 3

The source file (random bytes) and a fresh workspace live in one temporary
folder, so both commands copy within one filesystem.  Every repetition copies
to a new name (no delete-then-recreate inside the timed loop), alternates which
command goes first, and calls ``sync`` (untimed) before each timed command so
both start with no dirty pages from the previous one.  Peak memory is the
``ru_maxrss`` of each child process (``os.wait4``).

Exit status: 0 when the median of the per-repetition ratios molexp/cp is at
most ``--max-ratio`` (1.5) and molexp's peak RSS is under ``--max-rss-mib``
(100); 1 otherwise.
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


def molexp_argv() -> list[str]:
    script = Path(sys.executable).parent / "molexp"
    return [str(script)] if script.exists() else [sys.executable, "-m", "molexp"]


def timed(argv: list[str]) -> tuple[float, float, float]:
    """Run ``argv``; return (wall s, CPU s (user+sys), peak RSS MiB). Raise if it fails."""
    os.sync()
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _pid, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    code = os.waitstatus_to_exitcode(status)
    proc.returncode = code
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    if proc.stderr:
        proc.stderr.close()
    if code != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({code}): {err.strip()}")
    return elapsed, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024  # Linux: KiB


def make_source(path: Path, size_mib: int) -> None:
    block = 1 << 20
    with open(path, "wb") as fh:
        for _ in range(size_mib):
            fh.write(os.urandom(block))
        fh.flush()
        os.fsync(fh.fileno())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024, help="source size (default 1024)")
    parser.add_argument("--reps", type=int, default=5, help="repetitions (default 5)")
    parser.add_argument("--dir", default=None, help="where to create the temporary folder")
    parser.add_argument("--max-ratio", type=float, default=1.5)
    parser.add_argument("--max-rss-mib", type=float, default=100.0)
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="molexp-bench-", dir=args.dir))
    try:
        src, ws, copies = work / "source.bin", work / "ws", work / "copies"
        copies.mkdir()
        print(f"creating {args.size_mib} MiB of random bytes in {work} ...", file=sys.stderr)
        make_source(src, args.size_mib)
        mx = molexp_argv()
        subprocess.run([*mx, "init", str(ws), "--name", "bench"], check=True, capture_output=True)

        rows = []
        for i in range(args.reps):
            cp_cmd = ["cp", str(src), str(copies / f"copy-{i}.bin")]
            mx_cmd = [*mx, "-w", str(ws), "assets", "add", ".", f"bench-{i}", str(src)]
            if i % 2 == 0:
                cp_t, cp_cpu, cp_rss = timed(cp_cmd)
                mx_t, mx_cpu, mx_rss = timed(mx_cmd)
            else:
                mx_t, mx_cpu, mx_rss = timed(mx_cmd)
                cp_t, cp_cpu, cp_rss = timed(cp_cmd)
            rows.append((i + 1, cp_t, mx_t, mx_t / cp_t, cp_cpu, mx_cpu, cp_rss, mx_rss))

        shown = subprocess.run(
            [*mx, "-w", str(ws), "assets", "verify", "."], capture_output=True, text=True
        )
        record = json.loads(
            subprocess.run(
                [*mx, "-w", str(ws), "assets", "show", ".", "bench-0", "--json"],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        )
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)

    print(
        f"\nmolexp assets add vs cp, {args.size_mib} MiB, {args.reps} repetitions "
        f"({os.cpu_count()} CPUs)\n"
    )
    print(
        f"{'rep':>3}  {'cp s':>7}  {'molexp s':>8}  {'ratio':>6}  {'cp CPU s':>8}  "
        f"{'molexp CPU s':>12}  {'cp RSS MiB':>10}  {'molexp RSS MiB':>14}"
    )
    for rep, cp_t, mx_t, ratio, cp_cpu, mx_cpu, cp_rss, mx_rss in rows:
        print(
            f"{rep:>3}  {cp_t:>7.3f}  {mx_t:>8.3f}  {ratio:>6.2f}  {cp_cpu:>8.3f}  "
            f"{mx_cpu:>12.3f}  {cp_rss:>10.1f}  {mx_rss:>14.1f}"
        )
    med_cp = statistics.median(r[1] for r in rows)
    med_mx = statistics.median(r[2] for r in rows)
    med_ratio = statistics.median(r[3] for r in rows)
    peak = max(r[7] for r in rows)
    cpu_ratio = statistics.median(r[5] for r in rows) / statistics.median(r[4] for r in rows)
    print(
        f"\nmedian cp {med_cp:.3f} s, median molexp {med_mx:.3f} s "
        f"({args.size_mib / med_mx:.0f} MiB/s); ratio of medians {med_mx / med_cp:.2f}; "
        f"median ratio {med_ratio:.2f} (goal <= {args.max_ratio})"
    )
    print(f"median CPU time ratio {cpu_ratio:.2f} (informative: less sensitive to a busy disk)")
    print(
        f"peak molexp RSS {peak:.1f} MiB (goal < {args.max_rss_mib}; ru_maxrss, which "
        "includes the forking Python before exec)"
    )
    print(f"verify: exit {shown.returncode}; content_hash {record['content_hash']}")
    ok = med_ratio <= args.max_ratio and peak < args.max_rss_mib and shown.returncode == 0
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
