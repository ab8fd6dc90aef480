"""`molexp run`: the foundation's user story, in-process."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Cli, snapshot

SCRIPT = """\
import json, os, sys
cfg = json.load(open(os.environ["MOLEXP_CONFIG_FILE"]))
params = json.load(open(os.environ["MOLEXP_PARAMS_FILE"]))
print("epochs", cfg.get("epochs"), "lr", params.get("lr"))
json.dump({"loss": 0.5, "epochs": cfg.get("epochs")}, open(os.environ["MOLEXP_RESULTS_FILE"], "w"))
sys.exit(int(os.environ.get("FAIL", "0")))
"""

MOLCFG = """\
version: 1
defaults: {dataset: qm9, epochs: 100, optimizer: {lr: 0.001}}
profiles:
  smoke: {epochs: 3, batch_size: 8}
  dry-run: {epochs: 1, skip_heavy_compute: true}
  large-batch: {extends: smoke, batch_size: 64}
"""


@pytest.fixture
def exp(workspace: Path, cli: Cli) -> Path:
    (workspace / "train.py").write_text(SCRIPT)
    (workspace / "molcfg.yaml").write_text(MOLCFG)
    assert cli("project create qm9").exit_code == 0
    r = cli("experiment", "create", "qm9/baseline", "--param", "lr=1e-3", "--replicas", "2",
            "--command", "python train.py")
    assert r.exit_code == 0, r.output
    return workspace


def lines(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


def test_run_rerun_profile_fail_fix(exp: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    first = cli("run qm9/baseline --json")
    assert first.exit_code == 0, first.output
    out = lines(first.stdout)
    assert [o["action"] for o in out] == ["executed", "executed"]
    assert [o["replica"] for o in out] == [0, 1]
    assert all(o["status"] == "succeeded" and o["exit_code"] == 0 for o in out)
    # the command's stdout went to stderr, stdout is pure JSON
    assert "epochs 100" in first.stderr

    again = cli("run qm9/baseline --json")
    assert again.exit_code == 0
    assert [o["action"] for o in lines(again.stdout)] == ["skipped", "skipped"]
    assert "up to date" in again.stderr
    assert [o["id"] for o in lines(again.stdout)] == [o["id"] for o in out]

    smoke = cli("run qm9/baseline --profile smoke --json")
    assert smoke.exit_code == 0
    smoke_ids = [o["id"] for o in lines(smoke.stdout)]
    assert set(smoke_ids).isdisjoint(o["id"] for o in out)
    assert all(o["profile"] == "smoke" for o in lines(smoke.stdout))

    monkeypatch.setenv("FAIL", "3")
    failed = cli("run qm9/baseline --profile large-batch --replica 1 --json")
    assert failed.exit_code == 1
    (f,) = lines(failed.stdout)
    assert f["status"] == "failed" and f["exit_code"] == 3 and f["profile"] == "large_batch"
    shown = json.loads(cli("show", f["id"], "--json").stdout)
    assert shown["status"] == "failed"
    assert shown["attempts"][0]["exit_code"] == 3
    log = Path(shown["run_dir"]) / "attempts" / "1" / "stdout.log"
    assert "epochs 3" in log.read_text()

    monkeypatch.delenv("FAIL")
    fixed = cli("run qm9/baseline --profile large-batch --replica 1 --json")
    assert fixed.exit_code == 0
    (g,) = lines(fixed.stdout)
    assert g["id"] == f["id"] and g["attempt"] == 2 and g["status"] == "succeeded"
    record = json.loads(cli("show", g["id"], "--json").stdout)
    assert [a["status"] for a in record["attempts"]] == ["failed", "succeeded"]
    assert record["results"] == {"loss": 0.5, "epochs": 3}
    assert record["config"]["batch_size"] == 64
    assert record["identity"] == "derived"


def test_force_starts_a_new_attempt(exp: Path, cli: Cli) -> None:
    assert cli("run qm9/baseline -r 0").exit_code == 0
    r = cli("run qm9/baseline -r 0 --force --json")
    assert lines(r.stdout)[0]["attempt"] == 2


def test_dry_run_writes_nothing(exp: Path, cli: Cli) -> None:
    before = snapshot(exp, derived=True)
    r = cli("run qm9/baseline --profile smoke --dry-run --json")
    assert r.exit_code == 0
    planned = lines(r.stdout)
    assert len(planned) == 2 and all(p["action"] == "planned" for p in planned)
    assert snapshot(exp, derived=True) == before  # not even a cache file


def test_argv_after_double_dash_runs_without_shell(exp: Path, cli: Cli) -> None:
    r = cli("run", "qm9/baseline", "-r", "0", "--json", "--", "python", "-c",
            "import sys; print(sys.argv[1:])", "{lr}", "$HOME;echo", "{{lr}}")
    assert r.exit_code == 0, r.output
    run_dir = Path(lines(r.stdout)[0]["run_dir"])
    assert "['0.001', '$HOME;echo', '{lr}']" in (run_dir / "attempts/1/stdout.log").read_text()


def test_param_values_are_never_shell_code(workspace: Path, cli: Cli) -> None:
    cli("project create p")
    evil = "x; touch pwned #"
    r = cli("experiment", "create", "p/e", "--param", f"name={evil}",
            "--command", "echo {name} ${HOME+set} {{name}}")
    assert r.exit_code == 0, r.output
    r = cli("run p/e --json")
    assert r.exit_code == 0, r.output
    assert not (workspace / "pwned").exists()
    out = (Path(lines(r.stdout)[0]["run_dir"]) / "attempts/1/stdout.log").read_text()
    assert out == f"{evil} set {{name}}\n"


def test_environment_of_the_command(exp: Path, cli: Cli) -> None:
    r = cli("run", "qm9/baseline", "-r", "1", "--profile", "smoke", "--json", "--", "sh", "-c",
            "env | grep ^MOLEXP_ | sort")
    assert r.exit_code == 0
    o = lines(r.stdout)[0]
    env = dict(line.split("=", 1) for line in (Path(o["run_dir"]) / "attempts/1/stdout.log").read_text().splitlines())
    assert env["MOLEXP_RUN_ID"] == o["id"]
    assert env["MOLEXP_REPLICA"] == "1" and env["MOLEXP_SEED"] == "1"
    assert env["MOLEXP_PROFILE"] == "smoke"
    assert env["MOLEXP_PROJECT"] == "qm9" and env["MOLEXP_EXPERIMENT"] == "baseline"
    assert json.loads(Path(env["MOLEXP_CONFIG_FILE"]).read_text())["epochs"] == 3
    assert json.loads(Path(env["MOLEXP_PARAMS_FILE"]).read_text()) == {"lr": 0.001}
    assert Path(env["MOLEXP_WORKSPACE"]) == exp


def test_unknown_profile_exits_2_and_writes_nothing(exp: Path, cli: Cli) -> None:
    before = snapshot(exp)
    r = cli("run qm9/baseline --profile smok")
    assert r.exit_code == 2
    assert "smok" in r.stderr and "smoke" in r.stderr
    assert len(r.stderr.strip().splitlines()) <= 2
    assert snapshot(exp) == before


def test_git_provenance(git_repo: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(git_repo)
    assert cli("init ws").exit_code == 0
    monkeypatch.setenv("MOLEXP_WORKSPACE", str(git_repo / "ws"))
    cli("experiment create p/e --command true")  # project missing: refused
    assert cli("project create p").exit_code == 0
    assert cli("experiment create p/e --command true --workflow train.py").exit_code == 0
    r = cli("run p/e --json")
    rec = json.loads(cli("show", lines(r.stdout)[0]["id"], "--json").stdout)
    git = rec["attempts"][0]["git"]
    assert git["dirty"] is False and len(git["commit"]) == 40 and git["branch"] == "main"
    (git_repo / "train.py").write_text("print('changed')\n")
    r = cli("run p/e --force --json")
    rec = json.loads(cli("show", lines(r.stdout)[0]["id"], "--json").stdout)
    assert rec["attempts"][1]["git"]["dirty"] is True
    patch = Path(rec["run_dir"]) / "attempts" / "2" / "git.patch"
    assert "changed" in patch.read_text()


def test_not_a_git_repository_is_fine(exp: Path, cli: Cli) -> None:
    r = cli("run qm9/baseline -r 0 --json")
    rec = json.loads(cli("show", lines(r.stdout)[0]["id"], "--json").stdout)
    assert r.exit_code == 0 and rec["attempts"][0]["git"] is None


def test_show_experiment_names_unreadable_runs(exp: Path, cli: Cli) -> None:
    r = cli("run qm9/baseline --json")
    first = lines(r.stdout)[0]
    (Path(first["run_dir"]) / "run.json").write_text("{ torn")
    shown = cli("show qm9/baseline --json")
    assert shown.exit_code == 3
    record = json.loads(shown.stdout)
    assert record["runs"]["total"] == 2 and record["runs"]["by_status"]["unreadable"] == 1
    assert "run.json" in shown.stderr and "not valid JSON" in shown.stderr


def test_absurd_replica_counts_are_refused(workspace: Path, cli: Cli) -> None:
    cli("project create p")
    r = cli("experiment create p/e --replicas 100000000 --command true")
    assert r.exit_code == 2 and "at most" in r.stderr


def test_show_for_people(exp: Path, cli: Cli) -> None:
    out = lines(cli("run qm9/baseline -r 0 --json").stdout)[0]
    shown = cli("show", out["id"][:6])
    assert shown.exit_code == 0, shown.output
    text = shown.stdout
    assert f"id           {out['id']}" in text and "status       succeeded" in text
    assert "loss" in text and "attempt  status" in text and "logs" in text
    assert "\x1b[" not in text and "┃" not in text  # piped: plain text
    experiment = cli("show qm9/baseline").stdout
    assert "replicas" in experiment and "succeeded  1" in experiment
    assert "name" in cli("show qm9").stdout and "projects" in cli("show .").stdout
