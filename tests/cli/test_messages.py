"""What commands say in the small cases that used to mislead (issue #12, item 14):
inputs used by several attempts, durations, short prefixes, held runs, folder
names that are no workspace names, and doctor's counts through a symlink."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

from molexp.core.store import lock as locks
from tests.conftest import Cli

LOOKS_UP = f"{sys.executable} -c \"import molexp as mx; mx.current_run().find_asset('data')\""


@pytest.fixture
def used_twice(workspace: Path, cli: Cli) -> str:
    """A run that looked up the same asset in two attempts (the second `--force`d)."""
    (workspace.parent / "d.txt").write_text("d\n")
    assert cli("assets", "add", ".", "data", str(workspace.parent / "d.txt")).exit_code == 0
    assert cli("project create p").exit_code == 0
    assert cli("experiment", "create", "p/e", "--command", LOOKS_UP).exit_code == 0
    assert cli("run", "p/e").exit_code == 0
    ran = cli("run", "p/e", "--force", "--json")
    assert ran.exit_code == 0, ran.output
    rid: str = json.loads(ran.stdout)["id"]
    return f"p/e/{rid}"


def test_show_lists_an_input_once_with_the_attempts_that_used_it(used_twice: str, cli: Cli) -> None:
    shown = cli("show", used_twice)
    assert shown.exit_code == 0, shown.output
    rows = [line for line in shown.stdout.splitlines() if line.startswith("data ")]
    assert len(rows) == 1, shown.stdout
    assert rows[0].split()[1:2] == ["."] and rows[0].split()[-1] == "1,2"
    assert re.search(r"^input\s+scope\s+content_hash\s+attempts$", shown.stdout, re.M)
    record = json.loads(cli("show", used_twice, "--json").stdout)
    assert [i["attempt"] for i in record["inputs"]] == [1, 2]  # the record keeps both


def test_durations_are_seconds_with_an_s_for_people_and_numbers_in_json(
    used_twice: str, cli: Cli
) -> None:
    stamp = re.compile(r"^\d+\.\d\ds$")
    shown = cli("show", used_twice).stdout
    attempt_rows = [line.split() for line in shown.splitlines() if re.match(r"^[12] ", line)]
    assert len(attempt_rows) == 2 and all(stamp.match(row[4]) for row in attempt_rows), shown
    listed = cli("ls").stdout.splitlines()
    assert any(stamp.match(cell) for cell in listed[1].split()), listed
    compared = cli("compare", "p/e").stdout.splitlines()
    column = compared[0].split().index("duration")
    assert stamp.match(compared[1].split()[column]), compared
    record = json.loads(cli("show", used_twice, "--json").stdout)
    assert all(isinstance(a["duration"], float) for a in record["attempts"])
    assert isinstance(
        json.loads(cli("ls", "--format", "json").stdout)[0]["attempts"][0]["duration"], float
    )


def test_a_short_prefix_says_prefixes_need_four_characters(workspace: Path, cli: Cli) -> None:
    for argv in (("diff", "cf5", "x"), ("show", "cf5")):
        res = cli(*argv)
        assert res.exit_code == 2
        assert "needs at least 4 hex characters ('cf5' has 3)" in res.stderr


def test_a_held_run_says_how_to_wait_for_it(workspace: Path, cli: Cli) -> None:
    assert cli("project create p").exit_code == 0
    assert cli("experiment", "create", "p/e", "--command", "true").exit_code == 0
    plan = json.loads(cli("run", "p/e", "--dry-run", "--json").stdout)
    run_dir = workspace / "projects/p/experiments/e/runs" / plan["id"]
    run_dir.mkdir(parents=True)
    with locks.acquire(run_dir, root=workspace):  # held by this (live) process
        res = cli("run", "p/e")
    assert res.exit_code == 3
    assert "is held by pid" in res.stderr and "`--wait` waits for it" in res.stderr


def test_init_in_a_folder_whose_name_is_no_workspace_name_suggests_name(
    tmp_path: Path, cli: Cli
) -> None:
    res = cli("init", str(tmp_path / "wé s"))
    assert res.exit_code == 2
    assert "the name of the folder" in res.stderr and "--name NAME" in res.stderr
    assert "'" + str(tmp_path / "wé s") + "'" in res.stderr  # quoted for the shell
    assert not (tmp_path / "wé s" / "workspace.yaml").exists()
    assert cli("init", str(tmp_path / "wé s"), "--name", "lab").exit_code == 0


def test_doctor_counts_what_ls_lists_through_a_projects_link(
    workspace: Path, cli: Cli, tmp_path: Path
) -> None:
    assert cli("project create p").exit_code == 0
    assert cli("experiment", "create", "p/e", "--command", "true").exit_code == 0
    assert cli("run", "p/e").exit_code == 0
    elsewhere = tmp_path / "elsewhere"
    (workspace / "projects").rename(elsewhere)
    (workspace / "projects").symlink_to(elsewhere)
    (run_dir,) = (elsewhere / "p/experiments/e/runs").iterdir()
    stale = {"host": locks.hostname(), "pid": 999_999_999}
    (run_dir / locks.LOCK_NAME).write_text(json.dumps(stale))
    assert len(json.loads(cli("ls", "--format", "json").stdout)) == 1
    for fix in ([], ["--fix"]):
        report = json.loads(cli("doctor", "--json", *fix).stdout)
        assert report["checked"] == {"projects": 1, "experiments": 1, "runs": 1}
        kinds = sorted(p["kind"] for p in report["problems"])
        assert kinds == ["outside", "stale-lock"]
        assert not any(p["fixed"] for p in report["problems"])  # nothing written out there
    assert (run_dir / locks.LOCK_NAME).exists()
