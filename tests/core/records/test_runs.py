"""Reading run records as things are now (molexp/core/records/runs.py)."""

from __future__ import annotations

import json
from pathlib import Path

from molexp.core.records.runs import observe
from tests.conftest import Cli


def _one_run(workspace: Path, cli: Cli) -> Path:
    assert cli("project create p").exit_code == 0
    assert cli("experiment", "create", "p/e", "--command", "true").exit_code == 0
    assert cli("run p/e").exit_code == 0
    (run_dir,) = (workspace / "projects/p/experiments/e/runs").iterdir()
    return run_dir


def test_a_run_that_ended_since_it_was_read_is_seen_whole(workspace: Path, cli: Cli) -> None:
    """A reader holding a `running` record of a run that has ended meanwhile (its
    lock is gone, its record rewritten) sees the record as it is now: the status and
    the attempts of one version, never the new status over the old attempts."""
    run_dir = _one_run(workspace, cli)
    ended = json.loads((run_dir / "run.json").read_text())
    stale = json.loads(json.dumps(ended))
    stale["status"] = "running"
    stale["attempts"][-1].update(status="running", exit_code=None, finished_at=None)
    assert observe(stale, run_dir) == ("succeeded", None)
    assert stale == ended
    assert (
        stale["attempts"][-1]["status"] == "succeeded" and stale["attempts"][-1]["exit_code"] == 0
    )


def test_a_running_record_without_its_owner_is_interrupted(workspace: Path, cli: Cli) -> None:
    run_dir = _one_run(workspace, cli)
    record = json.loads((run_dir / "run.json").read_text())
    record["status"] = "running"
    record["attempts"][-1]["status"] = "running"
    (run_dir / "run.json").write_text(json.dumps(record, indent=2) + "\n")
    held = json.loads(json.dumps(record))
    assert observe(held, run_dir) == ("interrupted", "its process is gone (no lock held)")
    assert held == record  # nothing to take from the file: it says running too
