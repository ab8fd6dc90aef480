"""molexp's performance goals (issue #5), measured side by side with their baselines.

    python benchmarks/run.py              # the full benchmark (100,000 runs)
    python benchmarks/run.py --quick      # a small smoke version (2,000 runs)

Builds the workspaces it needs once, in a persistent directory (default
/tmp/molexp-bench; nothing is ever deleted there), times every figure as the
median of several runs interleaved with its baseline, prints a table of figures
and ratios, and exits 1 when a goal is missed (unless --no-goals).  See
benchmarks/README.md and docs/performance.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _bench_util as bu  # noqa: E402

MS = 1000.0


@dataclass
class Figure:
    name: str
    value: float | None  # in `unit`
    unit: str
    baseline_name: str = ""
    baseline: float | None = None
    ratio: float | None = None
    goal: str = ""
    met: bool | None = None  # None: no goal (information)
    cpu: float | None = None  # user+system time of molexp's process, in `unit`

    def cells(self) -> list[str]:
        def fmt(v: float | None) -> str:
            if v is None:
                return "-"
            return f"{v:.0f}" if abs(v) >= 100 else f"{v:.1f}" if abs(v) >= 10 else f"{v:.2f}"

        value = f"{fmt(self.value)} {self.unit}" if self.value is not None else "-"
        base = (
            f"{fmt(self.baseline)} {self.unit} ({self.baseline_name})"
            if self.baseline is not None
            else self.baseline_name or "-"
        )
        ratio = f"{self.ratio:.2f}x" if self.ratio is not None else "-"
        met = {None: "", True: "yes", False: "NO"}[self.met]
        cpu = f"{fmt(self.cpu)} {self.unit}" if self.cpu is not None else ""
        return [self.name, value, cpu, base, ratio, self.goal, met]


def say(message: str) -> None:
    sys.stderr.write(message + "\n")
    sys.stderr.flush()


def molexp_argv() -> list[str]:
    exe = Path(sys.executable).parent / "molexp"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "molexp"]


def run_checked(argv: Sequence[str], env: dict[str, str], cwd: Path) -> str:
    proc = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {proc.returncode}: {proc.stderr[-800:]}")
    return proc.stdout


# --- set-up --------------------------------------------------------------------------


def noop_run(ws: Path, mx: list[str], env: dict[str, str], cwd: Path) -> str:
    """``bench/noop``: one run of `true` that has succeeded; its full reference."""
    from molexp.api.workspace import Workspace

    workspace = Workspace(ws)
    workspace.init(name="bench")
    workspace.project(bu.PROJECT).experiment(
        "noop", params={}, replicas=1, command="true", git_cwd=cwd
    )
    ids = run_checked([*mx, "-w", str(ws), "ls", "bench/noop", "--format", "ids"], env, cwd)
    if not ids.strip():
        run_checked([*mx, "-w", str(ws), "run", "bench/noop"], env, cwd)
        ids = run_checked([*mx, "-w", str(ws), "ls", "bench/noop", "--format", "ids"], env, cwd)
    return ids.split()[0]


def git_repo(path: Path) -> Path:
    """A small git repository to run commands from (provenance is captured there)."""
    if not (path / ".git").exists():
        path.mkdir(parents=True, exist_ok=True)
        (path / "train.py").write_text("print('train')\n")
        env = dict(
            os.environ,
            GIT_AUTHOR_NAME="bench",
            GIT_AUTHOR_EMAIL="bench@example.invalid",
            GIT_COMMITTER_NAME="bench",
            GIT_COMMITTER_EMAIL="bench@example.invalid",
        )
        for argv in (
            ["git", "init", "-q", "."],
            ["git", "add", "train.py"],
            ["git", "commit", "-q", "-m", "bench"],
        ):
            subprocess.run(argv, cwd=path, env=env, check=True, capture_output=True)
    return path


SIGNAC_BUILD = r"""
import json, sys, time
import signac
root, n_exp, n_rep = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
project = signac.init_project(root)
start = time.perf_counter()
for e in range(n_exp):
    for r in range(n_rep):
        job = project.open_job({"experiment": "e%03d" % e, "lr": 0.001, "model": "gcn",
                                "layers": [64, 64], "variant": e, "replica": r, "seed": r})
        if job in project:
            continue
        job.init()
        failed = r % 100 == 7
        job.doc.update({"status": "failed" if failed else "succeeded",
                        "results": {} if failed else {"final_loss": 0.05, "accuracy": 0.9}})
    if e % 10 == 9:
        print("  %d/%d experiments (%.0f s)" % (e + 1, n_exp, time.perf_counter() - start),
              file=sys.stderr, flush=True)
project.update_cache()
"""

SIGNAC_CREATE = r"""
import json, sys, time, statistics
import signac
root, n, block = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
project = signac.init_project(root)
wall, cpu = [], []
for start in range(0, n, block):
    t, c = time.perf_counter(), time.process_time()
    for r in range(start, min(n, start + block)):
        project.open_job({"lr": 0.001, "model": "gcn", "layers": [64, 64], "replica": r}).init()
    wall.append((time.perf_counter() - t) / block)
    cpu.append((time.process_time() - c) / block)
print(json.dumps([statistics.median(wall), statistics.median(cpu)]))
"""


def signac_setup(base: Path, experiments: int, replicas: int) -> Path | None:
    """A virtual environment with signac, and a signac project as big as the workspace."""
    venv = base / "signac-venv"
    python = venv / "bin" / "python"
    if not (venv / "bin" / "signac").exists():
        say(f"installing signac into {venv}")
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        proc = subprocess.run([str(python), "-m", "pip", "install", "-q", "signac"],
                              capture_output=True, text=True)  # fmt: skip
        if proc.returncode != 0:
            say(f"signac could not be installed ({proc.stderr.strip()[-300:]}); no signac baseline")
            return None
    root = base / f"signac-{experiments * replicas}"
    marker = root.with_name(root.name + ".complete")
    if not marker.exists():
        say(f"building a signac project of {experiments * replicas} jobs in {root} (once)")
        root.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        argv = [str(python), "-c", SIGNAC_BUILD, str(root), str(experiments), str(replicas)]
        subprocess.run(argv, check=True)
        marker.write_text(json.dumps({"jobs": experiments * replicas,
                                      "seconds": round(time.perf_counter() - start, 1)}))  # fmt: skip
    return root


CREATE = r"""
import json, os, statistics, sys, time
from pathlib import Path
from molexp.core.records import plan
from molexp.core.records import runs
from molexp.core.store import files as store
from molexp.core.records.profiles import ResolvedConfig
from molexp.api.workspace import Workspace

root, n, block = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
ws = Workspace(root)
ws.init(name="create")
exp = ws.project("bench").experiment(
    "create", params={"lr": 0.001, "model": "gcn", "layers": [64, 64]}, replicas=2 * n + 1,
    command="true", git_cwd=root)
specs = plan.plan(exp, ResolvedConfig(None, {"epochs": 100}, None))
payload = store.dumps_json(runs.ensure_run(exp, specs[0]).record)
bare, durable = root / "bare", root / "durable"
bare.mkdir()
durable.mkdir()

def make_bare(i):  # what the issue calls "bare mkdir+write"
    d = bare / str(i)
    os.mkdir(d)
    with open(d / "run.json", "wb") as fh:
        fh.write(payload)

def make_durable(i):  # the same, with the writes SPEC 8 requires of a record
    d = durable / str(i)
    os.mkdir(d)
    tmp = d / ".tmp-run.json"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    os.write(fd, payload)
    os.fsync(fd)
    os.close(fd)
    os.link(tmp, d / "run.json")
    fd = os.open(d, os.O_RDONLY)
    os.fsync(fd)
    os.close(fd)
    os.unlink(tmp)

def make_molexp(i):
    runs.ensure_run(exp, specs[i])

def measure(makers, first, count):
    times = {name: [] for name, _ in makers}
    for k, start in enumerate(range(first, first + count, block)):
        chunk = range(start, min(first + count, start + block))
        for name, make in makers[k % len(makers):] + makers[:k % len(makers)]:
            t = time.perf_counter()
            for i in chunk:
                make(i)
            times[name].append((time.perf_counter() - t) / len(chunk))
    return {name: statistics.median(v) for name, v in times.items()}

# As it is: every durable write waits for the disk (fsync), a noisy wait.
real = measure([("molexp", make_molexp), ("bare", make_bare), ("durable", make_durable)], 1, n)
# molexp's own time: the same two fsyncs per run are made free for both, so the
# difference is exactly the work molexp adds to the filesystem's.
os.fsync = lambda fd: None
free = measure([("molexp", make_molexp), ("durable", make_durable)], n + 1, n)
print(json.dumps({"real": real, "no_fsync": free}))
"""


# --- measuring -----------------------------------------------------------------------


def per_run_rows(
    base: Path, mx: list[str], env: dict[str, str], reps: int, points: int
) -> list[Figure]:
    """Issue 17's overhead per executed run: a grid of ``points`` new points of
    `true` with ``--jobs 1`` (wall time / points), beside a shell loop of
    ``points`` ``sh -c true`` (benchmarks/bench_jobs.py, ``per_run``), in a
    workspace of its own (``ws-per-run``: every round adds ``points`` runs)."""
    import bench_jobs

    ws = base / "ws-per-run"
    if not (ws / "workspace.yaml").exists():
        run_checked([*mx, "init", str(ws), "--name", "per-run"], env, base)
        run_checked([*mx, "-w", str(ws), "project", "create", "bench"], env, base)
    say(f"timing the overhead per executed run ({points}-point grids, {reps} rounds)")
    got = bench_jobs.per_run({"molexp": mx}, ws, env, points, reps)
    ms, sh = got["wall_ms"]["molexp"], got["wall_ms"]["sh -c true"]
    return [Figure(
        f"overhead per executed run ({points}-point grid of true, --jobs 1)", ms, "ms",
        baseline_name="sh -c true, in a shell loop", baseline=sh, ratio=ms / sh,
        goal="<= 5 ms", met=ms <= 5, cpu=got["cpu_ms"]["molexp"],
    )]  # fmt: skip


def figures(args: argparse.Namespace) -> tuple[list[Figure], dict[str, Any]]:
    base = Path(args.dir).absolute()
    base.mkdir(parents=True, exist_ok=True)
    experiments, replicas = (10, 200) if args.quick else (100, 1000)
    total = experiments * replicas
    reps = args.reps or (5 if args.quick else 9)
    env = bu.child_env(None if args.no_bytecode_cache else base / "pycache")
    mx = molexp_argv()
    stamp = time.strftime("%Y%m%d-%H%M%S")
    src = git_repo(base / "src")
    plain = base / "plain"  # not a git repository
    plain.mkdir(exist_ok=True)
    info: dict[str, Any] = {
        "when": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "machine": f"{os.cpu_count()} cores, {platform.machine()}, Linux {platform.release()}",
        "python": platform.python_version(),
        "loadavg_start": os.getloadavg(),
        "runs": total,
        "reps": reps,
        "bytecode_cache": not args.no_bytecode_cache,
    }

    small = base / "ws-small"
    big = base / f"ws-{total}"
    small_run = noop_run(small, mx, env, src)
    bu.build_workspace(big, experiments, replicas, say)
    big_run = noop_run(big, mx, env, src)
    signac_root = None if args.no_signac else signac_setup(base, experiments, replicas)
    out: list[Figure] = []

    # 1. Start-up, in a small workspace, with `python -c pass` as the baseline.
    say(f"timing start-up ({reps} rounds)")
    ws = ["-w", str(small)]
    t = bu.time_commands(
        [
            ("python", [sys.executable, "-c", "pass"]),
            ("version", [*mx, "--version"]),
            ("help", [*mx, "--help"]),
            ("show", [*mx, *ws, "show", small_run, "--json"]),
            ("noop", [*mx, *ws, "run", small_run.rsplit("/", 1)[0]]),
        ],
        reps, env, src,
    )  # fmt: skip
    py = t["python"].median * MS
    out.append(Figure("python -c pass (baseline)", py, "ms", cpu=t["python"].cpu_median * MS))
    for key, label in (
        ("version", "molexp --version"),
        ("help", "molexp --help"),
        ("show", "molexp show RUN --json"),
        ("noop", "molexp run (no-op, succeeded)"),
    ):
        ms = t[key].median * MS
        out.append(Figure(
            label, ms, "ms", baseline_name="python -c pass", baseline=py, ratio=ms / py,
            goal="< 80 ms, <= 8x", met=ms < 80 and ms <= 8 * py, cpu=t[key].cpu_median * MS,
        ))  # fmt: skip

    # 2. Executing a command: molexp's overhead over running `true` directly.  Every
    # round runs a new run (a replica of its own), as a Makefile target would.
    say("timing `molexp run -- true`")
    true = shutil.which("true") or "/bin/true"
    for cwd, where in ((src, "in a git repository"), (plain, "outside git")):
        exp = f"bench/exec-{stamp}-{cwd.name}"
        argv = ["experiment", "create", exp, "--replicas", str(reps + 1)]
        run_checked([*mx, *ws, *argv], env, src)
        t = bu.time_commands(
            [("true", [true]),
             ("run", [*mx, *ws, "run", exp, "--replica", "{round}", "--", "true"])],
            reps, env, cwd,
        )  # fmt: skip
        over = (t["run"].median - t["true"].median) * MS
        out.append(Figure(
            f"molexp run -- true: overhead ({where})", over, "ms", baseline_name="true",
            baseline=t["true"].median * MS, goal="< 100 ms", met=over < 100,
            cpu=t["run"].cpu_median * MS,
        ))  # fmt: skip

    out.extend(per_run_rows(base, mx, env, reps, 100 if args.quick else 1000))

    # 3. Scale: listing `total` runs (the index is built by the warm-up round).
    say(f"timing listings of {total} runs ({reps} rounds)")
    wb = ["-w", str(big)]
    failed_json = [*mx, *wb, "ls", "--status", "failed", "--format", "json"]
    ids = [*mx, *wb, "ls", "--format", "ids"]
    commands = [("failed", failed_json), ("ids", ids)]
    if signac_root is not None:
        signac = str(base / "signac-venv" / "bin" / "signac")
        commands += [("s-failed", [signac, "find", "doc.status", "failed"]),
                     ("s-all", [signac, "find"])]  # fmt: skip
    t = bu.time_commands(commands, reps, env, signac_root or big)
    for key, label, skey, sname in (
        ("failed", "ls --status failed --format json", "s-failed", "signac find doc.status failed"),
        ("ids", "ls --format ids", "s-all", "signac find"),
    ):
        ms = t[key].median * MS
        sms = t[skey].median * MS if skey in t else None
        out.append(Figure(
            f"{label} ({total} runs)", ms, "ms", baseline_name=sname if sms else "",
            baseline=sms, ratio=ms / sms if sms else None, goal="< 1000 ms", met=ms < 1000,
            cpu=t[key].cpu_median * MS,
        ))  # fmt: skip
    for argv, label in (
        (failed_json, "ls --status failed --format json"),
        (ids, "ls --format ids"),
        ([*mx, *wb, "ls"], "ls (a table, piped)"),
    ):
        mib = bu.peak_rss_mib(argv, env, big)
        out.append(Figure(f"peak memory: {label}", mib, "MiB", goal="< 200 MiB", met=mib < 200))
    say("one listing without the index (MOLEXP_NO_INDEX=1), to compare")
    start = time.perf_counter()
    unindexed = subprocess.run(failed_json, env=dict(env, MOLEXP_NO_INDEX="1"), cwd=big,
                               capture_output=True, check=True).stdout  # fmt: skip
    elapsed = time.perf_counter() - start
    indexed = subprocess.run(failed_json, env=env, cwd=big, capture_output=True, check=True).stdout
    out.append(Figure("ls --status failed --format json without the index (once)",
                      elapsed * MS, "ms"))  # fmt: skip
    out.append(Figure("ls output with the index = without", None, "", goal="identical",
                      met=unindexed == indexed and len(indexed) > 2))  # fmt: skip

    out += listing_figures(base, big, mx, env, reps, signac_root, total)

    # 4. One run's commands do not depend on the workspace's size.
    say("timing show/run in the big and the small workspace")
    prefix_big, prefix_small = big_run.rsplit("/", 1)[1][:8], small_run.rsplit("/", 1)[1][:8]
    t = bu.time_commands(
        [
            ("show-big", [*mx, *wb, "show", big_run, "--json"]),
            ("show-small", [*mx, *ws, "show", small_run, "--json"]),
            ("prefix-big", [*mx, *wb, "show", prefix_big, "--json"]),
            ("prefix-small", [*mx, *ws, "show", prefix_small, "--json"]),
            ("run-big", [*mx, *wb, "run", big_run.rsplit("/", 1)[0]]),
            ("run-small", [*mx, *ws, "run", small_run.rsplit("/", 1)[0]]),
        ],
        reps, env, src,
    )  # fmt: skip
    for key, label in (
        ("show", "show P/E/RUN --json"),
        ("prefix", "show RUN-PREFIX --json"),
        ("run", "run (no-op)"),
    ):
        big_t, small_t = t[f"{key}-big"], t[f"{key}-small"]
        ratio = big_t.median / small_t.median
        out.append(Figure(
            f"{label} among {total} runs", big_t.median * MS, "ms",
            baseline_name="1-run workspace", baseline=small_t.median * MS, ratio=ratio,
            goal="<= 2x", met=ratio <= 2, cpu=big_t.cpu_median * MS,
        ))  # fmt: skip

    # 5. Creating runs.
    say("timing run creation")
    n, block = (400, 50) if args.quick else (2000, 100)
    root = base / "create" / stamp
    root.parent.mkdir(exist_ok=True)
    made = json.loads(
        run_checked([sys.executable, "-c", CREATE, str(root), str(n), str(block)], env, base)
    )
    us = {k: v * 1e6 for k, v in made["real"].items()}
    free = {k: v * 1e6 for k, v in made["no_fsync"].items()}
    out.append(Figure("create a run: bare mkdir+write (baseline)", us["bare"], "us"))
    out.append(Figure("create a run: mkdir + durable write (baseline)", us["durable"], "us",
                      baseline_name="tmp, fsync, link, fsync dir"))  # fmt: skip
    if signac_root is not None:
        signac_py = str(base / "signac-venv" / "bin" / "python")
        argv = [signac_py, "-c", SIGNAC_CREATE, f"{root}-signac", str(n), str(block)]
        per, per_cpu = json.loads(run_checked(argv, env, base))
        out.append(Figure("create a job: signac (baseline)", per * 1e6, "us", cpu=per_cpu * 1e6))
    out.append(Figure(
        "create a run: molexp (ensure_run)", us["molexp"], "us",
        baseline_name="bare mkdir+write", baseline=us["bare"], ratio=us["molexp"] / us["bare"],
    ))  # fmt: skip
    over = free["molexp"] - free["durable"]
    out.append(Figure(
        "create a run: molexp time beyond the filesystem's", over, "us",
        baseline_name=f"{free['molexp']:.0f} - {free['durable']:.0f} us, fsync stubbed",
        goal="< 200 us", met=over < 200,
    ))  # fmt: skip
    info["loadavg_end"] = os.getloadavg()
    return out, info


def listing_figures(
    base: Path,
    big: Path,
    mx: list[str],
    env: dict[str, str],
    reps: int,
    signac_root: Path | None,
    total: int,
) -> list[Figure]:
    """Issue #17's listing rows: a table, every record as JSON, a cold page cache, a
    rebuilt index, a slow shared filesystem; each beside its reference."""
    out: list[Figure] = []
    wb = ["-w", str(big)]
    table, ids = [*mx, *wb, "ls"], [*mx, *wb, "ls", "--format", "ids"]
    as_json, failed = [*mx, *wb, "ls", "--format", "json"], [*mx, *wb, "ls", "--status", "failed"]
    say(f"timing the listings of issue #17 ({reps} rounds)")
    t = bu.time_commands([("ids", ids), ("table", table), ("json", as_json)], reps, env, big)
    ref = t["ids"].median * MS
    for key, label, goal, limit in (
        ("table", "ls (a table), warm", "<= 600 ms", 600),
        ("json", "ls --format json, warm", "<= 2000 ms", 2000),
    ):
        ms = t[key].median * MS
        out.append(Figure(f"{label} ({total} runs)", ms, "ms", baseline_name="ls --format ids",
                          baseline=ref, ratio=ms / ref, goal=goal, met=ms <= limit,
                          cpu=t[key].cpu_median * MS))  # fmt: skip
    mib = bu.peak_rss_mib(table, env, big)
    out.append(Figure("peak memory: ls (a table), issue #17 goal", mib, "MiB", goal="<= 100 MiB",
                      met=mib <= 100))  # fmt: skip
    if bu.can_drop_caches():
        say("timing a listing on a cold page cache (the cache is dropped before each round)")
        commands = [("failed", failed)]
        if signac_root is not None:
            signac = str(base / "signac-venv" / "bin" / "signac")
            commands.append(("signac", [signac, "find", "doc.status", "failed"]))
        cold = bu.time_cold(commands, max(3, reps // 3), env, signac_root or big)
        ms = cold["failed"].median * MS
        sms = cold["signac"].median * MS if "signac" in cold else None
        out.append(Figure(f"ls --status failed, cold page cache ({total} runs)", ms, "ms",
                          baseline_name="signac find doc.status failed, cold" if sms else "",
                          baseline=sms, ratio=ms / sms if sms else None, goal="<= 2000 ms",
                          met=ms <= 2000, cpu=cold["failed"].cpu_median * MS))  # fmt: skip
    say("timing the index rebuild after deleting .molexp/")
    rebuilt = bu.time_rebuild(ids, big, max(3, reps // 3), env)
    ms = rebuilt.median * MS
    out.append(Figure(f"index rebuild after deleting .molexp/, warm ({total} runs)", ms, "ms",
                      baseline_name="ls --format ids", baseline=ref, ratio=ms / ref,
                      goal="<= 2000 ms", met=ms <= 2000, cpu=rebuilt.cpu_median * MS))  # fmt: skip
    slow = bu.slowfs_env(base, big, 200, env)
    if slow is not None:
        say("timing a listing on a simulated slow shared filesystem (200 us per stat/open)")
        t = bu.time_commands([("local", failed), ("slow", failed)], max(3, reps // 3), env, big)
        t_slow = bu.time_commands([("slow", failed)], max(3, reps // 3), slow, big)
        ms, local = t_slow["slow"].median * MS, t["local"].median * MS
        out.append(Figure(f"ls --status failed, every stat/open +200 us ({total} runs)", ms, "ms",
                          baseline_name="the same, local disk", baseline=local,
                          ratio=ms / local, cpu=t_slow["slow"].cpu_median * MS))  # fmt: skip
    out.append(
        Figure(
            f"ls sees a hand edit and an rsync among {total} runs",
            None,
            "",
            goal="both seen",
            met=bu.sees_changes_behind_its_back(as_json, big, env),
        )
    )
    return out


# --- report --------------------------------------------------------------------------


HEAD = ["figure", "molexp", "(CPU)", "baseline", "ratio", "goal", "met"]


def table(rows: list[Figure]) -> str:
    cells = [HEAD] + [f.cells() for f in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(HEAD))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def markdown(rows: list[Figure], info: dict[str, Any]) -> str:
    load = ", ".join(f"{x:.2f}" for x in info["loadavg_start"])
    load_end = ", ".join(f"{x:.2f}" for x in info.get("loadavg_end", ()))
    lines = [
        f"Measured {info['when']} on {info['machine']}, Python {info['python']}, "
        f"{info['runs']} runs, medians of {info['reps']} rounds "
        f"(load average {load} at the start, {load_end} at the end).",
        "",
        "| " + " | ".join(HEAD) + " |",
        "|" + "|".join("---" for _ in HEAD) + "|",
    ]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in f.cells()) + " |" for f in rows]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None, report: Callable[[str], None] = print) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--dir",
        default=os.environ.get("MOLEXP_BENCH_DIR", "/tmp/molexp-bench"),
        help="where the benchmark workspaces live (built once, reused)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a small smoke version: 2,000 runs, fewer rounds, no signac",
    )
    parser.add_argument(
        "--reps", type=int, default=0, help="rounds per figure (default 9; quick 5)"
    )
    parser.add_argument(
        "--no-goals", action="store_true", help="exit 0 even when a goal is missed (CI smoke tests)"
    )
    parser.add_argument("--no-signac", action="store_true", help="skip the signac baseline")
    parser.add_argument(
        "--no-bytecode-cache",
        action="store_true",
        help="time with the caller's bytecode settings (e.g. "
        "PYTHONDONTWRITEBYTECODE) instead of a cache of compiled modules",
    )
    parser.add_argument("--markdown", metavar="FILE", help="also write the table as Markdown")
    args = parser.parse_args(argv)
    if args.quick:
        args.no_signac = True
    rows, info = figures(args)
    report(table(rows))
    load = ", ".join(f"{x:.2f}" for x in info["loadavg_start"])
    report(f"\n{info['machine']}; load average at start {load}; medians of {info['reps']} rounds")
    if args.markdown:
        Path(args.markdown).write_text(markdown(rows, info))
    results = Path(args.dir) / "results"
    results.mkdir(exist_ok=True)
    (results / f"{time.strftime('%Y%m%d-%H%M%S')}.json").write_text(
        json.dumps({"info": info, "figures": [f.__dict__ for f in rows]}, indent=2)
    )
    missed = [f.name for f in rows if f.met is False]
    if missed:
        report(f"\n{len(missed)} goal(s) missed: " + "; ".join(missed))
        return 0 if args.no_goals else 1
    report("\nevery goal met")
    return 0


if __name__ == "__main__":
    sys.exit(main())
