"""molexp.core.provenance.gitinfo: what an attempt records of the source tree, in
every repository state a user's checkout can be in (real git repositories)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from molexp.core.provenance import gitinfo
from molexp.core.provenance.gitinfo import GitInfo, capture, parse_status, patch_bytes


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True
    ).stdout.strip()


def test_outside_a_repository_nothing_is_recorded_and_git_is_not_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(gitinfo, "_git", lambda *a: pytest.fail("git was started"))
    assert capture(tmp_path) == GitInfo()
    assert GitInfo().summary() is None


def test_a_clean_repository(git_repo: Path) -> None:
    info = capture(git_repo)
    assert info.commit == git(git_repo, "rev-parse", "HEAD")
    assert info.branch == "main"
    assert info.dirty is False and info.patch is None and info.error is None
    assert info.root == str(git_repo.resolve())
    assert info.summary() == {
        "commit": info.commit, "branch": "main", "dirty": False, "root": info.root
    }  # fmt: skip


def test_a_file_path_and_a_subdirectory_find_their_repository(git_repo: Path) -> None:
    (git_repo / "sub" / "deeper").mkdir(parents=True)
    assert capture(git_repo / "train.py").root == str(git_repo.resolve())
    assert capture(git_repo / "sub" / "deeper").root == str(git_repo.resolve())


def test_a_changed_tracked_file_is_dirty_and_its_diff_is_the_patch(git_repo: Path) -> None:
    (git_repo / "train.py").write_text("print('changed')\n")
    info = capture(git_repo)
    assert info.dirty is True
    assert info.patch is not None
    assert (
        patch_bytes(info.patch)
        == subprocess.run(
            ["git", "-C", str(git_repo), "diff", "HEAD", "--binary"],
            capture_output=True,
            check=True,
        ).stdout
    )


def test_a_staged_change_is_dirty(git_repo: Path) -> None:
    (git_repo / "new.py").write_text("x = 1\n")
    git(git_repo, "add", "new.py")
    assert capture(git_repo).dirty is True


def test_untracked_files_alone_are_not_dirty(git_repo: Path) -> None:
    (git_repo / "scratch.txt").write_text("notes\n")
    assert capture(git_repo).dirty is False


def test_a_patch_of_a_file_that_is_not_utf8_survives_byte_for_byte(git_repo: Path) -> None:
    (git_repo / "latin1.txt").write_bytes(b"caf\xe9\n")
    git(git_repo, "add", "latin1.txt")
    git(git_repo, "commit", "-q", "-m", "latin-1")
    (git_repo / "latin1.txt").write_bytes(b"th\xe9\n")
    info = capture(git_repo)
    assert info.patch is not None
    assert b"th\xe9" in patch_bytes(info.patch)


def test_a_binary_change_gives_a_binary_patch(git_repo: Path) -> None:
    (git_repo / "blob.bin").write_bytes(bytes(range(256)))
    git(git_repo, "add", "blob.bin")
    git(git_repo, "commit", "-q", "-m", "blob")
    (git_repo / "blob.bin").write_bytes(bytes(range(255, -1, -1)))
    info = capture(git_repo)
    assert info.patch is not None and "GIT binary patch" in info.patch


def test_a_detached_head_has_no_branch(git_repo: Path) -> None:
    git(git_repo, "checkout", "-q", "--detach")
    info = capture(git_repo)
    assert info.branch is None and info.commit == git(git_repo, "rev-parse", "HEAD")


def test_a_repository_without_commits(tmp_path: Path) -> None:
    repo = tmp_path / "empty"
    subprocess.run(["git", "init", "-q", "-b", "trunk", str(repo)], check=True)
    (repo / "a.py").write_text("")
    git(repo, "add", "a.py")
    info = capture(repo)
    assert info.root == str(repo.resolve())
    assert info.commit is None and info.branch == "trunk"
    assert info.patch is None  # nothing to diff against


def test_a_linked_worktree(git_repo: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    git(git_repo, "worktree", "add", "-q", "-b", "side", str(other))
    info = capture(other)
    assert info.root == str(other.resolve()) and info.branch == "side"


def test_git_missing_from_path_is_not_an_error(
    git_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    assert capture(git_repo) == GitInfo()


def test_a_stray_dot_git_is_not_a_repository(tmp_path: Path) -> None:
    (tmp_path / ".git").write_text("gitdir: /nonexistent\n")
    assert capture(tmp_path) == GitInfo()


def test_a_failing_status_is_recorded_as_an_error(
    git_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = gitinfo._git

    def broken(directory: str, *args: str) -> subprocess.CompletedProcess[str]:
        if args[0] == "status":
            return subprocess.CompletedProcess(args, 128, "", "fatal: index file corrupt")
        return real(directory, *args)

    monkeypatch.setattr(gitinfo, "_git", broken)
    info = capture(git_repo)
    assert info.root == str(git_repo.resolve()) and info.commit is None
    assert info.error is not None and "index file corrupt" in info.error
    assert info.summary() is not None and "error" in info.summary()  # type: ignore[operator]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("# branch.oid (initial)\n# branch.head main\n", (None, "main", False)),
        ("# branch.oid abc\n# branch.head (detached)\n", ("abc", None, False)),
        ("# branch.oid abc\n# branch.head dev\n1 .M N... 100644 x.py\n", ("abc", "dev", True)),
        ("# branch.oid abc\n# branch.head dev\n2 R. N... a -> b\n", ("abc", "dev", True)),
        ("# branch.oid abc\n# branch.head dev\nu UU N... c.py\n", ("abc", "dev", True)),
        (
            "# branch.oid abc\n# branch.head dev\n# branch.upstream origin/dev\n",
            ("abc", "dev", False),
        ),
    ],
)
def test_parse_status(text: str, expected: tuple[str | None, str | None, bool]) -> None:
    assert parse_status(text) == expected
