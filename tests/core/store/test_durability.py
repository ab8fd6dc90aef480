"""What an executed run fsyncs (docs/reliability.md, "What is fsynced, and why")."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.conftest import Cli


def _fsynced(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    seen: list[str] = []
    real = os.fsync

    def spy(fd: int) -> None:
        seen.append(os.readlink(f"/proc/self/fd/{fd}"))
        real(fd)

    monkeypatch.setattr(os, "fsync", spy)
    return seen


def test_an_executed_run_makes_three_fsyncs_and_ends_durable(
    workspace: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert cli("project", "create", "p").exit_code == 0
    assert cli("experiment", "create", "p/e", "--replicas", "2", "--command", "true").exit_code == 0
    # The first attempt in an environment stores its package list (environments/,
    # durable, once per environment): not part of what each run costs.
    assert cli("experiment", "create", "p/warm", "--command", "true").exit_code == 0
    assert cli("run", "p/warm").exit_code == 0
    seen = _fsynced(monkeypatch)
    assert cli("run", "p/e", "-r", "0").exit_code == 0
    exp_dir = workspace / "projects/p/experiments/e"
    (run_dir,) = (exp_dir / "runs").iterdir()
    # A new directory's entry in its parent (the experiment's runs/, the run's
    # own directory in it), then the new record's data (created with its attempt
    # running in it), the outcome's data (temporary files of run.json), then the
    # run directory: nothing else (not the lock, not params/config, not the
    # attempt's folders).
    assert [Path(p) for p in seen[:2]] == [exp_dir.resolve(), (exp_dir / "runs").resolve()]
    rest = seen[2:]
    assert len(rest) == 3, seen
    assert all(Path(p).parent == run_dir.resolve() for p in rest[:2]), seen
    assert all(Path(p).name.startswith(".tmp-") for p in rest[:2]), seen
    assert Path(rest[2]) == run_dir.resolve()
    seen.clear()
    assert cli("run", "p/e", "-r", "1").exit_code == 0  # runs/ exists: one entry fsync
    assert len(seen) == 4 and Path(seen[0]) == (exp_dir / "runs").resolve(), seen
    seen.clear()
    assert cli("run", "p/e", "-r", "1", "--force").exit_code == 0  # nothing new
    assert len(seen) == 3, seen  # running data, outcome data, the run directory


def test_a_run_created_without_running_is_durable_at_once(
    workspace: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    import molexp as mx

    exp = mx.Workspace(workspace).project("p").experiment("e", params={"x": 1})
    seen = _fsynced(monkeypatch)
    run = exp.run_for(replica=0)
    assert [Path(p) for p in seen][-1] == run.dir.resolve()  # the directory entry too
