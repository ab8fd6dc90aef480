"""The run index (molexp/core/index.py): a derived accelerator that never hides the truth.

Every test changes the workspace behind the index's back (by hand, like rsync,
from another workspace, by deleting) and checks that `ls` shows exactly what it
shows with the index switched off (``MOLEXP_NO_INDEX=1``), which reads every record.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from molexp.core.records import index, index_entry
from molexp.core.store import files as store
from tests.conftest import Cli, Result

FORMATS = ("table", "json", "csv", "ids")


@pytest.fixture
def lab(workspace: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch) -> Path:
    """P/E with four runs (replica 1 failed, the others succeeded), indexed."""
    # Records written a moment ago count as settled (see test_recent_records_*).
    monkeypatch.setattr(index, "RACY_NS", 0)
    assert cli("project create P").exit_code == 0
    made = cli("experiment", "create", "P/E", "--param", "lr=0.1", "--replicas", "4",
               "--command", "test {replica} -ne 1")  # fmt: skip
    assert made.exit_code == 0, made.output
    assert cli("run P/E").exit_code == 1
    listed = cli("ls")
    assert listed.exit_code == 0 and index_file(workspace).exists()
    assert len(indexed_ids(workspace)) == 4
    return workspace


def runs_dir(ws: Path) -> Path:
    return ws / "projects/P/experiments/E/runs"


def index_file(ws: Path) -> Path:
    path = index.index_path(ws, "P", "E")
    assert path is not None
    return path


def indexed_ids(ws: Path) -> list[str]:
    return sorted(line.split("\t", 1)[0] for line in index._load(index_file(ws), "P", "E")[1])


def by_replica(ws: Path, replica: int) -> Path:
    for path in runs_dir(ws).glob("*/run.json"):
        if json.loads(path.read_bytes())["replica"] == replica:
            return path
    raise AssertionError(f"no replica {replica}")


def truth(cli: Cli, monkeypatch: pytest.MonkeyPatch, *args: str) -> Result:
    """What `molexp ARGS` says when every record is read (no index)."""
    with monkeypatch.context() as m:
        m.setenv("MOLEXP_NO_INDEX", "1")
        return cli(*args)


def assert_truthful(cli: Cli, monkeypatch: pytest.MonkeyPatch, *extra: str) -> None:
    """Every format of `ls` (also filtered) agrees with the records themselves."""
    for fmt in FORMATS:
        for args in (("ls", "--format", fmt), ("ls", "--format", fmt, "--status", "failed")):
            with_index = cli(*args, *extra)
            expected = truth(cli, monkeypatch, *args, *extra)
            assert (with_index.exit_code, with_index.stdout, with_index.stderr) == (
                expected.exit_code, expected.stdout, expected.stderr,
            ), args  # fmt: skip


def rewrite_keeping_mtime(path: Path, change: Callable[[bytes], bytes]) -> None:
    """Edit ``path`` in place (same inode), then put its old mtime back, as a careful
    hand edit or a clock-preserving tool would; only the ctime tells."""
    before = path.stat()
    new = change(path.read_bytes())
    assert len(new) == before.st_size, "the edit must keep the size"
    with open(path, "r+b") as fh:
        fh.write(new)
    deadline = time.monotonic() + 10
    while True:  # a ctime in the same timestamp tick as before would be no change at all
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
        after = path.stat()
        if after.st_ctime_ns != before.st_ctime_ns or time.monotonic() > deadline:
            break
        time.sleep(0.005)
    assert (after.st_ino, after.st_size, after.st_mtime_ns) == (
        before.st_ino, before.st_size, before.st_mtime_ns,
    )  # fmt: skip


def test_the_index_spares_reading_unchanged_records(
    lab: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads: list[str] = []
    real = index._read

    def counting(dir_fd: int, name: str, path: Path) -> object:
        reads.append(name)
        return real(dir_fd, name, path)

    monkeypatch.setattr(index, "_read", counting)
    scanned = index.scan_experiment(lab, "P", "E")
    assert reads == [] and len(scanned.entries) == 4 and not scanned.problems
    summaries = {e.summary()["replica"]: e.summary() for e in scanned.entries}
    assert summaries[1]["status"] == "failed" and summaries[1]["attempt_count"] == 1
    assert summaries[1]["last_attempt"]["exit_code"] == 1
    # A summary is the record without its long lists.
    record = json.loads(by_replica(lab, 2).read_bytes())
    assert summaries[2] == index_entry.summarise(record)


def test_a_hand_edit_in_place_that_keeps_size_and_mtime_is_seen(
    lab: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = by_replica(lab, 1)
    rewrite_keeping_mtime(
        path, lambda raw: raw.replace(b'"status": "failed"', b'"status": "queued"', 1)
    )
    assert "queued" in cli("ls", "--format", "csv").stdout
    assert cli("ls", "--status", "failed", "--format", "ids").stdout == ""
    assert_truthful(cli, monkeypatch)


def test_a_record_replaced_by_rsync_with_its_old_mtime_is_seen(
    lab: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = by_replica(lab, 2)
    old = path.stat()
    copy = tmp_path / "incoming.json"  # rsync writes a new file, then renames it
    copy.write_bytes(path.read_bytes().replace(b'"updated_at": "20', b'"updated_at": "19', 1))
    os.utime(copy, ns=(old.st_atime_ns, old.st_mtime_ns))
    os.replace(copy, path)
    assert path.stat().st_mtime_ns == old.st_mtime_ns and path.stat().st_size == old.st_size
    shown = json.loads(cli("ls", "--format", "json").stdout)
    assert [r["updated_at"][:2] for r in shown if r["replica"] == 2] == ["19"]
    assert_truthful(cli, monkeypatch)


def test_a_deleted_run_disappears(lab: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    gone = by_replica(lab, 3).parent
    shutil.rmtree(gone)
    assert gone.name not in cli("ls", "--format", "ids").stdout
    assert_truthful(cli, monkeypatch)
    assert gone.name not in indexed_ids(lab)


def test_a_run_copied_in_from_another_workspace_appears(
    lab: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    other = tmp_path / "elsewhere"
    assert cli("init", str(other), "--name", "elsewhere").exit_code == 0
    assert cli("-w", str(other), "project", "create", "P").exit_code == 0
    assert cli("-w", str(other), "experiment", "create", "P/E", "--param", "lr=0.1",
               "--replicas", "4", "--command", "true").exit_code == 0  # fmt: skip
    assert cli("-w", str(other), "run", "P/E", "--param", "lr=0.2", "--replica", "0").exit_code == 0
    (new,) = runs_dir(other).iterdir()
    shutil.copytree(new, runs_dir(lab) / new.name)  # copy2: mtimes preserved
    listed = cli("ls", "--format", "ids").stdout
    assert f"P/E/{new.name}" in listed and len(listed.split()) == 5
    assert_truthful(cli, monkeypatch)


def test_deleting_dot_molexp_loses_nothing(
    lab: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = {fmt: cli("ls", "--format", fmt).stdout for fmt in FORMATS}
    shutil.rmtree(lab / ".molexp")
    assert {fmt: cli("ls", "--format", fmt).stdout for fmt in FORMATS} == before
    assert len(indexed_ids(lab)) == 4  # rebuilt
    assert_truthful(cli, monkeypatch)


def _flip_status(raw: bytes) -> bytes:
    return raw.replace(b"\tfailed\t", b"\tqueued\t", 1)


def _other_version(raw: bytes) -> bytes:
    head, _, body = raw.partition(b"\n")
    fields = head.split(b" ")
    fields[2] = b"0.0.0-other"
    return b" ".join(fields) + b"\n" + body


CORRUPTIONS: dict[str, Callable[[bytes], bytes]] = {
    "empty": lambda raw: b"",
    "truncated": lambda raw: raw[: len(raw) // 2],
    "garbage": lambda raw: b"\x00\xffnot an index\n" * 3,
    "flipped-status": _flip_status,  # checksum no longer matches
    "other-version": _other_version,
    "other-experiment": lambda raw: raw.replace(b'"experiment":"E"', b'"experiment":"F"'),
}


@pytest.mark.parametrize("case", sorted(CORRUPTIONS))
def test_a_damaged_index_is_ignored_and_rebuilt(
    lab: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch, case: str
) -> None:
    path = index_file(lab)
    damaged = CORRUPTIONS[case](path.read_bytes())
    assert damaged != path.read_bytes()
    path.write_bytes(damaged)
    assert_truthful(cli, monkeypatch)
    assert "failed" in cli("ls", "--format", "csv").stdout
    assert len(indexed_ids(lab)) == 4  # rewritten, valid again


def test_an_index_that_cannot_be_written_is_no_problem(
    lab: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    shutil.rmtree(lab / ".molexp" / "index")
    (lab / ".molexp" / "index").write_text("a file where the index directory would be\n")
    assert_truthful(cli, monkeypatch)
    assert cli("ls").exit_code == 0


def test_a_record_that_breaks_after_indexing_is_still_reported(
    lab: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = by_replica(lab, 2)
    good = path.read_bytes()
    path.write_bytes(b"{not json")
    listed = cli("ls", "--format", "ids")
    assert listed.exit_code == 3 and str(path) in listed.stderr
    assert path.parent.name not in listed.stdout and len(listed.stdout.split()) == 3
    assert_truthful(cli, monkeypatch)
    path.write_bytes(good)
    assert cli("ls").exit_code == 0 and len(indexed_ids(lab)) == 4


def test_a_run_directory_without_a_record_is_reported(
    lab: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = by_replica(lab, 0)
    path.rename(path.with_name("run.json.bak"))
    listed = cli("ls")
    assert listed.exit_code == 3 and "is missing" in listed.stderr
    assert_truthful(cli, monkeypatch)


def test_a_stray_file_among_the_runs_is_passed_over(
    lab: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    (runs_dir(lab) / "NOTES.txt").write_text("not a run\n")
    assert cli("ls").exit_code == 0
    assert_truthful(cli, monkeypatch)


def test_a_running_record_whose_owner_is_gone_is_reported_interrupted(
    lab: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = by_replica(lab, 0)
    record = json.loads(path.read_bytes())
    record["status"] = record["attempts"][-1]["status"] = "running"
    store.write_json(path, record, root=lab)
    for _ in range(2):  # once to index it, once from the index
        (shown,) = [r for r in json.loads(cli("ls", "--format", "json").stdout)
                    if r["id"] == path.parent.name]  # fmt: skip
        assert shown["status"] == "interrupted" and shown["recorded_status"] == "running"
        interrupted = cli("ls", "--status", "interrupted", "--format", "ids").stdout
        assert interrupted == f"P/E/{path.parent.name}\n"
    assert_truthful(cli, monkeypatch)
    assert json.loads(path.read_bytes())["status"] == "running"  # reported, not rewritten


def test_where_filters_agree_with_the_records(
    lab: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    for where in ("lr=0.1", "replica=2", "identity=derived", "attempt_count=1", "status=failed"):
        assert_truthful(cli, monkeypatch, "--where", where)
    # `attempt_count` is a key of summaries, not of records: it matches nothing.
    assert cli("ls", "--where", "attempt_count=1", "--format", "ids").stdout == ""
    assert len(cli("ls", "--where", "replica=2", "--format", "ids").stdout.split()) == 1


def test_an_empty_selection_is_an_empty_json_array(lab: Path, cli: Cli) -> None:
    listed = cli("ls", "--status", "cancelled", "--format", "json")
    assert listed.exit_code == 0 and listed.stdout == "[]\n"


def test_recent_records_are_read_again_until_they_settle(
    workspace: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two edits within one timestamp tick could leave size, mtime and ctime alike;
    so a record changed within RACY_NS of a scan is not stored, only listed."""
    assert cli("project create P").exit_code == 0
    assert cli("experiment create P/E --replicas 2 --command true").exit_code == 0
    assert cli("run P/E").exit_code == 0
    monkeypatch.setattr(index, "RACY_NS", 3600 * 10**9)  # everything is "recent"
    assert len(cli("ls", "--format", "ids").stdout.split()) == 2
    assert not index_file(workspace).exists() or indexed_ids(workspace) == []
    monkeypatch.setattr(index, "RACY_NS", 0)
    assert len(cli("ls", "--format", "ids").stdout.split()) == 2
    assert len(indexed_ids(workspace)) == 2


def test_scans_racing_each_other_leave_a_valid_index(lab: Path) -> None:
    shutil.rmtree(lab / ".molexp")
    errors: list[BaseException] = []

    def scan() -> None:
        try:
            for _ in range(5):
                assert len(index.scan_experiment(lab, "P", "E").entries) == 4
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=scan) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(indexed_ids(lab)) == 4
    assert not store.leftover_temp_files(lab)


def test_the_index_is_switched_off_by_molexp_no_index(
    lab: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    shutil.rmtree(lab / ".molexp")
    assert truth(cli, monkeypatch, "ls").exit_code == 0
    assert not index_file(lab).exists()


@pytest.mark.parametrize("queue", ["4242_0 PENDING\n", ""])
def test_a_queued_slurm_run_is_judged_by_asking_slurm(
    lab: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, queue: str
) -> None:
    """Queued/running records are read afresh and handed to the SLURM reconciliation,
    whatever the index says (a fake `squeue` plays SLURM)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    squeue = bin_dir / "squeue"
    squeue.write_text(f"#!/bin/sh\nprintf '{queue}'\n")
    squeue.chmod(0o755)
    # SLURM's word on a job squeue leaves out (whether or not a real SLURM runs here):
    # it does not know the job, and keeps no accounting.
    scontrol = bin_dir / "scontrol"
    scontrol.write_text(
        '#!/bin/sh\ncase "$1" in show) echo "AccountingStorageType = accounting_storage/none";; '
        '*) echo "slurm_load_jobs error: Invalid job id specified" >&2; exit 1;; esac\n'
    )
    scontrol.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    path = by_replica(lab, 3)
    record = json.loads(path.read_bytes())
    record["status"] = "queued"
    record["attempts"].append(
        {"n": 2, "status": "queued", "executor": "slurm", "scheduler_job_id": "4242_0"}
    )
    store.write_json(path, record, root=lab)
    expected = "queued" if queue else "cancelled"
    for _ in range(2):  # once reading the changed record, once with it indexed
        (shown,) = [r for r in json.loads(cli("ls", "--format", "json").stdout)
                    if r["id"] == path.parent.name]  # fmt: skip
        assert shown["status"] == expected
    assert_truthful(cli, monkeypatch)


_FLAT_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False),
    st.text(max_size=6), st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=2), st.integers(), max_size=2),
)  # fmt: skip


@settings(max_examples=500, deadline=None)
@given(st.dictionaries(st.text(max_size=4), _FLAT_VALUES, max_size=5), st.text(max_size=4))
def test_flat_field_agrees_with_json(data: dict[str, Any], name: str) -> None:
    """The index reads one key of a results/metrics column without decoding it all
    (when it may); whatever it returns is what json.loads gives."""
    from molexp.core.records.index import _compact
    from molexp.core.records.index_entry import _SLOW, flat_field

    column = _compact(data)
    for key in [name, *data]:
        found = flat_field(column, key, "absent")
        if found is _SLOW:
            continue
        expected = json.loads(column).get(key, "absent")
        assert type(found) is type(expected) and found == expected, (column, key)
    assert flat_field("null", name, "absent") == "absent"


def test_flat_field_examples() -> None:
    from molexp.core.records.index_entry import _SLOW, flat_field

    column = '{"y":0.5,"n":3,"ok":true,"s":"a,b}","none":null,"big":1e+20,"neg":-Infinity}'
    assert [flat_field(column, k, None) for k in ("y", "n", "ok", "s", "none", "big", "nope")] == [
        0.5, 3, True, "a,b}", None, 1e20, None,
    ]  # fmt: skip
    assert flat_field(column, "neg", None) == float("-inf")
    for nested in ('{"a":{"y":1},"y":2}', '{"y":[1,2]}', '{"y":"a\\"b"}', '{"y":1'):
        found = flat_field(nested, "y", None)
        assert found is _SLOW or nested == '{"y":1'
