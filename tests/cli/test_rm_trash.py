"""`molexp rm` and `molexp trash ls|restore|empty` (SPEC §16)."""

from __future__ import annotations

import json
import os
import select
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from molexp.core.records.trash import MANIFEST, MARKER, TRASH_DIR
from molexp.core.store.files import leftover_temp_files
from molexp.core.store.lock import LOCK_NAME
from tests.conftest import Cli, molexp_exe, run_molexp, snapshot
from tests.reliability.conftest import proc_env, spawn, wait_for

FAIL_ODD = "test $(( {replica} % 2 )) -eq 0"


@pytest.fixture
def lab(workspace: Path, cli: Cli) -> list[str]:
    """p/e with four runs (replicas 1 and 3 failed) and p/other with one."""
    assert cli("project create p").exit_code == 0
    assert (
        cli("experiment", "create", "p/e", "--replicas", "4", "--command", FAIL_ODD).exit_code == 0
    )
    assert cli("experiment", "create", "p/other", "--command", "true").exit_code == 0
    assert cli("run p/e").exit_code == 1
    assert cli("run p/other").exit_code == 0
    return cli("ls p/e --format ids").stdout.split()


def _trash(cli: Cli) -> list[dict[str, Any]]:
    r = cli("trash ls --json")
    assert r.exit_code == 0, r.output
    found: list[dict[str, Any]] = json.loads(r.stdout)
    return found


def _stats(root: Path) -> dict[str, tuple[int, int]]:
    return {
        str(p.relative_to(root)): (p.stat().st_mtime_ns, p.stat().st_mode)
        for p in sorted(root.rglob("*"))
        if p.is_file()  # (a directory's own time changes: the lock came and went)
        and ".molexp" not in p.relative_to(root).parts
        and TRASH_DIR not in p.relative_to(root).parts
    }


def test_rm_trash_ls_restore_round_trips_a_run_byte_for_byte(
    lab: list[str], workspace: Path, cli: Cli
) -> None:
    assert cli("ls --format ids").exit_code == 0  # the index is warm
    before, times = snapshot(workspace), _stats(workspace)
    r = cli("rm", lab[0], "--yes")
    assert r.exit_code == 0, r.output
    assert "Moved 1 run to the trash" in r.stderr
    assert lab[0] not in cli("ls --format ids").stdout  # the index forgets it at once
    assert lab[0] not in cli("compare p/e --format json").stdout
    (entry,) = _trash(cli)
    assert entry["runs"] == 1 and entry["items"][0]["ref"] == lab[0] and entry["refs"] == [lab[0]]
    rid = lab[0].split("/")[2]
    trashed = (
        workspace / TRASH_DIR / entry["id"] / "projects/p/experiments/e/runs" / rid / "run.json"
    )
    assert trashed.is_file()  # its layout is kept
    assert cli("show", lab[0]).exit_code == 2
    r = cli("trash", "restore", entry["id"][:10])
    assert r.exit_code == 0, r.output
    after = snapshot(workspace)
    assert {k: v for k, v in after.items() if not k.startswith(TRASH_DIR)} == before
    assert _stats(workspace) == times  # the same files: times and modes too
    assert _trash(cli) == [] and lab[0] in cli("ls --format ids").stdout
    assert not list(workspace.rglob(LOCK_NAME)) and not leftover_temp_files(workspace)


def test_running_the_same_run_again_creates_it_anew_and_restore_is_then_refused(
    lab: list[str], workspace: Path, cli: Cli
) -> None:
    assert cli("rm", lab[0], "-y").exit_code == 0
    r = cli("run p/e -r 0 --json")
    assert r.exit_code == 0
    (line,) = [json.loads(x) for x in r.stdout.splitlines()]
    assert line["action"] == "executed" and line["attempt"] == 1  # a new run, same id
    assert f"p/e/{line['id']}" == lab[0]
    (entry,) = _trash(cli)
    before = snapshot(workspace, derived=True)
    r = cli("trash", "restore", entry["id"])
    assert r.exit_code == 3 and "exists" in r.stderr
    assert snapshot(workspace, derived=True) == before


def test_rm_without_yes_off_a_terminal_moves_nothing(lab: list[str], workspace: Path) -> None:
    before = snapshot(workspace, derived=True)
    res = run_molexp("rm", "p/e", cwd=workspace, env=proc_env())
    assert res.returncode == 2
    assert res.stderr.strip().count("\n") == 0 and "--yes" in res.stderr
    assert "4 runs (experiment p/e)" in res.stderr
    assert snapshot(workspace, derived=True) == before


def _on_a_terminal(args: list[str], cwd: Path, answer: str) -> tuple[int, str]:
    """Run molexp with stdin/stdout/stderr on a pseudo-terminal; type ``answer``
    once it asks."""
    leader, follower = os.openpty()
    proc = subprocess.Popen(
        [*molexp_exe(), *args], cwd=cwd, env=proc_env(), stdin=follower, stdout=follower,
        stderr=follower, close_fds=True,
    )  # fmt: skip
    os.close(follower)
    seen = b""
    deadline = time.monotonic() + 60
    answered = False
    while time.monotonic() < deadline:
        ready, _, _ = select.select([leader], [], [], 0.1)
        if ready:
            try:
                chunk = os.read(leader, 4096)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
            if not answered and b"[y/N]" in seen:
                os.write(leader, answer.encode() + b"\n")
                answered = True
        elif proc.poll() is not None:
            break
    code = proc.wait(timeout=60)
    os.close(leader)
    return code, seen.decode(errors="replace")


def test_rm_on_a_terminal_lists_what_goes_and_asks(
    lab: list[str], workspace: Path, cli: Cli
) -> None:
    before = snapshot(workspace, derived=True)
    code, shown = _on_a_terminal(["rm", "p/e"], workspace, "n")
    assert code == 1 and "experiment p/e (4 runs)" in shown and "Nothing was removed" in shown
    assert snapshot(workspace, derived=True) == before
    code, shown = _on_a_terminal(["rm", "p/e"], workspace, "y")
    assert code == 0, shown
    assert not (workspace / "projects/p/experiments/e").exists()
    assert [e["items"][0]["ref"] for e in _trash(cli)] == ["p/e"]


def test_dry_run_lists_and_moves_nothing(lab: list[str], workspace: Path, cli: Cli) -> None:
    before = snapshot(workspace, derived=True)
    r = cli("rm p/e --where status=failed --dry-run --json")
    assert r.exit_code == 0, r.output
    plan = json.loads(r.stdout)
    assert sorted(plan["runs"]) == sorted([lab[1], lab[3]]) and plan["trash"] is None
    assert snapshot(workspace, derived=True) == before


def test_where_removes_only_the_runs_that_meet_it(
    lab: list[str], workspace: Path, cli: Cli
) -> None:
    r = cli("rm p/e --where status=failed --yes --json")
    assert r.exit_code == 0, r.output
    assert sorted(json.loads(r.stdout)["runs"]) == sorted([lab[1], lab[3]])
    assert cli("ls --status failed --format ids").stdout == ""
    assert cli("ls p/e --format ids").stdout.split() == [lab[0], lab[2]]
    assert cli("rm --where status=failed --yes").stderr.strip() == "Nothing to remove."
    # without a REF, --where looks everywhere
    assert cli("rm --where replica=0 --yes").exit_code == 0
    assert cli("ls --format ids").stdout.split() == [lab[2]]


def test_whole_experiments_and_projects_go_and_come_back(
    lab: list[str], workspace: Path, cli: Cli
) -> None:
    before = snapshot(workspace)
    assert cli("rm p/other p/e --yes").exit_code == 0
    assert cli("experiment ls p --json").stdout.strip() == "[]"
    assert cli("rm p -y").exit_code == 0
    assert cli("project ls --json").stdout.strip() == "[]"
    entries = _trash(cli)
    assert [e["runs"] for e in entries] == [5, 0]
    assert not list((workspace / TRASH_DIR).rglob(MARKER)) and not list(
        (workspace / TRASH_DIR).rglob(LOCK_NAME)
    )
    # the experiments' entry needs its project back first
    r = cli("trash", "restore", entries[0]["id"])
    assert r.exit_code == 3 and "project p does not exist" in r.stderr
    assert cli("trash", "restore", entries[1]["id"]).exit_code == 0
    assert cli("trash", "restore", entries[0]["id"]).exit_code == 0
    assert snapshot(workspace) == before
    assert cli("rm . -y").exit_code == 2  # never the whole workspace by accident


def test_a_running_run_is_refused_even_with_force(
    workspace: Path, cli: Cli, tmp_path: Path
) -> None:
    assert cli("project create p").exit_code == 0
    assert (
        cli(
            "experiment",
            "create",
            "p/slow",
            "--command",
            'touch "$STARTED"; while [ ! -e "$RELEASE" ]; do sleep 0.02; done',
        ).exit_code
        == 0
    )
    release = tmp_path / "release"
    started = tmp_path / "started"
    env = proc_env(RELEASE=str(release), STARTED=str(started))
    runner = spawn("run", "p/slow", cwd=workspace, env=env)
    try:
        runs = workspace / "projects/p/experiments/slow/runs"
        run_dir = wait_for(
            lambda: next((d for d in runs.glob("*") if (d / LOCK_NAME).exists()), None), "the run"
        )
        wait_for(  # (a new run's record is written once its lock is taken)
            lambda: (
                (run_dir / "run.json").exists()
                and json.loads((run_dir / "run.json").read_text())["status"] == "running"
            ),
            "running",
        )
        wait_for(started.exists, "the command")  # (its logs are open: nothing more comes)
        before = snapshot(workspace)
        for args in (
            ["rm", f"p/slow/{run_dir.name}", "-y"],
            ["rm", "p/slow", "-y", "--force"],
            ["rm", "p", "-y"],
        ):
            res = run_molexp(*args, cwd=workspace, env=proc_env())
            assert res.returncode == 3, (args, res.stderr)
            assert "held by" in res.stderr and "Nothing was removed" in res.stderr
        assert snapshot(workspace) == before
    finally:
        release.touch()
        runner.communicate(timeout=60)
    assert runner.returncode == 0
    assert cli("rm p/slow -y").exit_code == 0  # once it ended


def test_a_queued_run_needs_force(lab: list[str], workspace: Path, cli: Cli) -> None:
    from molexp.core.execution import lifecycle
    from molexp.core.execution.lifecycle import RunOptions
    from molexp.core.records.refs import resolve
    from molexp.core.records.runs import Run
    from molexp.core.records.workspace import Workspace

    target = resolve(Workspace(workspace), lab[1])
    assert target.experiment is not None and target.run_id is not None
    run = Run.load(target.experiment, target.run_id)
    lifecycle.enqueue(run, "77_1", RunOptions(cwd=workspace), {"script": "s", "sbatch_args": []})
    r = cli("rm", lab[1], "-y")
    assert r.exit_code == 3 and "queued (SLURM job 77_1)" in r.stderr and "--force" in r.stderr
    assert cli("rm", lab[1], "-y", "--force").exit_code == 0
    assert _trash(cli)[0]["forced"] is True


def test_a_run_that_produced_an_asset_is_refused(lab: list[str], workspace: Path, cli: Cli) -> None:
    from molexp.core.assets import Scope, add_asset
    from molexp.core.records.workspace import Workspace

    ws = Workspace(workspace)
    run_dir = workspace / "projects/p/experiments/e/runs" / lab[0].split("/")[2]
    (run_dir / "artifacts" / "model.bin").write_bytes(b"weights")
    add_asset(Scope(ws, "p"), "model", run_dir / "artifacts" / "model.bin", producer=run_dir.name)
    add_asset(Scope(ws), "linked", run_dir / "artifacts" / "model.bin", mode="link")
    before = snapshot(workspace, derived=True)
    r = cli("rm", lab[0], "-y")
    assert r.exit_code == 3, r.output
    assert "asset p:model names it as its producer" in r.stderr
    assert "asset .:linked keeps its data in it" in r.stderr
    assert cli("rm p/e -y").exit_code == 3  # a whole experiment holding it, too
    assert snapshot(workspace, derived=True) == before
    assert cli("rm p -y").exit_code == 3  # the project holds the asset, not the linked one
    assert cli("rm", lab[0], "-y", "--force").exit_code == 0


def test_an_asset_that_goes_with_its_experiment_does_not_refuse(
    lab: list[str], workspace: Path, cli: Cli
) -> None:
    from molexp.core.assets import Scope, add_asset
    from molexp.core.records.workspace import Workspace

    rid = lab[0].split("/")[2]
    (workspace / "w.bin").write_bytes(b"w")
    add_asset(Scope(Workspace(workspace), "p", "e"), "model", workspace / "w.bin", producer=rid)
    assert cli("rm", lab[0], "-y").exit_code == 3
    assert cli("rm p/e -y").exit_code == 0


def test_trash_empty_older_than_and_for_good(lab: list[str], workspace: Path, cli: Cli) -> None:
    assert cli("rm", lab[0], "-y").exit_code == 0
    assert cli("rm", lab[1], "-y").exit_code == 0
    old, new = _trash(cli)
    manifest = workspace / TRASH_DIR / old["id"] / MANIFEST
    record = json.loads(manifest.read_text())
    record["removed_at"] = "2020-01-01T00:00:00.000000+00:00"
    manifest.write_text(json.dumps(record))
    assert cli("trash empty --older-than 30").exit_code == 2  # not on a terminal: --yes
    r = cli("trash empty --older-than 30 --dry-run --json")
    assert [e["id"] for e in json.loads(r.stdout)] == [old["id"]]
    assert len(_trash(cli)) == 2
    assert cli("trash empty --older-than 30 -y").exit_code == 0
    assert [e["id"] for e in _trash(cli)] == [new["id"]]
    assert cli("trash empty -y").exit_code == 0
    assert _trash(cli) == [] and list((workspace / TRASH_DIR).iterdir()) == []
    assert cli("trash restore nosuch").exit_code == 2
    assert cli("trash empty --older-than -1 -y").exit_code == 2


def test_an_unreadable_trash_entry_is_named(lab: list[str], workspace: Path, cli: Cli) -> None:
    assert cli("rm", lab[0], "-y").exit_code == 0
    (entry,) = _trash(cli)
    (workspace / TRASH_DIR / entry["id"] / MANIFEST).write_text("{")
    r = cli("trash ls")
    assert r.exit_code == 3 and "trash.json" in r.stderr


def test_trash_ids_complete(lab: list[str], workspace: Path, cli: Cli) -> None:
    from tests.test_completion import bash_complete

    assert cli("rm", lab[0], "-y").exit_code == 0
    (entry,) = _trash(cli)
    assert bash_complete("molexp", "trash", "restore", "", cwd=workspace) == [entry["id"]]
    assert "rm" in bash_complete("molexp", "r", cwd=workspace)


# --- concurrency: real processes ---------------------------------------------------------


def _consistent(run_dir: Path) -> dict[str, Any]:
    """A run directory holds a whole run: a valid record whose attempts are all
    there and ended (or it never started)."""
    record: dict[str, Any] = json.loads((run_dir / "run.json").read_text())
    numbers = (
        sorted(int(p.name) for p in (run_dir / "attempts").glob("*"))
        if (run_dir / "attempts").exists()
        else []
    )
    assert numbers == [a["n"] for a in record["attempts"]], run_dir
    assert record["status"] != "running", run_dir
    return record


@pytest.mark.slow
def test_runs_started_while_rm_works_are_either_removed_whole_or_untouched(
    workspace: Path, cli: Cli
) -> None:
    replicas = 24
    assert cli("project create P").exit_code == 0
    assert (
        cli(
            "experiment", "create", "P/E", "--replicas", str(replicas), "--command", "sleep 0.05"
        ).exit_code
        == 0
    )
    runner = spawn("run", "P/E", "-j", "3", cwd=workspace)
    removed = 0
    runs = workspace / "projects/P/experiments/E/runs"
    try:
        deadline = time.monotonic() + 120
        while runner.poll() is None and time.monotonic() < deadline:
            for run_dir in sorted(runs.glob("*")):
                res = run_molexp("rm", f"P/E/{run_dir.name}", "-y", cwd=workspace, env=proc_env())
                assert res.returncode in (0, 2, 3), res.stderr  # moved; gone meanwhile; held
                assert "Traceback" not in res.stderr and "internal error" not in res.stderr
                removed += res.returncode == 0
    finally:
        out, err = runner.communicate(timeout=120)
    assert runner.returncode in (0, 3), err  # 3: a run it meant to start had just been removed
    assert "Traceback" not in err and "internal error" not in err
    assert removed > 0
    in_trash = list((workspace / TRASH_DIR).glob("*/projects/P/experiments/E/runs/*"))
    assert len(in_trash) == removed
    for run_dir in [*in_trash, *runs.glob("*")]:
        _consistent(run_dir)
    assert not list(workspace.rglob(LOCK_NAME)) and not leftover_temp_files(workspace)
    assert not list(workspace.rglob(MARKER))


@pytest.mark.slow
def test_an_experiment_removed_while_it_runs_goes_whole(workspace: Path, cli: Cli) -> None:
    assert cli("project create P").exit_code == 0
    assert (
        cli("experiment", "create", "P/E", "--replicas", "30", "--command", "sleep 0.05").exit_code
        == 0
    )
    runner = spawn("run", "P/E", "-j", "2", cwd=workspace)
    refused = 0
    try:
        wait_for(lambda: (workspace / "projects/P/experiments/E/runs").exists(), "a run")
        while True:
            # Removed whole while it runs, or refused while a run holds it (then
            # everything stays in place); once the runner is done, it goes.
            ended = runner.poll() is not None
            res = run_molexp("rm", "P/E", "-y", cwd=workspace, env=proc_env())
            assert "Traceback" not in res.stderr
            if res.returncode == 0:
                break
            assert res.returncode == 3 and "held by" in res.stderr, res.stderr
            assert not ended, "refused after the runner ended"
            refused += 1
            for run_dir in (workspace / "projects/P/experiments/E/runs").glob("*"):
                # untouched: every run still whole, or being created: its first
                # attempt's lock comes first, then the record's temporary file, then
                # the record (with the attempt running in it), then its folders
                names = [p.name for p in run_dir.iterdir()]
                being_created = all(n.startswith(".tmp-") or n == LOCK_NAME for n in names)
                assert being_created or (run_dir / "run.json").exists(), names
    finally:
        _, err = runner.communicate(timeout=120)
    print(f"\nrm refused {refused} time(s) before it took the experiment")
    assert "Traceback" not in err and "internal error" not in err
    assert not (workspace / "projects/P/experiments/E").exists()  # no skeleton left behind
    (entry,) = _trash(cli)
    trashed = workspace / TRASH_DIR / entry["id"] / "projects/P/experiments/E"
    for run_dir in (trashed / "runs").glob("*"):
        _consistent(run_dir)
    assert not list(trashed.rglob(LOCK_NAME)) and not list(trashed.rglob(MARKER))
    assert cli("trash", "restore", entry["id"]).exit_code == 0
    assert cli("run P/E").exit_code == 0  # and it carries on where it was
