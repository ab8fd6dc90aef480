"""Hermetic fixtures: a workspace in tmp_path, a real git repository, fixed
terminal width, and nothing ever written to $HOME."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from molexp.cli.main import app

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"


@pytest.fixture(autouse=True)
def _hermetic(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.setenv("TERMINAL_WIDTH", "200")
    monkeypatch.delenv("MOLEXP_WORKSPACE", raising=False)
    for key in list(os.environ):
        if key.startswith("MOLEXP_") and key not in ("MOLEXP_REQUIRE_SLURM",):
            monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("GIT_AUTHOR_NAME", "Test Author")
    monkeypatch.setenv("GIT_AUTHOR_EMAIL", "author@example.invalid")
    monkeypatch.setenv("GIT_COMMITTER_NAME", "Test Author")
    monkeypatch.setenv("GIT_COMMITTER_EMAIL", "author@example.invalid")
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")


@dataclass
class Result:
    exit_code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


class Cli:
    """Invoke the app in-process, like a user at a shell."""

    def __init__(self) -> None:
        self.runner = CliRunner()

    def __call__(self, *args: str, input: str | None = None) -> Result:
        argv = list(args)
        if len(argv) == 1 and " " in argv[0]:
            argv = shlex.split(argv[0])
        res = self.runner.invoke(app, argv, input=input, catch_exceptions=False)
        return Result(res.exit_code, res.stdout, res.stderr)


@pytest.fixture
def cli() -> Cli:
    return Cli()


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli: Cli) -> Path:
    """An initialised workspace that is also the current directory."""
    root = tmp_path / "ws"
    root.mkdir()
    monkeypatch.chdir(root)
    assert cli("init", ".", "--name", "lab").exit_code == 0
    return root


def molexp_exe() -> list[str]:
    return [sys.executable, "-m", "molexp"]


def run_molexp(
    *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """molexp as a real subprocess (for signals, concurrency, processes)."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    return subprocess.run(
        [*molexp_exe(), *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture
def git_repo(tmp_path: Path) -> Iterator[Path]:
    """A real git repository with one commit."""
    repo = tmp_path / "repo"
    repo.mkdir()
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
    (repo / "train.py").write_text("print('hello')\n")
    subprocess.run(["git", "-C", str(repo), "add", "train.py"], check=True)
    subprocess.run(["git", "-C", str(repo), "commit", "-q", "-m", "init"], check=True)
    yield repo


def snapshot(root: Path, derived: bool = False) -> dict[str, bytes]:
    """Every file under ``root`` with its bytes (to prove nothing changed).

    ``<workspace>/.molexp/`` holds only derived caches (deleting it loses
    nothing), so it is left out unless ``derived`` is set.
    """
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and (derived or ".molexp" not in p.relative_to(root).parts)
    }
