"""`molexp run`: the foundation's user story, in-process."""

from __future__ import annotations

import json
import re
import sys
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
    r = cli(
        "experiment",
        "create",
        "qm9/baseline",
        "--param",
        "lr=1e-3",
        "--replicas",
        "2",
        "--command",
        "python train.py",
    )
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
    r = cli(
        "run",
        "qm9/baseline",
        "-r",
        "0",
        "--json",
        "--",
        "python",
        "-c",
        "import sys; print(sys.argv[1:])",
        "{lr}",
        "$HOME;echo",
        "{{lr}}",
    )
    assert r.exit_code == 0, r.output
    run_dir = Path(lines(r.stdout)[0]["run_dir"])
    assert "['0.001', '$HOME;echo', '{lr}']" in (run_dir / "attempts/1/stdout.log").read_text()


def test_param_values_are_never_shell_code(workspace: Path, cli: Cli) -> None:
    cli("project create p")
    evil = "x; touch pwned #"
    r = cli(
        "experiment",
        "create",
        "p/e",
        "--param",
        f"name={evil}",
        "--command",
        "echo {name} ${HOME+set} {{name}}",
    )
    assert r.exit_code == 0, r.output
    r = cli("run p/e --json")
    assert r.exit_code == 0, r.output
    assert not (workspace / "pwned").exists()
    out = (Path(lines(r.stdout)[0]["run_dir"]) / "attempts/1/stdout.log").read_text()
    assert out == f"{evil} set {{name}}\n"


@pytest.mark.parametrize(
    "command", ['echo "{x}"', "echo '{x}'", "echo {x}", 'python3 -c "print({x})"',
                'python3 -c "import sys; print(sys.argv[1])" "{x}"'],
)  # fmt: skip
@pytest.mark.parametrize("value", ["$(touch pwned)", "`touch pwned`", '";touch pwned;"'])
def test_a_quoted_placeholder_never_runs_its_value(
    workspace: Path, cli: Cli, command: str, value: str
) -> None:
    cli("project create p")
    assert (
        cli("experiment", "create", "p/q", "--param", "x=hi", "--command", command).exit_code == 0
    )
    r = cli("run", "p/q", "--param", f"x={value}", "--json")
    assert not (workspace / "pwned").exists()
    (o,) = lines(r.stdout)
    out = (Path(o["run_dir"]) / "attempts/1/stdout.log").read_text()
    if "print" not in command or "argv" in command:
        assert r.exit_code == 0 and out == o["params"]["x"] + "\n"  # the value, as YAML read it


def test_a_param_named_like_a_builtin_is_refused_at_create(workspace: Path, cli: Cli) -> None:
    cli("project create p")
    before = snapshot(workspace)
    for name in ("seed", "replica", "run_id", "run_dir", "profile", "attempt", "params", "config"):
        r = cli("experiment", "create", "p/e", "--param", f"{name}=1", "--command", "true")
        assert r.exit_code == 2, r.output
        assert f"param {name!r} is named like the built-in {{{name}}} placeholder" in r.stderr
    (workspace / "p.yaml").write_text("seed: 3\n")
    assert cli("experiment create p/e --params p.yaml --command true").exit_code == 2
    (workspace / "p.yaml").unlink()
    assert snapshot(workspace) == before


def test_config_and_nested_param_placeholders(exp: Path, cli: Cli) -> None:
    r = cli(
        "experiment",
        "create",
        "qm9/lmp",
        "--param",
        "opt={lr: 0.1, kind: adam}",
        "--command",
        "echo {config.epochs} {config.optimizer.lr} {params.opt.kind} {opt}",
    )
    assert r.exit_code == 0, r.output
    r = cli("run qm9/lmp --profile smoke --json")
    assert r.exit_code == 0, r.output
    out = (Path(lines(r.stdout)[0]["run_dir"]) / "attempts/1/stdout.log").read_text()
    assert out == '3 0.001 adam {"kind":"adam","lr":0.1}\n'


def test_a_config_key_the_config_lacks_refuses_the_run(exp: Path, cli: Cli) -> None:
    cli("experiment", "create", "qm9/lmp", "--command", "lmp -var T {config.md.temp}")
    before = snapshot(exp)
    r = cli("run qm9/lmp")
    assert r.exit_code == 2
    assert "the merged config has no key 'md.temp'" in r.stderr
    assert snapshot(exp) == before  # no run was created
    r = cli("run qm9/lmp --dry-run")
    assert r.exit_code == 2


def test_an_unknown_placeholder_is_named_in_a_warning(exp: Path, cli: Cli) -> None:
    cli("experiment", "create", "qm9/typo", "--param", "temperature=300",
        "--command", "echo {temprature} {temperature}")  # fmt: skip
    r = cli("run qm9/typo --json")
    assert r.exit_code == 0
    assert "warning: the command's {temprature} names no param, config key or built-in" in r.stderr
    (o,) = lines(r.stdout)
    assert (Path(o["run_dir"]) / "attempts/1/stdout.log").read_text() == "{temprature} 300\n"
    rec = json.loads(cli("show", o["id"], "--json").stdout)
    assert "{temprature}" in rec["attempts"][0]["warnings"][0]
    assert "{temprature}" in cli("run qm9/typo --dry-run").stderr


def test_a_param_key_the_experiment_lacks_is_refused(exp: Path, cli: Cli) -> None:
    before = snapshot(exp)
    for args in (["--param", "lrr=0.1"], ["--grid", "lrr=0.1,0.2"], ["-p", "lr.x=1"]):
        r = cli("run", "qm9/baseline", *args)
        assert r.exit_code == 2, r.output
        assert "is not a param of qm9/baseline (its params are lr)" in r.stderr
    assert "Did you mean 'lr'?" in cli("run qm9/baseline --grid lrr=1,2").stderr
    (exp / "g.yaml").write_text("- {lrr: 1}\n")
    assert cli("run qm9/baseline --grid-file g.yaml").exit_code == 2
    (exp / "g.yaml").unlink()
    assert snapshot(exp) == before
    r = cli("run qm9/baseline -r 0 --param lrr=0.1 --new-param --json")
    assert r.exit_code == 0, r.output
    assert lines(r.stdout)[0]["params"] == {"lr": 0.001, "lrr": 0.1}


NAN_RESULTS = (
    "import json, os; json.dump({'loss': float('nan'), 'acc': 0.9, 'low': float('-inf')}, "
    "open(os.environ['MOLEXP_RESULTS_FILE'], 'w'))"
)

SET_RESULTS = """\
import numpy as np, molexp as mx
ctx = mx.current_run()
ctx.set_result("n", np.int64(3))
ctx.set_result("energies", np.array([-1.5, np.nan]))
ctx.set_result("model", object())
ctx.set_results({"loss": np.float32(0.25), "bad": {1: 2}})
"""


def test_a_results_json_holding_nan_keeps_every_result(workspace: Path, cli: Cli) -> None:
    cli("project create p")
    cli("experiment", "create", "p/e", "--command", f'{sys.executable} -c "{NAN_RESULTS}"')
    r = cli("run p/e --json")
    assert r.exit_code == 0, r.output
    rec = json.loads(cli("show", lines(r.stdout)[0]["id"], "--json").stdout)
    assert rec["status"] == "succeeded"
    assert rec["results"] == {"loss": "NaN", "acc": 0.9, "low": "-Infinity"}
    assert rec["attempts"][0]["results"] == rec["results"]
    assert rec["attempts"][0]["warnings"] == [] and rec["attempts"][0]["error"] is None


def test_set_result_stores_numpy_values_and_names_what_it_cannot(workspace: Path, cli: Cli) -> None:
    pytest.importorskip("numpy")
    (workspace / "fit.py").write_text(SET_RESULTS)
    cli("project create p")
    cli("experiment", "create", "p/e", "--command", f"{sys.executable} fit.py")
    r = cli("run p/e --json")
    assert r.exit_code == 0, r.output
    (o,) = lines(r.stdout)
    rec = json.loads(cli("show", o["id"], "--json").stdout)
    assert rec["status"] == "succeeded"
    assert rec["results"] == {"n": 3, "energies": [-1.5, "NaN"], "loss": 0.25}
    said = ["result 'model' not stored: a object is not a JSON value",
            "result 'bad' not stored: it holds the key 1, which is not a string"]  # fmt: skip
    assert rec["attempts"][0]["warnings"] == said
    stderr_log = (Path(o["run_dir"]) / "attempts/1/stderr.log").read_text()
    assert all(f"molexp: warning: {w}" in stderr_log for w in said)  # the command's stderr
    assert all(f"warning: p/e/{o['id']}: {w}" in r.stderr for w in said)  # and molexp's
    shown = cli("show", o["id"])
    assert re.search(r"^warning +result 'model' not stored", shown.stdout, re.M)


def test_a_new_attempt_keeps_the_earlier_attempt_s_artifacts(workspace: Path, cli: Cli) -> None:
    cli("project create p")
    cli(
        "experiment",
        "create",
        "p/e",
        "--command",
        'echo "traj of $MOLEXP_ATTEMPT" > "$MOLEXP_RUN_DIR/artifacts/traj.xyz"; exit "${FAIL:-0}"',
    )
    (o,) = lines(cli("run p/e --json").stdout)
    run_dir = Path(o["run_dir"])
    assert cli("run p/e --force").exit_code == 0
    assert (run_dir / "artifacts/traj.xyz").read_text() == "traj of 2\n"
    assert (run_dir / "attempts/1/artifacts/traj.xyz").read_text() == "traj of 1\n"
    assert cli("run p/e --force").exit_code == 0
    assert (run_dir / "attempts/2/artifacts/traj.xyz").read_text() == "traj of 2\n"
    rec = json.loads((run_dir / "run.json").read_text())
    assert [a.get("artifacts") for a in rec["attempts"]] == [
        "attempts/1/artifacts", "attempts/2/artifacts", None,
    ]  # fmt: skip
    shown = cli("show", o["id"]).stdout
    assert re.search(rf"^artifacts of attempt 1 +{run_dir}/attempts/1/artifacts/$", shown, re.M)
    assert re.search(rf"^artifacts +{re.escape(str(run_dir))}/artifacts/$", shown, re.M)


def test_an_empty_artifacts_folder_is_not_moved(workspace: Path, cli: Cli) -> None:
    cli("project create p")
    cli("experiment create p/e --command true")
    (o,) = lines(cli("run p/e --json").stdout)
    assert cli("run p/e --force").exit_code == 0
    run_dir = Path(o["run_dir"])
    assert not (run_dir / "attempts/1/artifacts").exists()
    assert "artifacts" not in json.loads((run_dir / "run.json").read_text())["attempts"][0]


def test_environment_of_the_command(exp: Path, cli: Cli) -> None:
    r = cli(
        "run",
        "qm9/baseline",
        "-r",
        "1",
        "--profile",
        "smoke",
        "--json",
        "--",
        "sh",
        "-c",
        "env | grep ^MOLEXP_ | sort",
    )
    assert r.exit_code == 0
    o = lines(r.stdout)[0]
    env = dict(
        line.split("=", 1)
        for line in (Path(o["run_dir"]) / "attempts/1/stdout.log").read_text().splitlines()
    )
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
