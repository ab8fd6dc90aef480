"""The environment an attempt runs in (SPEC §16): plain facts, cheaply.

What is captured:

- the machine: platform (``uname``), CPU count (and how many this process may use);
- loaded environment modules (``LOADEDMODULES``, Lmod and Environment Modules),
  the conda environment (``CONDA_PREFIX``, ``CONDA_DEFAULT_ENV``), a container
  (``APPTAINER_CONTAINER``, ``SINGULARITY_CONTAINER``, ``/.dockerenv``,
  ``/run/.containerenv``), SLURM job facts (``SLURM_JOB_ID``, partition, node list,
  CPUs per task), all read from the command's environment;
- the Python the command runs, and the packages installed for it.

**Which Python.** A command's ``python`` is whatever its ``PATH`` finds, which is not
necessarily the interpreter molexp itself runs on (molexp installed with pipx, the
command in a conda environment).  So: the first word of the command that names a
Python interpreter (``python``, ``python3``, ``python3.11``, a path ending in one,
relative paths taken from the command's directory) is looked up on the command's
``PATH``; a command with no such word (``mpirun ... lmp``, ``make``, a script with a
``#!`` line) gets the ``python3`` (else ``python``) of its ``PATH``.  Its version,
``sys.prefix`` and ``sys.path`` are asked of it once (a subprocess, ~20 ms) and
kept while the interpreter file, its ``pyvenv.cfg`` and the variables that change
``sys.path`` stay the same (:func:`interpreter_key`).

**Which packages.** Every ``*.dist-info``/``*.egg-info`` in the directories of that
``sys.path`` (plus the user site, when enabled), first one of a name winning (the
one ``import`` finds): ``name==version`` lines, names canonical (PEP 503), sorted.
Installing, removing or upgrading a package changes the directory that holds it,
so the list is recomputed only when the modification time (or inode) of one of
those directories changes (:func:`fingerprint`): a few ``stat`` calls per attempt.

Nothing here writes a file: :mod:`molexp.core.records.environments` stores the
lists (content-addressed) and the cache.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

_PYTHON = re.compile(r"python(?:\d+(?:\.\d+)*)?(?:[dmu]*)")
_CANONICAL = re.compile(r"[-_.]+")
PROBE_TIMEOUT = 30.0
_PROBE = (
    "import json, platform, site, sys\n"
    "print(json.dumps({'version': platform.python_version(),"
    " 'implementation': platform.python_implementation(),"
    " 'executable': sys.executable, 'prefix': sys.prefix,"
    " 'base_prefix': getattr(sys, 'base_prefix', sys.prefix),"
    " 'path': [p for p in sys.path if p],"
    " 'user_site': site.getusersitepackages() if site.ENABLE_USER_SITE else None}))\n"
)
# Variables that change what an interpreter's sys.path holds.
PATH_VARIABLES = (
    "PYTHONPATH", "PYTHONHOME", "PYTHONNOUSERSITE", "PYTHONUSERBASE", "HOME", "PYENV_VERSION",
)  # fmt: skip


# --- facts from the environment -------------------------------------------------


def machine() -> dict[str, Any]:
    """Platform and CPUs of this machine."""
    u = os.uname()
    try:
        usable: int | None = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        usable = None
    return {
        "platform": f"{u.sysname} {u.release} {u.machine}",
        "cpu_count": os.cpu_count(),
        "cpus_usable": usable,
    }


def facts(env: Mapping[str, str]) -> dict[str, Any]:
    """Modules, conda, container and SLURM facts of an environment (None when absent)."""
    loaded = env.get("LOADEDMODULES")
    modules = [m for m in loaded.split(":") if m] if loaded else None
    conda = None
    if env.get("CONDA_PREFIX") or env.get("CONDA_DEFAULT_ENV"):
        conda = {"prefix": env.get("CONDA_PREFIX"), "env": env.get("CONDA_DEFAULT_ENV")}
    container: dict[str, str | None] | None = None
    for kind, var in (
        ("apptainer", "APPTAINER_CONTAINER"),
        ("singularity", "SINGULARITY_CONTAINER"),
    ):
        if env.get(var):
            container = {"kind": kind, "image": env[var]}
            break
    else:
        if os.path.exists("/.dockerenv"):
            container = {"kind": "docker", "image": None}
        elif os.path.exists("/run/.containerenv"):
            container = {"kind": "podman", "image": None}
    slurm = None
    if env.get("SLURM_JOB_ID"):
        slurm = {
            "job_id": env.get("SLURM_JOB_ID"),
            "array_job_id": env.get("SLURM_ARRAY_JOB_ID"),
            "array_task_id": env.get("SLURM_ARRAY_TASK_ID"),
            "partition": env.get("SLURM_JOB_PARTITION"),
            "nodelist": env.get("SLURM_JOB_NODELIST") or env.get("SLURM_NODELIST"),
            "cpus_per_task": env.get("SLURM_CPUS_PER_TASK"),
            "cluster": env.get("SLURM_CLUSTER_NAME"),
        }
    return {"modules": modules, "conda": conda, "container": container, "slurm": slurm}


# --- which Python ---------------------------------------------------------------


def _words(argv: Sequence[str]) -> list[str]:
    """The words of a command: an argv, or the words of a ``/bin/sh -c`` string."""
    if len(argv) >= 3 and argv[1] == "-c" and os.path.basename(argv[0]) in ("sh", "bash"):
        import shlex

        try:
            return shlex.split(argv[2])
        except ValueError:
            return argv[2].split()
    return list(argv)


def _which(name: str, path: str) -> str | None:
    for directory in path.split(os.pathsep):
        candidate = os.path.join(directory or ".", name)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return os.path.abspath(candidate)
    return None


def find_python(argv: Sequence[str], cwd: Path, env: Mapping[str, str]) -> str | None:
    """The interpreter the command runs (see the module docstring), or None."""
    path = env.get("PATH", os.defpath)
    for word in _words(argv):
        if _PYTHON.fullmatch(os.path.basename(word)):
            if "/" in word:
                candidate = os.path.join(cwd, word)
                if os.path.isfile(candidate):
                    return os.path.abspath(candidate)
            else:
                found = _which(word, path)
                if found:
                    return found
    return _which("python3", path) or _which("python", path)


def _stat_key(path: str) -> str:
    try:
        st = os.stat(path)
    except OSError:
        return "absent"
    return f"{st.st_mtime_ns}:{st.st_ino}:{st.st_size}"


def interpreter_key(python: str, env: Mapping[str, str]) -> str:
    """What the answers of :func:`probe` depend on: the interpreter file (followed
    to its target), its virtual environment's ``pyvenv.cfg``, and the variables of
    :data:`PATH_VARIABLES`."""
    real = os.path.realpath(python)
    cfg = os.path.join(os.path.dirname(os.path.dirname(python)), "pyvenv.cfg")
    parts = [python, real, _stat_key(real), _stat_key(cfg)]
    parts += [f"{v}={env.get(v, '')}" for v in PATH_VARIABLES]
    return "\0".join(parts)


def probe(python: str, env: Mapping[str, str]) -> dict[str, Any]:
    """Ask ``python`` its version, prefix and ``sys.path`` (one subprocess)."""
    try:
        proc = subprocess.run(
            [python, "-c", _PROBE],
            env=dict(env),
            capture_output=True,
            text=True,
            timeout=PROBE_TIMEOUT,
            stdin=subprocess.DEVNULL,
            cwd="/",
        )
        if proc.returncode != 0:
            raise ValueError(
                proc.stderr.strip().splitlines()[-1]
                if proc.stderr.strip()
                else f"exit {proc.returncode}"
            )
        found = json.loads(proc.stdout.strip().splitlines()[-1])
        if not isinstance(found, dict) or not isinstance(found.get("path"), list):
            raise ValueError("unexpected answer")
    except (OSError, ValueError, IndexError, subprocess.TimeoutExpired) as exc:
        return {"executable": python, "error": f"could not ask it: {exc}"}
    found["path"] = [p for p in found["path"] if isinstance(p, str) and os.path.isdir(p)]
    found["executable"] = python  # as the command names it (sys.executable may differ)
    return found


def site_dirs(interpreter: Mapping[str, Any]) -> list[str]:
    """The directories that may hold packages, in import order."""
    dirs = list(interpreter.get("path") or [])
    user = interpreter.get("user_site")
    if isinstance(user, str) and user not in dirs:
        dirs.append(user)  # listed even while absent: its creation is a change
    return dirs


def fingerprint(dirs: Sequence[str]) -> str:
    """What changes when a package is installed, removed or upgraded in ``dirs``."""
    out = []
    for directory in dirs:
        try:
            st = os.stat(directory)
        except OSError:
            out.append(f"{directory}:absent")
            continue
        out.append(f"{directory}:{st.st_mtime_ns}:{st.st_ino}")
    return "\n".join(out)


def canonical(name: str) -> str:
    return _CANONICAL.sub("-", name).lower()


def _version_from(meta: Path) -> tuple[str | None, str | None]:
    """``(name, version)`` from a METADATA/PKG-INFO file."""
    name = version = None
    try:
        with open(meta, encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line in ("\n", "\r\n"):
                    break
                if line.startswith("Name:"):
                    name = line[5:].strip()
                elif line.startswith("Version:"):
                    version = line[8:].strip()
    except OSError:
        pass
    return name, version


def _distribution(directory: str, entry: str) -> tuple[str, str] | None:
    """``(canonical name, version)`` of one ``*.dist-info``/``*.egg-info`` entry."""
    stem, _, suffix = entry.rpartition(".")
    if suffix == "dist-info":
        name, sep, version = stem.rpartition("-")
        if sep and name and version:
            return canonical(name), version
        meta = Path(directory) / entry / "METADATA"
    elif suffix == "egg-info":
        parts = stem.split("-")
        if len(parts) >= 2 and parts[1]:
            return canonical(parts[0]), parts[1]
        path = Path(directory) / entry
        meta = path / "PKG-INFO" if path.is_dir() else path
    else:
        return None
    found, found_version = _version_from(meta)
    if not found:
        return None
    return canonical(found), found_version or "unknown"


def packages(dirs: Sequence[str]) -> list[str]:
    """``name==version`` for every distribution in ``dirs`` (the first of a name
    wins, as for ``import``), sorted by name."""
    found: dict[str, str] = {}
    for directory in dirs:
        try:
            entries = sorted(os.listdir(directory))
        except OSError:
            continue
        for entry in entries:
            if not entry.endswith((".dist-info", ".egg-info")):
                continue
            dist = _distribution(directory, entry)
            if dist is not None and dist[0] not in found:
                found[dist[0]] = dist[1]
    return [f"{name}=={found[name]}" for name in sorted(found)]


def parse_packages(text: str) -> dict[str, str]:
    """``{name: version}`` of a package list written by :func:`packages`."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        name, sep, version = line.strip().partition("==")
        if sep and name and not name.startswith("#"):
            out[name] = version
    return out
