"""Shell completion: the shipped scripts are current, and they complete commands,
options and the names of the current workspace in real bash (and zsh, fish)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from molexp.cli import complete
from tests.conftest import ROOT, Cli

COMPLETIONS = ROOT / "completions"
BIN = Path(sys.executable).parent

MOLCFG = """\
version: 1
defaults: {epochs: 100}
profiles:
  smoke:       {epochs: 3}
  "dry-run":   {epochs: 1}
  large-batch:
    extends: smoke
    batch_size: 64   # a comment
"""


@pytest.mark.parametrize("shell", sorted(complete.SHELLS))
def test_shipped_scripts_are_current(shell: str) -> None:
    shipped = (COMPLETIONS / complete.SHELLS[shell]).read_text()
    assert shipped == complete.script(shell), (
        f"completions/{complete.SHELLS[shell]} is stale: "
        "run `python -m molexp.cli.complete completions/`"
    )


@pytest.fixture
def named_shell(monkeypatch: pytest.MonkeyPatch) -> None:
    """`--show-completion SHELL` names the shell instead of detecting the parent
    process's (which depends on what started the test run, not on molexp)."""
    monkeypatch.setenv("_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION", "1")


def test_show_completion_prints_the_shipped_script(cli: Cli, named_shell: None) -> None:
    r = cli("--show-completion", "bash")
    assert r.exit_code == 0
    assert r.stdout.strip() == (COMPLETIONS / "molexp.bash").read_text().strip()


def test_install_completion_writes_into_home(cli: Cli, named_shell: None) -> None:
    r = cli("--install-completion", "bash")
    assert r.exit_code == 0, r.output
    installed = Path(os.environ["HOME"]) / ".bash_completions" / "molexp.sh"
    assert installed.read_text().strip() == (COMPLETIONS / "molexp.bash").read_text().strip()
    assert f"source '{installed}'" in (Path(os.environ["HOME"]) / ".bashrc").read_text()


@pytest.fixture
def lab(workspace: Path, cli: Cli) -> dict[str, list[str]]:
    """A workspace with two experiments, two runs, an asset and profiles."""
    (workspace / "molcfg.yaml").write_text(MOLCFG)
    assert cli("project create lj").exit_code == 0
    assert cli("project create qm9").exit_code == 0
    for name in ("mc", "md"):
        r = cli("experiment", "create", f"lj/{name}", "--replicas", "2", "--command", "true")
        assert r.exit_code == 0, r.output
    assert cli("run lj/mc").exit_code == 0
    (workspace / "data.csv").write_text("x\n")
    assert cli("assets add qm9 training-data data.csv").exit_code == 0
    ids = cli("ls lj/mc --format ids").stdout.split()
    return {"runs": ids}


def _env(timed: bool = False) -> dict[str, str]:
    env = dict(os.environ)
    if timed:
        # Timed processes run without coverage measurement (pyproject: coverage
        # follows subprocesses), which would time the tracer, not molexp.
        env = {k: v for k, v in env.items() if not k.startswith("COVERAGE_")}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    return env


def bash_complete(*words: str, cwd: Path, env: dict[str, str] | None = None) -> list[str]:
    """COMPREPLY after sourcing the shipped script in a real bash and pressing TAB
    with the cursor at the end of ``words`` (the last word may be empty)."""
    quoted = " ".join(f"'{w}'" for w in words)
    script = (
        f"source '{COMPLETIONS / 'molexp.bash'}'\n"
        f"COMP_WORDS=({quoted}); COMP_CWORD={len(words) - 1}\n"
        '_molexp_completion molexp\nprintf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    proc = subprocess.run(
        ["bash", "--norc", "--noprofile", "-c", script],
        cwd=cwd,
        env=env or _env(),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 0 and not proc.stderr, proc.stderr
    return [line for line in proc.stdout.splitlines() if line]


def test_bash_completes_commands_options_and_names(
    lab: dict[str, list[str]], workspace: Path
) -> None:
    runs = lab["runs"]
    commands = bash_complete("molexp", "", cwd=workspace)
    assert {"run", "ls", "show", "export", "import", "project", "experiment"} <= set(commands)
    assert bash_complete("molexp", "sh", cwd=workspace) == ["show"]
    assert bash_complete("molexp", "run", "lj/mc", "--pro", cwd=workspace) == ["--profile"]
    assert "--format" in bash_complete("molexp", "ls", "--", cwd=workspace)
    # projects, experiments, runs
    assert bash_complete("molexp", "experiment", "ls", "", cwd=workspace) == ["lj", "qm9"]
    assert bash_complete("molexp", "show", "l", cwd=workspace) == ["lj", "lj/mc", "lj/md"]
    assert bash_complete("molexp", "run", "", cwd=workspace) == ["lj/mc", "lj/md"]
    assert bash_complete("molexp", "ls", "lj/m", cwd=workspace) == ["lj/mc", "lj/md"]
    assert sorted(bash_complete("molexp", "show", "lj/mc/", cwd=workspace)) == sorted(runs)
    one = runs[0].rsplit("/", 1)[1]
    assert bash_complete("molexp", "show", runs[0][:-10], cwd=workspace) == [runs[0]]
    assert bash_complete("molexp", "show", one[:5], cwd=workspace) == [one]
    assert bash_complete("molexp", "export", "qm", cwd=workspace) == ["qm9"]
    # profiles of molcfg.yaml, assets
    profiles = bash_complete("molexp", "run", "lj/mc", "--profile", "", cwd=workspace)
    assert profiles == ["smoke", "dry-run", "large-batch"]
    assert bash_complete("molexp", "run", "lj/mc", "-P", "l", cwd=workspace) == ["large-batch"]
    assert bash_complete("molexp", "assets", "path", "", cwd=workspace) == ["training-data"]


def test_bash_completion_finds_the_workspace_like_the_command(
    lab: dict[str, list[str]], workspace: Path, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    # outside any workspace: nothing to offer, and no error on the terminal
    assert bash_complete("molexp", "run", "", cwd=elsewhere) == []
    assert bash_complete("molexp", "-w", str(workspace), "run", "", cwd=elsewhere) == [
        "lj/mc",
        "lj/md",
    ]
    env = _env()
    env["MOLEXP_WORKSPACE"] = str(workspace)
    assert bash_complete("molexp", "run", "", cwd=elsewhere, env=env) == ["lj/mc", "lj/md"]
    # profiles come from the current directory, or from --config
    (elsewhere / "other.yaml").write_text("profiles: {a: {}, b: {}}\n")
    words = (
        "molexp",
        "-w",
        str(workspace),
        "run",
        "lj/mc",
        "--config",
        "other.yaml",
        "--profile",
        "",
    )
    assert bash_complete(*words, cwd=elsewhere) == ["a", "b"]


def test_profile_names_from_every_kind_of_file(tmp_path: Path) -> None:
    cases = {
        "block.yaml": (MOLCFG, ["smoke", "dry-run", "large-batch"]),
        "flow.yml": ("profiles: {x: {}, y-z: {extends: x}}\n", ["x", "y_z"]),
        "after.yaml": ("profiles:\n  a:\n    k: 1\n  b: {}\ndefaults: {}\n", ["a", "b"]),
        "none.yaml": ("defaults: {a: 1}\n", []),
        "c.json": ('{"profiles": {"p": {}, "q": {}}}', ["p", "q"]),
        "broken.yaml": ("profiles: [unclosed\n", []),
    }
    for name, (text, expected) in cases.items():
        (tmp_path / name).write_text(text)
        assert complete.profile_names(tmp_path / name) == expected, name


def _molexp_seconds(args: list[str], env: dict[str, str], cwd: Path) -> float:
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        subprocess.run(
            [str(BIN / "molexp"), *args], env=env, cwd=cwd, capture_output=True, check=True
        )
        best = min(best, time.perf_counter() - start)
    return best


def test_completion_costs_little_more_than_starting(
    lab: dict[str, list[str]], workspace: Path
) -> None:
    """The budget is 150 ms in all; the part that is ours (finding the workspace,
    scanning names) must stay small next to starting the program."""
    runs = workspace / "projects" / "lj" / "experiments" / "mc" / "runs"
    for i in range(500):
        (runs / f"{i:016x}").mkdir()
    env = _env(timed=True)
    env.update(COMP_WORDS="molexp show lj/mc/", COMP_CWORD="2", _MOLEXP_COMPLETE="complete_bash")
    completing = _molexp_seconds([], env, workspace)
    starting = _molexp_seconds(["--version"], _env(timed=True), workspace)
    assert completing - starting < 0.05, (completing, starting)


@pytest.mark.skipif(shutil.which("zsh") is None, reason="zsh is not installed")
def test_zsh_script_completes_names(lab: dict[str, list[str]], workspace: Path) -> None:
    # compdef and _arguments belong to zsh's completion system; stand-ins record
    # what the shipped function hands to it.
    script = (
        'compdef() { :; }; _arguments() { print -r -- "$@"; }\n'
        f"source '{COMPLETIONS / 'molexp.zsh'}'\n"
        "words=(molexp run ''); CURRENT=3; _molexp_completion\n"
        "words=(molexp run lj/mc --profile ''); CURRENT=5; _molexp_completion\n"
    )
    proc = subprocess.run(
        ["zsh", "-f", "-c", script],
        cwd=workspace,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("*: :(") and '"lj/mc"' in lines[0] and '"lj/md"' in lines[0]
    assert '"smoke"' in lines[1] and '"large-batch"' in lines[1]


@pytest.mark.skipif(shutil.which("fish") is None, reason="fish is not installed")
def test_fish_script_completes_names(lab: dict[str, list[str]], workspace: Path) -> None:
    script = (
        f"source '{COMPLETIONS / 'molexp.fish'}'\n"
        "complete -C 'molexp show l'\n"
        "echo ==\n"
        "complete -C 'molexp run lj/mc --profile '\n"
    )
    proc = subprocess.run(
        ["fish", "--no-config", "-c", script],
        cwd=workspace,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 0, proc.stderr
    names, profiles = proc.stdout.split("==\n")
    assert names.split() == ["lj", "lj/mc", "lj/md"]
    assert sorted(profiles.split()) == ["dry-run", "large-batch", "smoke"]
