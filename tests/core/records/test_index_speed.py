"""The index's fast paths (molexp/core/records/signatures.py, index_build.py, the
table's columns): each gives what the plain path gives, and still sees records
changed behind molexp's back."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from molexp.core.records import index, index_build, index_entry, signatures
from molexp.core.records.workspace import Workspace
from molexp.core.views import listing
from molexp.errors import CorruptRecordError
from tests.conftest import Cli
from tests.core.records.test_index import (  # noqa: F401 - the fixture
    assert_truthful,
    by_replica,
    lab,
    rewrite_keeping_mtime,
)


def test_slow_stats_are_made_by_threads_and_see_a_hand_edit(
    lab: Path,  # noqa: F811
    cli: Cli,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Every stat counts as slow (a cold disk, NFS): after one probe, the others are
    # made by the thread pool, two at a time.
    monkeypatch.setattr(signatures, "_pool", None)
    monkeypatch.setattr(signatures, "SLOW_S", 0.0)
    monkeypatch.setattr(signatures, "PROBE", 1)
    monkeypatch.setattr(signatures, "CHUNK", 2)
    threads: set[str] = set()
    real = signatures._some

    def noting(dir_fd: int, paths: list[str]) -> list[str | None]:
        import threading

        threads.add(threading.current_thread().name)
        return real(dir_fd, paths)

    monkeypatch.setattr(signatures, "_some", noting)
    rewrite_keeping_mtime(
        by_replica(lab, 1), lambda raw: raw.replace(b'"status": "failed"', b'"status": "queued"', 1)
    )
    assert "queued" in cli("ls", "--format", "csv").stdout
    assert any(name.startswith("molexp-stat") for name in threads)
    assert_truthful(cli, monkeypatch)


def test_signatures_keep_order_and_mark_what_cannot_be_stat_ed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    names = [f"f{i:02d}" for i in range(40)]
    for name in names:
        (tmp_path / name).write_text(name * (int(name[1:]) + 1))
    asked = [*names[:20], "missing", *names[20:]]
    monkeypatch.setattr(signatures, "_pool", None)
    fd = os.open(tmp_path, os.O_RDONLY)
    try:
        plain = signatures.signatures(fd, asked)
        monkeypatch.setattr(signatures, "SLOW_S", 0.0)
        monkeypatch.setattr(signatures, "CHUNK", 3)
        threaded = signatures.signatures(fd, asked)
    finally:
        os.close(fd)
    expected = [signatures.signature((tmp_path / n).stat()) for n in names]
    assert plain == threaded == [*expected[:20], None, *expected[20:]]


def two_experiments(ws: Path, cli: Cli) -> None:
    assert cli("project create P").exit_code == 0
    for name in ("E", "F", "G"):
        made = cli("experiment", "create", f"P/{name}", "--param", "lr=0.1", "--replicas", "3",
                   "--command", "test {replica} -ne 1")  # fmt: skip
        assert made.exit_code == 0, made.output
        assert cli(f"run P/{name}").exit_code == 1


def test_missing_indexes_are_built_side_by_side(
    workspace: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(index, "RACY_NS", 0)
    two_experiments(workspace, cli)
    before = {fmt: cli("ls", "--format", fmt).stdout for fmt in ("table", "json", "ids")}
    shutil.rmtree(workspace / ".molexp")
    experiments = [("P", "E"), ("P", "F"), ("P", "G")]
    assert all(index_build._unbuilt(workspace, p, e) for p, e in experiments)
    index_build.prebuild(workspace, experiments)
    if len(__import__("os").sched_getaffinity(0)) >= 2:
        assert not any(index_build._unbuilt(workspace, p, e) for p, e in experiments)
        assert all(len(index._load(index.index_path(workspace, p, e), p, e)[1]) == 3  # type: ignore[arg-type]
                   for p, e in experiments)  # fmt: skip
    assert {fmt: cli("ls", "--format", fmt).stdout for fmt in ("table", "json", "ids")} == before
    assert_truthful(cli, monkeypatch)


def test_an_index_of_another_format_counts_as_unbuilt(
    lab: Path,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert not index_build._unbuilt(lab, "P", "E")
    path = index.index_path(lab, "P", "E")
    assert path is not None
    raw = path.read_bytes()
    path.write_bytes(
        raw.replace(f"{index.MAGIC} {index.FORMAT} ".encode(), f"{index.MAGIC} 3 ".encode(), 1)
    )
    assert index_build._unbuilt(lab, "P", "E")
    path.unlink()
    assert index_build._unbuilt(lab, "P", "E")
    monkeypatch.setenv("MOLEXP_NO_INDEX", "1")
    index_build.prebuild(lab, [("P", "E"), ("P", "E")])  # switched off: writes nothing
    assert not path.exists()


def test_a_table_s_columns_are_the_summary_s(
    lab: Path,  # noqa: F811
    cli: Cli,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first = cli("ls", "--format", "ids").stdout.split()[0]
    assert cli("tag", first, "+good", "+best").exit_code == 0, "tagging"
    selection = listing.select(Workspace(lab))
    fast = list(selection.brief())
    assert [b for _, b in fast] == [listing._brief_of(r) for r in selection.rows]
    assert any(b[-1] == ["best", "good"] or b[-1] == ["good", "best"] for _, b in fast)
    assert all(b[5] is not None and b[4] == 1 for _, b in fast)
    assert_truthful(cli, monkeypatch)


def forged(entry: index_entry.Entry, tail: str) -> index_entry.Entry:
    """``entry`` with another tail, as an index line could give it."""
    return index_entry.Entry.make(
        entry.id, entry.status, entry.created_at, tail, entry._exp, entry._sig
    )


def test_a_forged_table_column_is_reported_as_the_summary_reports_it(
    lab: Path,  # noqa: F811
) -> None:
    scanned = index.scan_experiment(lab, "P", "E")
    first = scanned.entries[0]
    entry = forged(first, first._tail.rsplit("\t", 1)[0])  # a column short
    with pytest.raises(CorruptRecordError, match="is inconsistent"):
        entry.brief_texts()
    with pytest.raises(CorruptRecordError, match="is inconsistent"):
        listing._briefs([entry])
    second = scanned.entries[1]
    good = forged(
        second, second._tail.replace('"20', '"\\u00320', 1)
    )  # an escaped time stamp: decoded
    assert listing._briefs([good]) == [listing._brief_of(good)]


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
        max_leaves=8,
    )
)
@settings(max_examples=300, deadline=None)
def test_index_columns_are_encoded_as_json_dumps_encodes_them(value: object) -> None:
    expected = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    assert index._compact(value) == expected


def test_signatures_taken_ahead_by_a_child_are_those_taken_here(tmp_path: Path) -> None:
    import os

    dirs = []
    for d in range(3):
        base = tmp_path / f"d{d}"
        for name in ("b", "a", ".hidden", f"c{d}"):
            (base / name).mkdir(parents=True)
            if name != "a" or d != 1:  # (one directory without the file)
                (base / name / "f").write_text(name * (d + 1))
        dirs.append(str(base))
    ahead = signatures.Ahead([*dirs, str(tmp_path / "gone")], "/f")
    assert ahead.take(dirs[0]) is None  # a directory it could not list: none of them
    ahead = signatures.Ahead(dirs, "/f")
    for path in dirs:
        fd = os.open(path, os.O_RDONLY)
        try:
            names = sorted(n for n in os.listdir(fd) if n[0] != ".")
            assert ahead.take(path) == (names, signatures.signatures(fd, [n + "/f" for n in names]))
        finally:
            os.close(fd)
    assert ahead.take(str(tmp_path)) is None  # not asked for
    ahead.close()


def test_a_listing_shared_with_a_child_sees_what_changed_behind_its_back(
    workspace: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(index, "RACY_NS", 0)
    assert cli("project create P").exit_code == 0
    for name in "ABCDEFG":
        made = cli("experiment", "create", f"P/{name}", "--param", "lr=0.1", "--replicas", "2",
                   "--command", "test {replica} -ne 1")  # fmt: skip
        assert made.exit_code == 0, made.output
        assert cli("run", f"P/{name}").exit_code == 1
    before = cli("ls", "--format", "json").stdout
    monkeypatch.setattr(index, "AHEAD_S", 0.0)  # every listing shares its stats at once
    monkeypatch.setattr(index, "AHEAD_MAX_S", 1.0)  # (however slow this disk)
    taken: list[object] = []
    real = signatures.Ahead.take

    def noting(self: signatures.Ahead, path: str) -> object:
        found = real(self, path)
        taken.append(found)
        return found

    monkeypatch.setattr(signatures.Ahead, "take", noting)
    assert cli("ls", "--format", "json").stdout == before
    assert taken and all(found is not None for found in taken)
    runs = workspace / "projects" / "P" / "experiments" / "G" / "runs"
    edited = next(p for p in sorted(runs.glob("*/run.json")) if b'"failed"' in p.read_bytes())
    rewrite_keeping_mtime(edited, lambda raw: raw.replace(b'"failed"', b'"queued"', 1))
    assert "queued" in cli("ls", "--format", "csv").stdout
    assert_truthful(cli, monkeypatch)


def test_a_listing_waiting_for_its_disk_keeps_its_stats_to_itself(
    workspace: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(index, "RACY_NS", 0)
    assert cli("project create P").exit_code == 0
    for name in "ABCDEF":
        assert cli("experiment", "create", f"P/{name}", "--command", "true").exit_code == 0
        assert cli("run", f"P/{name}").exit_code == 0
    before = cli("ls", "--format", "json").stdout
    monkeypatch.setattr(index, "AHEAD_S", 0.0)
    monkeypatch.setattr(index, "AHEAD_MAX_S", 0.0)  # every run counts as slow to look at
    made: list[object] = []
    monkeypatch.setattr(index, "Ahead", lambda *args: made.append(args))
    assert cli("ls", "--format", "json").stdout == before
    assert made == []
