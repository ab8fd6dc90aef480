"""The experiment's ``workdir`` (SPEC §4, §6, §9): the same config, the same run ids
and the same place, whichever directory `molexp run` is started from."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from molexp.core.records.workspace import Workspace, stored_workdir
from molexp.errors import UsageError
from tests.conftest import Cli, run_molexp

MD = """\
import json, os
cfg = json.load(open(os.environ["MOLEXP_CONFIG_FILE"]))
print(os.getcwd(), cfg.get("steps"))
"""


def lines(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


@pytest.fixture
def lab(tmp_path: Path) -> Path:
    """A lab with its code and molcfg.yaml beside workspace.yaml; cu/md runs `python md.py`."""
    lab = tmp_path / "lab"
    lab.mkdir()
    (lab / "md.py").write_text(MD)
    (lab / "molcfg.yaml").write_text("defaults: {steps: 1000}\nprofiles: {smoke: {steps: 10}}\n")
    for args in (["init", "."], ["project", "create", "cu"],
                 ["experiment", "create", "cu/md", "--command", "python md.py"]):  # fmt: skip
        assert run_molexp(*args, cwd=lab).returncode == 0
    return lab


def run_from(where: Path, lab: Path, *args: str) -> dict[str, Any]:
    done = run_molexp("-w", str(lab), "run", "cu/md", "-r", "0", "--json", *args, cwd=where)
    assert done.returncode == 0, done.stdout + done.stderr
    (outcome,) = lines(done.stdout)
    return outcome


def test_a_run_from_elsewhere_gets_the_same_id_config_and_directory(
    lab: Path, tmp_path: Path
) -> None:
    definition = (lab / "projects/cu/experiments/md/experiment.yaml").read_text()
    assert "workdir: .\n" in definition
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    away = run_from(elsewhere, lab, "--profile", "smoke")
    assert away["status"] == "succeeded"
    home = run_from(lab, lab, "--profile", "smoke", "--force")
    assert home["id"] == away["id"]  # the same run, found again
    log = (Path(away["run_dir"]) / "attempts/1/stdout.log").read_text()
    assert log == f"{os.path.realpath(lab)} 10\n"  # ran in the lab, with the lab's molcfg.yaml
    record = json.loads((Path(away["run_dir"]) / "run.json").read_text())
    assert [a["cwd"] for a in record["attempts"]] == [os.path.realpath(lab)] * 2
    assert list(elsewhere.iterdir()) == []


def test_config_is_read_from_where_molexp_was_started(lab: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "mine.yaml").write_text("defaults: {steps: 7}\n")
    out = run_from(elsewhere, lab, "--config", "mine.yaml")
    log = (Path(out["run_dir"]) / "attempts/1/stdout.log").read_text()
    assert log == f"{os.path.realpath(lab)} 7\n"  # --config still overrides; cwd is the workdir


def test_workdir_is_stored_relative_to_the_workspace(tmp_path: Path, cli: Cli,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    code = tmp_path / "code"
    (code / "scripts").mkdir(parents=True)
    monkeypatch.chdir(code)
    assert cli("init lab").exit_code == 0
    monkeypatch.setenv("MOLEXP_WORKSPACE", str(code / "lab"))
    assert cli("project create p").exit_code == 0
    cases = {"here": ([], ".."), "flag": (["--workdir", "scripts"], "../scripts"),
             "root": (["--workdir", "/"], "/"), "inside": (["--workdir", "lab"], ".")}  # fmt: skip
    for name, (args, stored) in cases.items():
        r = cli("experiment", "create", f"p/{name}", "--command", "true", *args)
        assert r.exit_code == 0, r.output
        text = (code / f"lab/projects/p/experiments/{name}/experiment.yaml").read_text()
        assert f"workdir: {stored}\n" in text, text
    # an identical definition does nothing; from another directory it differs
    assert cli("experiment create p/here --command true").exit_code == 0
    monkeypatch.chdir(code / "scripts")
    r = cli("experiment create p/here --command true")
    assert r.exit_code == 3 and "different workdir" in r.stderr
    assert cli("experiment create p/here --command true --workdir ..").exit_code == 0
    r = cli("experiment create p/x --command true --workdir nowhere")
    assert r.exit_code == 2 and "not a directory" in r.stderr


def test_stored_workdir_through_a_symlinked_workspace(tmp_path: Path) -> None:
    (tmp_path / "real/ws").mkdir(parents=True)
    (tmp_path / "link").symlink_to(tmp_path / "real")
    assert stored_workdir(tmp_path / "link/ws", tmp_path / "real") == ".."
    assert stored_workdir(tmp_path / "real/ws", tmp_path / "link/ws") == "."
    with pytest.raises(UsageError):
        stored_workdir(tmp_path, tmp_path / "missing")


def test_a_moved_workspace_with_its_code_keeps_working(lab: Path, tmp_path: Path) -> None:
    first = run_from(lab, lab)
    moved = tmp_path / "moved"
    lab.rename(moved)
    again = run_molexp("-w", str(moved), "run", "cu/md", "-r", "0", "--json", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert lines(again.stdout)[0]["action"] == "skipped"  # the same id: found, up to date
    assert lines(again.stdout)[0]["id"] == first["id"]


def test_an_experiment_without_workdir_runs_in_the_current_directory(
    lab: Path, tmp_path: Path
) -> None:
    path = lab / "projects/cu/experiments/md/experiment.yaml"
    path.write_text(path.read_text().replace("workdir: .\n", ""))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "md.py").write_text(MD)
    out = run_from(elsewhere, lab)
    log = (Path(out["run_dir"]) / "attempts/1/stdout.log").read_text()
    assert log == f"{os.path.realpath(elsewhere)} None\n"  # as before: cwd, its (absent) config
    assert run_molexp("experiment", "create", "cu/md", "--command", "python md.py",
                      cwd=lab).returncode == 0  # an older definition is not refused  # fmt: skip


def test_a_workdir_that_is_gone_is_refused(lab: Path, cli: Cli) -> None:
    (lab / "scripts").mkdir()
    done = run_molexp("experiment", "create", "cu/s", "--command", "true", "--workdir", "scripts",
                      cwd=lab)  # fmt: skip
    assert done.returncode == 0, done.stderr
    (lab / "scripts").rmdir()
    r = run_molexp("run", "cu/s", cwd=lab)
    assert r.returncode == 3
    assert "(workdir: scripts in" in r.stderr and "which is not a directory" in r.stderr


def test_the_python_api_follows_the_workdir(lab: Path, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    import molexp as mx

    cli_id = run_from(lab, lab, "--profile", "smoke")["id"]
    monkeypatch.chdir(tmp_path)
    exp = mx.Workspace(lab).project("cu").experiment("md")
    assert exp.run_for(replica=0, profile="smoke").id == cli_id
    assert exp.run_for(replica=0, profile="smoke", cwd=lab).id == cli_id
    created = mx.Workspace(lab).project("cu").experiment("api", command="true")
    assert created.definition()["workdir"] == os.path.relpath(tmp_path, os.path.realpath(lab))


def test_slurm_tasks_run_in_the_workdir(lab: Path, tmp_path: Path) -> None:
    done = run_molexp("-w", str(lab), "run", "cu/md", "--executor", "slurm", "--dry-run",
                      cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert f"#SBATCH --chdir={os.path.realpath(lab)}" in done.stdout.splitlines()


def test_run_options_default_to_the_workdir(lab: Path, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    from molexp.core.actions.run import RunRequest, plan_request

    monkeypatch.chdir(tmp_path)
    plan = plan_request(Workspace(lab), RunRequest("cu/md"))
    assert plan.options.cwd == Path(os.path.realpath(lab))
    assert plan.specs[0].config == {"steps": 1000}
