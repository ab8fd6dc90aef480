"""Start-up of one commit against another, side by side in one run.

    python benchmarks/bench_startup.py --against 2022dff        # default: HEAD~1
    python benchmarks/bench_startup.py --against v0.1.0 --reps 15

Builds both commits the same way, once each (a git worktree and a virtualenv with
molexp's own dependencies only, under /tmp/molexp-bench/commits/<sha>/, reused by
later runs; so a development venv's extra packages do not weigh on one side), then
times, interleaved
round by round so the machine's noise hits both alike:

- ``molexp --help``
- a no-op ``molexp run`` (the run succeeded already: "up to date")
- ``molexp ls`` of a small workspace

and prints the medians and the ratio this checkout / the other commit (below 1.0:
this checkout is faster).  Both use the same Python and the same workspace.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _bench_util as bu  # noqa: E402

BASE = Path("/tmp/molexp-bench/commits")


def git(*args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(bu.ROOT), *args], capture_output=True, text=True, check=True
    ).stdout.strip()


def build(rev: str) -> Path:
    """The ``molexp`` executable of commit ``rev`` (built once)."""
    sha = git("rev-parse", "--verify", f"{rev}^{{commit}}")
    home = BASE / sha[:12]
    exe = home / "venv" / "bin" / "molexp"
    if exe.exists():
        return exe
    home.mkdir(parents=True, exist_ok=True)
    tree = home / "src"
    if not tree.exists():
        git("worktree", "add", "--detach", str(tree), sha)
    subprocess.run([sys.executable, "-m", "venv", str(home / "venv")], check=True)
    pip = [str(home / "venv" / "bin" / "python"), "-m", "pip", "install", "-q"]
    subprocess.run([*pip, "-e", str(tree)], check=True)
    return exe


def workspace(root: Path, exe: Path) -> Path:
    """A small workspace with one succeeded run (built with ``exe``)."""
    ws = root / "startup-ws"
    if (ws / "workspace.yaml").exists():
        return ws
    env = bu.child_env(None)
    for argv in (
        ["init", str(ws)],
        ["-w", str(ws), "project", "create", "p"],
        ["-w", str(ws), "experiment", "create", "p/e", "--param", "x=1", "--command", "true"],
        ["-w", str(ws), "run", "p/e"],
    ):
        subprocess.run([str(exe), *argv], env=env, check=True, capture_output=True)
    return ws


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--against", default="HEAD~1", help="the other commit (default HEAD~1)")
    parser.add_argument("--this", default="HEAD", help="this side's commit (default HEAD)")
    parser.add_argument("--reps", type=int, default=11, help="rounds (default 11)")
    args = parser.parse_args()
    this = build(args.this)
    other = build(args.against)
    ws = workspace(BASE, this)
    env = bu.child_env(BASE / "pycache")
    commands = {
        "--help": ["--help"],
        "no-op run": ["-w", str(ws), "run", "p/e"],
        "ls": ["-w", str(ws), "ls"],
    }
    pairs = []
    for name, argv in commands.items():
        pairs += [(f"this {name}", [str(this), *argv]), (f"other {name}", [str(other), *argv])]
    timings = bu.time_commands(pairs, args.reps, env, ws, warmup=2)
    print(f"{args.this} ({git('rev-parse', '--short', args.this)}) vs {args.against}; "
          f"medians of {args.reps}, interleaved")  # fmt: skip
    print(f"{'command':<12} {'this':>10} {'other':>10} {'ratio':>7}")
    for name in commands:
        a = statistics.median(timings[f"this {name}"].samples) * 1000
        b = statistics.median(timings[f"other {name}"].samples) * 1000
        print(f"{name:<12} {a:>8.1f}ms {b:>8.1f}ms {a / b:>6.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
