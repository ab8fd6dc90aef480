"""Talking to SLURM (SPEC §13): its client commands, their answers, their timeouts.

Every call to ``sbatch``, ``squeue``, ``scontrol``, ``sacct`` and ``scancel`` is
made here, and nothing here reads or writes a record: the callers decide what
the answers mean for a run (:mod:`molexp.core.slurm.reconcile`) and have the
lifecycle record it.  A missing binary, a controller that does not answer and a
refusal are :class:`ExecutorError` (exit 3), in SLURM's own words.

A read (``squeue``, ``scontrol show``, ``sacct``) that has not answered after
:data:`PING_AFTER` seconds asks ``scontrol ping``, which answers at once: when
no controller is up the read is abandoned, so a listing with the controller
down takes a second, not the 18 s that SLURM's clients spend retrying.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from molexp.errors import ExecutorError

DEFAULT_TIMEOUT = 30.0
PING_AFTER = 1.0
QUERY_CHUNK = 500  # arrays per squeue/sacct call (the command line stays short)
# States after which a job runs no more (squeue -t all keeps them for MinJobAge).
FINISHED_STATES = frozenset(
    {
        "BOOT_FAIL",
        "CANCELLED",
        "COMPLETED",
        "DEADLINE",
        "FAILED",
        "NODE_FAIL",
        "OUT_OF_MEMORY",
        "PREEMPTED",
        "REVOKED",
        "TIMEOUT",
    }
)
_PER_JOB_ERRORS = ("Invalid job id", "already completing or completed", "Job has already finished")
_UNKNOWN_JOB = "Invalid job id"
DEFAULT_MAX_ARRAY_SIZE = 1001


def timeout() -> float:
    """Seconds to wait for one SLURM command ($MOLEXP_SLURM_TIMEOUT, default 30)."""
    try:
        return float(os.environ.get("MOLEXP_SLURM_TIMEOUT", DEFAULT_TIMEOUT))
    except ValueError:
        return DEFAULT_TIMEOUT


# -- talking to SLURM ---------------------------------------------------------------


def require(name: str) -> str:
    """The path of SLURM's command ``name``; an ExecutorError when it is missing."""
    return _tool(name)


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise ExecutorError(
            f"{name} not found: SLURM is not installed here (or not on PATH)",
            "Submit from a node of the cluster (a login node), or use --executor local.",
        )
    return path


def _too_slow(argv: Sequence[str]) -> ExecutorError:
    return ExecutorError(
        f"{argv[0]} did not answer within {timeout():.0f}s: is the SLURM controller up?",
        "Check with `scontrol ping`; raise MOLEXP_SLURM_TIMEOUT on a slow cluster.",
    )


def controller_down() -> str | None:
    """What ``scontrol ping`` says when no controller is up; None when one is (or unknown)."""
    exe = shutil.which("scontrol")
    if exe is None:
        return None
    try:
        proc = subprocess.run(
            [exe, "ping"], capture_output=True, text=True, timeout=5, stdin=subprocess.DEVNULL
        )
    except (subprocess.TimeoutExpired, OSError):
        return None
    text = proc.stdout + proc.stderr
    if " is UP" in text:
        return None
    said = [line.strip() for line in text.splitlines() if "Slurmctld" in line or "error" in line]
    return "; ".join(said) or f"scontrol ping: exit status {proc.returncode}"


def _call(
    argv: Sequence[str], stdin: str | None = None, read: bool = False
) -> subprocess.CompletedProcess[str]:
    """Run a SLURM client command; a missing binary or a hang is an ExecutorError.

    With ``read``, a command still silent after :data:`PING_AFTER` seconds is
    abandoned as soon as ``scontrol ping`` says no controller is up.
    """
    exe = _tool(argv[0])
    try:
        proc = subprocess.Popen(
            [exe, *argv[1:]],
            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
    except OSError as exc:
        raise ExecutorError(f"cannot run {exe}: {exc.strerror or exc}") from exc
    limit = timeout()
    try:
        try:
            out, err = proc.communicate(stdin, timeout=min(PING_AFTER, limit) if read else limit)
        except subprocess.TimeoutExpired:
            if not read or limit <= PING_AFTER:
                raise
            down = controller_down()
            if down is not None:
                raise ExecutorError(
                    f"the SLURM controller does not answer ({down})",
                    "Check with `scontrol ping`; try again once it is up.",
                ) from None
            out, err = proc.communicate(timeout=limit - PING_AFTER)
    except subprocess.TimeoutExpired as exc:
        raise _too_slow(argv) from exc
    finally:
        if proc.returncode is None:
            proc.kill()
            proc.communicate()
    return subprocess.CompletedProcess([exe, *argv[1:]], proc.returncode, out, err)


def _message(proc: subprocess.CompletedProcess[str]) -> str:
    """SLURM's own words, on one line, without the ``sbatch: error:`` prefixes."""
    text = " ".join((proc.stderr or proc.stdout or "").split())
    for tool in ("sbatch", "squeue", "scancel", "scontrol", "sacct"):
        text = text.replace(f"{tool}: error: ", "")
    return text or f"exit status {proc.returncode}"


def base_id(job: str) -> str:
    return job.split("_", 1)[0]


# -- the cluster's configuration ------------------------------------------------------


def parse_config(text: str) -> dict[str, str]:
    """``{Key: value}`` from ``scontrol show config`` (``Key = value`` lines)."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        key, eq, value = line.partition("=")
        if eq and key.strip() and " " not in key.strip():
            out[key.strip()] = value.strip()
    return out


def config() -> Mapping[str, str]:
    """The controller's configuration, asked once per process (and ``$SLURM_CONF``)."""
    return _config(os.environ.get("SLURM_CONF"), os.environ.get("PATH"))


@functools.lru_cache(maxsize=4)
def _config(conf: str | None, path: str | None) -> Mapping[str, str]:
    proc = _call(["scontrol", "show", "config"], read=True)
    if proc.returncode != 0:
        raise ExecutorError(
            f"scontrol show config failed: {_message(proc)}",
            "Is the SLURM controller up? Try `scontrol ping`.",
        )
    return parse_config(proc.stdout)


def array_limit(cfg: Mapping[str, str]) -> int:
    """Tasks per array: indices run from 0 to ``MaxArraySize - 1`` (and at most
    ``max_array_tasks`` of SchedulerParameters, where set)."""
    try:
        limit = int(cfg.get("MaxArraySize", DEFAULT_MAX_ARRAY_SIZE))
    except ValueError:
        limit = DEFAULT_MAX_ARRAY_SIZE
    for item in cfg.get("SchedulerParameters", "").split(","):
        name, _, value = item.partition("=")
        if name.strip() == "max_array_tasks" and value.strip().isdigit():
            limit = min(limit, int(value))
    if limit < 1:
        raise ExecutorError(
            "job arrays are disabled on this cluster (MaxArraySize=0)",
            "Ask the administrators, or use --executor local.",
        )
    return limit


def accounting(cfg: Mapping[str, str]) -> bool:
    """Whether SLURM keeps accounting (so ``sacct`` knows jobs after MinJobAge)."""
    kind = cfg.get("AccountingStorageType", "")
    return bool(kind) and not kind.endswith("/none") and kind != "(null)"


def cluster_name() -> str | None:
    """This cluster's name (``ClusterName``), or None when SLURM cannot say."""
    try:
        return config().get("ClusterName") or None
    except ExecutorError:
        return None


# -- what SLURM says about jobs ---------------------------------------------------


@dataclass(frozen=True)
class JobInfo:
    """One array task (or job) as SLURM describes it."""

    job: str  # "<array>_<index>", or the plain id of a job that is no array
    state: str  # the state's first word: RUNNING, TIMEOUT, CANCELLED ...
    reason: str = ""
    restarts: int = 0
    exit_code: str | None = None  # "3:0" (code:signal)
    stdout: str | None = None
    time_limit: str | None = None
    earlier: tuple[str, ...] = ()  # sacct: the states that ended earlier starts, oldest first

    @property
    def finished(self) -> bool:
        return self.state in FINISHED_STATES


@dataclass
class QueueView:
    """What SLURM said about some jobs.

    ``states`` holds ``{"<array>_<i>": STATE}`` for every task SLURM described;
    ``unknown`` the tasks SLURM says do not exist (``scontrol``/``sacct``, never
    a mere absence from ``squeue``); ``unreachable`` the reason when SLURM could
    not be asked at all: then nothing can be concluded.
    """

    states: dict[str, str] = field(default_factory=dict)
    unreachable: str | None = None
    unknown: set[str] = field(default_factory=set)
    info: dict[str, JobInfo] = field(default_factory=dict)

    def state(self, job: str) -> str | None:
        return self.states.get(job)

    def gone(self, job: str) -> bool:
        """True when SLURM says the job runs no more: finished, or unknown to it."""
        if self.unreachable is not None:
            return False
        state = self.states.get(job)
        if state is None:
            return job in self.unknown
        return state.split()[0] in FINISHED_STATES


def query(jobs: Iterable[str], confirm: bool = True) -> QueueView:
    """The state of every task in ``jobs``: one ``squeue`` call (per 500 arrays).

    A task ``squeue`` leaves out is not taken for gone (``PrivateData=jobs``,
    another cluster, a filtering wrapper): with ``confirm`` its array is asked
    with ``scontrol show job``, and where SLURM keeps accounting, the tasks that
    ``scontrol`` no longer knows with ``sacct``.  Only their word makes a task
    finished or unknown.
    """
    wanted = sorted({j for j in jobs if j})
    bases = sorted({base_id(j) for j in wanted})
    view = QueueView()
    if not bases:
        return view
    try:
        for start in range(0, len(bases), QUERY_CHUNK):
            chunk = bases[start : start + QUERY_CHUNK]
            argv = ["squeue", "-h", "-r", "-t", "all", "-o", "%i %T", "-j", ",".join(chunk)]
            proc = _call(argv, read=True)
            if proc.returncode != 0 and _UNKNOWN_JOB not in proc.stderr:
                view.unreachable = f"squeue failed: {_message(proc)}"
                return view
            view.states.update(parse_squeue(proc.stdout))
        missing = [j for j in wanted if j not in view.states]
        if confirm and missing:
            _confirm(missing, view)
    except ExecutorError as exc:
        view.unreachable = exc.message
    return view


def _confirm(missing: Sequence[str], view: QueueView) -> None:
    """Ask ``scontrol`` (then ``sacct``) about tasks ``squeue`` did not list."""
    unknown: list[str] = []
    for base in sorted({base_id(j) for j in missing}):
        described, _ = show_job(base)
        for info in described:
            view.info[info.job] = info
            view.states.setdefault(info.job, info.state)
        unknown.extend(j for j in missing if base_id(j) == base and j not in view.states)
    if unknown and accounting(config()):
        for info in sacct(unknown).values():
            view.info[info.job] = info
            view.states[info.job] = info.state
    view.unknown.update(j for j in unknown if j not in view.states)


def parse_squeue(text: str) -> dict[str, str]:
    """``{job: STATE}`` from ``squeue -h -r -o '%i %T'`` lines."""
    states: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 2 and "[" not in parts[0]:
            states[parts[0]] = parts[1]
    return states


def _fields(line: str) -> dict[str, str]:
    """``Key=value`` pairs of one ``scontrol -o show job`` line (values may hold spaces)."""
    out: dict[str, str] = {}
    key = None
    for token in line.split(" "):
        name, eq, value = token.partition("=")
        if eq and name and (name[0].isalpha()) and all(c.isalnum() or c in "_:/" for c in name):
            key = name
            out[key] = value
        elif key is not None:
            out[key] += " " + token
    return out


def expand_indices(spec: str) -> list[int]:
    """``0-3,7,9-13:2%4`` -> ``[0, 1, 2, 3, 7, 9, 11, 13]`` (an array's task ids)."""
    out: list[int] = []
    for part in spec.split("%", 1)[0].split(","):
        rng, _, step = part.partition(":")
        lo, dash, hi = rng.partition("-")
        if not lo.strip().isdigit() or (dash and not hi.strip().isdigit()):
            continue
        out.extend(range(int(lo), int(hi if dash else lo) + 1, int(step) if step.isdigit() else 1))
    return out


def parse_show_job(text: str) -> list[JobInfo]:
    """The tasks ``scontrol -o show job`` describes (a pending range expanded)."""
    out: list[JobInfo] = []
    for line in text.splitlines():
        f = _fields(line.strip())
        if "JobId" not in f:
            continue
        state = f.get("JobState", "").split()[0] if f.get("JobState") else "UNKNOWN"
        array, task = f.get("ArrayJobId"), f.get("ArrayTaskId")
        names = [f"{array}_{i}" for i in expand_indices(task)] if array and task else [f["JobId"]]
        restarts = f.get("Restarts", "0")
        for name in names:
            out.append(
                JobInfo(
                    name,
                    state,
                    reason=f.get("Reason", ""),
                    restarts=int(restarts) if restarts.isdigit() else 0,
                    exit_code=f.get("ExitCode"),
                    stdout=f.get("StdOut"),
                    time_limit=f.get("TimeLimit"),
                )
            )
    return out


def show_job(job: str) -> tuple[list[JobInfo], bool]:
    """``scontrol -o show job JOB``: its tasks, and whether SLURM knows the job at all."""
    proc = _call(["scontrol", "-o", "show", "job", job], read=True)
    if proc.returncode != 0:
        if _UNKNOWN_JOB in proc.stderr + proc.stdout:
            return [], False
        raise ExecutorError(f"scontrol show job {job} failed: {_message(proc)}")
    return parse_show_job(proc.stdout), True


def parse_sacct(text: str) -> dict[str, JobInfo]:
    """``{job: JobInfo}`` from ``sacct -n -X -P -D -o JobID,State,ExitCode`` lines;
    a requeued task has a line per start: the last one is its state now."""
    rows: dict[str, list[tuple[str, str]]] = {}
    for line in text.splitlines():
        parts = line.strip().split("|")
        if len(parts) < 3 or "[" in parts[0] or not parts[1]:
            continue
        rows.setdefault(parts[0], []).append((parts[1].split()[0], parts[2]))
    return {
        job: JobInfo(job, starts[-1][0], exit_code=starts[-1][1], restarts=len(starts) - 1,
                     earlier=tuple(s for s, _ in starts[:-1]))
        for job, starts in rows.items()
    }  # fmt: skip


def sacct(jobs: Sequence[str]) -> dict[str, JobInfo]:
    """What SLURM's accounting says about ``jobs`` (one call per 500 arrays)."""
    bases = sorted({base_id(j) for j in jobs})
    out: dict[str, JobInfo] = {}
    for start in range(0, len(bases), QUERY_CHUNK):
        chunk = ",".join(bases[start : start + QUERY_CHUNK])
        argv = ["sacct", "-n", "-X", "-P", "-D", "-o", "JobID,State,ExitCode", "-j", chunk]
        proc = _call(argv, read=True)
        if proc.returncode != 0:
            raise ExecutorError(f"sacct failed: {_message(proc)}")
        out.update(parse_sacct(proc.stdout))
    return {j: i for j, i in out.items() if j in set(jobs)}


def queue_entry_gone(attempt: Mapping[str, object]) -> bool:
    """Whether the SLURM job of a queued attempt has left the queue.

    Unknown (no ``squeue``, controller unreachable) counts as not gone, so a
    queued run is never started twice.
    """
    job = attempt.get("scheduler_job_id")
    if not job:
        return True
    return query([str(job)]).gone(str(job))


def jobs_with_comment(comment: str) -> list[str]:
    """The jobs (array ids) of this user whose ``--comment`` is ``comment``."""
    argv = ["squeue", "-h", "-t", "all", "-u", str(os.getuid()), "-o", "%F|%k"]
    proc = _call(argv, read=True)
    if proc.returncode != 0:
        raise ExecutorError(f"squeue failed: {_message(proc)}")
    found = {
        line.split("|", 1)[0]
        for line in proc.stdout.splitlines()
        if "|" in line and line.split("|", 1)[1].strip() == comment
    }
    return sorted(found, key=lambda j: (len(j), j))


# -- changing the queue ---------------------------------------------------------------


def scancel(jobs: Sequence[str]) -> None:
    """Cancel ``jobs`` (one call); jobs that already ended are not an error."""
    if not jobs:
        return
    proc = _call(["scancel", *jobs])
    if proc.returncode == 0:
        return
    errors = [line for line in proc.stderr.splitlines() if line.strip()]
    if errors and all(any(e in line for e in _PER_JOB_ERRORS) for line in errors):
        return
    raise ExecutorError(
        f"scancel failed: {_message(proc)}", "Is the SLURM controller up? Try `scontrol ping`."
    )


def sbatch_held(script: str) -> str:
    """Submit ``script`` (on stdin) held; the job id SLURM gave it."""
    proc = _call(["sbatch", "--parsable", "--hold"], stdin=script)
    job_id = proc.stdout.strip().split(";", 1)[0]
    if proc.returncode != 0 or not job_id.isdigit():
        raise ExecutorError(
            f"sbatch refused the job array: {_message(proc)}",
            "Nothing was queued. Check the #SBATCH options (`--dry-run` prints the script) "
            "and that the controller answers (`scontrol ping`).",
        )
    return job_id


def release(job_ids: Sequence[str]) -> None:
    """``scontrol release`` held jobs (arrays), all in one call: their tasks may start."""
    if not job_ids:
        return
    proc = _call(["scontrol", "release", ",".join(job_ids)])
    if proc.returncode != 0:
        raise ExecutorError(
            f"scontrol release {','.join(job_ids)} failed: {_message(proc)}",
            "The submission was cancelled and its runs recorded cancelled; submit again.",
        )
