"""Git provenance of the source tree (SPEC §9), through GitPython.

GitPython is imported only when provenance is captured: it is slow to import and
most commands never need it.  Not being in a git repository is not an error.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class GitInfo:
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
    or above, or ``$GIT_DIR``.  Importing GitPython costs 35-60 ms (it runs
    ``git version``), which a run outside any repository should not pay."""
    if os.environ.get("GIT_DIR"):
        return True
    return any((d / ".git").exists() for d in (directory, *directory.parents))


def _capture_dir(directory: str) -> GitInfo:
    if not _in_repository(Path(directory)):
        return GitInfo()
    try:
        import git
    except ImportError:  # git executable missing: GitPython refuses to import
        return GitInfo()
    try:
        repo = git.Repo(directory, search_parent_directories=True)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        return GitInfo()
    try:
        root = str(repo.working_tree_dir)
        try:
            commit: str | None = repo.head.commit.hexsha
        except ValueError:  # a repository without commits yet
            commit = None
        branch = None if repo.head.is_detached else repo.active_branch.name
        dirty = repo.is_dirty(untracked_files=False)
        patch = None
        if dirty and commit is not None:
            patch = repo.git.diff("HEAD", "--binary") + "\n"
        return GitInfo(commit=commit, branch=branch, dirty=dirty, root=root, patch=patch)
    except Exception as exc:  # noqa: BLE001 - provenance must never break a run
        return GitInfo(root=str(repo.working_tree_dir), error=f"{type(exc).__name__}: {exc}")
    finally:
        repo.close()


def capture(path: Path) -> GitInfo:
    """Provenance of the repository holding ``path`` (a file or directory)."""
    target = path if path.is_dir() else path.parent
    if not target.exists():
        return GitInfo()
    return _capture_dir(str(target.resolve()))
