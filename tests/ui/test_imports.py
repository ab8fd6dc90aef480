"""The web view is an optional layer: no other command loads it or its libraries."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import ROOT

WEB = ("molexp.ui", "http.server", "socketserver", "selenium")


def _loaded(code: str) -> list[str]:
    probe = code + (
        "\nimport sys\n"
        f"print('LOADED:' + ','.join(m for m in sys.modules if m.startswith({WEB!r})))\n"
    )
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          cwd=ROOT, check=True)  # fmt: skip
    line = next(x for x in proc.stdout.splitlines() if x.startswith("LOADED:"))
    return [m for m in line[len("LOADED:") :].split(",") if m]


def test_importing_the_cli_loads_no_web_module() -> None:
    assert _loaded("import molexp.cli.main") == []


def test_help_and_other_commands_load_no_web_module() -> None:
    code = (
        "import sys\n"
        "from molexp.cli.main import app, load_command\n"
        "import typer\n"
        "group = typer.main.get_command(app)\n"
        "for name in ('ls', 'show', 'run', 'compare', 'tag'):\n"
        "    load_command(name)\n"
        "try:\n"
        "    group.main(['--help'], prog_name='molexp', standalone_mode=False)\n"
        "except SystemExit:\n"
        "    pass\n"
    )
    assert _loaded(code) == []


def test_the_ui_commands_load_the_web_layer_only_when_they_run() -> None:
    assert _loaded("from molexp.cli.main import load_command\nload_command('ui')\n"
                   "load_command('report')") == []  # fmt: skip
    assert "molexp.ui.server" in _loaded("import molexp.ui.server")
