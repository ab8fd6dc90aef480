"""Shared helpers of the reliability suite (SPEC §8; issue #4).

Process-level tests run molexp as real subprocesses; set-up goes through the
Python API, which is faster and is what the CLI calls anyway.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from molexp.api.workspace import Experiment, Workspace
from tests.conftest import molexp_exe, snapshot

BIN = str(Path(sys.executable).parent)


def proc_env(**extra: str) -> dict[str, str]:
    """os.environ (already hermetic) with the venv's bin first on PATH."""
    env = dict(os.environ)
    env["PATH"] = BIN + os.pathsep + env.get("PATH", "/usr/bin:/bin")
    env.update(extra)
    return env


def spawn(
    *args: str, cwd: Path, env: dict[str, str] | None = None, new_session: bool = False
) -> subprocess.Popen[str]:
    """`molexp ARGS...` started in the background (stdout/stderr captured)."""
    return subprocess.Popen(
        [*molexp_exe(), *args],
        cwd=cwd,
        env=env or proc_env(),
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=new_session,
    )


def wait_for(predicate: Callable[[], Any], what: str, timeout: float = 60.0) -> Any:
    """Poll ``predicate`` until it is truthy; fail (not hang) after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.02)


def pid_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # A zombie (killed, not yet reaped by its parent) is gone too.
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def records_snapshot(root: Path) -> dict[str, bytes]:
    """``snapshot`` without ``.molexp/`` (a rebuildable cache, SPEC §2)."""
    return {k: v for k, v in snapshot(root).items() if not k.startswith(".molexp/")}


def make_experiment(
    root: Path,
    name: str = "E",
    replicas: int = 1,
    command: str | None = "true",
    params: dict[str, Any] | None = None,
    seeds: Sequence[int] | None = None,
) -> Experiment:
    ws = Workspace(root)
    if not ws.exists():
        ws.init("lab")
    return ws.project("P").experiment(
        name, params=params or {}, replicas=replicas, command=command, seeds=seeds
    )


@pytest.fixture
def ws_root(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    root.mkdir()
    Workspace(root).init("lab")
    return root


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """A real 1 MB filesystem (tmpfs) to fill up; needs root to mount it."""
    where = tmp_path / "small"
    where.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root (the ENOSPC seam tests cover the rest)")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(where)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {mounted.stderr.decode(errors='replace').strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True)
