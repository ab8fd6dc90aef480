"""`molexp tag` and `molexp note` (SPEC §16): on runs, experiments and projects."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from molexp.core.records.annotations import QUEUE_DIR
from molexp.core.store.lock import LOCK_NAME
from tests.conftest import Cli, run_molexp, snapshot
from tests.reliability.conftest import proc_env, spawn, wait_for


@pytest.fixture
def lab(workspace: Path, cli: Cli) -> list[str]:
    """p/e with two succeeded runs; returns their refs."""
    assert cli("project create p").exit_code == 0
    assert cli("experiment create p/e -p lr=0.1 --replicas 2 --command true").exit_code == 0
    assert cli("run p/e").exit_code == 0
    return cli("ls p/e --format ids").stdout.split()


def _record(workspace: Path, ref: str) -> dict[str, Any]:
    p, e, rid = ref.split("/")
    return json.loads(
        (workspace / "projects" / p / "experiments" / e / "runs" / rid / "run.json").read_text()
    )


def test_tag_adds_and_removes_in_order_and_keeps_a_sorted_set(
    lab: list[str], workspace: Path, cli: Cli
) -> None:
    a, b = lab
    r = cli("tag", a, b, "+keep", "+draft", "+alpha")
    assert r.exit_code == 0, r.output
    assert r.stdout.splitlines()[1:] == [f"{a}  alpha draft keep", f"{b}  alpha draft keep"]
    r = cli("tag", a, "-draft", "-high", "+hot")  # -h... is a tag, not --help
    assert r.exit_code == 0, r.output
    assert _record(workspace, a)["tags"] == ["alpha", "hot", "keep"]
    assert _record(workspace, b)["tags"] == ["alpha", "draft", "keep"]
    r = cli("tag", a, "--json")
    assert json.loads(r.stdout)[0]["tags"] == ["alpha", "hot", "keep"]
    assert not any((workspace / "projects/p/experiments/e").rglob(LOCK_NAME))
    assert not any((workspace / "projects/p/experiments/e").rglob(QUEUE_DIR))


def test_bad_tags_and_refs_write_nothing(lab: list[str], workspace: Path, cli: Cli) -> None:
    before = snapshot(workspace)
    for args in (
        [lab[0], "+ok", "+bad/tag"],
        [lab[0], "+ok", "nosuch/exp"],
        [".", "+ok"],
        ["+ok"],
    ):
        r = cli("tag", *args)
        assert r.exit_code == 2, (args, r.output)
        assert len(r.stderr.strip().splitlines()) <= 2
    assert snapshot(workspace) == before


def test_tags_and_notes_on_experiments_and_projects(
    lab: list[str], workspace: Path, cli: Cli
) -> None:
    definition = workspace / "projects/p/experiments/e/experiment.yaml"
    definition.write_text("# my sweep\n" + definition.read_text())
    assert cli("tag p/e p +baseline").exit_code == 0
    assert cli("note", "p/e", "lr too high\nretry with 0.01").exit_code == 0
    text = definition.read_text()
    assert text.startswith("# my sweep\n") and "baseline" in text
    shown = cli("show p/e").stdout
    assert "tags             baseline" in shown
    assert "lr too high" in shown and "retry with 0.01" in shown
    proj = json.loads(cli("show p --json").stdout)
    assert proj["tags"] == ["baseline"]
    # the definition is still the same experiment: create with it is a no-op
    r = cli("experiment create p/e -p lr=0.1 --replicas 2 --command true")
    assert r.exit_code == 0, r.output
    assert not list((workspace / "projects").rglob(LOCK_NAME))


def test_notes_are_kept_in_order_and_shown(lab: list[str], workspace: Path, cli: Cli) -> None:
    assert cli("note", lab[0], "first").exit_code == 0
    r = cli("note", lab[0], "-", input="second\nfrom stdin\n")
    assert r.exit_code == 0, r.output
    notes = _record(workspace, lab[0])["notes"]
    assert [n["text"] for n in notes] == ["first", "second\nfrom stdin\n"]
    assert notes[0]["time"] < notes[1]["time"]
    shown = cli("show", lab[0]).stdout
    assert shown.index("first") < shown.index("second") < shown.index("from stdin")
    assert cli("note", lab[0], " ").exit_code == 2


def test_ls_compare_and_where_see_tags(lab: list[str], workspace: Path, cli: Cli) -> None:
    plain = cli("ls p/e").stdout
    assert "tags" not in plain.splitlines()[0]  # no column until some run has tags
    assert cli("tag", lab[1], "+best").exit_code == 0
    assert cli("ls p/e --tag best --format ids").stdout.split() == [lab[1]]
    assert cli("ls p/e --where tags=best --format ids").stdout.split() == [lab[1]]
    assert cli("ls p/e --tag best --tag other --format ids").stdout.split() == []
    table = cli("ls p/e").stdout.splitlines()
    assert table[0].split()[-1] == "tags" and table[2].endswith("best")
    compared = cli("compare p/e").stdout.splitlines()
    assert compared[0].split()[-1] == "tags" and compared[2].endswith("best")
    rows = json.loads(cli("compare p/e --format json").stdout)
    assert [r.get("tags") for r in rows] == [None, ["best"]]
    assert cli("ls p/e --tag no/good").exit_code == 2


def test_ids_stay_and_the_run_stays_up_to_date(lab: list[str], workspace: Path, cli: Cli) -> None:
    assert cli("tag", *lab, "+keep").exit_code == 0
    assert cli("note", lab[0], "fine").exit_code == 0
    r = cli("run p/e --json")
    assert r.exit_code == 0
    outcomes = [json.loads(line) for line in r.stdout.splitlines()]
    assert [o["action"] for o in outcomes] == ["skipped", "skipped"]
    assert sorted(f"p/e/{o['id']}" for o in outcomes) == sorted(lab)
    assert cli("doctor").exit_code == 0


WAIT = 'while [ ! -e "$RELEASE" ]; do sleep 0.02; done'


def test_a_running_run_gets_its_tags_when_the_attempt_saves(
    workspace: Path, cli: Cli, tmp_path: Path
) -> None:
    assert cli("project create p").exit_code == 0
    assert cli("experiment", "create", "p/slow", "--command", WAIT).exit_code == 0
    release = tmp_path / "release"
    runner = spawn("run", "p/slow", cwd=workspace, env=proc_env(RELEASE=str(release)))
    try:
        runs = workspace / "projects/p/experiments/slow/runs"
        run_dir = wait_for(
            lambda: next((d for d in runs.glob("*") if (d / LOCK_NAME).exists()), None),
            "the run to start",
        )
        ref = f"p/slow/{run_dir.name}"
        wait_for(  # (a new run's record is written once its lock is taken)
            lambda: (
                (run_dir / "run.json").exists() and _record(workspace, ref)["status"] == "running"
            ),
            "running",
        )
        tagged = run_molexp("tag", ref, "+watch", "--json", cwd=workspace, env=proc_env())
        assert tagged.returncode == 0, tagged.stderr
        assert json.loads(tagged.stdout)[0] == {
            "kind": "run", "ref": ref, "tags": ["watch"], "notes": [], "pending": True,
        }  # fmt: skip
        assert "queued" in tagged.stderr
        assert "tags" not in _record(workspace, ref)  # the attempt holds run.json
        assert json.loads(cli("show", ref, "--json").stdout)["tags"] == ["watch"]
        assert cli("ls p/slow --tag watch --format ids").stdout.split() == [ref]
    finally:
        release.touch()
        runner.communicate(timeout=60)
    assert runner.returncode == 0
    record = _record(workspace, ref)
    assert record["status"] == "succeeded" and record["tags"] == ["watch"]
    assert not (run_dir / QUEUE_DIR).exists()


def test_a_change_queued_after_the_last_save_is_folded_by_the_next_writer(
    lab: list[str], workspace: Path, cli: Cli
) -> None:
    from molexp.core.records import annotations as annotation

    run_dir = workspace / "projects/p/experiments/e/runs" / lab[0].split("/")[2]
    annotation.queue(run_dir, annotation.change(add=["late"]), workspace)  # as if the lock was busy
    assert cli("run", "p/e", "-r", "0", "--force").exit_code == 0
    assert _record(workspace, lab[0])["tags"] == ["late"]
    assert not (run_dir / QUEUE_DIR).exists()


def test_tags_and_notes_survive_export_and_import(
    lab: list[str], workspace: Path, cli: Cli, tmp_path: Path
) -> None:
    assert cli("tag", lab[0], "p/e", "+paper").exit_code == 0
    assert cli("note", lab[0], "figure 3").exit_code == 0
    bundle = tmp_path / "b.tar.gz"
    assert cli("export", "p/e", "-o", str(bundle)).exit_code == 0
    other = tmp_path / "other"
    assert cli("init", str(other), "--name", "other").exit_code == 0
    r = cli("-w", str(other), "import", str(bundle))
    assert r.exit_code == 0, r.output
    shown = json.loads(cli("-w", str(other), "show", lab[0], "--json").stdout)
    assert shown["tags"] == ["paper"] and shown["notes"][0]["text"] == "figure 3"
    assert shown["id"] == lab[0].split("/")[2]
    assert json.loads(cli("-w", str(other), "show", "p/e", "--json").stdout)["tags"] == ["paper"]
    assert cli("-w", str(other), "ls", "--tag", "paper", "--format", "ids").stdout.split() == [
        lab[0]
    ]


def test_the_tag_completion_offers_tags_in_use(lab: list[str], workspace: Path, cli: Cli) -> None:
    from tests.test_completion import bash_complete

    assert cli("tag", lab[0], "+keep", "+kilo").exit_code == 0
    assert bash_complete("molexp", "tag", lab[1], "+k", cwd=workspace) == ["+keep", "+kilo"]
    offered = bash_complete("molexp", "tag", lab[0], "-", cwd=workspace)
    assert {"-keep", "-kilo", "--json"} <= set(offered)
    assert bash_complete("molexp", "ls", "--tag", "", cwd=workspace) == ["keep", "kilo"]
    assert bash_complete("molexp", "tag", "p/", cwd=workspace) == ["p/e"]
