"""Docs that cannot drift: the generated CLI reference and help on every command."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import typer

from molexp.cli.main import app
from tests.conftest import ROOT


def generated_reference() -> str:
    typer_exe = Path(sys.executable).parent / "typer"
    proc = subprocess.run(
        [
            str(typer_exe),
            "molexp.cli.main",
            "utils",
            "docs",
            "--name",
            "molexp",
            "--title",
            "molexp command reference",
        ],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "COLUMNS": "100", "NO_COLOR": "1"},
    )
    return proc.stdout


def test_cli_reference_is_current() -> None:
    current = (ROOT / "docs" / "cli.md").read_text()
    assert generated_reference().strip() == current.strip(), "docs/cli.md is stale: run `make docs`"


def _commands(group: typer.core.TyperGroup, prefix: str = "") -> list[tuple[str, object]]:
    out = []
    ctx = typer.Context(group)
    for name in group.list_commands(ctx):
        cmd = group.get_command(ctx, name)
        if cmd is None or cmd.hidden:
            continue
        out.append((prefix + name, cmd))
        if isinstance(cmd, typer.core.TyperGroup):
            out.extend(_commands(cmd, prefix + name + " "))
    return out


def test_every_command_has_help_and_a_docs_entry() -> None:
    group = typer.main.get_command(app)
    assert isinstance(group, typer.core.TyperGroup)
    reference = (ROOT / "docs" / "cli.md").read_text()
    commands = _commands(group)
    assert len(commands) >= 8
    for name, cmd in commands:
        assert (cmd.help or "").strip(), f"`molexp {name}` has no help text"  # type: ignore[attr-defined]
        assert f"# `molexp {name}`\n" in reference, f"`molexp {name}` is missing from docs/cli.md"
        for param in cmd.params:  # type: ignore[attr-defined]
            if isinstance(param, typer.core.TyperOption) and not param.hidden:
                assert param.help, f"`molexp {name} {param.opts[0]}` has no help text"


def test_registry_summaries_match_each_commands_help() -> None:
    from molexp.cli.main import COMMANDS, load_command

    for name, (_, _, _, summary) in COMMANDS.items():
        help_text = load_command(name).help or ""
        first_paragraph = " ".join(help_text.split("\n\n")[0].split())
        assert summary == first_paragraph, f"COMMANDS[{name!r}] summary is stale"
