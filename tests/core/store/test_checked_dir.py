"""A run's folder checked once per attempt (:func:`store.checked_dir`): paths below
it are resolved from it, and a symlink leading out of the workspace is refused as
before, wherever it is."""

from __future__ import annotations

from pathlib import Path

import pytest

from molexp.core.store import files as store
from molexp.errors import WorkspaceError


@pytest.fixture
def layout(tmp_path: Path) -> tuple[Path, Path, Path]:
    root = tmp_path / "ws"
    run_dir = root / "p" / "runs" / "r1"
    run_dir.mkdir(parents=True)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    return root, run_dir, outside


def test_paths_below_a_checked_folder_resolve_as_without_it(
    layout: tuple[Path, Path, Path],
) -> None:
    root, run_dir, _ = layout
    (root / "p" / "shared").mkdir()
    (run_dir / "artifacts").symlink_to(root / "p" / "shared")  # a link inside: allowed
    paths = [run_dir, run_dir / "run.json", run_dir / "attempts" / "1" / "stdout.log",
             run_dir / "artifacts" / "x"]  # fmt: skip
    plain = [store.ensure_inside(root, p) for p in paths]
    with store.checked_dir(root, run_dir):
        assert [store.ensure_inside(root, p) for p in paths] == plain
        assert store.ensure_inside(root, root / "p") == (root / "p").resolve()
    assert plain[3] == (root / "p" / "shared" / "x").resolve()
    assert store._CHECKED == {}  # the block ended: nothing is trusted any more


def test_a_link_out_below_a_checked_folder_is_refused(layout: tuple[Path, Path, Path]) -> None:
    root, run_dir, outside = layout
    with store.checked_dir(root, run_dir):
        store.ensure_inside(root, run_dir / "run.json")
        (run_dir / "attempts").symlink_to(outside)
        with pytest.raises(WorkspaceError, match="leads outside the workspace"):
            store.ensure_inside(root, run_dir / "attempts" / "1" / "params.json")
        with pytest.raises(WorkspaceError):
            store.atomic_write_bytes(run_dir / "attempts" / "x.json", b"{}", root=root)
    assert list(outside.iterdir()) == []


def test_a_folder_checked_before_it_exists_is_checked_when_it_appears(
    layout: tuple[Path, Path, Path],
) -> None:
    root, run_dir, outside = layout
    later = run_dir.parent / "r2"
    with store.checked_dir(root, later):
        store.ensure_inside(root, later / "run.json")  # not there yet: the full check
        later.symlink_to(outside)  # it appears as a link out
        with pytest.raises(WorkspaceError, match="leads outside the workspace"):
            store.ensure_inside(root, later / "run.json")
    with store.checked_dir(root, run_dir.parent / "r3"):
        (run_dir.parent / "r3").mkdir()
        assert (
            store.ensure_inside(root, run_dir.parent / "r3" / "a")
            == (run_dir.parent / "r3" / "a").resolve()
        )


def test_a_folder_linked_out_is_refused_though_checked(layout: tuple[Path, Path, Path]) -> None:
    root, run_dir, outside = layout
    linked = run_dir.parent / "linked"
    linked.symlink_to(outside)
    with store.checked_dir(root, linked):
        with pytest.raises(WorkspaceError):
            store.ensure_inside(root, linked / "run.json")
        with pytest.raises(WorkspaceError):
            store.make_dirs(root, linked / "attempts" / "1")
    assert list(outside.iterdir()) == []


def test_a_checked_folder_is_trusted_only_for_its_own_workspace(
    layout: tuple[Path, Path, Path],
) -> None:
    root, run_dir, _ = layout
    with store.checked_dir(root, run_dir):
        with pytest.raises(WorkspaceError):  # another root: the usual check refuses it
            store.ensure_inside(root / "p" / "runs" / "other", run_dir / "run.json")


def test_nested_blocks_of_one_folder_keep_it_until_the_last_ends(
    layout: tuple[Path, Path, Path],
) -> None:
    root, run_dir, _ = layout
    with store.checked_dir(root, run_dir):
        with store.checked_dir(root, run_dir):
            store.ensure_inside(root, run_dir / "run.json")
        assert str(run_dir) in store._CHECKED
    assert str(run_dir) not in store._CHECKED


@pytest.mark.parametrize(
    ("root", "path", "rel"),
    [("/", "/", ""), ("/", "/a/b", "a/b"), ("/w", "/w", ""), ("/w", "/w/a", "a"),
     ("/w", "/wx/a", None), ("/w", "/w/../x", None), ("/w", "/w/a/..", None),
     ("/w", "/w/..", None), ("/w", "/w/a/../b", None), ("/w", "/w/..a", "..a")],
)  # fmt: skip
def test_what_lies_lexically_below_a_root(root: str, path: str, rel: str | None) -> None:
    assert store._relative(root, path) == rel
