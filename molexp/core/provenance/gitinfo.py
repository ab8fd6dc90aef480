"""Git provenance of the source tree (SPEC §9), from the ``git`` command itself.

Two plumbing calls answer everything an attempt records — ``git rev-parse``
(the root of the work tree) and ``git status --porcelain=v2 --branch`` (commit,
branch, whether a tracked file changed) — plus ``git diff HEAD --binary`` for
the patch when the tree is dirty.  That costs a few milliseconds; importing a
git library costs 35-70 ms on every attempt (GitPython's import runs
``git version``), which a command called in Makefile loops should not pay.
Not being in a git repository, or git not being installed, is not an error.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any, NamedTuple

# Provenance must never hang a run: a repository on a stalled filesystem gives up.
TIMEOUT = 30.0


class GitInfo(NamedTuple):
    commit: str | None = None
    branch: str | None = None
    dirty: bool = False
    root: str | None = None
    patch: str | None = None
    error: str | None = None

    def summary(self) -> dict[str, Any] | None:
        """The record form (no patch); None when not in a repository."""
        if self.root is None:
            return None
        out: dict[str, Any] = {
            "commit": self.commit,
            "branch": self.branch,
            "dirty": self.dirty,
            "root": self.root,
        }
        if self.error:
            out["error"] = self.error
        return out


def _in_repository(directory: Path) -> bool:
    """Cheap: a ``.git`` (a directory, or the file of a worktree or submodule) here
    or above, or ``$GIT_DIR``: outside any repository no process is started."""
    if os.environ.get("GIT_DIR"):
        return True
    return any((d / ".git").exists() for d in (directory, *directory.parents))


def _git(directory: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, GIT_OPTIONAL_LOCKS="0", LC_ALL="C")  # status must not write
    return subprocess.run(
        ["git", "-C", directory, *args],
        capture_output=True,
        text=True,
        errors="replace",
        env=env,
        timeout=TIMEOUT,
        check=False,
    )


def _diff(directory: str) -> str:
    """``git diff HEAD --binary``, byte for byte: bytes that are not UTF-8 (a file
    in Latin-1) survive as surrogate escapes (``patch_bytes`` restores them)."""
    proc = subprocess.run(
        ["git", "-C", directory, "diff", "HEAD", "--binary"],
        capture_output=True,
        env=dict(os.environ, GIT_OPTIONAL_LOCKS="0", LC_ALL="C"),
        timeout=TIMEOUT,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"git diff: {proc.stderr.decode(errors='replace').strip()}")
    return proc.stdout.decode("utf-8", "surrogateescape")


def patch_bytes(patch: str) -> bytes:
    """The bytes of a patch captured by :func:`capture`."""
    return patch.encode("utf-8", "surrogateescape")


def parse_status(text: str) -> tuple[str | None, str | None, bool]:
    """``(commit, branch, dirty)`` from ``git status --porcelain=v2 --branch -uno``.

    ``# branch.oid (initial)`` is a repository without commits; ``# branch.head
    (detached)`` a detached HEAD; any entry line (``1``, ``2``, ``u``) is a change
    to a tracked file (untracked files are not asked for).
    """
    commit: str | None = None
    branch: str | None = None
    dirty = False
    for line in text.splitlines():
        if line.startswith("# branch.oid "):
            oid = line[len("# branch.oid ") :].strip()
            commit = None if oid == "(initial)" else oid
        elif line.startswith("# branch.head "):
            head = line[len("# branch.head ") :].strip()
            branch = None if head == "(detached)" else head
        elif line[:2] in ("1 ", "2 ", "u "):
            dirty = True
    return commit, branch, dirty


def _capture_dir(directory: str) -> GitInfo:
    if not _in_repository(Path(directory)):
        return GitInfo()
    try:
        top = _git(directory, "rev-parse", "--show-toplevel")
    except (OSError, subprocess.TimeoutExpired):  # git is not installed, or hangs
        return GitInfo()
    if top.returncode != 0 or not top.stdout.strip():
        return GitInfo()  # not a work tree after all (a bare repository, a stray .git)
    root = top.stdout.strip()
    try:
        status = _git(directory, "status", "--porcelain=v2", "--branch", "--untracked-files=no")
        if status.returncode != 0:
            raise RuntimeError(f"git status: {status.stderr.strip() or status.returncode}")
        commit, branch, dirty = parse_status(status.stdout)
        patch = None
        if dirty and commit is not None:
            patch = _diff(directory)
        return GitInfo(commit=commit, branch=branch, dirty=dirty, root=root, patch=patch)
    except (OSError, RuntimeError, subprocess.TimeoutExpired) as exc:
        return GitInfo(root=root, error=f"{type(exc).__name__}: {exc}")


def capture(path: Path) -> GitInfo:
    """Provenance of the repository holding ``path`` (a file or directory)."""
    target = path if path.is_dir() else path.parent
    if not target.exists():
        return GitInfo()
    return _capture_dir(str(target.resolve()))
