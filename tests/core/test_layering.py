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
        assert not found & {"typer", "rich", "click"}, (
            f"{path} imports {found & {'typer', 'rich', 'click'}}"
        )


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


def _import_graph() -> dict[str, set[str]]:
    import grimp

    graph = grimp.build_graph("molexp")
    return {m: set(graph.find_modules_directly_imported_by(m)) for m in graph.modules}


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def test_no_import_circle_between_modules() -> None:
    """Counting imports inside functions too: a lazy import is still an import."""
    edges = _import_graph()
    # a package's __init__ importing nothing of its own is not a circle
    assert _cycles(edges) == []


def test_a_circle_is_found() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_import_contracts_hold() -> None:
    """The layers of docs/architecture.md (pyproject's [tool.importlinter])."""
    lint = ROOT / ".venv" / "bin" / "lint-imports"
    exe = str(lint) if lint.exists() else "lint-imports"
    proc = subprocess.run([exe, "--no-cache"], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:]
