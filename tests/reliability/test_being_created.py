"""A run being created: its first attempt holds the run's lock in the new run
directory and writes ``run.json`` with itself running in it milliseconds later.
Until then the run does not exist for any reader — no listing, `show`, `doctor`
or `export` reports the directory as a record that is missing — while a
directory without a record and without a live lock (a crash before the record
was written) is still reported, exit 3."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from molexp.core.store import lock as locks
from tests.conftest import Cli, molexp_exe, run_molexp
from tests.reliability.conftest import make_experiment

NEW = "0123456789abcdef"  # a run directory whose record is not written yet


@pytest.fixture
def lab(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "ws"
    make_experiment(root, replicas=2)
    assert run_molexp("run", "P/E", cwd=root).returncode == 0
    monkeypatch.chdir(root)
    return root


def _new_run_dir(root: Path) -> Path:
    run_dir = root / "projects/P/experiments/E/runs" / NEW
    run_dir.mkdir()
    return run_dir


READERS = [
    ("ls",),
    ("ls", "--format", "json"),
    ("ls", "--status", "succeeded"),
    ("show", "P/E"),
    ("doctor",),
    ("compare", "P/E"),
]


@pytest.mark.parametrize("args", READERS)
def test_a_run_being_created_is_not_reported(lab: Path, cli: Cli, args: tuple[str, ...]) -> None:
    run_dir = _new_run_dir(lab)
    held = locks.try_acquire(run_dir, "run", root=lab)
    assert isinstance(held, locks.RunLock)
    try:
        for _ in range(2):  # reading it, then with the index written
            res = cli(*args)
            assert res.exit_code == 0, res.stderr
            assert "missing" not in res.stderr and NEW not in res.stdout
    finally:
        held.release()


@pytest.mark.parametrize("args", READERS)
def test_a_directory_left_without_a_record_is_reported(
    lab: Path, cli: Cli, args: tuple[str, ...]
) -> None:
    _new_run_dir(lab)  # no record, no lock: a crash before the record was written
    res = cli(*args)
    assert res.exit_code == 3, (res.stdout, res.stderr)
    assert "is missing" in res.stderr + res.stdout


def test_show_of_a_run_being_created_says_so(lab: Path, cli: Cli) -> None:
    run_dir = _new_run_dir(lab)
    held = locks.try_acquire(run_dir, "run", root=lab)
    assert isinstance(held, locks.RunLock)
    try:
        res = cli("show", f"P/E/{NEW}")
        assert res.exit_code != 0 and "is being created" in res.stderr, res.stderr
    finally:
        held.release()
    res = cli("show", f"P/E/{NEW}")
    assert res.exit_code == 3 and "is missing" in res.stderr


def test_export_leaves_out_a_run_being_created(lab: Path, cli: Cli, tmp_path: Path) -> None:
    run_dir = _new_run_dir(lab)
    held = locks.try_acquire(run_dir, "run", root=lab)
    assert isinstance(held, locks.RunLock)
    try:
        res = cli("export", "P/E", "-o", str(tmp_path / "b.tar.gz"))
        assert res.exit_code == 0, res.stderr
        listed = subprocess.run(
            ["tar", "-tzf", str(tmp_path / "b.tar.gz")], capture_output=True, text=True
        )
        assert NEW not in listed.stdout
    finally:
        held.release()


def test_listings_during_a_sweep_never_report_a_missing_record(lab: Path) -> None:
    """The real thing: `ls` over and over while `run --jobs 2` creates 60 runs."""
    make_experiment(lab, name="S", replicas=60)
    sweep = subprocess.Popen(
        [*molexp_exe(), "run", "P/S", "--jobs", "2"],
        cwd=lab,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    seen: list[str] = []
    try:
        while sweep.poll() is None:
            res = run_molexp("ls", "P/S", "--format", "ids", cwd=lab)
            assert res.returncode == 0, res.stderr
            seen.append(res.stdout)
    finally:
        sweep.wait()
    assert sweep.returncode == 0
    final = run_molexp("ls", "P/S", "--format", "ids", cwd=lab)
    assert len(final.stdout.splitlines()) == 60
    assert seen, "the sweep ended before a listing"


def test_a_lock_of_a_process_that_is_gone_does_not_hide_the_directory(lab: Path, cli: Cli) -> None:
    run_dir = _new_run_dir(lab)
    owner = locks.owner_info("run")
    dead = subprocess.Popen(["true"])  # (a pid that has ended)
    dead.wait()
    owner.update(pid=dead.pid, pid_start=None)
    (run_dir / locks.LOCK_NAME).write_text(json.dumps(owner))
    os.utime(run_dir / locks.LOCK_NAME, (0, 0))
    res = cli("ls")
    assert res.exit_code == 3 and "is missing" in res.stderr
