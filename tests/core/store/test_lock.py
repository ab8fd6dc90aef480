"""The run lock: NFS's lost link reply, fencing of an owner judged gone, and the
heartbeat timeout's validation (SPEC §8; issue #12)."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import pytest

from molexp.core.store import files as store
from molexp.core.store import lock as locks
from molexp.errors import LockLostError, UsageError


def test_a_link_whose_reply_nfs_lost_is_still_ours(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """NFS: the server made the link, its reply was lost, the retry says EEXIST."""
    real_link = os.link

    def link_then_lose_the_reply(src: Path, dst: Path) -> None:
        real_link(src, dst)
        raise FileExistsError(17, "File exists", str(dst))

    monkeypatch.setattr(store, "_link", link_then_lose_the_reply)
    held = locks.try_acquire(tmp_path, root=tmp_path)
    assert isinstance(held, locks.RunLock)
    assert held.inode == (tmp_path / locks.LOCK_NAME).stat().st_ino
    held.check()
    held.release()
    assert not (tmp_path / locks.LOCK_NAME).exists()
    assert store.leftover_temp_files(tmp_path) == []


def test_someone_elses_lock_is_still_refused_when_the_link_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = {"host": "node-b", "pid": 1, "since": time.time()}
    (tmp_path / locks.LOCK_NAME).write_text(json.dumps(other))
    got = locks.try_acquire(tmp_path, root=tmp_path)
    assert isinstance(got, locks.LockState) and got.host == "node-b"


def _taken_over(run_dir: Path) -> dict[str, object]:
    """What another host does after judging this process gone: break and claim."""
    (run_dir / locks.LOCK_NAME).unlink()
    owner = {"host": "node-b", "pid": 4242, "since": time.time()}
    assert store.create_exclusive(
        run_dir / locks.LOCK_NAME, json.dumps(owner).encode(), root=run_dir
    )
    return owner


def test_a_holder_whose_lock_was_taken_over_saves_nothing(tmp_path: Path) -> None:
    held = locks.acquire(tmp_path, root=tmp_path)
    locks.check_held(tmp_path)  # still ours
    owner = _taken_over(tmp_path)
    with pytest.raises(LockLostError, match="lost the run's lock .*pid 4242 on node-b"):
        locks.check_held(tmp_path)
    held.release()
    # releasing leaves the new owner's lock alone
    assert json.loads((tmp_path / locks.LOCK_NAME).read_text()) == owner


def test_a_lock_rewritten_in_place_by_another_owner_is_lost_too(tmp_path: Path) -> None:
    held = locks.acquire(tmp_path, root=tmp_path)
    (tmp_path / locks.LOCK_NAME).write_text(json.dumps({"host": "node-b", "pid": 7}))
    with pytest.raises(LockLostError):
        held.check()
    held.release()
    assert (tmp_path / locks.LOCK_NAME).exists()


def test_saving_without_holding_the_lock_is_refused(tmp_path: Path) -> None:
    with pytest.raises(LockLostError, match="does not hold the run's lock"):
        locks.check_held(tmp_path)
    held = locks.acquire(tmp_path, root=tmp_path)
    held.release()
    with pytest.raises(LockLostError):
        locks.check_held(tmp_path)


def test_the_heartbeat_never_keeps_a_new_owners_lock_alive(tmp_path: Path) -> None:
    held = locks.acquire(tmp_path, root=tmp_path)
    held.start_heartbeat(interval=0.05)
    _taken_over(tmp_path)
    old = time.time() - 3600
    os.utime(tmp_path / locks.LOCK_NAME, (old, old))  # the new owner went quiet
    assert held.lost.wait(5)
    time.sleep(0.2)
    assert (tmp_path / locks.LOCK_NAME).stat().st_mtime == pytest.approx(old, abs=1)
    held.release()


def test_the_heartbeat_keeps_its_own_lock_fresh(tmp_path: Path) -> None:
    held = locks.acquire(tmp_path, root=tmp_path)
    old = time.time() - 3600
    os.utime(tmp_path / locks.LOCK_NAME, (old, old))
    held.start_heartbeat(interval=0.05)
    deadline = time.monotonic() + 5
    while (tmp_path / locks.LOCK_NAME).stat().st_mtime < old + 60:
        assert time.monotonic() < deadline, "no heartbeat"
        time.sleep(0.02)
    assert not held.lost.is_set()
    held.release()


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "-1", "0", "soon", "1e999"])
def test_a_heartbeat_timeout_that_is_not_a_positive_number_is_refused(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("MOLEXP_HEARTBEAT_TIMEOUT", value)
    with pytest.raises(UsageError, match="MOLEXP_HEARTBEAT_TIMEOUT must be a positive number"):
        locks.heartbeat_timeout()


@pytest.mark.parametrize(("value", "seconds"), [("", 120.0), ("30", 30.0), (" 2.5 ", 2.5)])
def test_a_valid_heartbeat_timeout(
    monkeypatch: pytest.MonkeyPatch, value: str, seconds: float
) -> None:
    monkeypatch.setenv("MOLEXP_HEARTBEAT_TIMEOUT", value)
    assert locks.heartbeat_timeout() == seconds


def test_new_directories_are_made_durable_in_their_parents(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[Path] = []
    monkeypatch.setattr(store, "fsync_dir", lambda d: synced.append(Path(d)))
    store.make_dirs(tmp_path, tmp_path / "runs" / "abc", durable=True)
    assert synced == [tmp_path, tmp_path / "runs"]
    synced.clear()
    store.make_dirs(tmp_path, tmp_path / "runs" / "abc", durable=True)  # nothing new
    store.make_dirs(tmp_path, tmp_path / "runs" / "abc" / "attempts" / "1")  # not durable
    assert synced == []
    (tmp_path / "file").write_text("x")
    with pytest.raises(NotADirectoryError):
        store.make_dirs(tmp_path, tmp_path / "file")
    with pytest.raises(OSError):
        store.make_dirs(tmp_path, tmp_path / "file" / "below")


_EARLIER: set[threading.Thread] = set()


@pytest.fixture
def heartbeat(monkeypatch: pytest.MonkeyPatch) -> None:
    """A heartbeat of this test's own (another test's unreleased lock keeps its own)."""
    _EARLIER.clear()
    _EARLIER.update(threading.enumerate())
    monkeypatch.setattr(locks, "_HEARTBEAT", locks._Heartbeat())


def _heartbeat_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "molexp-heartbeat" and t not in _EARLIER]


@pytest.mark.usefixtures("heartbeat")
def test_one_heartbeat_thread_beats_for_every_lock_and_ends_with_the_last(
    tmp_path: Path,
) -> None:
    dirs = [tmp_path / f"r{i}" for i in range(3)]
    old = time.time() - 3600
    held = []
    for d in dirs:
        d.mkdir()
        got = locks.acquire(d, root=tmp_path)
        os.utime(d / locks.LOCK_NAME, (old, old))
        got.start_heartbeat(interval=0.05)
        held.append(got)
    assert len(_heartbeat_threads()) == 1
    deadline = time.monotonic() + 5
    while any((d / locks.LOCK_NAME).stat().st_mtime < old + 60 for d in dirs):
        assert time.monotonic() < deadline, "a lock without a heartbeat"
        time.sleep(0.02)
    for got in held:
        got.release()
    assert _heartbeat_threads() == []  # nothing left behind when the command ends


@pytest.mark.usefixtures("heartbeat")
def test_a_batch_keeps_the_heartbeat_thread_between_its_attempts(tmp_path: Path) -> None:
    done = locks.keep_heartbeat()
    threads = set()
    for i in range(3):
        d = tmp_path / f"r{i}"
        d.mkdir()
        got = locks.acquire(d, root=tmp_path)
        got.start_heartbeat(interval=0.05)
        threads.update(_heartbeat_threads())
        got.release()
    assert len(threads) == 1 and _heartbeat_threads() == list(threads)
    done()
    done()  # (twice is once)
    assert _heartbeat_threads() == []


@pytest.mark.usefixtures("heartbeat")
def test_a_thread_whose_locks_were_all_taken_over_ends(tmp_path: Path) -> None:
    held = locks.acquire(tmp_path, root=tmp_path)
    held.start_heartbeat(interval=0.02)
    _taken_over(tmp_path)
    assert held.lost.wait(5)
    deadline = time.monotonic() + 5
    while _heartbeat_threads():
        assert time.monotonic() < deadline, "a heartbeat thread with nothing to beat"
        time.sleep(0.02)
    held.release()


def test_a_released_lock_is_never_touched_again(tmp_path: Path) -> None:
    held = locks.acquire(tmp_path, root=tmp_path)
    held.start_heartbeat(interval=0.01)
    held.release()
    owner = {"host": "node-b", "pid": 4242, "since": time.time()}  # the next owner, quiet
    assert store.create_exclusive(
        tmp_path / locks.LOCK_NAME, json.dumps(owner).encode(), root=tmp_path
    )
    old = time.time() - 3600
    os.utime(tmp_path / locks.LOCK_NAME, (old, old))
    time.sleep(0.1)
    assert (tmp_path / locks.LOCK_NAME).stat().st_mtime == pytest.approx(old, abs=1)
    assert json.loads((tmp_path / locks.LOCK_NAME).read_text()) == owner
