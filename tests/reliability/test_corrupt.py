"""Corrupt and foreign files (issue #4): every command names the file and says
what to do, listings still show every readable record and exit 3, and nothing
is deleted or rewritten to "repair" it."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Cli
from tests.reliability.conftest import records_snapshot

Corruption = Callable[[Path], Path]  # run dir -> the file a message must name


def _edit(change: Callable[[dict[str, Any]], None]) -> Corruption:
    def corrupt(run_dir: Path) -> Path:
        path = run_dir / "run.json"
        record = json.loads(path.read_bytes())
        change(record)
        path.write_text(json.dumps(record, indent=2))
        return path

    return corrupt


def _write(data: bytes) -> Corruption:
    def corrupt(run_dir: Path) -> Path:
        (run_dir / "run.json").write_bytes(data)
        return run_dir / "run.json"

    return corrupt


def _truncate(run_dir: Path) -> Path:
    path = run_dir / "run.json"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def _rename(run_dir: Path) -> Path:
    moved = run_dir.with_name("0123456789abcdef")
    run_dir.rename(moved)
    return moved / "run.json"


def _remove(run_dir: Path) -> Path:
    (run_dir / "run.json").unlink()
    return run_dir / "run.json"


def _directory(run_dir: Path) -> Path:
    (run_dir / "run.json").unlink()
    (run_dir / "run.json").mkdir()
    return run_dir / "run.json"


def _set(key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    return lambda record: record.__setitem__(key, value)


CORRUPTIONS: dict[str, tuple[Corruption, str]] = {
    "truncated": (_truncate, "is not valid JSON"),
    "invalid-json": (_write(b"{not json at all"), "is not valid JSON"),
    "empty": (_write(b""), "is empty"),
    "not-utf8": (_write(b'{"id": "\xff\xfe"}'), "is not valid JSON"),
    "not-an-object": (_write(b"[1, 2, 3]\n"), "is not a JSON object"),
    "newer-schema": (_edit(_set("schema_version", 99)), "schema_version 99 is newer"),
    "dir-renamed": (_rename, "lives in directory '0123456789abcdef'"),
    "params-edited": (_edit(lambda r: r["params"].update(lr=0.5)), "its parameters give run id"),
    "unknown-status": (_edit(_set("status", "exploded")), "unknown status 'exploded'"),
    "missing": (_remove, "is missing"),
    "unreadable": (_directory, "cannot be read"),
    "deeply-nested": (_write(b"[" * 100_000), "nested too deeply"),
}


@pytest.fixture
def three_runs(workspace: Path, cli: Cli) -> list[Path]:
    assert cli("project create P").exit_code == 0
    made = cli(
        "experiment", "create", "P/E", "--param", "lr=0.1", "--replicas", "3", "--command", "true"
    )
    assert made.exit_code == 0, made.output
    ran = cli("run P/E")
    assert ran.exit_code == 0, ran.output
    runs = sorted(
        (workspace / "projects/P/experiments/E/runs").iterdir(),
        key=lambda d: json.loads((d / "run.json").read_bytes())["replica"],
    )
    assert len(runs) == 3
    return runs  # by replica


@pytest.mark.parametrize("case", sorted(CORRUPTIONS))
def test_a_corrupt_run_record_is_named_and_never_hides_the_others(
    workspace: Path, cli: Cli, three_runs: list[Path], case: str
) -> None:
    corrupt, problem = CORRUPTIONS[case]
    bad = corrupt(three_runs[1])
    bad_dir = bad.parent
    good_ids = [three_runs[0].name, three_runs[2].name]
    before = records_snapshot(workspace)

    listed = cli("ls", "P/E")
    assert listed.exit_code == 3
    assert all(i in listed.stdout for i in good_ids)
    assert str(bad) in listed.stderr and problem in listed.stderr
    assert "molexp doctor" in listed.stderr

    as_json = cli("ls", "--format", "json")
    assert as_json.exit_code == 3
    assert sorted(r["id"] for r in json.loads(as_json.stdout)) == sorted(good_ids)

    shown = cli("show", f"P/E/{bad_dir.name}")
    assert shown.exit_code == 3
    assert str(bad) in shown.stderr and problem in shown.stderr
    assert "Traceback" not in shown.stderr and len(shown.stderr.splitlines()) <= 2

    for fix in ([], ["--fix"]):
        checked = cli("doctor", *fix)
        assert checked.exit_code == 3
        assert str(bad.relative_to(workspace)) in checked.stdout and problem in checked.stdout

    if case != "dir-renamed":  # (renamed away, replica 1 is simply a new run)
        ran = cli("run", "P/E", "--replica", "1")
        assert ran.exit_code == 3, ran.output
        assert str(bad) in ran.stderr
    else:
        assert cli("run", "P/E", "--replica", "1").exit_code == 0
        before = {k: v for k, v in before.items() if bad_dir.name in k}
    after = records_snapshot(workspace)
    assert {k: v for k, v in after.items() if k in before or bad_dir.name in k} == before, (
        "nothing may be deleted or rewritten"
    )
    if case == "dir-renamed":
        return
    # `molexp run` of every replica runs the others, names the bad one, then exits 3
    for jobs in ("1", "2"):
        ran = cli("run", "P/E", "--force", "--jobs", jobs, "--json")
        assert ran.exit_code == 3, ran.output
        lines = [json.loads(line) for line in ran.stdout.splitlines()]
        by_id = {line["id"]: line for line in lines}
        assert [by_id[i]["action"] for i in good_ids] == ["executed", "executed"]
        assert by_id[bad_dir.name]["action"] == "refused"
        assert problem in by_id[bad_dir.name]["message"]
        assert str(bad) in ran.stderr and "1 run(s) could not be run" in ran.stderr
        assert "Traceback" not in ran.stderr
    final = records_snapshot(workspace)
    assert {k: v for k, v in final.items() if bad_dir.name in k} == {
        k: v for k, v in before.items() if bad_dir.name in k
    }


def test_a_missing_record_with_attempts_is_not_started_over(
    workspace: Path, cli: Cli, three_runs: list[Path]
) -> None:
    log = three_runs[0] / "attempts" / "1" / "stdout.log"
    log.write_text("precious output\n")
    (three_runs[0] / "run.json").unlink()
    ran = cli("run", "P/E")
    assert ran.exit_code == 3
    assert "holds attempts" in ran.stderr
    assert log.read_text() == "precious output\n"


def test_an_empty_run_directory_left_by_a_crash_is_recreated_by_run(
    workspace: Path, cli: Cli, three_runs: list[Path]
) -> None:
    import shutil

    shutil.rmtree(three_runs[0])
    three_runs[0].mkdir()  # a crash between mkdir and the first write
    assert cli("ls").exit_code == 3
    assert cli("run", "P/E").exit_code == 0
    assert cli("ls").exit_code == 0


DEFINITION_CORRUPTIONS: dict[str, tuple[str, bytes, str]] = {
    "experiment-malformed": (
        "projects/P/experiments/E/experiment.yaml",
        b"name: E\nparams: {lr: [\n",
        "malformed YAML",
    ),
    "experiment-newer": (
        "projects/P/experiments/E/experiment.yaml",
        b"schema_version: 7\nname: E\nproject: P\n",
        "schema_version 7",
    ),
    "experiment-not-utf8": (
        "projects/P/experiments/E/experiment.yaml",
        b"name: \xff\n",
        "not valid UTF-8",
    ),
    "experiment-moved": (
        "projects/P/experiments/E/experiment.yaml",
        b"schema_version: 1\nname: Other\nproject: P\nreplicas: 1\n",
        "describes P/Other",
    ),
    "experiment-bad-replicas": (
        "projects/P/experiments/E/experiment.yaml",
        b"schema_version: 1\nname: E\nproject: P\nreplicas: -1\n",
        "replicas must be",
    ),
}


@pytest.mark.parametrize("case", sorted(DEFINITION_CORRUPTIONS))
def test_a_corrupt_experiment_definition_is_named(
    workspace: Path, cli: Cli, three_runs: list[Path], case: str
) -> None:
    assert cli("experiment", "create", "P/F", "--command", "true").exit_code == 0
    rel, data, problem = DEFINITION_CORRUPTIONS[case]
    (workspace / rel).write_bytes(data)
    before = records_snapshot(workspace)
    for argv in (["show", "P/E"], ["run", "P/E"], ["run", "P/E", "--dry-run"]):
        res = cli(*argv)
        assert res.exit_code == 3, (argv, res.output)
        assert str(workspace / rel) in res.stderr and problem in res.stderr, res.stderr
        assert len(res.stderr.splitlines()) <= 2
    listed = cli("experiment", "ls")
    assert listed.exit_code == 3
    assert "P/F" in listed.stdout and str(workspace / rel) in listed.stderr
    assert cli("ls").exit_code == 0  # run records are fine and still listed
    doctor = cli("doctor")
    assert doctor.exit_code == 3 and rel in doctor.stdout
    assert records_snapshot(workspace) == before


def test_a_corrupt_project_definition_is_named_and_others_still_listed(
    workspace: Path, cli: Cli
) -> None:
    assert cli("project create P").exit_code == 0
    assert cli("project create Q").exit_code == 0
    path = workspace / "projects/P/project.yaml"
    path.write_bytes(b"schema_version: 1\nname: [unclosed\n")
    before = records_snapshot(workspace)
    listed = cli("project", "ls")
    assert listed.exit_code == 3
    assert "Q" in listed.stdout and str(path) in listed.stderr
    shown = cli("show", "P")
    assert shown.exit_code == 3 and str(path) in shown.stderr
    doctor = cli("doctor", "--json")
    assert doctor.exit_code == 3
    (problem,) = json.loads(doctor.stdout)["problems"]
    assert problem["path"] == str(path) and problem["kind"] == "unreadable"
    assert records_snapshot(workspace) == before


def test_a_workspace_from_a_newer_molexp_is_refused_by_name(workspace: Path, cli: Cli) -> None:
    path = workspace / "workspace.yaml"
    path.write_text(path.read_text().replace("schema_version: 1", "schema_version: 42"))
    before = records_snapshot(workspace)
    shown = cli("show")
    assert shown.exit_code == 3
    assert str(path) in shown.stderr and "schema_version 42" in shown.stderr
    assert "Upgrade molexp" in shown.stderr
    assert cli("doctor").exit_code == 3
    assert records_snapshot(workspace) == before


COMMAND_FILES: dict[str, bytes] = {
    "nan": b'{"loss": NaN, "acc": 0.9}',
    "infinity": b'{"loss": -Infinity}',
    "deeply-nested": b"[" * 100_000,
    "not-an-object": b"[1, 2]",
    "truncated": b'{"loss": 0.',
    "not-utf8": b'{"loss": "\xff"}',
}


KEPT = {"nan": {"loss": "NaN", "acc": 0.9}, "infinity": {"loss": "-Infinity"}}


@pytest.mark.parametrize("case", sorted(COMMAND_FILES))
def test_files_the_command_writes_never_leave_its_record_running(
    workspace: Path, cli: Cli, tmp_path: Path, case: str
) -> None:
    """results.json and inputs.jsonl come from the user's command: a bad one is
    noted on the attempt, never a crash of molexp (which would leave `running`)."""
    bad = tmp_path / "bad"
    bad.write_bytes(COMMAND_FILES[case])
    command = f'cp {bad} "$MOLEXP_RESULTS_FILE"; cp {bad} "$MOLEXP_ATTEMPT_DIR/inputs.jsonl"'
    assert cli("project create P").exit_code == 0
    assert cli("experiment", "create", "P/E", "--command", command).exit_code == 0
    res = cli("run", "P/E")
    assert res.exit_code == 0, res.output
    (record,) = json.loads(cli("ls", "--format", "json").stdout)
    assert record["status"] == "succeeded"
    if case in KEPT:  # a diverged run's NaN is a result too (SPEC §8)
        assert record["results"] == KEPT[case] and record["attempts"][0]["warnings"] == []
    else:
        assert record["results"] == {}
        assert record["attempts"][0]["warnings"][0].startswith("results.json ignored")
    assert all(isinstance(i, dict) for i in record["inputs"])
