"""examples/ci: the CI script a user copies, run for real; the workflow that calls it."""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT

EXAMPLE = ROOT / "examples" / "ci"


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A user's repository: the simulation, its profiles and ci.sh."""
    work = tmp_path / "repo"
    work.mkdir()
    for name in ("mc.py", "molcfg.yaml"):
        shutil.copy(ROOT / "examples" / "quickstart" / name, work)
    shutil.copy(EXAMPLE / "ci.sh", work)
    return work


def ci(cwd: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return subprocess.run(
        ["bash", "ci.sh"], cwd=cwd, env=env, capture_output=True, text=True, timeout=240
    )


def test_ci_script_passes_and_leaves_artifacts(repo: Path, tmp_path: Path) -> None:
    proc = ci(repo)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = repo / "molexp-out"
    lines = [json.loads(x) for x in (out / "runs.jsonl").read_text().splitlines()]
    assert sorted(r["replica"] for r in lines) == [0, 1]
    assert all(r["status"] == "succeeded" and r["action"] == "executed" for r in lines)
    assert "energy per particle" in proc.stdout
    assert "\x1b[" not in proc.stdout + proc.stderr  # NO_COLOR: plain logs
    # the HTML report: every run, nothing loaded from elsewhere
    report = (out / "report.html").read_text()
    assert all(r["id"] in report for r in lines)
    assert not re.search(r"""(src|href)\s*=""", report)
    # the artifact bundle imports into another workspace
    laptop = tmp_path / "laptop"
    molexp = [sys.executable, "-m", "molexp"]
    subprocess.run([*molexp, "init", str(laptop)], check=True, capture_output=True)
    imp = subprocess.run(
        [*molexp, "-w", str(laptop), "import", str(out / "lj.tar.gz")],
        capture_output=True,
        text=True,
    )
    assert imp.returncode == 0, imp.stderr
    ids = subprocess.run(
        [*molexp, "-w", str(laptop), "ls", "--format", "ids"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert sorted(ids) == sorted(f"lj/mc/{r['id']}" for r in lines)


def test_ci_script_fails_the_job_when_a_run_fails(repo: Path) -> None:
    script = repo / "mc.py"
    script.write_text(script.read_text().replace('params["temperature"]', 'params["temprature"]'))
    proc = ci(repo)
    assert proc.returncode == 1
    assert "KeyError: 'temprature'" in proc.stdout  # the failed run's stderr in the job log
    assert (repo / "molexp-out" / "lj.tar.gz").exists()  # records kept for inspection


def test_workflow_calls_the_script() -> None:
    workflow = yaml.safe_load((EXAMPLE / "github-actions.yml").read_text())
    steps = workflow["jobs"]["smoke"]["steps"]
    runs = [s.get("run", "") for s in steps]
    assert "bash ci.sh" in runs
    # molexp is on no package index: it is installed from its own checkout
    checkout = next(s for s in steps if s.get("with", {}).get("path") == ".molexp-src")
    assert checkout["uses"].startswith("actions/checkout@")
    assert any("pip install './.molexp-src[ui]'" in r for r in runs)
    assert not any(re.search(r"pip install '?molexp\b", r) for r in runs)
    upload = next(s for s in steps if s.get("uses", "").startswith("actions/upload-artifact"))
    assert upload["with"]["path"] == "molexp-out/" and upload["if"] == "always()"


# --- what makes molexp safe in CI -------------------------------------------------------

ACTIONS = {
    # commands that change things and print only messages (stderr); all others print data
    "init",
    "project create",
    "experiment create",
    "assets add",
    "assets rm",
    "assets path",
    "run-task",
    "run-retry",  # the follow-up job of `run --retries`: submits, prints messages
    "ui",  # a server (prints its URL): its JSON is the pages' API, docs/ui.md
    "report",  # writes an HTML file
}


def _leaf_commands() -> dict[str, object]:
    import typer

    from molexp.cli.main import app

    def walk(group: typer.core.TyperGroup, prefix: str) -> dict[str, object]:
        out: dict[str, object] = {}
        ctx = typer.Context(group)
        for name in group.list_commands(ctx):
            cmd = group.get_command(ctx, name)
            if isinstance(cmd, typer.core.TyperGroup):
                out.update(walk(cmd, f"{prefix}{name} "))
            elif cmd is not None:
                out[prefix + name] = cmd
        return out

    root = typer.main.get_command(app)
    assert isinstance(root, typer.core.TyperGroup)
    return walk(root, "")


def test_every_command_that_prints_data_has_json_and_docs() -> None:
    reference = (ROOT / "docs" / "json.md").read_text()
    for name, cmd in _leaf_commands().items():
        if name in ACTIONS:
            continue
        flags = {opt for p in cmd.params for opt in getattr(p, "opts", [])}  # type: ignore[attr-defined]
        assert "--json" in flags or "--format" in flags, f"`molexp {name}` has no JSON output"
        assert f"`molexp {name}" in reference, f"docs/json.md does not describe `molexp {name}`"


def test_no_command_prompts() -> None:
    """No command reads the terminal unless it is one: nothing can hang in CI waiting
    for an answer.  The one question (`rm`, `trash empty`, SPEC §16) is asked by
    `output.confirm`, only when stdin and stderr are terminals."""
    confirm = (ROOT / "molexp" / "cli" / "output.py").read_text()
    assert "if not (is_tty(sys.stdin) and is_tty(sys.stderr)):\n        return None" in confirm
    asking = {"typer", "click", "Confirm", "Prompt", "getpass"}
    for path in (ROOT / "molexp").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            if isinstance(func, ast.Name):
                call = func.id if func.id in {"input", "getpass"} else ""
            elif isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
                owner, attr = func.value.id, func.attr
                asks = owner in asking and attr in {"prompt", "confirm", "ask", "getpass"}
                call = f"{owner}.{attr}" if asks else ""
            else:
                call = ""
            if not call:
                continue
            the_one = path == ROOT / "molexp" / "cli" / "output.py" and call == "typer.confirm"
            assert the_one, f"{path.relative_to(ROOT)}:{node.lineno} calls {call}()"


def _molexp(
    *args: str, env: dict[str, str] | None = None, **kwargs: object
) -> subprocess.CompletedProcess[str]:
    full = dict(os.environ)
    full["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{full.get('PATH', '')}"
    full.update(env or {})
    return subprocess.run(  # type: ignore[call-overload, no-any-return]
        [sys.executable, "-m", "molexp", *args],
        env=full,
        capture_output=True,
        text=True,
        timeout=60,
        **kwargs,
    )


def test_a_refused_destructive_command_does_not_wait_for_input(tmp_path: Path) -> None:
    ws = tmp_path / "lab"
    assert _molexp("init", str(ws)).returncode == 0
    (tmp_path / "data.csv").write_text("x\n")
    for args in (
        ("project", "create", "p"),
        ("experiment", "create", "p/e", "--command", "molexp assets path data"),
        ("assets", "add", ".", "data", str(tmp_path / "data.csv")),
        ("run", "p/e"),
    ):
        r = _molexp("-w", str(ws), *args)
        assert r.returncode == 0, r.stderr
    # stdin is a pipe nobody writes to or closes: a prompt would hang until the timeout
    proc = subprocess.Popen(
        [sys.executable, "-m", "molexp", "-w", str(ws), "assets", "rm", ".", "data"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 3, err
    assert "--force" in err


def _on_a_terminal(args: list[str], env: dict[str, str]) -> str:
    """Run molexp with stdout and stderr on a pseudo-terminal; return what it drew."""
    import pty

    leader, follower = pty.openpty()
    full = dict(os.environ)
    full.update(env)
    proc = subprocess.Popen(
        [sys.executable, "-m", "molexp", *args],
        stdin=subprocess.DEVNULL,
        stdout=follower,
        stderr=follower,
        env=full,
    )
    os.close(follower)
    chunks = []
    while True:
        try:
            data = os.read(leader, 4096)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    proc.wait(timeout=60)
    os.close(leader)
    return b"".join(chunks).decode(errors="replace")


def test_colour_follows_the_terminal_no_color_and_the_flags(tmp_path: Path) -> None:
    bad = ["-w", str(tmp_path), "ls"]  # not a workspace: an error message
    plain = {"NO_COLOR": ""}
    assert "\x1b[" not in _molexp(*bad, env=plain).stderr  # piped: no colour
    assert "\x1b[31merror" in _molexp("--color", *bad, env=plain).stderr  # forced
    assert "\x1b[31merror" in _on_a_terminal(bad, plain)  # a terminal: colour
    assert "\x1b[" not in _on_a_terminal(bad, {"NO_COLOR": "1"})  # NO_COLOR wins
    assert "\x1b[" not in _on_a_terminal(["--no-color", *bad], plain)
    assert "\x1b[31merror" in _on_a_terminal(["--color", *bad], {"NO_COLOR": "1"})
