"""Helpers of ``benchmarks/run.py``: building the benchmark workspaces, timing.

The workspaces are built once, with molexp's own core functions, into a
persistent directory and reused by every later benchmark run.  Building is
resumable (a run that exists is skipped) and nothing is ever deleted: on ext4,
creating files right after deleting many is several times slower for a while,
which would distort every figure measured after it.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PROJECT = "bench"
COMMAND = "python train.py --lr {lr} --seed {seed}"
CONFIG = {"dataset": "qm9", "epochs": 100, "batch_size": 32, "optimizer": {"lr": 0.001}}


# --- what each run looks like ------------------------------------------------


def status_of(experiment: int, replica: int) -> str:
    """The status a benchmark run is given: ~1% failed, 0.5% pending, a few running."""
    if replica % 100 == 7:
        return "failed"
    if replica % 200 == 13:
        return "pending"
    if replica == 999 and experiment < 5:
        return "running"  # owner long gone: observed as interrupted
    return "succeeded"


def _attempt(record: dict[str, Any], status: str, workspace: Path) -> dict[str, Any]:
    n = record["replica"]
    code = {"succeeded": 0, "failed": 1}.get(status)
    results = {"final_loss": round(0.05 + (n % 97) / 1000, 6), "accuracy": 0.9} if code == 0 else {}
    return {
        "n": 1,
        "status": status,
        "started_at": record["created_at"],
        "finished_at": None if status == "running" else record["created_at"],
        "exit_code": code,
        "duration": None if status == "running" else round(12.5 + (n % 13) / 7, 6),
        "host": "node017",
        "pid": 2_000_000_000,  # no such pid: a running record is seen as interrupted
        "executor": "local",
        "scheduler_job_id": None,
        "argv": ["/bin/sh", "-c", f"python train.py --lr 0.001 --seed {record['seed']}"],
        "cwd": str(workspace),
        "git": {
            "commit": "3f1c2a9e8b7d6c5f4e3d2c1b0a9f8e7d6c5b4a39",
            "branch": "main",
            "dirty": False,
            "root": str(workspace),
        },
        "error": "exit code 1" if status == "failed" else None,
        "results": results if code == 0 else None,
    }


def _build_experiment(args: tuple[str, int, int]) -> int:
    """Create the missing runs of experiment ``index``; return how many were created."""
    from molexp.api.workspace import Workspace
    from molexp.core.records import plan, runs
    from molexp.core.records.profiles import ResolvedConfig
    from molexp.core.store import files as store

    root, index, replicas = args
    ws = Workspace(root)
    project = ws.project(PROJECT)
    exp = project.experiment(
        f"e{index:03d}",
        params={"lr": 0.001, "model": "gcn", "layers": [64, 64], "variant": index},
        replicas=replicas,
        command=COMMAND,
        git_cwd=Path(root),
    )
    resolved = ResolvedConfig(profile=None, config=dict(CONFIG), source=None)
    created = 0
    exp.runs_dir.mkdir(parents=True, exist_ok=True)
    for spec in plan.plan(exp, resolved):
        path = exp.runs_dir / spec.run_id / runs.RUN_FILE
        if path.exists():
            continue
        record = runs.new_record(
            exp,
            spec.run_id,
            spec.params,
            spec.replica,
            spec.seed,
            spec.profile,
            spec.config,
            "derived",
        )
        status = status_of(index, spec.replica)
        if status != "pending":
            attempt = _attempt(record, status, Path(root))
            record["attempts"] = [attempt]
            record["results"] = attempt["results"] or {}
        record["status"] = status
        path.parent.mkdir(exist_ok=True)
        created += store.create_exclusive(path, store.dumps_json(record), root=Path(root))
    return created


def build_workspace(
    root: Path, experiments: int, replicas: int, say: Callable[[str], None]
) -> None:
    """``experiments`` x ``replicas`` runs in ``root`` (resumable; skipped when done)."""
    marker = root.with_name(root.name + ".complete")
    if marker.exists():
        return
    from molexp.api.workspace import Workspace

    Workspace(root).init(name="bench")
    say(f"building {experiments} x {replicas} runs in {root} (once; reused afterwards)")
    start = time.perf_counter()
    jobs = [(str(root), i, replicas) for i in range(experiments)]
    created = 0
    if experiments > 1:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(max_workers=2) as pool:
            for i, n in enumerate(pool.map(_build_experiment, jobs), 1):
                created += n
                if i % 10 == 0:
                    say(f"  {i}/{experiments} experiments ({time.perf_counter() - start:.0f} s)")
    else:
        created = sum(_build_experiment(j) for j in jobs)
    marker.write_text(
        json.dumps(
            {
                "experiments": experiments,
                "replicas": replicas,
                "created": created,
                "seconds": round(time.perf_counter() - start, 1),
            }
        )
    )


# --- timing ----------------------------------------------------------------------


@dataclass
class Timing:
    samples: list[float]  # wall-clock seconds
    cpu: list[float]  # user + system seconds of the child (less sensitive to a busy machine)

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def cpu_median(self) -> float:
        return statistics.median(self.cpu)


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def time_commands(
    commands: Sequence[tuple[str, Sequence[str]]],
    reps: int,
    env: dict[str, str],
    cwd: Path,
    warmup: int = 1,
) -> dict[str, Timing]:
    """Wall time of each command, interleaved round by round (so noise hits all alike).

    ``{round}`` in an argument is replaced by the round's number (0 is the warm-up).
    """
    out: dict[str, Timing] = {name: Timing([], []) for name, _ in commands}
    for round_no in range(warmup + reps):
        for name, template in commands:
            argv = [arg.replace("{round}", str(round_no)) for arg in template]
            cpu = _children_cpu()
            start = time.perf_counter()
            proc = subprocess.run(
                argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
            )
            elapsed = time.perf_counter() - start
            if proc.returncode != 0:
                raise RuntimeError(
                    f"{name}: {' '.join(argv)} exited {proc.returncode}: "
                    f"{proc.stderr.decode(errors='replace')[-500:]}"
                )
            if round_no >= warmup:
                out[name].samples.append(elapsed)
                out[name].cpu.append(_children_cpu() - cpu)
    return out


PEAK_RSS_CHILD = r"""
import resource, subprocess, sys
proc = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
sys.exit(proc.returncode)
"""


def peak_rss_mib(argv: Sequence[str], env: dict[str, str], cwd: Path) -> float:
    """Peak resident memory of ``argv`` (run from a fresh child that measures only it)."""
    proc = subprocess.run(
        [sys.executable, "-c", PEAK_RSS_CHILD, *argv],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return int(proc.stdout.strip()) / 1024


def child_env(pycache: Path | None) -> dict[str, str]:
    """The environment commands are timed in: like a normal install, bytecode cached.

    Installed packages have compiled bytecode; a source checkout run with
    ``PYTHONDONTWRITEBYTECODE`` recompiles molexp on every start.  Timed commands
    get a bytecode cache of their own (``PYTHONPYCACHEPREFIX``) unless ``pycache``
    is None, which keeps the caller's setting.
    """
    env = dict(os.environ)
    for key in list(env):
        if key.startswith("MOLEXP_"):
            del env[key]
    env["NO_COLOR"] = "1"
    if pycache is not None:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(pycache)
    return env


# --- listings: a cold page cache, a rebuilt index, a slow filesystem ---------------


def can_drop_caches() -> bool:
    return os.access("/proc/sys/vm/drop_caches", os.W_OK)


def drop_caches() -> None:
    """Empty the page cache (root only): the next command reads from the disk."""
    os.sync()
    with open("/proc/sys/vm/drop_caches", "w") as fh:
        fh.write("3\n")


def time_cold(
    commands: Sequence[tuple[str, Sequence[str]]], reps: int, env: dict[str, str], cwd: Path
) -> dict[str, Timing]:
    """:func:`time_commands` with the page cache dropped before every command."""
    out: dict[str, Timing] = {name: Timing([], []) for name, _ in commands}
    for _ in range(reps):
        for name, argv in commands:
            drop_caches()
            one = time_commands([(name, argv)], 1, env, cwd, warmup=0)[name]
            out[name].samples += one.samples
            out[name].cpu += one.cpu
    return out


def time_rebuild(argv: Sequence[str], ws: Path, reps: int, env: dict[str, str]) -> Timing:
    """``argv`` (a listing) right after deleting ``ws/.molexp`` (derived data: the
    listing reads every record and writes the index again), warm page cache."""
    import shutil

    out = Timing([], [])
    subprocess.run(argv, env=env, cwd=ws, stdout=subprocess.DEVNULL, check=True)  # warm
    for _ in range(reps):
        shutil.rmtree(ws / ".molexp", ignore_errors=True)
        one = time_commands([("rebuild", argv)], 1, env, ws, warmup=0)["rebuild"]
        out.samples += one.samples
        out.cpu += one.cpu
    return out


def slowfs_env(base: Path, ws: Path, delay_us: int, env: dict[str, str]) -> dict[str, str] | None:
    """The environment that runs a command with every stat and open under ``ws``
    delayed by ``delay_us`` (benchmarks/slowfs.c, an LD_PRELOAD shim, compiled once
    into ``base``); None without a C compiler."""
    import shutil

    source = Path(__file__).resolve().parent / "slowfs.c"
    lib = base / "slowfs.so"
    if not lib.exists() or lib.stat().st_mtime < source.stat().st_mtime:
        cc = shutil.which("gcc") or shutil.which("cc")
        if cc is None:
            return None
        argv = [cc, "-O2", "-shared", "-fPIC", "-o", str(lib), str(source), "-ldl"]
        if subprocess.run(argv, capture_output=True).returncode != 0:
            return None
    return dict(env, LD_PRELOAD=str(lib), SLOWFS_PREFIX=str(ws), SLOWFS_DELAY_US=str(delay_us))


def sees_changes_behind_its_back(argv: Sequence[str], ws: Path, env: dict[str, str]) -> bool:
    """Whether a listing of the big workspace sees a record edited in place (size and
    mtime kept) and one replaced rsync-style (new inode, old mtime); both are put back
    as they were afterwards."""
    experiments = sorted((ws / "projects" / PROJECT / "experiments").iterdir())
    runs = sorted((experiments[len(experiments) // 2] / "runs").iterdir())
    edited, replaced = runs[3] / "run.json", runs[4] / "run.json"
    originals = {p: (p.read_bytes(), p.stat()) for p in (edited, replaced)}
    subprocess.run(argv, env=env, cwd=ws, stdout=subprocess.DEVNULL, check=True)  # indexed
    try:
        for path, marker in ((edited, b"node017"), (replaced, b"node017")):
            raw, st = originals[path]
            assert marker in raw
            new = raw.replace(marker, b"nodeXYZ", 1)
            if path is edited:
                with open(path, "r+b") as fh:
                    fh.write(new)
            else:
                tmp = path.with_name(".rsync-tmp")
                tmp.write_bytes(new)
                os.replace(tmp, path)
            os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
        shown = subprocess.run(argv, env=env, cwd=ws, capture_output=True, check=True).stdout
        return shown.count(b"nodeXYZ") == 2
    finally:
        for path, (raw, st) in originals.items():
            with open(path, "r+b") as fh:
                fh.write(raw)
                fh.truncate()
            os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
