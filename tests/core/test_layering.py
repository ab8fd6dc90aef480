"""The layers stay visible: the core never imports the CLI's libraries."""

from __future__ import annotations

import re
import subprocess
import sys

from tests.conftest import ROOT

IMPORT = re.compile(r"^\s*(?:import|from)\s+(\w+)", re.M)


def test_core_imports_no_ui_library() -> None:
    for path in (ROOT / "molexp" / "core").rglob("*.py"):
        found = set(IMPORT.findall(path.read_text()))
        assert not found & {"typer", "rich", "click"}, f"{path} imports {found & {'typer', 'rich', 'click'}}"


def test_nothing_imports_click_directly() -> None:
    for path in (ROOT / "molexp").rglob("*.py"):
        assert "click" not in IMPORT.findall(path.read_text()), f"{path} imports click"


def test_version_does_not_import_heavy_modules() -> None:
    code = (
        "import sys, molexp.cli.main as m\n"
        "heavy = [x for x in ('git', 'yaml', 'rich.table', 'xxhash') if x in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"importing the CLI loads {out.stdout.strip()}"
